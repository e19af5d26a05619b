"""Sliding-window sampling against an independent transcription of taming's script loop.

The reference here is written in the test (taming's ``scripts/sample_conditional.py`` loop with its
literal placement rule, generalised from 16 to any even window), calls the real taming GPT on the
full window, and draws with the same per-position uniforms. Both library paths must return its
tokens exactly, in float64, for several grid shapes (grid == window, non-square grids, a
non-square window) and all three kinds of conditioning. The GPT's weights are re-drawn at a large
scale so that its distributions are peaked and depend strongly on position and context (a default
minGPT init predicts nearly uniform tokens, which any placement would reproduce).
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

import hit_decoder.adapters  # noqa: F401  (taming import shims)
from hit_decoder.adapters.gpt_sampler import _Chunk, _forward_packed, _WindowCache
from hit_decoder.sampling import (
    default_window,
    draw_uniforms,
    grid_shape_for,
    sample_sliding_window,
    sample_tokens,
    wavefront_rounds,
    window_offset,
    window_start,
)

VOCAB = 24
N_CLASSES = 3


def vq_config(n_embed: int = VOCAB, ch_mult=(1, 1)) -> dict:
    return {
        "target": "taming.models.vqgan.VQModel",
        "params": {
            "n_embed": n_embed, "embed_dim": 4, "lossconfig": {"target": "torch.nn.Identity"},
            "ddconfig": dict(double_z=False, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32,
                             ch_mult=list(ch_mult), num_res_blocks=1, attn_resolutions=[], dropout=0.0),
        },
    }


def sharpen_(gpt: torch.nn.Module, seed: int) -> None:
    """Large random weights: peaked, strongly position- and context-dependent predictions."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in gpt.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
            elif p.ndim == 1:  # layer norm gains
                p.copy_(1.0 + torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
            else:
                std = 1.0 if ("emb" in name or name == "head.weight") else 0.5
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)


def build(kind: str, block_size: int, n_unmasked: int = 0):
    from taming.models.cond_transformer import Net2NetTransformer

    gpt = {"target": "taming.modules.transformer.mingpt.GPT",
           "params": dict(vocab_size=VOCAB, block_size=block_size, n_layer=2, n_head=2, n_embd=16, n_unmasked=n_unmasked)}
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        if kind == "sos":
            m = Net2NetTransformer(gpt, vq_config(), "__is_unconditional__", unconditional=True, sos_token=VOCAB - 1)
        elif kind == "class":
            m = Net2NetTransformer(gpt, vq_config(), {"target": "taming.modules.util.Labelator",
                                                      "params": {"n_classes": N_CLASSES}}, cond_stage_key="class_label")
        else:  # spatial: a second VQ model encodes the condition image
            m = Net2NetTransformer(gpt, vq_config(), vq_config(), cond_stage_key="segmentation")
    sharpen_(m.transformer, seed=1)
    return m.double().eval()


@pytest.fixture(scope="module")
def models():
    return {
        "sos": build("sos", block_size=4 * 6),  # SOS + windows up to 4x6 - 1
        "class": build("class", block_size=16),
        "spatial": build("spatial", block_size=2 * 16 - 1, n_unmasked=16),
    }


# ----------------------------------------------------------------------------- independent reference
def taming_local(p: int, n: int, win: int) -> int:
    """The placement rule as taming's script writes it (there with 16 and 8)."""
    half = win // 2
    if p <= half:
        return p
    elif n - p < half:
        return win - (n - p)
    return half


def taming_loop(model, shape, window, cond_tokens, u, **filt) -> torch.Tensor:
    """taming's loop: full window (minus its last token) through the GPT for every position."""
    (H, W), (wh, ww) = shape, window
    B = u.shape[0]
    idx = torch.zeros(B, H, W, dtype=torch.long)
    with torch.no_grad():
        for i in range(H):
            li = taming_local(i, H, wh)
            for j in range(W):
                lj = taming_local(j, W, ww)
                i0, j0 = i - li, j - lj
                patch = idx[:, i0:i0 + wh, j0:j0 + ww].reshape(B, -1)
                seq = torch.cat([cond_tokens(i0, j0), patch], dim=1)
                logits, _ = model.transformer(seq[:, :-1])
                logits = logits[:, -wh * ww:].reshape(B, wh, ww, -1)[:, li, lj]
                idx[:, i, j] = sample_tokens(logits, u[:, i, j], **filt)
    return idx


