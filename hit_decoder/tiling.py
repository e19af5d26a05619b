"""Patch-wise decoding of latent grids too large to decode at once.

The grid is covered by tiles of ``tile`` codes placed at stride ``tile - overlap`` (the last tile of
a row or column is moved back to end at the grid's edge). Each tile is decoded together with a
context ``margin`` of codes on every side (the context's origin rounded down to a multiple of
``align``); only the tile itself enters the output. Tiles are blended by normalised weighted
overlap-add: every tile's pixels are multiplied by a weight that ramps linearly from 0 to 1 across
the overlap on each side that has a neighbour (and is 1 elsewhere), summed into the output canvas,
and the canvas is divided by the summed weights at the end. Tile weights are separable and the
tiles form a grid, so the summed weight is the outer product of two 1-D sums — no second canvas.

Peak memory is the output canvas plus one tile decode (``(tile + 2 margin + align - 1)^2`` codes),
whatever the grid size. A single tile covering the grid decodes exactly as the whole grid does.

**Exact tiling for HiT decoders.** Every attention in a HiT decoder is local: the multi-axis
attention of stage ``i`` never crosses a super-window of ``block_size[i] * dilation_grid[i]``
tokens (anchored at the grid origin, padding at the end) and cross-attention reads the codes within
``cross_window // 2`` of a token's own code. :func:`hit_tile_geometry` turns that into the
alignment and margin with which a tile sees every super-window that reaches its pixels complete and
identically partitioned; tiled decoding then equals whole decoding up to floating-point rounding.
Decoders with global attention (taming's CNN decoder attends over the whole latent grid in its
middle block) are only approximated; a wider margin and overlap reduce the seams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

from .config import int_pair

__all__ = ["TileGeometry", "Tile", "tile_starts", "plan_tiles", "ramp", "decode_tiled", "hit_tile_geometry", "hit_dependency"]


@dataclass(frozen=True)
class TileGeometry:
    """How to cut a grid for a decoder: context origins at multiples of ``align`` codes and a
    context ``margin`` of codes on each side (both in latent codes)."""

    align: int = 1
    margin: int = 0


@dataclass(frozen=True)
class Tile:
    """One tile along both axes: ``out`` the codes it contributes, ``ctx`` the codes it decodes
    (``out`` plus margin), and whether it blends with a neighbour before / after it per axis."""

    out: tuple[slice, slice]
    ctx: tuple[slice, slice]
    blend_before: tuple[bool, bool]
    blend_after: tuple[bool, bool]


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of length ``tile`` covering ``0..n`` at stride ``tile - overlap``; the last
    tile ends at ``n``. One tile of length ``n`` when ``n <= tile``."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap))
    return starts + [n - tile]


def _axis_tiles(n: int, tile: int, overlap: int, margin: int, align: int) -> list[tuple[slice, slice, bool, bool]]:
    out = []
    starts = tile_starts(n, tile, overlap)
    for k, s in enumerate(starts):
        e = min(s + tile, n)
        c0 = max(0, (s - margin) // align * align)
        c1 = min(n, e + margin)
        out.append((slice(s, e), slice(c0, c1), k > 0, k < len(starts) - 1))
    return out


def plan_tiles(
    shape: tuple[int, int], tile: int | Sequence[int], *, overlap: int | Sequence[int] = 0,
    margin: int | Sequence[int] = 0, align: int | Sequence[int] = 1,
) -> list[Tile]:
    """All tiles of a latent grid ``shape = (H, W)``, row-major (sizes in codes)."""
    H, W = int_pair("shape", shape, 1)
    (th, tw), (oh, ow) = int_pair("tile", tile, 1), int_pair("overlap", overlap, 0)
    (mh, mw), (ah, aw) = int_pair("margin", margin, 0), int_pair("align", align, 1)
    for name, t, o in (("rows", th, oh), ("cols", tw, ow)):
        if o >= t:
            raise ValueError(f"overlap ({o}) must be smaller than the tile ({t}) along {name}; "
                             "use a larger tile or a smaller overlap")
    rows = _axis_tiles(H, th, oh, mh, ah)
    cols = _axis_tiles(W, tw, ow, mw, aw)
    return [
        Tile((r[0], c[0]), (r[1], c[1]), (r[2], c[2]), (r[3], c[3]))
        for r in rows for c in cols
    ]


def ramp(length: int, before: int, after: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D blend weights of a tile ``length`` pixels long: rising linearly over the first
    ``before`` pixels and falling over the last ``after`` (values ``(k + 0.5) / n``, never 0),
    1 elsewhere."""
    w = torch.ones(length, dtype=dtype, device=device)
    if before:
        n = min(before, length)
        w[:n] = torch.minimum(w[:n], (torch.arange(n, dtype=dtype, device=device) + 0.5) / before)
    if after:
        n = min(after, length)
        w[length - n:] = torch.minimum(w[length - n:], (torch.arange(n, dtype=dtype, device=device).flip(0) + 0.5) / after)
    return w  # (length,)


