"""Patch-wise decoding: plan geometry, blending, exactness against whole-grid decoding.

Measured (random latents, randomly initialised tiny v2 HiT decoder, grid 17x23, tiles of 7 codes,
image values up to ~1.3), max |tiled - whole|:

    margin / align of hit_tile_geometry (5 / 4)   0 (bit-identical) in float32, 9e-16 in float64
      + overlap 3 (blending)                        9e-16 (float64), 1e-7 (float32)
    margin 4 (one code short)                       5e-5
    margin 5, unaligned contexts                    4.7e-2
    no margin                                       1.05  (8e-2 with overlap 3)

The tests assert bit-identity in float32, 1e-10 (float64) for the geometry and that the degraded
settings are worse.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from hit_decoder import HiTDecoder, HiTDecoderConfig, create_decoder
from hit_decoder.tiling import (
    decode_tiled,
    hit_dependency,
    hit_tile_geometry,
    plan_tiles,
    ramp,
    tile_starts,
)

TINY = dict(z_channels=8, channels=(32, 16, 16), depths=(1, 1, 1), heads=(2, 2, 2),
            num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 2))


@pytest.fixture(scope="module")
def hit():
    torch.manual_seed(0)
    dec = HiTDecoder(HiTDecoderConfig(**TINY)).double().eval()
    with torch.no_grad():  # non-zero relative-position tables and biases: every path carries signal
        for p in dec.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return dec


V1_PARTS = dict(cross_attention="cell", upsample="pixel_shuffle", mlp_conv=False, rgb_upsample="nearest", out_conv=False)


def latent(h, w, c=8, seed=0):
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("n,tile,overlap", [(1, 4, 0), (4, 4, 1), (10, 4, 0), (10, 4, 1), (23, 8, 3), (9, 8, 7)])
def test_tile_starts_cover_the_axis(n, tile, overlap):
    starts = tile_starts(n, tile, overlap)
    covered = set()
    for s in starts:
        covered |= set(range(s, min(s + tile, n)))
    assert covered == set(range(n)) and starts[0] == 0 and min(starts[-1] + tile, n) == n
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_plan_contexts_are_aligned_and_bounded():
    for t in plan_tiles((23, 37), 8, overlap=2, margin=5, align=4):
        for out, ctx in zip(t.out, t.ctx):
            assert ctx.start <= out.start and ctx.stop >= out.stop and ctx.start % 4 == 0
            assert ctx.stop - ctx.start <= 8 + 2 * 5 + 4 - 1
            assert ctx.start == 0 or out.start - ctx.start >= 5
            assert ctx.stop == 37 or ctx.stop == 23 or ctx.stop - out.stop == 5


def test_ramp_weights():
    w = ramp(10, 4, 0, dtype=torch.float64)
    assert torch.allclose(w[:4], torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64)) and (w[4:] == 1).all()
    assert (ramp(6, 0, 0) == 1).all() and (ramp(5, 4, 4) > 0).all()


def test_hit_geometry_of_presets():
    assert hit_tile_geometry(create_decoder("hit-1m-f16").config) == hit_tile_geometry(create_decoder("hit-1m-f16"))
    g = hit_tile_geometry(create_decoder("hit-8m-f16"))
    assert (g.align, g.margin) == (16, 17)
    g = hit_tile_geometry(HiTDecoderConfig(**TINY))
    assert (g.align, g.margin) == (4, 5)  # super-windows: 2*2 tokens = 4 codes (stage 0), 4 tokens at 2x = 2 codes (stage 1)
    v1 = HiTDecoderConfig(**TINY, **V1_PARTS)
    assert (hit_tile_geometry(v1).align, hit_tile_geometry(v1).margin) == (4, 4)


@pytest.mark.parametrize("parts,tight", [({}, True), (V1_PARTS, True), ({"mlp_conv": False, "out_conv": False}, True),
                                         ({"upsample": "bilinear_all"}, False)])
def test_dependency_cone_matches_autograd(parts, tight):
    """hit_dependency against the gradient's support: the codes whose gradient is non-zero for one
    output pixel column are exactly the predicted range (an independent reference: autograd); with
    bilinear upsampling into attention stages the cone holds the support (it rounds to whole
    super-windows, where one layer reaches only its block and dilated group)."""
    torch.manual_seed(0)
    dec = HiTDecoder(HiTDecoderConfig(**{**TINY, "depths": (1, 1, 2)}, **parts)).double()
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    f = dec.config.downsample_factor
    for col in (0, 5, 17, 30, 41):
        z = latent(4, 12).requires_grad_(True)
        dec(z)[..., col].sum().backward()
        support = (z.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
        first, last = hit_dependency(dec.config, col, col)
        got, predicted = (support.min().item(), support.max().item()), (max(0, first), min(11, last))
        if tight:
            assert got == predicted, (col, support)
        else:  # whole super-windows are a safe over-approximation of one layer's regional + dilated reach
            assert predicted[0] <= got[0] and got[1] <= predicted[1], (col, support)
        assert col // f - first <= hit_tile_geometry(dec.config).margin


# ----------------------------------------------------------------------------- exactness
def test_single_tile_equals_whole_decode_exactly(hit):
    z = latent(9, 13)
    with torch.no_grad():
        whole = hit(z)
    assert torch.equal(decode_tiled(hit, z, tile=13, overlap=3, margin=2), whole)
    assert torch.equal(decode_tiled(hit, z, tile=(9, 13)), whole)


def test_local_decoder_tiles_exactly_with_a_margin_over_its_receptive_field():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                               torch.nn.PixelShuffle(2)).double()  # receptive field: 2 codes each side, f = 2
    z = torch.randn(1, 3, 17, 21, dtype=torch.float64)
    with torch.no_grad():
        whole = conv(z)
    tiled = decode_tiled(conv, z, tile=6, overlap=2, margin=2)
    assert tiled.shape == whole.shape == (1, 2, 34, 42)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-12)
    assert (decode_tiled(conv, z, tile=6, overlap=2, margin=1) - whole).abs().max() > 1e-3


def test_hit_decoder_tiled_equals_whole_with_its_geometry(hit):
    z = latent(17, 23)
    g = hit_tile_geometry(hit)
    with torch.no_grad():
        whole = hit(z)
    err = lambda **kw: (decode_tiled(hit, z, tile=7, **kw) - whole).abs().max().item()
    exact = err(margin=g.margin, align=g.align)
    blended = err(margin=g.margin, align=g.align, overlap=3)
    short = err(margin=g.margin - 1, align=g.align)
    unaligned = err(margin=g.margin, align=1)
    none = err()
    assert exact < 1e-10 and blended < 1e-10
    assert short > 1e-6 and unaligned > 1e-4 and none > 1e-3  # tile starts 7 = 3 mod 4: the worst case


def test_hit_decoder_tiled_is_bit_identical_to_whole_in_float32():
    torch.manual_seed(0)
    dec = HiTDecoder(HiTDecoderConfig(**TINY)).eval()
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        z = latent(17, 23).float()
        g = hit_tile_geometry(dec)
        assert torch.equal(decode_tiled(dec, z, tile=7, margin=g.margin, align=g.align), dec(z))


def test_decode_codes_with_a_hit_vq_model():
    from hit_decoder import adapters

    torch.manual_seed(0)
    dd = dict(double_z=False, z_channels=8, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1, 1],
              num_res_blocks=1, attn_resolutions=[], dropout=0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        vq = adapters.HiTVQModel(ddconfig=dd, lossconfig={"target": "torch.nn.Identity"}, n_embed=32, embed_dim=4,
                                 decoder_config=TINY).double().eval()
    idx = torch.randint(0, 32, (1, 9, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = adapters.decode_indices(vq, idx)
        tiled = adapters.decode_codes(vq, idx, tile=5)
    assert tiled.shape == whole.shape == (1, 3, 36, 40)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- memory + errors
def test_decode_calls_are_bounded_by_the_tile_not_the_grid(hit):
    g = hit_tile_geometry(hit)
    areas = []

    def recording(z):
        areas.append(z.shape[-2] * z.shape[-1])
        return hit(z)

    for h, w in [(16, 16), (24, 40)]:
        areas.clear()
        out = decode_tiled(recording, latent(h, w), tile=8, margin=g.margin, align=g.align)
        assert out.shape == (2, 3, 4 * h, 4 * w)
        assert max(areas) <= (8 + 2 * g.margin + g.align - 1) ** 2


def test_bad_tiling_arguments(hit):
    z = latent(8, 8)
    for kwargs, msg in [
        (dict(tile=0), "tile must be an int >= 1"),
        (dict(tile=4, overlap=4), "overlap \\(4\\) must be smaller than the tile \\(4\\)"),
        (dict(tile=4, margin=-1), "margin must be an int >= 0"),
        (dict(tile=4, align=0), "align must be an int >= 1"),
        (dict(tile=4.5), "tile must be an int >= 1"),  # not silently 4 (one size check with the sampler's)
        (dict(tile=(4, True)), "tile must be an int >= 1"),
    ]:
        with pytest.raises(ValueError, match=msg):
            decode_tiled(hit, z, **kwargs)
    with pytest.raises(ValueError, match="latent grid of shape \\(B, C, H, W\\)"):
        decode_tiled(hit, z[0], tile=4)
    with pytest.raises(ValueError, match="expected \\(B=2, channels, 4\\*f, 4\\*f\\)"):
        decode_tiled(lambda t: t[:, :, :-1], z, tile=4)
