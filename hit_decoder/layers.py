"""Building blocks of the HiT decoder: token partitions, multi-axis blocked self-attention,
windowed latent cross-attention and MLPs.

Tokens are kept channels-last, ``(B, H, W, C)``. Every attention here is local: a token attends to
a fixed number of other tokens whatever the grid size, so cost grows linearly with the pixel count
and no module holds a table tied to one image size (positions enter only through relative-position
biases inside a window).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "block_partition",
    "block_unpartition",
    "dilated_partition",
    "dilated_unpartition",
    "neighbourhood_gather",
    "relative_position_index",
    "MultiAxisAttention",
    "LatentCrossAttention",
    "Mlp",
]


# ----------------------------------------------------------------------------- partitions
def block_partition(x: torch.Tensor, b: int) -> torch.Tensor:
    """``(B, H, W, C) -> (B * H/b * W/b, b*b, C)``: non-overlapping b x b blocks (regional)."""
    B, H, W, C = x.shape
    assert H % b == 0 and W % b == 0, f"block_partition: grid {H}x{W} is not a multiple of block {b}"
    x = x.view(B, H // b, b, W // b, b, C).permute(0, 1, 3, 2, 4, 5)  # (B, H/b, W/b, b, b, C)
    return x.reshape(-1, b * b, C)


def block_unpartition(t: torch.Tensor, b: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`block_partition`: ``(B * H/b * W/b, b*b, C) -> (B, H, W, C)``."""
    C = t.shape[-1]
    x = t.view(-1, H // b, W // b, b, b, C).permute(0, 1, 3, 2, 4, 5)  # (B, H/b, b, W/b, b, C)
    return x.reshape(-1, H, W, C)


def dilated_partition(x: torch.Tensor, b: int, d: int) -> torch.Tensor:
    """``(B, H, W, C) -> (B * H/(bd) * W/(bd) * b*b, d*d, C)``: dilated groups.

    The grid is cut into super-windows of ``(b*d) x (b*d)`` tokens; inside one, the tokens that
    share the same offset within their b x b block form a group of ``d*d`` tokens at stride ``b``.
    With ``d = H / b`` this is HiT's dilated attention over the whole map; a fixed ``d`` keeps the
    group size, and so the cost per token, bounded on larger grids.
    """
    B, H, W, C = x.shape
    s = b * d
    assert H % s == 0 and W % s == 0, (
        f"dilated_partition: grid {H}x{W} is not a multiple of block*grid = {b}*{d} = {s}"
    )
    x = x.view(B, H // s, d, b, W // s, d, b, C)  # (B, nH, gi, oi, nW, gj, oj, C)
    x = x.permute(0, 1, 4, 3, 6, 2, 5, 7)  # (B, nH, nW, oi, oj, gi, gj, C)
    return x.reshape(-1, d * d, C)


def dilated_unpartition(t: torch.Tensor, b: int, d: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`dilated_partition`."""
    C = t.shape[-1]
    s = b * d
    x = t.view(-1, H // s, W // s, b, b, d, d, C)  # (B, nH, nW, oi, oj, gi, gj, C)
    x = x.permute(0, 1, 5, 3, 2, 6, 4, 7)  # (B, nH, gi, oi, nW, gj, oj, C)
    return x.reshape(-1, H, W, C)


def neighbourhood_gather(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every position of ``x (B, h, w, C)`` gather its k x k neighbourhood (zero padded).

    Returns ``(B, h, w, k*k, C)`` and a boolean ``(h, w, k*k)`` mask of in-bounds neighbours.
    Neighbour ``n`` is at offset ``(n // k - k//2, n % k - k//2)``.
    """
    B, h, w, C = x.shape
    r = k // 2
    xp = F.pad(x.permute(0, 3, 1, 2), (r, r, r, r))  # (B, C, h+2r, w+2r)
    cols = F.unfold(xp, kernel_size=k)  # (B, C*k*k, h*w)
    cols = cols.view(B, C, k * k, h, w).permute(0, 3, 4, 2, 1)  # (B, h, w, k*k, C)
    ones = F.pad(x.new_ones(1, 1, h, w), (r, r, r, r))
    valid = F.unfold(ones, kernel_size=k).view(k * k, h, w).permute(1, 2, 0) > 0.5  # (h, w, k*k)
    return cols, valid


def relative_position_index(n: int) -> torch.Tensor:
    """``(n*n, n*n)`` index into a ``(2n-1)**2`` table of 2-D relative offsets within an n x n grid."""
    coords = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (n - 1)  # (2, n*n, n*n)
    return rel[0] * (2 * n - 1) + rel[1]


def _mask_value(dtype: torch.dtype) -> float:
    # A large finite negative (not -inf): fully padded groups then give finite garbage, never NaN.
    return torch.finfo(dtype).min / 2


# ----------------------------------------------------------------------------- attention
def _mq_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Multi-query attention: ``q (N, heads, L, dh)``, ``k, v (N, S, dh)``, additive ``bias``
    broadcastable to ``(N, heads, L, S)``. Query heads are folded into the query length so the one
    K/V head is never copied. Returns ``(N, heads, L, dh)``."""
    N, nh, L, dh = q.shape
    S = k.shape[1]
    out = F.scaled_dot_product_attention(
        q.reshape(N, 1, nh * L, dh),  # (N, 1, heads*L, dh)
        k.unsqueeze(1),  # (N, 1, S, dh)
        v.unsqueeze(1),
        attn_mask=bias.reshape(-1, 1, nh * L, S),  # (N or 1, 1, heads*L, S)
    )
    return out.view(N, nh, L, dh)


class MultiAxisAttention(nn.Module):
    """HiT's multi-axis blocked self-attention with multi-query K/V.

    Half of the heads attend inside their ``b x b`` block (regional), the other half among the
    ``d x d`` tokens at the same in-block offset inside a ``(b d) x (b d)`` super-window (dilated,
    stride ``b``). All query heads share one key head and one value head; the two halves are
    concatenated and share one output projection. Relative-position biases per half.
    """

    def __init__(self, dim: int, heads: int, block: int, grid: int) -> None:
        super().__init__()
        assert heads % 2 == 0, "MultiAxisAttention needs an even number of heads"
        self.dim, self.heads, self.block, self.grid = dim, heads, block, grid
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * self.head_dim)
        self.proj = nn.Linear(dim, dim)
        half = heads // 2
        self.regional_bias = nn.Parameter(torch.zeros(half, (2 * block - 1) ** 2))
        self.dilated_bias = nn.Parameter(torch.zeros(half, (2 * grid - 1) ** 2))
        self.register_buffer("regional_index", relative_position_index(block), persistent=False)
        self.register_buffer("dilated_index", relative_position_index(grid), persistent=False)

    @property
    def multiple(self) -> int:
        """Grid sides must be multiples of this (the caller pads)."""
        return self.block * self.grid

    def _bias(self, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        L = index.shape[0]
        return table[:, index.reshape(-1)].view(1, -1, L, L)  # (1, half, L, L)

    def _half(self, q, k, v, bias, key_valid, part, unpart) -> torch.Tensor:
        # q (B, H, W, half*dh); k, v (B, H, W, dh); key_valid (1, H, W, 1) bool or None
        nh = self.heads // 2
        qp = part(q)  # (N, L, half*dh)
        N, L, _ = qp.shape
        qp = qp.view(N, L, nh, self.head_dim).transpose(1, 2)  # (N, half, L, dh)
        bias = bias.to(q.dtype)
        if key_valid is not None:
            kv_ok = part(key_valid.to(q.dtype)).view(-1, 1, 1, L)  # (N_or_groups, 1, 1, L)
            kv_ok = kv_ok.repeat(N // kv_ok.shape[0], 1, 1, 1)
            bias = bias + (1.0 - kv_ok) * _mask_value(q.dtype)  # (N, half, L, L)
        out = _mq_attention(qp, part(k), part(v), bias)  # (N, half, L, dh)
        out = out.transpose(1, 2).reshape(N, L, nh * self.head_dim)  # (N, L, half*dh)
        return unpart(out)  # (B, H, W, half*dh)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, H, W, C)`` with H, W multiples of ``block*grid``; ``valid (H, W)`` marks real
        (non-padding) tokens — padding is never attended to. Returns ``(B, H, W, C)``."""
        B, H, W, C = x.shape
        b, d = self.block, self.grid
        q = self.q(x)  # (B, H, W, C)
        k, v = self.kv(x).chunk(2, dim=-1)  # (B, H, W, dh) each
        half = C // 2
        key_valid = None if valid is None else valid.view(1, H, W, 1)
        regional = self._half(
            q[..., :half], k, v, self._bias(self.regional_bias, self.regional_index), key_valid,
            lambda t: block_partition(t, b), lambda t: block_unpartition(t, b, H, W),
        )  # (B, H, W, C/2)
        dilated = self._half(
            q[..., half:], k, v, self._bias(self.dilated_bias, self.dilated_index), key_valid,
            lambda t: dilated_partition(t, b, d), lambda t: dilated_unpartition(t, b, d, H, W),
        )  # (B, H, W, C/2)
        return self.proj(torch.cat([regional, dilated], dim=-1))  # (B, H, W, C)


class LatentCrossAttention(nn.Module):
    """Cross-attention self-modulation: image tokens (queries) attend to latent code tokens.

    A stage at ``scale`` s pixels per code groups its tokens into s x s cells, one per code; the
    tokens of a cell attend to the ``window x window`` codes centred on their own code (out-of-grid
    neighbours are masked). Keys/values are multi-query. The bias depends on the query's position
    inside its cell and the key's offset — both size-free.
    """

    def __init__(self, dim: int, latent_dim: int, heads: int, scale: int, window: int) -> None:
        super().__init__()
        self.dim, self.heads, self.scale, self.window = dim, heads, scale, window
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(latent_dim, 2 * self.head_dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(heads, scale * scale, window * window))

    def keys(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Neighbourhood keys/values of every code: ``latent (B, h, w, latent_dim)`` ->
        ``k, v (B, h, w, k*k, dh)`` and an additive mask ``(h, w, k*k)`` for out-of-grid codes."""
        kv, valid = neighbourhood_gather(self.kv(latent), self.window)  # (B, h, w, k2, 2dh), (h, w, k2)
        k, v = kv.chunk(2, dim=-1)
        return k, v, (~valid).to(latent.dtype) * _mask_value(latent.dtype)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, h*s, w*s, C)`` against the keys of its ``h x w`` codes (any band of rows of the
        full grid, as returned by :meth:`keys` and sliced) -> ``(B, h*s, w*s, C)``."""
        B, Hs, Ws, C = x.shape
        s, k2, dh = self.scale, self.window**2, self.head_dim
        h, w = k.shape[1], k.shape[2]
        assert (Hs, Ws) == (h * s, w * s), f"tokens {Hs}x{Ws} do not match latent {h}x{w} at scale {s}"
        cells = x.reshape(B, h, s, w, s, C).permute(0, 1, 3, 2, 4, 5).reshape(B * h * w, s * s, C)
        q = self.q(cells).view(-1, s * s, self.heads, dh).transpose(1, 2)  # (B*h*w, heads, s*s, dh)
        bias = self.bias.to(x.dtype).unsqueeze(0) + mask.to(x.dtype).reshape(1, h * w, 1, 1, k2).expand(
            B, -1, -1, -1, -1).reshape(B * h * w, 1, 1, k2)  # (B*h*w, heads, s*s, k2)
        o = _mq_attention(q, k.reshape(-1, k2, dh), v.reshape(-1, k2, dh), bias)  # (B*h*w, heads, s*s, dh)
        o = self.proj(o.transpose(1, 2).reshape(-1, s * s, C))  # (B*h*w, s*s, C)
        return o.view(B, h, w, s, s, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hs, Ws, C)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``x (B, h*s, w*s, C)``, ``latent (B, h, w, latent_dim)`` -> ``(B, h*s, w*s, C)``."""
        return self.attend(x, *self.keys(latent))


class Mlp(nn.Module):
    """Per-token two-layer MLP with GELU."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))