def _check_latent(z: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or z.ndim != 4:
        raise ValueError(
            f"decode_tiled expects a latent grid of shape (B, C, H, W), got "
            f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}"
        )


@torch.no_grad()
def decode_tiled(
    decode_fn: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    *,
    tile: int | Sequence[int],
    overlap: int | Sequence[int] = 0,
    margin: int | Sequence[int] = 0,
    align: int | Sequence[int] = 1,
    progress: bool = False,
) -> torch.Tensor:
    """Decode ``z (B, C, H, W)`` tile by tile with ``decode_fn`` (``(B, C, h, w) -> (B, 3, h f, w f)``).

    Args:
        tile: tile side in codes (int or ``(rows, cols)``); clipped to the grid.
        overlap: codes shared by neighbouring tiles, blended with linear ramps.
        margin: extra codes of context decoded on every side of a tile and then discarded.
        align: context windows start at multiples of this many codes (see :func:`hit_tile_geometry`).
        progress: show a progress bar over the tiles.

    Returns the image ``(B, 3, H f, W f)``.
    """
    from tqdm.auto import tqdm

    _check_latent(z)
    B, _, H, W = z.shape
    tiles = plan_tiles((H, W), tile, overlap=overlap, margin=margin, align=align)
    (oh, ow) = int_pair("overlap", overlap, 0)
    out_device = z.device
    canvas = row_w = col_w = None
    f = None
    for t in tqdm(tiles, desc="decoding tiles", disable=not progress, leave=False):
        (rs, cs), (rc, cc) = t.out, t.ctx
        img = decode_fn(z[:, :, rc, cc])  # (B, 3, ctx_h f, ctx_w f)
        ch, cw = rc.stop - rc.start, cc.stop - cc.start
        tf = img.shape[-2] // ch
        if (img.ndim != 4 or img.shape[0] != B or img.shape[-2] != tf * ch or img.shape[-1] != tf * cw
                or (f is not None and tf != f)):
            raise ValueError(
                f"decode_fn turned a {ch}x{cw} latent tile into shape {tuple(img.shape)}; expected "
                f"(B={B}, channels, {ch}*f, {cw}*f) with one integer factor f{'' if f is None else f' = {f}'}"
            )
        f = tf
        if canvas is None:
            canvas = torch.zeros((B, img.shape[1], H * f, W * f), dtype=img.dtype, device=out_device)
            row_w = torch.zeros(H * f, dtype=img.dtype, device=out_device)
            col_w = torch.zeros(W * f, dtype=img.dtype, device=out_device)
        wr = ramp((rs.stop - rs.start) * f, oh * f * t.blend_before[0], oh * f * t.blend_after[0],
                  dtype=img.dtype, device=out_device)
        wc = ramp((cs.stop - cs.start) * f, ow * f * t.blend_before[1], ow * f * t.blend_after[1],
                  dtype=img.dtype, device=out_device)
        crop = img[:, :, (rs.start - rc.start) * f : (rs.stop - rc.start) * f,
                   (cs.start - cc.start) * f : (cs.stop - cc.start) * f]
        pr, pc = slice(rs.start * f, rs.stop * f), slice(cs.start * f, cs.stop * f)
        canvas[:, :, pr, pc] += crop.to(out_device) * (wr[:, None] * wc[None, :])  # (B, 3, th f, tw f)
        if t.out[1].start == 0:  # each row of tiles once
            row_w[pr] += wr
        if t.out[0].start == 0:  # each column of tiles once
            col_w[pc] += wc
    return canvas.div_(row_w[:, None] * col_w[None, :])  # (B, 3, H f, W f)


