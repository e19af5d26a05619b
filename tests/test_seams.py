"""The seam metric on synthetic images with known answers, and the v2 decoder's continuity."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from hit_decoder import HiTDecoder, HiTDecoderConfig, load_decoder, save_decoder
from hit_decoder.common.metrics import luminance, seam_periods, seam_ratio, seam_ratios


def ramp_with_jumps(h: int, w: int, period: int, jump: float) -> torch.Tensor:
    """Grey image: +1 per column, +jump more across every column line of the period grid."""
    x = torch.arange(w, dtype=torch.float64)
    row = x + jump * torch.div(x, period, rounding_mode="floor")
    return row.expand(h, w)[None, None].repeat(1, 3, 1, 1)


@pytest.mark.parametrize("period,jump", [(2, 0.5), (4, 3.0), (8, 1.0)])
def test_seam_ratio_of_a_ramp_with_jumps_on_the_grid(period, jump):
    # column pairs on the grid differ by 1 + jump, other column pairs by 1; all row pairs by 0.
    # Square image: as many row pairs on / off the grid as column pairs, so the pooled means are
    # (1 + jump) / 2 and 1 / 2, and the ratio is 1 + jump.
    img = ramp_with_jumps(32, 32, period, jump)
    assert seam_ratio(img, period).item() == pytest.approx(1 + jump, rel=1e-12)


def test_seam_ratio_counts_rows_and_columns_alike():
    img = ramp_with_jumps(16, 16, 4, 2.0)
    assert seam_ratio(img.transpose(-1, -2), 4).item() == pytest.approx(seam_ratio(img, 4).item(), rel=1e-12)


def test_seam_ratio_of_a_plain_ramp_is_one_and_jumps_off_the_period_do_not_count():
    assert seam_ratio(ramp_with_jumps(24, 24, 4, 0.0), 4).item() == pytest.approx(1.0, rel=1e-12)
    # jumps at period 3 are off the period-4 grid except at multiples of 12
    img = ramp_with_jumps(24, 24, 3, 5.0)
    on = [x for x in range(1, 24) if x % 4 == 0]  # columns 4, 8, ..., 20
    d = [1 + (5.0 if x % 3 == 0 else 0) for x in range(1, 24)]
    mean_on = sum(d[x - 1] for x in on) / len(on)
    mean_off = sum(d[x - 1] for x in range(1, 24) if x % 4) / (23 - len(on))
    assert seam_ratio(img, 4).item() == pytest.approx(mean_on / mean_off, rel=1e-12)  # halved alike by rows


def test_seam_ratio_of_a_blocky_image_and_a_smooth_one():
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 9, 9), size=(64, 64), mode="bicubic", align_corners=True)
    blocky = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16), scale_factor=4, mode="nearest")
    assert abs(seam_ratio(smooth, 4).item() - 1) < 0.1
    assert seam_ratio(blocky + 1e-3 * ramp_with_jumps(64, 64, 4, 0.0).float(), 4).item() > 50
    assert torch.isnan(seam_ratio(blocky, 4)).item()  # nothing varies off the grid: undefined


def test_seam_ratio_luminance_weights_and_bad_input():
    img = torch.zeros(1, 3, 4, 4)
    img[:, 1] = 1.0
    assert torch.allclose(luminance(img), torch.full((1, 4, 4), 0.587, dtype=torch.float64))
    with pytest.raises(ValueError, match="period"):
        seam_ratio(img, 1)
    with pytest.raises(ValueError, match="expected"):
        seam_ratio(torch.zeros(2, 4, 4), 2)
    assert seam_periods(16) == [2, 4, 8, 16] and seam_periods(1) == []
    assert set(seam_ratios(ramp_with_jumps(16, 16, 2, 1.0), 8)) == {2, 4, 8}


TINY = dict(z_channels=8, channels=(32, 16, 16), depths=(1, 1, 1), heads=(2, 2, 2),
            num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 2))


def test_v2_decoder_pixels_change_continuously_across_code_cells():
    """A code grid whose codes are all equal except a smooth ramp: the v1 decoder's output jumps at
    cell borders (its pixels switch key sets); the v2 decoder's does much less. Random weights,
    both with the same seed."""
    z = torch.linspace(-1, 1, 12)[None, None, None, :].expand(1, 8, 12, 12).contiguous()
    ratios = {}
    for name, parts in {"v2": {}, "v1": dict(cross_attention="cell", upsample="pixel_shuffle", mlp_conv=False,
                                                rgb_upsample="nearest", out_conv=False)}.items():
        torch.manual_seed(0)
        dec = HiTDecoder(HiTDecoderConfig(**TINY, **parts)).eval()
        with torch.no_grad():
            for p in dec.parameters():
                p.add_(torch.randn_like(p) * 0.1)
            ratios[name] = seam_ratio(dec(z), 4).item()
    assert ratios["v1"] > 1.5 * ratios["v2"], ratios


def test_decoder_files_carry_a_format_version_and_old_ones_are_refused(tmp_path):
    dec = HiTDecoder(HiTDecoderConfig(**TINY))
    path = save_decoder(dec, tmp_path / "d.safetensors")
    assert torch.equal(load_decoder(path).stages[0].embed.weight, dec.stages[0].embed.weight)
    state = {k: v.contiguous() for k, v in dec.state_dict().items()}
    cfg = json.dumps({k: v for k, v in dec.config.to_dict().items()
                      if k not in ("cross_attention", "upsample", "mlp_conv", "rgb_upsample", "out_conv")})
    save_file(state, str(tmp_path / "v1.safetensors"), metadata={"format": "hit-decoder/decoder", "version": "1", "config": cfg})
    with pytest.raises(ValueError, match=r"v1\.safetensors.*format version 1.*seam"):
        load_decoder(tmp_path / "v1.safetensors")
    save_file(state, str(tmp_path / "v9.safetensors"), metadata={"format": "hit-decoder/decoder", "version": "9", "config": cfg})
    with pytest.raises(ValueError, match=r"version '9'.*upgrade hit-decoder"):
        load_decoder(tmp_path / "v9.safetensors")


def test_wide_grids_decode_in_exact_column_tiles_without_autograd():
    """A grid a few codes high and many wide is decoded in column tiles (bounded memory); the
    result equals the whole decode (autograd on: never tiled, never chunked) up to rounding."""
    torch.manual_seed(0)
    dec = HiTDecoder(HiTDecoderConfig(**TINY), inference_chunk_tokens=8).eval()
    z = torch.randn(1, 8, 2, 45)
    calls = []
    original = dec._decode
    dec._decode = lambda t, bands: calls.append(tuple(t.shape[-2:])) or original(t, bands)
    with torch.no_grad():
        tiled = dec(z)
    assert len(calls) > 1 and all(w < 45 for _, w in calls)  # it did tile
    from hit_decoder.decoder import WHOLE

    whole = original(z, WHOLE).detach()  # unchunked, untiled
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-6)  # row bands round matmuls differently


def test_latent_dtype_must_match_the_decoder():
    dec = HiTDecoder(HiTDecoderConfig(**TINY))
    with pytest.raises(ValueError, match=r"float32 weights but got a torch.float64 latent.*z.to"):
        dec(torch.randn(1, 8, 4, 4, dtype=torch.float64))
