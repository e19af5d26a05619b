"""HiT decoder: partitions, attention against dense masked references, shapes, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hit_decoder import HiTDecoder, HiTDecoderConfig, create_decoder, list_decoders
from hit_decoder.flops import count_flops
from hit_decoder.layers import (
    LatentCrossAttention,
    Mlp,
    MultiAxisAttention,
    block_partition,
    block_unpartition,
    dilated_partition,
    dilated_unpartition,
    local_attention,
)

TINY = dict(
    z_channels=8, channels=(32, 16, 16), depths=(1, 1, 1), heads=(2, 2, 2),
    num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 2),
)


def tiny(**kw) -> HiTDecoder:
    torch.manual_seed(0)
    return HiTDecoder(HiTDecoderConfig(**{**TINY, **kw}))


# ----------------------------------------------------------------------------- partitions
@pytest.mark.parametrize("H,W,b,d", [(8, 8, 2, 2), (12, 24, 3, 2), (16, 8, 4, 2), (6, 6, 3, 1)])
def test_partition_round_trips(H, W, b, d):
    x = torch.randn(2, H, W, 5)
    assert torch.equal(block_unpartition(block_partition(x, b), b, H, W), x)
    assert torch.equal(dilated_unpartition(dilated_partition(x, b, d), b, d, H, W), x)


def test_partition_groups_have_the_documented_members():
    H, W, b, d = 12, 24, 3, 2
    ii, jj = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    coords = torch.stack([ii, jj], -1).unsqueeze(0).float()  # (1, H, W, 2)
    for g in block_partition(coords, b):  # every block: same block index, b*b distinct tokens
        assert len({(int(r) // b, int(c) // b) for r, c in g}) == 1 and len(g) == b * b
    for g in dilated_partition(coords, b, d):  # same in-block offset, same super-window, stride b
        rows, cols = g[:, 0].long(), g[:, 1].long()
        assert len(set((rows % b).tolist())) == 1 and len(set((cols % b).tolist())) == 1
        assert len(set((rows // (b * d)).tolist())) == 1 and len(set((cols // (b * d)).tolist())) == 1
        assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) == d * d


def test_partition_rejects_sizes_that_are_not_multiples():
    with pytest.raises(AssertionError, match="not a multiple"):
        block_partition(torch.randn(1, 6, 8, 2), 4)
    with pytest.raises(AssertionError, match="block\\*dilation_grid"):
        dilated_partition(torch.randn(1, 8, 8, 2), 2, 3)


# ----------------------------------------------------------------------------- references
def _dense_attention(q, k, v, bias, allowed):
    """q (heads, N, dh), k/v (N, dh) shared by all heads, bias (heads, N, M), allowed (heads, N, M)."""
    scores = q @ k.T / math.sqrt(q.shape[-1]) + bias
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v  # (heads, N, dh)


@pytest.mark.parametrize("bias_batch", [1, 6])
def test_local_attention_equals_plain_softmax_attention(bias_batch):
    """The CPU batched-matmul path against attention written out per problem (float64)."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(6, 1, n, 8, generator=g) for n in (12, 5, 5))
    bias = torch.randn(bias_batch, 1, 12, 5, generator=g)
    out = local_attention(q, k, v, bias)
    for i in range(6):
        scores = q[i, 0].double() @ k[i, 0].double().T / math.sqrt(8) + bias[i % bias_batch, 0].double()
        torch.testing.assert_close(out[i, 0].double(), scores.softmax(-1) @ v[i, 0].double(), rtol=0, atol=1e-6)
    low = local_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), bias.bfloat16())
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), out, rtol=0, atol=0.05)