def hit_dependency(config, lo: int, hi: int) -> tuple[int, int]:
    """Codes ``[first, last]`` (inclusive) that output pixels ``lo .. hi`` (inclusive, one axis)
    of a HiT decoder depend on: the decoder's dependency cone, traced backwards through every
    operation (``config``: a :class:`~hit_decoder.HiTDecoderConfig` or a decoder).

    Per operation, the inputs an output interval ``[a, b]`` (tokens of that stage) reads:
    3x3 convolutions ``[a-1, b+1]``; multi-axis attention the whole super-windows of ``P = block *
    dilation_grid`` tokens it touches (anchored at the origin); bilinear x2 ``[floor((a-1)/2),
    floor((b+1)/2)]``; nearest x2 and depth-to-space ``[floor(a/2), floor(b/2)]``; cross-attention
    the codes with a non-zero weight (pixel-centred: tent weights; cell: the window of the cell's
    code). Codes of a window with a zero tent weight get exactly zero attention, so tiles need
    not hold them.
    """
    cfg = getattr(config, "config", config)
    S = cfg.num_stages
    codes = [math.inf, -math.inf]

    def read_codes(a: int, b: int, s: int) -> None:
        r = cfg.cross_window // 2
        if cfg.cross_attention == "pixel":  # codes j with a non-zero tent weight: |u - j| < cross_window / 2
            u = lambda t: Fraction(2 * t + 1, 2 * s) - Fraction(1, 2)  # code coordinate of token t
            R = Fraction(cfg.cross_window, 2)
            first, last = math.floor(u(a) - R) + 1, math.ceil(u(b) + R) - 1
        else:
            first, last = a // s - r, b // s + r
        codes[0], codes[1] = min(codes[0], first), max(codes[1], last)

    last_conv = 1 if cfg.out_conv else 0
    feat = (lo - last_conv, hi + last_conv)  # features of the last stage read by its to-RGB head
    rgb = (lo, hi)  # running RGB image at the current stage
    for i in reversed(range(S)):
        s = 2**i
        a, b = feat
        if i < S - 1 and cfg.has_rgb_head(i):  # a per-pixel to-RGB head
            a, b = min(a, rgb[0]), max(b, rgb[1])
        for _ in range(cfg.depths[i]):  # blocks, last to first
            if cfg.is_attention_stage(i):
                P = cfg.block_size[i] * cfg.dilation_grid[i]
                a, b = (a // P) * P, (b // P) * P + P - 1
            elif cfg.mlp_conv:
                a, b = a - 1, b + 1
        read_codes(a, b, s)
        if i == 0:  # stage 0 embeds the codes themselves
            codes[0], codes[1] = min(codes[0], a), max(codes[1], b)
            break
        if cfg.upsample_into(i) == "bilinear":
            feat = ((a - 1) // 2, (b + 1) // 2)
        else:
            feat = (a // 2, b // 2)
        if cfg.rgb_upsample == "bilinear":
            rgb = ((rgb[0] - 1) // 2, (rgb[1] + 1) // 2)
        else:
            rgb = (rgb[0] // 2, rgb[1] // 2)
    return int(codes[0]), int(codes[1])


def hit_tile_geometry(config) -> TileGeometry:
    """Alignment and margin (codes) with which tiled decoding by a HiT decoder is exact.

    ``config`` is a :class:`~hit_decoder.HiTDecoderConfig` (or a decoder with ``.config``). The
    alignment is the smallest whole number of codes that every attention stage's super-window
    (``block_size * dilation_grid`` tokens at ``2**i`` tokens per code) divides; the margin is the
    furthest the dependency cone (:func:`hit_dependency`) of a tile's pixels reaches beyond the
    tile, over every tile edge position modulo the alignment.
    """
    cfg = getattr(config, "config", config)
    periods = [
        Fraction(cfg.block_size[i] * cfg.dilation_grid[i], 2**i) for i in range(cfg.num_attention_stages)
    ]
    align = math.lcm(*(p.numerator for p in periods)) if periods else 1
    f = cfg.downsample_factor
    left = max(e - hit_dependency(cfg, e * f, e * f)[0] for e in range(align))
    right = max(hit_dependency(cfg, e * f - 1, e * f - 1)[1] - (e - 1) for e in range(align))
    return TileGeometry(align=align, margin=max(left, right))
