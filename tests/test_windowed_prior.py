"""The windowed prior: its attention against a per-position loop over the neighbourhood written
from the definition, the streaming sampler against the plain full-masked model run once per token
(float64, several grid shapes), the wavefront schedule and its ring cache, and training /
files / sampling through the real CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from hit_decoder.cli import main
from hit_decoder.prior import WindowedPrior, load_prior, load_prior_config, prior_info, read_prior
from hit_decoder.prior.windowed import default_cache_rows, wavefront_schedule
from hit_decoder.sampling import draw_uniforms, sample_sliding_window, sample_tokens

VOCAB = 29


def sharp_model(rows_above=2, cols_each_side=2, n_layer=2, n_cond=1, seed=0) -> WindowedPrior:
    """A float64 model with large random weights, so that its distributions are far from uniform
    and a wrong context changes the drawn tokens."""
    torch.manual_seed(seed)
    m = WindowedPrior(VOCAB, n_layer, 2, 16, rows_above, cols_each_side, n_cond=n_cond, class_conditional=n_cond > 1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.5)
    return m.double().eval()


def in_context(p: tuple[int, int], q: tuple[int, int], r: int, c: int) -> bool:
    """The definition: q is before p in raster order, at most r rows above and c columns either side."""
    (i, j), (a, b) = p, q
    return (a, b) < (i, j) and i - r <= a and abs(b - j) <= c


def naive_logits(m: WindowedPrior, codes: torch.Tensor, cond: int = 0) -> torch.Tensor:
    """Logits ``(H, W, V)`` of one grid, position by position, each attending a key list built
    from :func:`in_context` and the relative-bias table indexed by ``(dy, dx)``."""
    H, W = codes.shape
    positions = [(i, j) for i in range(H) for j in range(W)]
    start = m.cond_emb.weight[cond]
    h = {p: start.clone() for p in positions}
    offsets = {o: k for k, o in enumerate(m.offsets)}
    for block in m.blocks:
        nh, C = block.n_head, start.shape[0]
        hd = C // nh
        new = {}
        for p in positions:
            keys = [(None, block.kv(start, 0), block.offset_bias[:, -1])]
            for q in positions:
                if in_context(p, q, m.rows_above, m.cols_each_side):
                    k = offsets[(q[0] - p[0], q[1] - p[1])]
                    keys.append((q, block.kv(h[q], m.tok_emb.weight[codes[q]]), block.offset_bias[:, k]))
            query = block.query(block.ln_q(h[p])).view(nh, hd)
            kv = torch.stack([kv for _, kv, _ in keys])  # (n, 2C)
            k, v = kv[:, :C].view(-1, nh, hd), kv[:, C:].view(-1, nh, hd)
            bias = torch.stack([b for _, _, b in keys], dim=1)  # (nh, n)
            att = ((torch.einsum("hd,nhd->hn", query, k) / math.sqrt(hd)) + bias).softmax(-1)
            y = torch.einsum("hn,nhd->hd", att, v).reshape(C)
            x = h[p] + block.proj(y)
            new[p] = x + block.feed_forward(x)
        h = new
    return torch.stack([m.head(m.ln_f(h[p])) for p in positions]).view(H, W, -1)


@pytest.mark.parametrize("shape,rc", [((3, 5), (1, 1)), ((4, 7), (2, 3)), ((2, 6), (0, 2)), ((5, 3), (3, 0))])
def test_masked_model_equals_the_per_position_definition(shape, rc):
    m = sharp_model(*rc)
    codes = torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = m(codes[None])[0]
        want = naive_logits(m, codes)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_a_code_changes_only_the_logits_after_it():
    m = sharp_model(2, 2, n_layer=3)
    H, W = 6, 9
    codes = torch.randint(0, VOCAB, (1, H, W), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = m(codes)
        for i, j in [(0, 0), (2, 4), (5, 8), (3, 0)]:
            changed = codes.clone()
            changed[0, i, j] = (changed[0, i, j] + 1) % VOCAB
            moved = (m(changed) - base).abs().amax(-1)[0]  # (H, W)
            not_after = torch.arange(H * W).view(H, W) <= i * W + j
            assert moved[not_after].max() == 0  # the logits of the code itself and of every code before it: unchanged
            assert (i, j) == (H - 1, W - 1) or moved[~not_after].max() > 0
            one_layer = sharp_model(2, 2, n_layer=1)
            direct = (one_layer(changed) - one_layer(codes)).abs().amax(-1)[0] > 0
            expected = torch.tensor([[in_context((a, b), (i, j), 2, 2) for b in range(W)] for a in range(H)])
            assert torch.equal(direct, expected)  # one layer: exactly the positions whose neighbourhood holds it


@pytest.mark.parametrize("shape,filt", [((1, 1), {}), ((2, 3), {}), ((3, 16), {}), ((13, 17), {}),
                                        ((9, 4), {}), ((9, 4), {"top_k": 5, "temperature": 0.7}), ((9, 4), {"top_p": 0.8})])
def test_streaming_draws_the_reference_tokens(shape, filt):
    m = sharp_model(2, 2)
    kw = dict(batch_size=2, seed=11, progress=False, **filt)
    ref = sample_sliding_window(m, shape, method="reference", **kw)
    fast = sample_sliding_window(m, shape, **kw)
    assert torch.equal(fast, ref)
    assert len(ref.unique()) > 3 or shape[0] * shape[1] < 8  # not a constant grid


def test_streaming_with_the_smallest_ring_and_classes():
    m = sharp_model(2, 1, n_cond=3)
    shape = (11, 7)
    ref = sample_sliding_window(m, shape, cond=[0, 2], method="reference", seed=5, progress=False)
    for rows in (3, 4, 11):  # 3 = rows_above + 1: every row reuses the slot of the row 3 above
        fast = sample_sliding_window(m, shape, cond=[0, 2], cache_rows=rows, seed=5, progress=False)
        assert torch.equal(fast, ref)
    assert not torch.equal(ref[0], ref[1])  # the classes differ
    other = sample_sliding_window(m, shape, cond=1, batch_size=2, seed=5, progress=False)
    assert not torch.equal(other, ref)


def test_seed_and_generator_give_the_same_tokens():
    m = sharp_model()
    a = sample_sliding_window(m, (5, 6), seed=3, progress=False)
    b = sample_sliding_window(m, (5, 6), generator=torch.Generator().manual_seed(3), progress=False)
    u = draw_uniforms((1, 5, 6), torch.Generator().manual_seed(3))
    c = m.sample_codes(torch.zeros(1, dtype=torch.long), u, lambda lg, uu: sample_tokens(lg, uu))
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("shape,r,c,rows", [((7, 9), 2, 2, 3), ((12, 30), 3, 2, 5), ((12, 30), 3, 2, 40),
                                            ((6, 5), 0, 2, 1), ((8, 3), 2, 0, 4)])
def test_wavefront_rounds_respect_context_and_ring(shape, r, c, rows):
    H, W = shape
    rounds = wavefront_schedule(shape, r, c, rows)
    when = {p: t for t, rnd in enumerate(rounds) for p in rnd}
    assert sorted(when) == [(i, j) for i in range(H) for j in range(W)]
    for p, t in when.items():
        for q in when:
            if in_context(p, q, r, c):
                assert when[q] < t, (p, q)  # its whole context is sampled in earlier rounds
        i = p[0]
        if rows < H and i >= rows:  # row i overwrites row i - rows: every reader of that row is done
            readers = [when[(a, b)] for a in range(i - rows, min(H, i - rows + r + 1)) for b in range(W)]
            assert max(readers) < t


def test_cache_grows_with_width_not_area():
    m = sharp_model(2, 2).float()
    sizes = {}
    for shape in [(6, 12), (30, 12), (6, 24), (30, 24)]:
        stats = {}
        u = draw_uniforms((1, *shape), torch.Generator().manual_seed(0))
        m.sample_codes(torch.zeros(1, dtype=torch.long), u, lambda lg, uu: sample_tokens(lg, uu), stats=stats)
        sizes[shape] = stats["cache_bytes"]
        assert stats["cache_rows"] == min(shape[0], default_cache_rows(shape[1], 2, 2))
    assert sizes[(30, 12)] < 2 * sizes[(6, 12)] and sizes[(30, 24)] < 2 * sizes[(6, 24)]  # 5x the height: < 2x
    assert sizes[(30, 24)] > sizes[(30, 12)]  # width: grows


def test_bad_sampling_input_is_reported():
    m = sharp_model()
    with pytest.raises(ValueError, match="unconditional; call it with cond=None"):
        sample_sliding_window(m, (4, 4), cond=1, progress=False)
    with pytest.raises(ValueError, match="no sampling window"):
        sample_sliding_window(m, (4, 4), window=3, progress=False)
    with pytest.raises(ValueError, match="cache_rows must be at least rows_above"):
        sample_sliding_window(m, (8, 4), cache_rows=2, progress=False)
    classes = sharp_model(n_cond=2)
    with pytest.raises(ValueError, match=r"out of range: this prior has 2 classes"):
        sample_sliding_window(classes, (4, 4), cond=5, progress=False)
    with pytest.raises(ValueError, match="class-conditional"):
        sample_sliding_window(classes, (4, 4), progress=False)


TINY = ["gpt.n_layer=1", "gpt.n_head=2", "gpt.n_embd=32", "windowed.rows_above=2", "windowed.cols_each_side=2",
        "data.resize=40", "data.crop=6", "data.batch_size=8", "trainer.log_every=1", "trainer.progress_bar=false",
        "optim.lr=3e-3"]


def test_train_prior_with_the_shipped_windowed_config_and_sample_any_size(tmp_path):
    out = tmp_path / "prior"
    assert load_prior_config("windowed").architecture == "windowed"
    assert main(["train-prior", "--config", "windowed", f"out_dir={out}", *TINY, "trainer.max_batches=25",
                 "trainer.ckpt_every=10"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert sum(result["losses"][-5:]) / 5 < sum(result["losses"][:5]) / 5 - 0.3
    info = prior_info(out / "prior.safetensors")
    assert info["architecture"] == {"kind": "windowed", "rows_above": 2, "cols_each_side": 2}
    assert (out / "checkpoints" / "last.ckpt").is_file()
    weights = load_file(out / "prior.safetensors")
    assert "blocks.0.offset_bias" in weights

    from hit_decoder import adapters

    vq = adapters.load_vqmodel(out / "first_stage.safetensors")
    prior = load_prior(out / "prior.safetensors", vq)
    assert isinstance(prior, WindowedPrior)
    assert all(torch.equal(prior.state_dict()[k], weights[k]) for k in weights)
    # any size, including one smaller than the training crop (6 codes) in one dimension
    for size in ("16x100", "60x40"):
        dest = tmp_path / f"s{size}"
        assert main(["sample", "--model", str(out / "first_stage.safetensors"), "--prior", str(out / "prior.safetensors"),
                     "--size", size, "--seed", "4", "--batch", "2", "--out", str(dest)]) == 0
        summary = json.loads((dest / "samples.json").read_text())
        h, w = (int(v) // 4 for v in size.split("x"))
        assert summary["grid"] == [h, w] and summary["neighbourhood"]["rows_above"] == 2
        assert len(summary["samples"]) == 2
    codes = torch.from_numpy(__import__("numpy").load(tmp_path / "s60x40" / "s4_000.npy"))
    again = sample_sliding_window(prior, (15, 10), batch_size=2, seed=4, progress=False)
    assert torch.equal(codes, again[0])


def test_windowed_resume_and_class_conditioning(tmp_path):
    import pytorch_lightning as pl
    import skimage.data
    from PIL import Image

    from hit_decoder.prior import train_prior

    root = tmp_path / "photos"
    for cls, name in (("cat", "chelsea"), ("cup", "coffee")):
        (root / cls).mkdir(parents=True)
        Image.fromarray(getattr(skimage.data, name)()[40:88, 60:124]).save(root / cls / "0.png")

    class Interrupt(pl.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            if module.batches_done == 5:
                raise RuntimeError("simulated interruption")

    def cfg(out, *extra):
        return load_prior_config("windowed", [*TINY, f"out_dir={out}", "trainer.max_batches=6", "trainer.ckpt_every=3",
                                              "pkeep=0.9", "conditioning=class", f"data.images={root}",
                                              "data.resize=null", *extra])

    straight = train_prior(cfg(tmp_path / "a"))
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_prior(cfg(tmp_path / "b"), callbacks=[Interrupt()])
    resumed = train_prior(cfg(tmp_path / "b", "resume=auto"))
    assert resumed.losses == straight.losses[3:]
    a, b = load_file(straight.prior), load_file(resumed.prior)
    assert all(torch.equal(a[k], b[k]) for k in a)
    info = read_prior(straight.prior).info
    assert info["conditioning"]["class_names"] == ["cat", "cup"]
    assert a["cond_emb.weight"].shape[0] == 2


def test_edited_windowed_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    m = sharp_model().float()
    info = {"gpt": {"vocab_size": VOCAB, "block_size": 36, "n_layer": 2, "n_head": 2, "n_embd": 16},
            "conditioning": {"kind": "unconditional", "sos_token": 0}, "window": [6, 6],
            "first_stage": {"codebook_size": VOCAB, "downsample_factor": 4},
            "architecture": {"kind": "windowed", "rows_above": 2, "cols_each_side": 2}}
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    for version, arch, msg in [("1", info["architecture"], "does not match its metadata"),
                               ("2", {"kind": "windowed", "rows_above": "2", "cols_each_side": 2}, "section 'architecture'"),
                               ("3", info["architecture"], "upgrade hit-decoder")]:
        path = tmp_path / f"p{version}.safetensors"
        save_file(state, str(path), metadata={"format": "hit-decoder/prior", "version": version,
                                               "info": json.dumps({**info, "architecture": arch})})
        with pytest.raises(ValueError, match=msg):
            read_prior(path)
