"""Real Lightning training runs on tiny models and 16 px images: learning, GAN gating, EMA,
exports, decoder swap with bit-identical frozen weights, the CLI, bf16, and the demo config."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

import hit_decoder.adapters as adapters
from hit_decoder import load_decoder
from hit_decoder.cli import main
from hit_decoder.common.data import build_data
from hit_decoder.common.loaders import collate, make_val_loader
from hit_decoder.common.seeding import seeded
from hit_decoder.training import run_training, train_config_from_dict
from hit_decoder.training.evaluate import evaluate_reconstructions
from hit_decoder.training.models import FROZEN_IN_SWAP, build_models
from hit_decoder.training.module import StageOneModule
from support import read_metrics, tiny_config, write_image_folder, write_tiny_images

pytestmark = pytest.mark.usefixtures("one_thread")

def psnr_of_untrained(cfg: dict) -> float:
    """Validation PSNR of the run's model at initialisation (models are built from the run seed)."""
    c = train_config_from_dict(cfg)
    data = build_data(c.data, c.seed)
    module = StageOneModule(c, build_models(c).vq, data)
    batches = (b["image"] for b in make_val_loader(data.val, 4, 0, 1, 0))
    return evaluate_reconstructions(module.reconstruct, batches)["psnr"]


def test_from_scratch_run_learns_gates_the_gan_and_exports(tmp_path):
    images = write_tiny_images(tmp_path / "images")
    out = tmp_path / "run"
    cfg = tiny_config(out, data={"train": str(images), "val": str(images), "resize": None},
                      loss={"disc_train_start": 24, "disc_weight_start": 30},
                      optim={"dead_code_restart": True, "dead_code_every": 10},
                      trainer={"max_batches": 36, "image_every": 18, "val_every": 18})
    before = psnr_of_untrained(cfg)
    result = run_training(cfg)
    assert result.batches_done == 36
    # reconstructions of the (tiny, fixed) image set improve
    assert result.metrics["psnr"] > before + 1.0, (before, result.metrics)
    rows = {int(r["train/batch"]): r for r in read_metrics(out)}
    assert sorted(rows) == list(range(1, 37))
    first = sum(rows[b]["train/rec"] for b in range(1, 6)) / 5
    later = sum(rows[b]["train/rec"] for b in range(20, 25)) / 5
    assert later < 0.9 * first, (first, later)
    # the discriminator trains from batch 24 (0-based) on, its term enters the loss from batch 30
    assert all("train/d_loss" not in rows[b] for b in range(1, 25))
    assert all("train/d_loss" in rows[b] for b in range(25, 37))
    assert all(rows[b]["train/gan_weight"] == 0.0 for b in range(1, 31))
    assert all(0.0 < rows[b]["train/gan_weight"] < math.inf for b in range(31, 37))
    assert all(1.0 <= rows[b]["train/perplexity"] <= 32.0 for b in rows)
    assert sum(rows[b]["train/dead_codes_restarted"] for b in (10, 20, 30)) > 0
    # observability and exports
    assert (out / "images" / "batch_0000018.png").is_file() and (out / "images" / "batch_0000036.png").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert math.isfinite(result.metrics["psnr"]) and 0.0 < result.metrics["ssim"] <= 1.0
    saved = json.loads((out / "result.json").read_text())
    assert saved["val"] == result.metrics
    dec = load_decoder(result.exports["decoder"])
    assert dec.config.channels == (32, 16, 16) and dec.config.z_channels == 8
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ema = {k[len("ema_vq."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("ema_vq.")}
    live = {k[len("vq."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("vq.")}
    assert ema.keys() == live.keys()
    assert all(torch.equal(v, ema["decoder." + k]) for k, v in dec.state_dict().items())  # EMA decoder exported
    # from scratch, the EMA covers the whole model (encoder and codebook too), and it is what is exported
    assert not torch.equal(ema["quantize.embedding.weight"], live["quantize.embedding.weight"])
    from hit_decoder.adapters import load_vqmodel

    exported = load_vqmodel(result.exports["model"]).state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in exported.items())


def test_adaptive_weight_is_zero_before_the_gan_starts_and_finite_after(tmp_path):
    cfg = train_config_from_dict(tiny_config(tmp_path / "run", loss={"disc_train_start": 3, "disc_weight_start": 5}))
    data = build_data(cfg.data, cfg.seed)
    module = StageOneModule(cfg, build_models(cfg).vq, data)
    x = collate([data.train[(i, i)] for i in range(4)])["image"]
    enc = module.encode(x)
    xrec = module.decode(enc.quant)
    before = module.generator_step(x, xrec, enc, batch=4)
    assert before.gan_weight.item() == 0.0 and before.g_adv.item() == 0.0
    assert before.total.item() == pytest.approx((before.nll + before.vq).item())
    after = module.generator_step(x, xrec, enc, batch=5)
    assert 0.0 < after.gan_weight.item() < math.inf
    assert after.total.item() == pytest.approx((after.nll + after.gan_weight * after.g_adv + after.vq).item(), rel=1e-5)


def _tiny_taming_vqgan(tmp_path: Path) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    """A tiny taming VQGAN written the way taming writes them: a YAML and a .ckpt with a state_dict."""
    import hit_decoder.adapters  # noqa: F401  (taming import shims)

    from taming.models.vqgan import VQModel

    ddconfig = {"double_z": False, "z_channels": 8, "resolution": 16, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    with seeded(11):
        vq = VQModel(ddconfig=ddconfig, lossconfig={"target": "torch.nn.Identity"}, n_embed=32, embed_dim=8)
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    ckpt, yaml = tmp_path / "vqgan.ckpt", tmp_path / "vqgan.yaml"
    torch.save({"state_dict": state, "global_step": 0}, ckpt)
    yaml.write_text(
        "model:\n  base_learning_rate: 4.5e-06\n  target: taming.models.vqgan.VQModel\n  params:\n"
        "    embed_dim: 8\n    n_embed: 32\n"
        f"    ddconfig: {json.dumps(ddconfig)}\n"
        "    lossconfig:\n      target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator\n"
        "      params: {disc_conditional: false, disc_in_channels: 3, disc_start: 10000, disc_weight: 0.8, "
        "codebook_weight: 1.0}\n"
    )
    return yaml, ckpt, state


def test_decoder_swap_keeps_frozen_weights_bit_identical_and_reconstructs(tmp_path):
    yaml, ckpt, original = _tiny_taming_vqgan(tmp_path)
    images = tmp_path / "images"
    write_image_folder(images)  # includes a corrupt and a truncated file
    base = tiny_config(tmp_path / "unused", mode="decoder_swap",
                       loss={"distill_weight": 0.5, "disc_train_start": 2, "disc_weight_start": 3},
                       trainer={"max_batches": 6})
    base["data"] = {k: v for k, v in base["data"].items() if k != "resize"}
    cfg_file = tmp_path / "swap.yaml"
    cfg_file.write_text(json.dumps(base))  # JSON is YAML
    out = tmp_path / "swap"
    rc = main(["finetune-decoder", "--config", str(cfg_file), "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt),
               "--data", str(images), "--out-dir", str(out), "optim.lr=1e-3"])
    assert rc == 0
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    frozen = [k for k in original if k.split(".")[0] in FROZEN_IN_SWAP]
    assert frozen and all(torch.equal(state["vq." + k], original[k]) for k in frozen)
    assert not any(k.startswith("vq.decoder.conv_in") for k in state)  # the CNN decoder is gone
    rows = read_metrics(out)
    assert rows and all("train/distill" in r for r in rows)
    val_rows = [r for f in (out / "logs").glob("version_*/metrics.csv") for r in csv.DictReader(open(f))]
    assert any(r.get("val/seam_p2") for r in val_rows)  # validation reports seam ratios
    # write_image_folder put 2 unreadable files (broken.jpg, truncated.png) in the folder: each is counted once
    assert rows[-1]["data/skipped_images"] == 2
    result = json.loads((out / "result.json").read_text())
    assert result["batches_done"] == 6
    # the exported library-format model reconstructs a folder and writes the PSNR/SSIM table
    recon = tmp_path / "recon"
    assert main(["reconstruct", "--model", result["exports"]["model"], "--images", str(images), "--out", str(recon)]) == 0
    table = (recon / "metrics.md").read_text()
    assert "one.png" in table and "mean of 6" in table and "broken.jpg" not in table
    with open(recon / "metrics.csv") as fh:
        header = next(csv.reader(fh))
    seam_cols = [c for c in header if c.startswith("seam_p")]
    f = adapters.downsample_factor(adapters.load_vqmodel(result["exports"]["model"]))
    assert seam_cols == [f"seam_p{2 ** i}" for i in range(1, f.bit_length())]  # periods 2, 4, ..., f
    assert all(f"seam p{c[6:]}" in table for c in seam_cols)
    assert (recon / "a" / "b" / "three.png").is_file()
    with open(recon / "metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    # the taming-format export reconstructs identically
    recon_t = tmp_path / "recon_taming"
    assert main(["reconstruct", "--vqgan-config", result["exports"]["taming_yaml"], "--vqgan-ckpt",
                 result["exports"]["taming_ckpt"], "--images", str(images), "--out", str(recon_t)]) == 0
    assert (recon_t / "metrics.csv").read_text() == (recon / "metrics.csv").read_text()


def test_cli_rejects_unknown_keys_and_prints_merged_config(tmp_path, capsys):
    assert main(["train", "--config", "demo", "trainer.max_batchs=3"]) == 2
    assert "trainer.max_batchs" in capsys.readouterr().err
    assert main(["train", "--config", "demo", "--print-config", "trainer.max_batches=7"]) == 0
    assert "max_batches: 7" in capsys.readouterr().out
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    with pytest.raises(ValueError, match="disc_weight_start"):
        train_config_from_dict(tiny_config(tmp_path, loss={"disc_train_start": 5, "disc_weight_start": 2}))
    with pytest.raises(ValueError, match="model.decoder_typo"):
        train_config_from_dict({"model": {"decoder_typo": 1}})


def test_data_errors_come_before_any_model_is_built(tmp_path):
    # the decoder below cannot match the encoder (f8 vs f4): building models would fail differently
    cfg = tiny_config(tmp_path / "run", data={"train": str(tmp_path / "missing")}, model={"decoder": "hit-2m-f8"})
    with pytest.raises(FileNotFoundError, match="missing"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()
    cfg["data"]["train"] = None
    with pytest.raises(ValueError, match="upsamples by 8"):
        run_training(cfg)


def test_bf16_autocast_run(tmp_path):
    result = run_training(tiny_config(tmp_path / "bf16", trainer={"max_batches": 3, "precision": "bf16-mixed"}))
    assert result.batches_done == 3 and math.isfinite(result.metrics["psnr"])


def test_shipped_demo_config_trains_and_exports(tmp_path):
    out = tmp_path / "demo"
    result = run_training("demo", [f"out_dir={out}", "trainer.max_batches=4", "trainer.image_every=2",
                                   "trainer.val_every=2", "trainer.log_every=1", "trainer.progress_bar=false",
                                   "data.val_crops_per_image=1"])
    assert result.batches_done == 4
    assert sorted(p.name for p in (out / "images").glob("*.png")) == ["batch_0000002.png", "batch_0000004.png"]
    assert set(result.exports) == {"decoder", "model", "taming_ckpt", "taming_yaml"}
    assert all(Path(p).is_file() for p in result.exports.values())
    rows = read_metrics(out)
    assert len(rows) == 4
    val = [r for f in (out / "logs").glob("version_*/metrics.csv") for r in csv.DictReader(open(f)) if r.get("val/psnr")]
    assert len(val) == 2  # validation at batches 2 and 4


def test_cnn_decoder_from_scratch_then_swap_from_its_taming_export(tmp_path):
    """``model.decoder: cnn`` trains a plain taming VQGAN; its taming export is a valid source for
    ``decoder_swap`` (the demo's decoder-swap path)."""
    assert torch.get_num_threads() == 1  # the one_thread fixture
    cnn = run_training(tiny_config(tmp_path / "cnn", model={"decoder": "cnn"}, trainer={"max_batches": 2, "cpu_threads": 2}))
    assert torch.get_num_threads() == 1  # trainer.cpu_threads applies to the run only
    assert set(cnn.exports) == {"model", "taming_ckpt", "taming_yaml"}  # no HiT decoder file to write
    vq = adapters.load_vqmodel(cnn.exports["model"])
    assert type(vq).__name__ == "VQModel" and type(vq.decoder).__name__ == "Decoder"
    swap = run_training(tiny_config(tmp_path / "swap", mode="decoder_swap", loss={"codebook_weight": 0.0},
                                    model={"vqgan_config": cnn.exports["taming_yaml"],
                                           "vqgan_ckpt": cnn.exports["taming_ckpt"]}, trainer={"max_batches": 2}))
    hit = adapters.load_vqmodel(swap.exports["model"])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(adapters.encode_indices(hit, x), adapters.encode_indices(vq, x))  # the same frozen codes
    # decoder_swap with model.decoder: cnn: a fresh CNN decoder of the same shape on the same frozen codes
    fresh = run_training(tiny_config(tmp_path / "fresh", mode="decoder_swap", loss={"codebook_weight": 0.0},
                                     model={"decoder": "cnn", "vqgan_config": cnn.exports["taming_yaml"],
                                            "vqgan_ckpt": cnn.exports["taming_ckpt"]}, trainer={"max_batches": 2}))
    base = adapters.load_vqmodel(fresh.exports["model"])
    assert type(base.decoder).__name__ == "Decoder"
    assert torch.equal(adapters.encode_indices(base, x), adapters.encode_indices(vq, x))
    shapes = {k: v.shape for k, v in vq.decoder.state_dict().items()}
    assert {k: v.shape for k, v in base.decoder.state_dict().items()} == shapes
    assert not torch.equal(base.decoder.conv_in.weight, vq.decoder.conv_in.weight)  # re-initialised, then trained
    with pytest.raises(ValueError, match="not available with model.diffusers_model"):
        train_config_from_dict(tiny_config(tmp_path / "x", mode="decoder_swap", model={"decoder": "cnn", "diffusers_model": "d"}))
    with pytest.raises(ValueError, match="decoder_overrides"):
        train_config_from_dict(tiny_config(tmp_path / "x", model={"decoder": "cnn", "decoder_overrides": {"depths": [1]}}))