def test_multi_axis_attention_equals_dense_masked_attention():
    torch.manual_seed(1)
    b, d, heads, C = 2, 3, 4, 16
    H, W = 12, 6  # multiples of b*d = 6
    attn = MultiAxisAttention(C, heads, b, d).double()
    with torch.no_grad():
        attn.regional_bias.normal_()
        attn.dilated_bias.normal_()
    x = torch.randn(1, H, W, C, dtype=torch.float64)
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[:, 5:] = False  # a padded column: never attended to
    valid[10:, :] = False
    out = attn(x, valid)[0]  # (H, W, C)

    # Independent dense reference: every token against every token with explicit masks.
    pos = [(i, j) for i in range(H) for j in range(W)]
    r = torch.tensor([p[0] for p in pos])
    c = torch.tensor([p[1] for p in pos])
    same_block = ((r[:, None] // b) == (r[None] // b)) & ((c[:, None] // b) == (c[None] // b))
    same_super = ((r[:, None] // (b * d)) == (r[None] // (b * d))) & ((c[:, None] // (b * d)) == (c[None] // (b * d)))
    same_offset = ((r[:, None] % b) == (r[None] % b)) & ((c[:, None] % b) == (c[None] % b))
    key_ok = valid.flatten()[None, :]
    # relative offsets -> table entries, computed from coordinates (not from the module's index)
    reg_idx = ((r[:, None] % b) - (r[None] % b) + b - 1) * (2 * b - 1) + ((c[:, None] % b) - (c[None] % b) + b - 1)
    gr, gc = (r // b) % d, (c // b) % d
    dil_idx = (gr[:, None] - gr[None] + d - 1) * (2 * d - 1) + (gc[:, None] - gc[None] + d - 1)
    reg_idx = torch.where(same_block, reg_idx, torch.zeros_like(reg_idx))
    dil_idx = torch.where(same_super & same_offset, dil_idx, torch.zeros_like(dil_idx))

    tokens = x[0].reshape(H * W, C)
    q = attn.q(tokens).view(H * W, heads, C // heads).transpose(0, 1)  # (heads, N, dh)
    k, v = attn.kv(tokens).chunk(2, -1)
    half = heads // 2
    reg = _dense_attention(q[:half], k, v, attn.regional_bias[:, reg_idx], (same_block & key_ok).expand(half, -1, -1))
    dil = _dense_attention(q[half:], k, v, attn.dilated_bias[:, dil_idx],
                           (same_super & same_offset & key_ok).expand(half, -1, -1))
    ref = attn.proj(torch.cat([reg, dil], 0).transpose(0, 1).reshape(H * W, C)).view(H, W, C)
    assert torch.isfinite(out).all()  # fully padded groups stay finite (outputs there are cropped)
    torch.testing.assert_close(out[valid], ref[valid], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("h,w,s,k", [(3, 4, 2, 3), (2, 5, 4, 3), (4, 4, 1, 5)])
def test_cell_cross_attention_equals_masked_dense_cross_attention(h, w, s, k):
    torch.manual_seed(2)
    C, Cl, heads = 12, 6, 3
    attn = LatentCrossAttention(C, Cl, heads, s, k, centred=False).double()
    with torch.no_grad():
        attn.bias.normal_()
    x = torch.randn(2, h * s, w * s, C, dtype=torch.float64)
    lat = torch.randn(2, h, w, Cl, dtype=torch.float64)
    out = attn(x, lat)
    windows = attn.keys(lat)  # a band of code rows gives the same rows of the output
    band = attn.attend_rows(x[:, s : 2 * s], windows, 1, 2, h * s) if h > 1 else out[:, :s]
    torch.testing.assert_close(band, out[:, s : 2 * s] if h > 1 else out[:, :s])

    # dense reference: each pixel against every latent token, masked to the k x k window
    qi, qj = torch.meshgrid(torch.arange(h * s), torch.arange(w * s), indexing="ij")
    qi, qj = qi.flatten(), qj.flatten()
    li, lj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    li, lj = li.flatten(), lj.flatten()
    di = li[None] - (qi[:, None] // s)
    dj = lj[None] - (qj[:, None] // s)
    rad = k // 2
    allowed = (di.abs() <= rad) & (dj.abs() <= rad)  # (Npix, Nlat)
    bias_idx_q = (qi % s) * s + (qj % s)  # position inside the cell
    bias_idx_k = ((di + rad) * k + (dj + rad)).clamp(0, k * k - 1)
    for bi in range(2):
        q = attn.q(x[bi].reshape(-1, C)).view(-1, heads, C // heads).transpose(0, 1)
        kk, vv = attn.kv(lat[bi].reshape(-1, Cl)).chunk(2, -1)
        bias = attn.bias[:, bias_idx_q[:, None], bias_idx_k]  # (heads, Npix, Nlat)
        o = _dense_attention(q, kk, vv, bias, allowed.expand(heads, -1, -1))
        ref = attn.proj(o.transpose(0, 1).reshape(-1, C)).view(h * s, w * s, C)
        torch.testing.assert_close(out[bi], ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("h,w,s,k", [(3, 4, 2, 3), (2, 5, 4, 3), (4, 4, 1, 3), (3, 3, 8, 5), (1, 2, 4, 3)])
def test_pixel_centred_cross_attention_equals_tent_weighted_dense_attention(h, w, s, k):
    """Reference from the documented semantics: pixel row y sits at code coordinate
    u = (y + 0.5) / s - 0.5; code j gets the weight tent(u - j) = max(0, 1 - |u - j| / (k / 2))
    (a product over rows and columns), i.e. an additive log(tent) on the score, and the learned
    bias entry of (position of u inside its group floor(u), offset j - floor(u) + k // 2)."""
    torch.manual_seed(3)
    C, Cl, heads = 12, 6, 3
    attn = LatentCrossAttention(C, Cl, heads, s, k, centred=True).double()
    with torch.no_grad():
        attn.bias.normal_()
    x = torch.randn(2, h * s, w * s, C, dtype=torch.float64)
    lat = torch.randn(2, h, w, Cl, dtype=torch.float64)
    out = attn(x, lat)

    def axis(npix, ncode):  # per pixel and code: log weight, allowed, group-position, window entry
        y = torch.arange(npix, dtype=torch.float64)
        u = (y + 0.5) / s - 0.5
        j = torch.arange(ncode, dtype=torch.float64)
        tent = (1 - (u[:, None] - j[None]).abs() / (k / 2)).clamp_min(0)  # (npix, ncode)
        g = torch.floor(u)
        sub = ((u - g) * s - 0.5).round().long() if s > 1 else torch.zeros(npix, dtype=torch.long)
        entry = (j[None] - g[:, None] + k // 2).long()  # (npix, ncode)
        return tent, sub, entry

    ty, sy, ey = axis(h * s, h)
    tx, sx, ex = axis(w * s, w)
    n = k + 1
    tent = (ty[:, None, :, None] * tx[None, :, None, :]).reshape(h * s * w * s, h * w)  # (Npix, Nlat)
    allowed = tent > 0
    qpos = (sy[:, None] * s + sx[None, :]).reshape(-1)  # (Npix,)
    entry = (ey[:, None, :, None] * n + ex[None, :, None, :]).reshape(h * s * w * s, h * w)
    entry = torch.where(allowed, entry, torch.zeros_like(entry))
    assert entry.max() < n * n and entry.min() >= 0
    for bi in range(2):
        q = attn.q(x[bi].reshape(-1, C)).view(-1, heads, C // heads).transpose(0, 1)
        kk, vv = attn.kv(lat[bi].reshape(-1, Cl)).chunk(2, -1)
        bias = attn.bias[:, qpos[:, None], entry] + tent.clamp_min(1e-300).log()  # (heads, Npix, Nlat)
        o = _dense_attention(q, kk, vv, bias, allowed.expand(heads, -1, -1))
        ref = attn.proj(o.transpose(0, 1).reshape(-1, C)).view(h * s, w * s, C)
        torch.testing.assert_close(out[bi], ref, rtol=1e-10, atol=1e-10)
    # bands of group rows give the same rows as the whole
    windows = attn.keys(lat)
    gh = windows.keys.shape[1]
    r0, r1, _, _ = attn.pixel_rows(1, gh, h * s)
    torch.testing.assert_close(attn.attend_rows(x[:, r0:r1], windows, 1, gh, h * s), out[:, r0:r1])


# ----------------------------------------------------------------------------- decoder
@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (7, 2), (9, 4), (5, 13)])
def test_output_shapes_any_grid(h, w):
    dec = tiny().eval()
    with torch.no_grad():
        out = dec(torch.randn(2, 8, h, w))
    assert out.shape == (2, 3, h * 4, w * 4)
    assert torch.isfinite(out).all()


def test_padding_content_never_reaches_valid_tokens():
    torch.manual_seed(3)
    attn = MultiAxisAttention(8, 2, 2, 2)
    valid = torch.zeros(8, 8, dtype=torch.bool)
    valid[:5, :7] = True
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[:, 5:] = torch.randn_like(y[:, 5:]) * 100  # different garbage in the padded rows/cols
    y[:, :, 7:] = -50
    a, b = attn(x, valid), attn(y, valid)
    torch.testing.assert_close(a[:, :5, :7], b[:, :5, :7])


def test_no_mode_dependent_layers_and_batch_independence():
    """The decoder has no dropout and no batch statistics: train and eval modes give one output, and
    nothing mixes the samples of a batch in either mode (a BatchNorm would, in train mode)."""
    dec = tiny()
    z = torch.randn(1, 8, 5, 5)
    z2 = torch.randn(3, 8, 5, 5)
    z2[1] = z[0]
    with torch.no_grad():
        for mode in (True, False):
            dec.train(mode)
            a = dec(z)
            torch.testing.assert_close(dec(z2)[1], a[0], rtol=1e-5, atol=1e-5)
        dec.train()
        torch.testing.assert_close(dec(z), a, rtol=0, atol=0)  # eval output == train output


@pytest.mark.parametrize("mlp_conv", [False, True])
def test_inference_path_equals_the_autograd_path_bit_for_bit(mlp_conv):
    """Without autograd the MLPs apply GELU in place (no second hidden-size buffer); with autograd
    they keep the out-of-place GELU that backward needs. Both give the same bits, on a grid small
    enough that neither decode runs in bands; the in-place path really ran (hook on ``fc2``: its
    input is the tensor ``fc1`` or the convolution wrote)."""
    dec = tiny(mlp_conv=mlp_conv).eval()
    z = torch.randn(2, 8, 3, 4, generator=torch.Generator().manual_seed(1))
    assert 2 * 3 * 4 * 16 <= dec.chunk_tokens_for(z.device)  # whole tensors both times
    seen, before_gelu = [], {}

    def remember(mlp):  # the storage of what GELU is given
        return lambda mod, args, out: before_gelu.__setitem__(mlp, out.untyped_storage().data_ptr())

    def compare(mlp):  # does fc2 read that storage (GELU wrote into it) or another one?
        return lambda mod, args: seen.append(args[0].untyped_storage().data_ptr() == before_gelu[mlp])

    hooks = []
    for m in dec.modules():
        if isinstance(m, Mlp):
            hooks.append((m.dwconv if m.dwconv is not None else m.fc1).register_forward_hook(remember(m)))
            hooks.append(m.fc2.register_forward_pre_hook(compare(m)))
    try:
        with torch.no_grad():
            fast = dec(z)
        assert seen and all(seen), seen  # in place: fc2 reads the buffer GELU overwrote
        seen.clear()
        with torch.enable_grad():
            plain = dec(z)
        assert seen and not any(seen), seen  # out of place under autograd
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(fast, plain.detach())


def _mlp_inputs(dec: HiTDecoder, z: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Decode ``z`` without autograd; the shapes every MLP of the first stage was called with."""
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, args, out: shapes.append(tuple(args[0].shape)))
             for m in dec.stages[0].modules() if isinstance(m, Mlp)]
    try:
        with torch.no_grad():
            return dec(z), shapes
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("h,w", [(7, 5), (3, 24)], ids=["tall-row-bands", "wide-column-tiles"])
def test_chunked_inference_matches_unchunked(h, w):
    """Row bands alone (a grid taller than wide: never column tiles) and column tiles (wider than
    tall), each against the unchunked decode; the hooks show which path ran."""
    dec = tiny().eval()
    chunked = HiTDecoder(dec.config, inference_chunk_tokens=7).eval()
    chunked.load_state_dict(dec.state_dict())
    z = torch.randn(2, 8, h, w)
    whole, whole_calls = _mlp_inputs(dec, z)
    banded, band_calls = _mlp_inputs(chunked, z)
    torch.testing.assert_close(banded, whole, rtol=1e-5, atol=1e-6)
    assert len(whole_calls) == 1, whole_calls  # unchunked: one call on the whole (padded) grid
    _, rows, cols, _ = whole_calls[0]
    assert rows >= h and cols >= w
    assert any(s[1] < rows for s in band_calls), band_calls  # chunked: bands of rows
    if h > w:  # row bands only: every band spans the full width
        assert all(s[2] == cols for s in band_calls), band_calls
    else:  # column tiles: some call sees only part of the width
        assert any(s[2] < cols for s in band_calls), band_calls
    with torch.no_grad():
        # the default bands (for speed) against whole tensors: the same bits
        from hit_decoder.decoder import WHOLE

        z = torch.randn(2, 8, 23, 17, generator=torch.Generator().manual_seed(3))
        assert 2 * 23 * 17 * 16 > dec.chunk_tokens_for(z.device)  # it bands
        assert torch.equal(dec(z), dec._decode(z, WHOLE))


def test_band_policy_follows_the_latents_device():
    """CPU: cache-sized row bands; any other device: memory-sized ones (on a GPU every band costs one
    launch of every kernel); an explicit ``inference_chunk_tokens`` wins on every device. The same
    grid runs in bands on the CPU and whole on the meta device (an accelerator's policy)."""
    dec = tiny().eval()
    assert dec.chunk_tokens_for("cpu") == HiTDecoder.DEFAULT_CHUNK_TOKENS == 8192
    assert dec.chunk_tokens_for("cuda") == dec.chunk_tokens_for("meta") == HiTDecoder.DEFAULT_CHUNK_TOKENS_ACCELERATOR
    assert HiTDecoder(dec.config, inference_chunk_tokens=7).chunk_tokens_for("cuda") == 7
    z = torch.randn(2, 8, 23, 17)
    assert HiTDecoder.DEFAULT_CHUNK_TOKENS < 2 * 23 * 17 * 16 < HiTDecoder.DEFAULT_CHUNK_TOKENS_ACCELERATOR

    def last_stage_calls(z):  # the shapes the last (largest) stage's to-RGB head was called with
        shapes = []
        hook = dec.stages[-1].to_rgb.register_forward_hook(lambda mod, args, out: shapes.append(tuple(args[0].shape)))
        try:
            with torch.no_grad():
                return dec(z), shapes
        finally:
            hook.remove()

    _, on_cpu = last_stage_calls(z)
    dec.to("meta")
    out, on_meta = last_stage_calls(z.to("meta"))
    assert out.shape == (2, 3, 23 * 4, 17 * 4)
    assert len(on_meta) == 1 and len(on_cpu) > 1, (on_meta, on_cpu)  # one call on the whole grid; bands


def test_wide_mlps_run_in_fewer_rows_on_the_cpu_with_the_same_image():
    """On a CPU an MLP with more than ``RowBands.HIDDEN_CHANNELS`` hidden channels runs in bands of
    proportionally fewer rows (cache-sized hidden layers), but not fewer than ``MIN_ROWS``; the
    image is bit-identical to the whole decode and to bands without that cap. The rows the last
    stage's MLP saw, by hook."""
    from hit_decoder.bands import RowBands
    from hit_decoder.decoder import WHOLE

    dec = tiny(channels=(32, 64, 64), depths=(1, 1, 1), heads=(2, 2, 2), num_attention_stages=1,
               block_size=(2,), dilation_grid=(2,)).eval()  # last stage: 64 channels, 256 hidden
    mlp = dec.stages[-1].blocks[0].mlp
    assert mlp.fc1.out_features == 2 * RowBands.HIDDEN_CHANNELS
    z = torch.randn(1, 8, 12, 12, generator=torch.Generator().manual_seed(1))
    assert RowBands.MIN_ROWS == 8
    rows = []
    hook = mlp.register_forward_hook(lambda mod, args, out: rows.append(out.shape[1]))

    def decode(bands):
        rows.clear()
        with torch.no_grad():
            return dec._decode(z, bands), list(rows)

    try:  # the last stage is 48 x 48 tokens
        whole, _ = decode(WHOLE)
        for band_rows, plain_rows, capped_rows in [(32, [32, 16], [16] * 3),  # halved
                                                   (12, [12] * 4, [8] * 6)]:  # halved, then MIN_ROWS
            plain, seen_plain = decode(RowBands(48 * band_rows))
            capped, seen_capped = decode(RowBands(48 * band_rows, cap_hidden=True))
            assert (seen_plain, seen_capped) == (plain_rows, capped_rows), (band_rows, seen_plain, seen_capped)
            assert torch.equal(capped, whole) and torch.equal(plain, whole)
        rows.clear()
        with torch.no_grad():
            via_forward = dec.decode_large(z, 48 * 32)  # the decoder's own policy for a CPU latent
        assert rows == [16] * 3 and torch.equal(via_forward, whole), rows
    finally:
        hook.remove()


@pytest.mark.parametrize("name", list_decoders())
def test_every_parameter_of_every_preset_gets_a_gradient(name):
    dec = create_decoder(name)
    cfg = dec.config
    side = max(b * d for b, d in zip(cfg.block_size, cfg.dilation_grid)) if cfg.block_size else 4
    torch.manual_seed(0)
    z = torch.randn(1, cfg.z_channels, side, side)
    out = dec(z)
    assert out.shape == (1, 3, side * cfg.downsample_factor, side * cfg.downsample_factor)
    out.square().mean().backward()
    missing = [n for n, p in dec.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"
    assert dec.get_last_layer() is dec.stages[-1].to_rgb.proj.weight


@pytest.mark.parametrize("name", list_decoders())
def test_flops_grow_linearly_with_grid_area(name):
    dec = create_decoder(name)
    small = count_flops(dec, (1, dec.z_channels, 16, 16))
    large = count_flops(dec, (1, dec.z_channels, 64, 64))
    assert large / small <= 17.6, f"{name}: FLOPs ratio 64x64 / 16x16 = {large / small:.2f}"


def test_bad_input_raises_value_error_naming_expected_and_got():
    dec = tiny()
    dec.check_finite = True  # opt-in: one host synchronisation per call
    with pytest.raises(ValueError, match=r"rank 4.*got rank 3"):
        dec(torch.randn(8, 4, 4))
    with pytest.raises(ValueError, match=r"expects 8 latent channels.*got 5"):
        dec(torch.randn(1, 5, 4, 4))
    z = torch.randn(1, 8, 4, 4)
    z[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        dec(z)
    with pytest.raises(ValueError, match="floating point"):
        dec(torch.ones(1, 8, 4, 4, dtype=torch.long))


def test_gradient_flows_to_latent():
    dec = tiny()
    z = torch.randn(1, 8, 3, 3, requires_grad=True)
    dec(z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_depth_to_space_matches_pixel_shuffle():
    from hit_decoder.decoder import depth_to_space

    x = torch.randn(2, 3, 5, 16)  # (B, H, W, C)
    ref = F.pixel_shuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    assert torch.equal(depth_to_space(x), ref)


def test_banded_self_attention_and_upsampling_equal_the_whole_decode(monkeypatch):
    """The memory policy bands the self-attention (whole super-window rows) and the embedding into
    bilinear stages (one row of context each side) too: small bands give the whole decode's bits,
    and the hooks show that the attention and the embedding ran on bands."""
    import hit_decoder.bands as bands_module
    from hit_decoder.decoder import WHOLE
    from hit_decoder.layers import MultiAxisAttention

    upsampled_rows = []
    plain = bands_module.upsample2x
    monkeypatch.setattr(bands_module, "upsample2x", lambda t: upsampled_rows.append(t.shape[1]) or plain(t))
    dec = tiny().eval()
    assert dec.config.upsample_into(dec.config.num_stages - 1) == "bilinear"
    z = torch.randn(2, 8, 9, 7, generator=torch.Generator().manual_seed(5))
    calls = {"attn": [], "embed": []}
    hooks = [m.register_forward_hook(lambda mod, args, out: calls["attn"].append(args[0].shape[1]))
             for m in dec.modules() if isinstance(m, MultiAxisAttention)]
    last = dec.stages[-1].embed
    hooks.append(last.register_forward_hook(lambda mod, args, out: calls["embed"].append(args[0].shape[1])))
    with torch.no_grad():
        whole = dec._decode(z, WHOLE)
        n_whole = {k: len(v) for k, v in calls.items()}
        n_upsampled = len(upsampled_rows)
        banded = dec.decode_large(z, chunk_tokens=16)
    for h in hooks:
        h.remove()
    assert torch.equal(banded, whole)
    # the last stage's embedding + upsampling ran band by band (output of more than 32 bands)
    assert 4 * 2 * 18 * 14 > 32 * 16 and len(upsampled_rows) - n_upsampled > 2 * n_upsampled
    # more calls than the whole decode made, each on fewer rows
    assert len(calls["attn"]) > 2 * n_whole["attn"] and min(calls["attn"]) < max(calls["attn"])
    assert len(calls["embed"]) > 2 * n_whole["embed"] and min(calls["embed"]) < calls["embed"][0]
