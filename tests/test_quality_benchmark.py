"""``benchmarks/quality.py`` judges a speed variant of a HiT arm against that arm on the same codes,
with the seeds' spread of that arm (relative to the CNN) as the allowance (issue 17's rule)."""

from __future__ import annotations

import pytest

from support import benchmark_script

METRICS = ["psnr", "ssim", "seam2", "seam4", "seam8"]


def _arm(psnr: list[float], ssim: float = 0.5, seam: float = 1.2) -> dict:
    images = {f"photo{i}": {"psnr": v, "ssim": ssim, "seam2": seam, "seam4": seam, "seam8": seam} for i, v in enumerate(psnr)}
    return {"images": images}


def _seeds(variant_psnr: tuple[list[float], list[float]], variant_seam: float = 1.2) -> dict[int, dict]:
    # hit-m minus cnn per seed: seed 0 -0.5 dB, seed 1 +0.3 dB -> the seeds' PSNR spread is 0.8 dB
    variant = [_arm(psnr, seam=variant_seam) for psnr in variant_psnr]
    return {
        0: {"arms": {"cnn": _arm([20.0, 22.0]), "hit-m": _arm([19.5, 21.5]), "hit-m-16": variant[0]}},
        1: {"arms": {"cnn": _arm([18.0, 20.0]), "hit-m": _arm([18.3, 20.3]), "hit-m-16": variant[1]}},
    }


def test_a_variant_within_the_seeds_spread_keeps_quality():
    quality = benchmark_script("quality")
    # the variant is 0.6 dB below hit-m on every photograph: inside the 0.8 dB spread
    v = quality.variant_check(_seeds(([18.9, 20.9], [17.7, 19.7])), "hit-m-16", "hit-m", METRICS)
    assert v["psnr"]["mean"] == pytest.approx(-0.6)
    assert v["psnr"]["spread"] == pytest.approx(0.8)
    assert v["psnr"]["within"] and all(v[m]["within"] for m in METRICS)
    # a gain is never a cost, however large
    v = quality.variant_check(_seeds(([25.0, 27.0], [24.0, 26.0])), "hit-m-16", "hit-m", METRICS)
    assert v["psnr"]["mean"] > 4 and v["psnr"]["within"]


def test_a_variant_beyond_the_seeds_spread_costs_quality_and_the_table_says_so():
    quality = benchmark_script("quality")
    # 1.0 dB below hit-m (spread 0.8), and seams 0.1 worse where hit-m's seams do not move between seeds
    seeds = _seeds(([18.5, 20.5], [17.3, 19.3]), variant_seam=1.3)
    v = quality.variant_check(seeds, "hit-m-16", "hit-m", METRICS)
    assert not v["psnr"]["within"] and v["ssim"]["within"]
    assert v["seam8"]["mean"] == pytest.approx(0.1) and v["seam8"]["spread"] == 0 and not v["seam8"]["within"]
    d = {"variants": {"hit-m-16": {"base": "hit-m", **v}}, "hit_configs": {"hit-m-16": {"channels": [128, 64, 32, 16]}}}
    lines = quality.render_variants(d, {"hit-m": 0.2, "hit-m-16": 0.1})
    verdict = lines[-1]
    assert verdict.startswith("- hit-m-16 vs hit-m") and "**costs quality**" in verdict
    assert "psnr" in verdict and "seam8" in verdict and "ssim" not in verdict
    assert any(ln.startswith("| hit-m-16 | hit-m | [128, 64, 32, 16] | 0.100 | 2.00x |") for ln in lines)
    assert quality.render_variants({"variants": {}}, {}) == []


def test_the_f16_family_decodes_at_16_and_scores_the_code_cell_seam(monkeypatch, capsys):
    """``--factor 16``: an f16 stage 0, HiT arms that decode its codes to its resolution, the seam ratio
    at the code-cell period 16 in every table, and f8 arms refused by name."""
    import torch

    import hit_decoder.adapters  # noqa: F401  (its import shims let taming's modules import)
    from hit_decoder import HiTDecoder

    from taming.models.vqgan import VQModel

    quality = benchmark_script("quality")
    quality.use_factor(16)
    assert quality.FACTOR == 16 and quality.PERIODS == (2, 4, 8, 16)
    vq0 = VQModel(ddconfig=quality.DDCONFIG, lossconfig={"target": "torch.nn.Identity"},
                  n_embed=quality.N_EMBED, embed_dim=quality.EMBED_DIM).eval()
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        quant = vq0.encode(x)[0]
        assert quant.shape[-2:] == (4, 6)
        for arm in quality.FAMILIES[16]["arms"][1:]:
            assert HiTDecoder(quality.HIT[arm]).eval()(vq0.post_quant_conv(quant)).shape == x.shape
    seeds = {s: {"arms": {a: {"images": {"p": {"psnr": 20.0 + s + k, "ssim": 0.5, **{f"seam{p}": 1.0 for p in (2, 4, 8, 16)}}}}
                          for k, a in enumerate(("cnn", "hit-m-f16", "hit-m-f16-16-16"))}} for s in (0, 1)}
    metrics = ["psnr", "ssim", *(f"seam{p}" for p in quality.PERIODS)]
    v = quality.variant_check(seeds, "hit-m-f16-16-16", "hit-m-f16", metrics)
    lines = quality.render_variants({"variants": {"hit-m-f16-16-16": {"base": "hit-m-f16", **v}}, "hit_configs": {}}, {})
    assert lines[3].endswith("| Δseam p2 | Δseam p4 | Δseam p8 | Δseam p16 |")
    assert v["psnr"]["mean"] == pytest.approx(1.0) and v["seam16"]["within"]

    quality = benchmark_script("quality")  # a fresh module: the f8 family again
    assert quality.FACTOR == 8 and quality.PERIODS == (2, 4, 8)
    monkeypatch.setattr("sys.argv", ["quality.py", "--factor", "16", "--arms", "cnn", "hit-m", "--out", "/nonexistent"])
    with pytest.raises(SystemExit):
        quality.main()
    err = capsys.readouterr().err
    assert "--factor 16: the arms ['hit-m'] decode at another factor" in err and "hit-m-f16-16-16" in err


def test_hit_8m_f16_slim_makes_the_change_its_quality_arm_judges():
    """The preset's evidence is the f16 family's variant: both halve exactly the MLP-only stages of
    their base and change nothing else."""
    from hit_decoder import get_decoder_config

    quality = benchmark_script("quality")
    for base, slim in ((get_decoder_config("hit-8m-f16"), get_decoder_config("hit-8m-f16-slim")),
                       (quality.HIT["hit-m-f16"], quality.HIT["hit-m-f16-16-16"])):
        n = base.num_attention_stages
        assert slim.channels[:n] == base.channels[:n] and n == len(base.channels) - 2
        assert [2 * c for c in slim.channels[n:]] == list(base.channels[n:])
        assert slim.replace(channels=base.channels) == base