def check_both_paths(model, shape, window, cond, cond_tokens, batch, seed, **filt):
    u = draw_uniforms((batch, *shape), torch.Generator().manual_seed(seed))
    expected = taming_loop(model, shape, window, cond_tokens, u, **filt)
    for method in ("reference", "fast"):
        got = sample_sliding_window(model, shape, cond=cond, batch_size=batch, window=window, seed=seed,
                                    method=method, progress=False, **filt)
        assert got.shape == (batch, *shape) and got.dtype == torch.long
        assert torch.equal(got, expected), f"{method} differs from taming's loop at {(got != expected).nonzero()[:5].tolist()}"
    return expected


FILTERS = [dict(), dict(top_k=6, top_p=0.9, temperature=0.8)]


@pytest.mark.parametrize("shape,filt", [((4, 4), FILTERS[1]), ((5, 9), FILTERS[0]), ((9, 6), FILTERS[1])])
def test_unconditional_matches_taming_loop(models, shape, filt):
    m = models["sos"]
    sos = torch.full((2, 1), VOCAB - 1)
    out = check_both_paths(m, shape, (4, 4), None, lambda i0, j0: sos, batch=2, seed=3, **filt)
    assert len(out.unique()) > 3  # not a degenerate sampler


def test_non_square_window_matches_taming_loop(models):
    sos = torch.full((1, 1), VOCAB - 1)
    check_both_paths(models["sos"], (7, 11), (4, 6), None, lambda i0, j0: sos, batch=1, seed=5, top_k=8)


@pytest.mark.parametrize("shape", [(4, 4), (6, 5)])
def test_class_conditional_matches_taming_loop(models, shape):
    labels = [0, 2]
    tokens = torch.tensor(labels).view(2, 1)  # Labelator: the class id is the token
    check_both_paths(models["class"], shape, (4, 4), labels, lambda i0, j0: tokens, batch=2, seed=7, top_p=0.95)


@pytest.mark.parametrize("shape", [(4, 4), (6, 7)])
def test_spatial_condition_matches_taming_loop(models, shape):
    grid = torch.randint(0, VOCAB, (2, *shape), generator=torch.Generator().manual_seed(0))
    crop = lambda i0, j0: grid[:, i0:i0 + 4, j0:j0 + 4].reshape(2, -1)
    check_both_paths(models["spatial"], shape, (4, 4), grid, crop, batch=2, seed=11, top_k=10)


