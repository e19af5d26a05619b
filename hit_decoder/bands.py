"""The HiT decoder's memory policy, in one place (:class:`RowBands`): without autograd, a large
decode runs its per-token work, its self-attention and its upsampling in row bands, so no
full-size intermediate exists at once (docs/performance.md, "Memory")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .decoder import _CrossBlock

__all__ = ["RowBands", "WHOLE", "upsample2x"]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Channels-last bilinear x2 (half-pixel centres, edges clamped): ``(B, H, W, C) -> (B, 2H, 2W, C)``.
    Equal to :func:`torch.nn.functional.interpolate` (``mode="bilinear", align_corners=False``),
    whose 2x kernel is StyleGAN2's [1, 3, 3, 1] / 4 filter."""
    y = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=2, mode="bilinear", align_corners=False)
    return y.permute(0, 2, 3, 1)  # (B, 2H, 2W, C)


class RowBands:
    """The decoder's memory policy, in one place: without autograd, per-token work (linear layers,
    MLPs, to-RGB heads, cross-attention, the embedding and bilinear x2 into a stage) and the
    self-attention (bands of whole super-window rows) on grids of more than ``tokens`` tokens run
    in row bands of about ``tokens`` tokens each, residual updates in place, so no full-size
    intermediate of an MLP or of the attention scores exists at once. ``tokens=None`` is the plain
    model (whole tensors). Results equal the whole computation up to matmul rounding."""

    #: on a CPU, a band of an MLP holds at most ``tokens * HIDDEN_CHANNELS`` hidden activations:
    #: MLPs wider than 128 hidden channels run in proportionally fewer rows. With 8192-token bands
    #: a 256-wide hidden layer (8 MiB) made the MLP of ``hit-8m-f16``'s last stage about 1.3x slower
    #: per token than 4096-token bands (its linear layers and depthwise convolution, timed alone),
    #: and the whole decode 1.06x to 1.12x (docs/performance.md, "Eighth session")
    HIDDEN_CHANNELS = 128
    #: ... but never in bands of fewer than this many rows (where the plain band has more): each band
    #: recomputes its first linear layer and depthwise convolution on one context row above and one
    #: below, 2 / rows extra work (4-row bands at 1024 px wide were slower per token than 8-row ones)
    MIN_ROWS = 8

    def __init__(self, tokens: int | None, cap_hidden: bool = False) -> None:
        self.tokens = tokens
        #: whether MLP bands shrink with their hidden width (:attr:`HIDDEN_CHANNELS`; the CPU policy)
        self.cap_hidden = cap_hidden

    def applies(self, x: torch.Tensor) -> bool:
        return self.tokens is not None and not torch.is_grad_enabled() and x.numel() // x.shape[-1] > self.tokens

    def height(self, x: torch.Tensor, unit: int = 1, tokens: int | None = None) -> int:
        """Rows per band of ``x (B, H, W, C)``: about ``tokens`` tokens (default :attr:`tokens`), a
        multiple of ``unit``."""
        B, _, W, _ = x.shape
        return max(unit, ((tokens or self.tokens) // max(1, B * W * unit)) * unit)

    def bands(self, x: torch.Tensor, unit: int = 1, tokens: int | None = None) -> list[slice]:
        H, rows = x.shape[1], self.height(x, unit, tokens)
        return [slice(r, min(r + rows, H)) for r in range(0, H, rows)]

    def map(self, fn, x: torch.Tensor, out_dim: int, halo: int = 0) -> torch.Tensor:
        """``fn(x)`` for a function whose output row ``r`` depends on input rows ``r - halo .. r +
        halo`` (banded: passed ``crop=(top, bottom)`` rows of context), into one output buffer."""
        if not self.applies(x):
            return fn(x)
        H = x.shape[1]
        out = x.new_empty(*x.shape[:-1], out_dim)
        for band in self.bands(x):
            if halo:
                a, b = max(0, band.start - halo), min(H, band.stop + halo)
                out[:, band] = fn(x[:, a:b], crop=(band.start - a, b - band.stop))
            else:
                out[:, band] = fn(x[:, band])
        return out

    def upsampled(self, fn, x: torch.Tensor, out_dim: int) -> torch.Tensor:
        """``upsample2x(fn(x))`` for a per-token ``fn`` (the embedding into a bilinear stage); banded
        (when the output is large): bands of about ``tokens`` input tokens, each with one row of
        context above and below (bilinear x2 reads one neighbouring row), written into one output
        buffer, so neither ``fn(x)`` nor a second full-size tensor exists at once. Bit-identical to
        the whole computation (each output row reads the same two input rows with the same weights).
        Banding costs one more pass (each band is copied into the output), so outputs of up to 32 bands
        are done whole: there the saved memory is small and the pass is not (1.5% of a 256² decode,
        about 4% of a 512² one)."""
        B, H, W, _ = x.shape
        if self.tokens is None or torch.is_grad_enabled() or 4 * B * H * W <= 32 * self.tokens:
            return upsample2x(self.map(fn, x, out_dim))  # (B, 2H, 2W, out_dim)
        out = x.new_empty(B, 2 * H, 2 * W, out_dim)
        rows = self.height(x)
        for r0 in range(0, H, rows):
            r1 = min(H, r0 + rows)
            a, b = max(0, r0 - 1), min(H, r1 + 1)
            y = upsample2x(fn(x[:, a:b]))  # (B, 2 (b - a), 2W, out_dim)
            out[:, 2 * r0 : 2 * r1] = y[:, 2 * (r0 - a) : 2 * (r1 - a)]
        return out

    def attention(self, fn, x: torch.Tensor, valid: torch.Tensor | None, unit: int) -> torch.Tensor:
        """``x + fn(x, valid)`` for a self-attention whose tokens attend only within bands of ``unit``
        rows (whole super-windows); banded: whole units at a time, updated in place, so the scores
        of one band exist at once, not the whole grid's."""
        if not self.applies(x):
            return x + fn(x, valid)
        for band in self.bands(x, unit):
            x[:, band] += fn(x[:, band], None if valid is None else valid[band])
        return x

    def residual(self, fn, x: torch.Tensor, halo: int, hidden: int = 0) -> torch.Tensor:
        """``x + fn(x)`` for an MLP ``fn`` with ``hidden`` hidden channels; banded: added in place
        band by band (a band's context rows above it are read from a copy kept before the previous
        band was updated), bands of fewer rows for wide MLPs with ``cap_hidden``."""
        if not self.applies(x):
            return x + fn(x)
        H, tokens = x.shape[1], self.tokens
        if self.cap_hidden and hidden > self.HIDDEN_CHANNELS:  # row = tokens per row, batch included
            row = x.shape[0] * x.shape[2]
            tokens = min(tokens, max(tokens * self.HIDDEN_CHANNELS // hidden, self.MIN_ROWS * row))
        above = None  # the `halo` rows above the current band, as they were before the update
        for band in self.bands(x, tokens=tokens):
            a, b = max(0, band.start - halo), min(H, band.stop + halo)
            src = x[:, band.start : b] if above is None or a == band.start else torch.cat([above, x[:, band.start : b]], 1)
            delta = fn(src, crop=(band.start - a, b - band.stop))  # (B, rows, W, C)
            if halo:
                above = x[:, max(band.start, band.stop - halo) : band.stop].clone()
            x[:, band] += delta
        return x

    def cross(self, block: _CrossBlock, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``block(x, latent)``; banded: whole group rows at a time, updated in place."""
        if not self.applies(x):
            return block(x, latent)
        attn = block.attn
        windows = attn.keys(latent)  # keys/values (B, gh, gw, n2, dh), mask (gh, gw, n2)
        s, gh, H = attn.scale, windows.keys.shape[1], x.shape[1]
        per_band = self.height(x, unit=s) // s  # whole group rows per band
        for g0 in range(0, gh, per_band):  # groups never overlap: update in place
            g1 = min(gh, g0 + per_band)
            r0, r1, _, _ = attn.pixel_rows(g0, g1, H)
            x[:, r0:r1] += attn.attend_rows(block.norm(x[:, r0:r1]), windows, g0, g1, H)
        return x  # (B, H, W, C)


WHOLE = RowBands(None)