def test_spatial_condition_image_is_encoded_by_the_cond_stage(models):
    m = models["spatial"]
    img = torch.rand(1, 3, 12, 14, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    _, c = m.encode_to_c(img)  # taming's own path: f2 cond stage -> 6x7 indices
    grid = c.view(1, 6, 7)
    from_image = sample_sliding_window(m, (6, 7), cond=img, window=4, seed=1, progress=False)
    from_grid = sample_sliding_window(m, (6, 7), cond=grid, window=4, seed=1, progress=False)
    assert torch.equal(from_image, from_grid)
    with pytest.raises(ValueError, match="condition grid is 6x7 codes but the sample is 6x8"):
        sample_sliding_window(m, (6, 8), cond=img, window=4, seed=1, progress=False)


def test_reference_would_catch_a_wrong_placement(models):
    """Power check: shifting the window of middle positions by one code changes the tokens."""
    m, shape, B = models["sos"], (7, 7), 1
    u = draw_uniforms((B, *shape), torch.Generator().manual_seed(0))
    sos = torch.full((B, 1), VOCAB - 1)
    right = sample_sliding_window(m, shape, window=4, seed=0, progress=False)
    global taming_local
    original = taming_local
    try:
        # middle positions one code further left in their window (the window one code to the right)
        taming_local = lambda p, n, w: (
            w // 2 - 1 if original(p, n, w) == w // 2 and p - w // 2 + 1 + w <= n else original(p, n, w)
        )
        wrong = taming_loop(m, shape, (4, 4), lambda i0, j0: sos, u)
    finally:
        taming_local = original
    assert (right != wrong).float().mean() > 0.2


# ----------------------------------------------------------------------------- pieces
def test_window_offset_is_taming_rule_for_16():
    for n in range(16, 41):
        for p in range(n):
            assert window_offset(p, n, 16) == taming_local(p, n, 16)


@pytest.mark.parametrize("win", [1, 2, 3, 4, 5, 7, 16])
def test_windows_stay_inside_the_grid_and_contain_the_position(win):
    for n in range(win, win + 12):
        starts = [window_start(p, n, win) for p in range(n)]
        assert all(0 <= s <= n - win and s <= p < s + win for p, s in enumerate(starts))
        assert starts == sorted(starts)


def test_packed_cached_chunks_give_the_full_forward_logits(models):
    """Several windows fed in uneven chunks, packed into shared passes, give taming's GPT logits."""
    for name, first in (("sos", 1), ("spatial", 16)):  # the spatial GPT leaves its 16 cond tokens unmasked
        gpt = models[name].transformer
        T = gpt.get_block_size()
        seqs = torch.randint(0, VOCAB, (3, 2, T), generator=torch.Generator().manual_seed(4))
        full = [gpt(seq)[0] for seq in seqs]
        bounds = [[0, first, first + 1, first + 7, T], [0, first + 3, first + 4, T], [0, T]]
        caches = [_WindowCache(gpt, 2, T) for _ in seqs]
        for step in range(4):
            live = [w for w in range(3) if step + 1 < len(bounds[w])]
            chunks = [_Chunk(seqs[w][:, bounds[w][step] : bounds[w][step + 1]], caches[w]) for w in live]
            logits = _forward_packed(gpt, chunks)
            for k, w in enumerate(live):
                torch.testing.assert_close(logits[:, k], full[w][:, bounds[w][step + 1] - 1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape,window", [((32, 64), (16, 16)), ((7, 11), (4, 6)), ((5, 5), (5, 5))])
def test_wavefront_rounds_respect_every_dependency(shape, window):
    rounds = wavefront_rounds(shape, window)
    round_of = {(i, j): r for r, rnd in enumerate(rounds) for i, j, *_ in rnd}
    assert len(round_of) == shape[0] * shape[1] == sum(map(len, rounds))
    wh, ww = window
    for r, rnd in enumerate(rounds):
        assert len({(i0, j0) for _, _, i0, j0, _ in rnd}) == len(rnd)  # one position per window and round
        for i, j, i0, j0, t in rnd:
            assert (i0, j0, t) == (window_start(i, shape[0], wh), window_start(j, shape[1], ww), (i - i0) * ww + j - j0)
            prefix = [(i0 + k // ww, j0 + k % ww) for k in range(t)]
            assert all(round_of[q] < r for q in prefix)
    if shape == (32, 64):
        assert len(rounds) < 600  # 2048 positions in 560 rounds


def test_sample_tokens_inverse_cdf():
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0, -30.0]], dtype=torch.float64)
    probs = torch.softmax(logits, -1)[0]
    n = 40000
    u = draw_uniforms((n, 1, 1), torch.Generator().manual_seed(0))[:, 0, 0]
    draws = sample_tokens(logits.expand(n, -1), u)
    freq = torch.bincount(draws, minlength=5).double() / n
    assert (freq - probs).abs().max() < 0.01
    top2 = sample_tokens(logits.expand(n, -1), u, top_k=2)
    assert set(top2.unique().tolist()) == {1, 3}
    assert abs((top2 == 3).double().mean() - torch.softmax(torch.tensor([1.0, 2.0]), -1)[1]) < 0.01
    assert set(sample_tokens(logits.expand(n, -1), u, top_p=0.5).unique().tolist()) == {3}
    assert set(sample_tokens(logits.expand(n, -1), u, top_k=1).unique().tolist()) == {3}
    edge = sample_tokens(logits.expand(2, -1), torch.tensor([1.0, 1e-300], dtype=torch.float64), top_k=3)
    assert edge.tolist() == [3, 0]  # u = 1: last kept token; u -> 0: first kept token


def test_same_seed_same_tokens_and_generator_equals_seed(models):
    m = models["sos"]
    a = sample_sliding_window(m, (5, 6), window=4, seed=9, progress=False)
    b = sample_sliding_window(m, (5, 6), window=4, generator=torch.Generator().manual_seed(9), progress=False)
    c = sample_sliding_window(m, (5, 6), window=4, seed=10, progress=False)
    evicting = sample_sliding_window(m, (5, 6), window=4, seed=9, max_cached_windows=1, progress=False)
    assert torch.equal(a, b) and torch.equal(a, evicting) and not torch.equal(a, c)


def test_default_window_from_block_size(models):
    assert default_window(256, 1) == 16 and default_window(511, None) == 16 and default_window(17, None) == 3
    out = sample_sliding_window(models["class"], (4, 5), cond=1, seed=0, progress=False)  # block 16 + class -> 4
    assert out.shape == (1, 4, 5)
    with pytest.raises(ValueError, match="smaller than the sampling window 4x4"):
        sample_sliding_window(models["class"], (3, 5), cond=1, seed=0, progress=False)


def test_bad_input_is_reported(models):
    m = models["sos"]
    cases = [
        (dict(shape=(3, 8), window=4), "latent grid 3x8 is smaller than the sampling window 4x4"),
        (dict(shape=(8, 8), window=5), "needs 25 positions but the GPT's block size is 24"),
        (dict(shape=(8, 8), window=4, cond=1), "unconditional"),
        (dict(shape=(8, 8), window=4, temperature=0), "temperature must be > 0"),
        (dict(shape=(8, 8), window=4, top_k=0), "top_k must be >= 1"),
        (dict(shape=(8, 8), window=4, top_p=1.5), "top_p must be in"),
        (dict(shape=(8, 8), window=4, method="slow"), "method must be one of"),
        (dict(shape=(8, 8), window=4, seed=1, generator=torch.Generator()), "either generator= or seed="),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            sample_sliding_window(m, progress=False, **kwargs)
    with pytest.raises(ValueError, match="this prior is conditional"):
        sample_sliding_window(models["class"], (4, 4), progress=False)
    with pytest.raises(ValueError, match="out of range: this prior has 3 classes"):
        sample_sliding_window(models["class"], (4, 4), cond=[0, 3], progress=False)
    with pytest.raises(ValueError, match="class-conditional \\(Labelator\\); pass class ids"):
        sample_sliding_window(models["class"], (4, 4), cond=torch.zeros(1, 4, 4, dtype=torch.long), progress=False)
    with pytest.raises(ValueError, match="batch_size=3"):
        sample_sliding_window(models["class"], (4, 4), cond=[0, 1], batch_size=3, progress=False)
    with pytest.raises(ValueError, match="expects a taming Net2NetTransformer"):
        sample_sliding_window(torch.nn.Linear(2, 2), (4, 4), progress=False)


def test_grid_shape_for_image_sizes():
    assert grid_shape_for((512, 1024), 16) == (32, 64)
    with pytest.raises(ValueError, match="not a multiple of the model's downsampling factor 16; use e.g. 512x1024"):
        grid_shape_for((500, 1024), 16)


def test_the_core_sampler_never_names_taming_internals(models):
    """The core sampler talks to priors only through ``sample_grid``; taming's Net2NetTransformer
    and minGPT internals (``tok_emb``, ``attn.query``, ``resid_drop``, ``sos_token``, ...) belong to
    ``hit_decoder.adapters.gpt_sampler``. The names are read off the real taming modules (their
    attributes, submodules and GPT config); the check covers attribute accesses and string
    constants in ``hit_decoder/sampling.py`` (e.g. ``getattr(m, "tok_emb")``). It cannot see a name
    built at run time from pieces."""
    import ast
    from pathlib import Path

    import hit_decoder.sampling as core

    taming_names: set[str] = set()
    for model in models.values():
        for module in model.modules():
            if type(module).__module__.startswith("taming."):
                taming_names |= {k for k in vars(module) if not k.startswith("_")}
                taming_names |= {name for name, _ in module.named_children()}
                taming_names |= {name for name, _ in module.named_parameters(recurse=False)}
                taming_names |= {name for name, _ in module.named_buffers(recurse=False)}
        taming_names |= {k for k in vars(model.transformer.config) if not k.startswith("_")}
    taming_names -= {"training"} | set(dir(torch.nn.Module))  # nn.Module's own (taming rebinds `train`)
    assert {"tok_emb", "pos_emb", "query", "resid_drop", "n_unmasked", "sos_token", "be_unconditional"} <= taming_names
    tree = ast.parse(Path(core.__file__).read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not sorted(used & taming_names), "the core sampler reaches into taming's modules"
