"""Building blocks of the HiT decoder: token partitions, multi-axis blocked self-attention,
windowed latent cross-attention and MLPs.

Tokens are kept channels-last, ``(B, H, W, C)``. Every attention here is local: a token attends to
a fixed number of other tokens whatever the grid size, so cost grows linearly with the pixel count
and no module holds a table tied to one image size (positions enter only through relative-position
biases inside a window).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "block_partition",
    "block_unpartition",
    "dilated_partition",
    "dilated_unpartition",
    "window_gather",
    "crop",
    "local_attention",
    "tent_log_weights",
    "relative_position_index",
    "MultiAxisAttention",
    "LatentCrossAttention",
    "CodeWindows",
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


def dilated_partition(x: torch.Tensor, block: int, dilation_grid: int) -> torch.Tensor:
    """``(B, H, W, C) -> (B * H/(bd) * W/(bd) * b*b, d*d, C)``: dilated groups (``b`` = block,
    ``d`` = dilation_grid).

    The grid is cut into super-windows of ``(b*d) x (b*d)`` tokens; inside one, the tokens that
    share the same offset within their b x b block form a group of ``d*d`` tokens at stride ``b``.
    With ``d = H / b`` this is HiT's dilated attention over the whole map; a fixed ``d`` keeps the
    group size, and so the cost per token, bounded on larger grids.
    """
    B, H, W, C = x.shape
    b, d = block, dilation_grid
    s = b * d
    assert H % s == 0 and W % s == 0, (
        f"dilated_partition: grid {H}x{W} is not a multiple of block*dilation_grid = {b}*{d} = {s}"
    )
    x = x.view(B, H // s, d, b, W // s, d, b, C)  # (B, nH, gi, oi, nW, gj, oj, C)
    x = x.permute(0, 1, 4, 3, 6, 2, 5, 7)  # (B, nH, nW, oi, oj, gi, gj, C)
    return x.reshape(-1, d * d, C)


def dilated_unpartition(t: torch.Tensor, block: int, dilation_grid: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`dilated_partition`."""
    C = t.shape[-1]
    b, d = block, dilation_grid
    s = b * d
    x = t.view(-1, H // s, W // s, b, b, d, d, C)  # (B, nH, nW, oi, oj, gi, gj, C)
    x = x.permute(0, 1, 5, 3, 2, 6, 4, 7)  # (B, nH, gi, oi, nW, gj, oj, C)
    return x.reshape(-1, H, W, C)


def relative_position_index(n: int) -> torch.Tensor:
    """``(n*n, n*n)`` index into a ``(2n-1)**2`` table of 2-D relative offsets within an n x n grid."""
    coords = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (n - 1)  # (2, n*n, n*n)
    return rel[0] * (2 * n - 1) + rel[1]


def _mask_value(dtype: torch.dtype) -> float:
    # A large finite negative (not -inf): fully padded groups then give finite garbage, never NaN.
    return torch.finfo(dtype).min / 2


# ----------------------------------------------------------------------------- attention
def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Softmax attention over many small problems: ``q (N, 1, L, dh)``, ``k, v (N, 1, S, dh)``,
    additive ``bias (N or 1, 1, L, S)``; returns ``(N, 1, L, dh)``, scaled by ``dh ** -0.5``.

    Equal to :func:`torch.nn.functional.scaled_dot_product_attention` up to float rounding. On the
    CPU it runs as a batched matmul with the bias fused in, a softmax and a second batched matmul:
    for the decoder's problems (16 to 64 keys, head size 16 to 64) PyTorch's CPU flash-attention
    kernel spends most of its time on per-problem overhead (1.5x to 6x slower on 2 threads,
    docs/performance.md). Elsewhere (GPU) the fused kernel is used. Softmax statistics are float32
    for low-precision inputs."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    N, _, L, dh = q.shape
    S = k.shape[-2]
    scores = torch.baddbmm(bias.reshape(-1, L, S).expand(N, L, S), q.reshape(N, L, dh),
                           k.reshape(N, S, dh).transpose(1, 2), alpha=dh**-0.5)  # (N, L, S)
    if scores.dtype in (torch.float32, torch.float64):
        probs = scores.softmax(-1)
    else:
        probs = scores.softmax(-1, dtype=torch.float32).to(scores.dtype)
    return torch.bmm(probs, v.reshape(N, S, dh)).view(N, 1, L, dh)


def _mq_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Multi-query attention: ``q (N, heads, L, dh)``, ``k, v (N, S, dh)``, additive ``bias``
    broadcastable to ``(N, heads, L, S)``. Query heads are folded into the query length so the one
    K/V head is never copied. Returns ``(N, heads, L, dh)``."""
    N, nh, L, dh = q.shape
    S = k.shape[1]
    # Contiguous operands: gathered windows (unfold) come with a batch stride of 1, on which CPU
    # batched matmuls run tens of times slower.
    out = local_attention(
        q.reshape(N, 1, nh * L, dh),  # (N, 1, heads*L, dh)
        k.unsqueeze(1).contiguous(),  # (N, 1, S, dh)
        v.unsqueeze(1).contiguous(),
        bias.reshape(-1, 1, nh * L, S).contiguous(),  # (N or 1, 1, heads*L, S)
    )
    return out.view(N, nh, L, dh)


class MultiAxisAttention(nn.Module):
    """HiT's multi-axis blocked self-attention with multi-query K/V.

    Half of the heads attend inside their ``b x b`` block (regional), the other half among the
    ``d x d`` tokens at the same in-block offset inside a ``(b d) x (b d)`` super-window (dilated,
    stride ``b``; ``b`` = block, ``d`` = dilation_grid). All query heads share one key head and one
    value head; the two halves are
    concatenated and share one output projection. Relative-position biases per half.
    """

    def __init__(self, dim: int, heads: int, block: int, dilation_grid: int) -> None:
        super().__init__()
        assert heads % 2 == 0, "MultiAxisAttention needs an even number of heads"
        self.dim, self.heads, self.block, self.dilation_grid = dim, heads, block, dilation_grid
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * self.head_dim)
        self.proj = nn.Linear(dim, dim)
        half = heads // 2
        self.regional_bias = nn.Parameter(torch.zeros(half, (2 * block - 1) ** 2))
        self.dilated_bias = nn.Parameter(torch.zeros(half, (2 * dilation_grid - 1) ** 2))
        self.register_buffer("regional_index", relative_position_index(block), persistent=False)
        self.register_buffer("dilated_index", relative_position_index(dilation_grid), persistent=False)

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
        """``x (B, H, W, C)`` with H, W multiples of ``block*dilation_grid``; ``valid (H, W)`` marks real
        (non-padding) tokens — padding is never attended to. Returns ``(B, H, W, C)``."""
        B, H, W, C = x.shape
        b, d = self.block, self.dilation_grid
        q = self.q(x)  # (B, H, W, C)
        k, v = self.kv(x).chunk(2, dim=-1)  # (B, H, W, dh) each
        half = C // 2
        q_reg, q_dil = q[..., :half], q[..., half:]
        if torch.compiler.is_compiling():  # the partitions then view contiguous tensors: inductor's
            # view of a strided slice would guard on a size-1 super-window count (docs/performance.md)
            q_reg, q_dil, k, v = (t.contiguous() for t in (q_reg, q_dil, k, v))
        key_valid = None if valid is None else valid.view(1, H, W, 1)
        regional = self._half(
            q_reg, k, v, self._bias(self.regional_bias, self.regional_index), key_valid,
            lambda t: block_partition(t, b), lambda t: block_unpartition(t, b, H, W),
        )  # (B, H, W, C/2)
        dilated = self._half(
            q_dil, k, v, self._bias(self.dilated_bias, self.dilated_index), key_valid,
            lambda t: dilated_partition(t, b, d), lambda t: dilated_unpartition(t, b, d, H, W),
        )  # (B, H, W, C/2)
        return self.proj(torch.cat([regional, dilated], dim=-1))  # (B, H, W, C)


def crop(x: torch.Tensor, top: int, height: int, left: int, width: int) -> torch.Tensor:
    """Rows ``top .. top + height`` and columns ``left .. left + width`` of ``x (B, H, W, C)``: a view
    in eager mode, a gather (``index_select``) while compiling, where a slice's bounds would become
    guards of the graph (``H <= Hp``) or, on torch 2.11, unbacked sizes that failed the trace
    (docs/performance.md, "Compilation" and "GPU")."""
    if torch.compiler.is_compiling():
        rows = torch.arange(height, device=x.device) + top
        return x.index_select(1, rows).index_select(2, torch.arange(width, device=x.device) + left)
    return x[:, top : top + height, left : left + width]


def window_gather(x: torch.Tensor, n: int, before: int, after: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n x n windows of ``x (B, h, w, C)`` after zero padding ``before`` / ``after`` positions on each
    axis: window ``(p, q)`` covers rows ``p - before .. p - before + n - 1`` (columns alike).

    Returns ``(B, h', w', n*n, C)`` with ``h' = h + before + after - n + 1`` and a boolean
    ``(h', w', n*n)`` mask of in-grid entries. Entry ``e`` sits at offset ``(e // n, e % n)``.
    """
    B, h, w, C = x.shape
    ho, wo = h + before + after - n + 1, w + before + after - n + 1
    pad = (0, 0, before, after, before, after)
    # windows as a view (B, h', w', n, n, C), then one copy with channels innermost (unlike F.unfold's)
    windows = lambda t: t.unfold(1, n, 1).unfold(2, n, 1).permute(0, 1, 2, 4, 5, 3)
    cols = windows(F.pad(x, pad)).reshape(B, ho, wo, n * n, C)
    valid = windows(F.pad(x.new_ones(1, h, w, 1), pad)).reshape(ho, wo, n * n) > 0.5  # (h', w', n*n)
    return cols, valid


def tent_log_weights(scale: int, window: int) -> torch.Tensor:
    """Fixed log-weights ``(scale**2, (window+1)**2)`` of pixel-centred code lookup.

    A pixel at row ``y`` of a stage with ``scale`` pixels per code sits at code coordinate
    ``u = (y + 0.5) / scale - 0.5`` (code centres at integers). Code ``j`` is weighted by the tent
    ``max(0, 1 - |u - j| / R)`` with ``R = window / 2`` codes (separably in rows and columns), so a
    code's weight rises and falls continuously as pixels move across the grid: no pixel switches
    abruptly to a different set of codes. The ``window + 1`` codes per axis starting at
    ``floor(u) - window // 2`` hold every code with a non-zero weight. Pixels that share
    ``floor(u)`` form a group (one attention call); ``(sub_y * scale + sub_x, e)`` indexes a pixel's
    position inside its group and entry ``e`` of the group's window. Zero weights become a large
    negative number (masked).
    """
    n, r = window + 1, window // 2
    sub = torch.arange(scale, dtype=torch.float64)
    u_rel = (sub + 0.5) / scale if scale > 1 else sub * 0  # u - floor(u) for each position in a group
    d = u_rel[:, None] + r - torch.arange(n, dtype=torch.float64)[None]  # (scale, n): u - j
    tent = (1 - d.abs() / (window / 2)).clamp_min(0)  # (scale, n)
    w2 = tent[:, None, :, None] * tent[None, :, None, :]  # (sy, sx, ey, ex)
    w2 = w2.reshape(scale * scale, n * n)
    return torch.where(w2 > 0, w2.clamp_min(1e-300).log(), torch.full_like(w2, _mask_value(torch.float32)))  # float64


class CodeWindows(NamedTuple):
    """The latent-code window of every pixel group of a cross-attention stage."""

    keys: torch.Tensor  #: (B, gh, gw, n*n, dh)
    values: torch.Tensor  #: (B, gh, gw, n*n, dh)
    mask: torch.Tensor  #: (gh, gw, n*n) additive: 0, or a large negative number for out-of-grid codes


class LatentCrossAttention(nn.Module):
    """Cross-attention self-modulation: image tokens (queries) attend to latent code tokens.

    A stage at ``scale`` s pixels per code groups its tokens and lets every group attend to a
    window of codes (multi-query K/V, out-of-grid codes masked); a learned bias per head, per
    position inside the group and per window entry adds relative positions, size-free.

    * ``centred=True`` (pixel-centred lookup): groups are the pixels sharing ``floor(u)`` (cells
      shifted by half a code); each attends to the ``(window+1)**2`` codes around its centre with
      fixed tent log-weights (:func:`tent_log_weights`) added to the scores, so attention weights
      change continuously from pixel to pixel, across cell borders too.
    * ``centred=False`` (the v1 decoder): groups are the s x s cells of one code; each attends to
      the ``window x window`` codes centred on that code, so the key set switches at every cell
      border.
    """

    def __init__(self, dim: int, latent_dim: int, heads: int, scale: int, window: int, centred: bool = True) -> None:
        super().__init__()
        self.dim, self.heads, self.scale, self.window, self.centred = dim, heads, scale, window, centred
        self.head_dim = dim // heads
        self.n = window + 1 if centred else window  # codes per axis in a group's window
        self.shift = scale // 2 if centred else 0  # groups start this many pixels before a cell
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(latent_dim, 2 * self.head_dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(heads, scale * scale, self.n**2))
        # a constant of the architecture: follows the module's device and dtype (.to), never saved
        self.register_buffer("tent", self._tent_table(torch.get_default_dtype()), persistent=False)  # (s*s, n2)

    def _tent_table(self, dtype: torch.dtype, device=None) -> torch.Tensor:
        """Fixed log-weights ``(s*s, n2)`` (zeros for cell lookup), rounded once from float64."""
        n2 = self.n**2
        tent = tent_log_weights(self.scale, self.window) if self.centred else torch.zeros(self.scale**2, n2)
        return tent.to(device=device, dtype=dtype)

    def _apply(self, fn, recurse=True):
        # .to(dtype) would round the table twice (float32, then the new dtype): rebuild it instead
        out = super()._apply(fn, recurse)
        self.tent = self._tent_table(self.tent.dtype, self.tent.device)
        return out

    def pixel_rows(self, g0: int, g1: int, pixels: int) -> tuple[int, int, int, int]:
        """Pixel rows ``[r0, r1)`` of groups ``[g0, g1)`` on an axis of ``pixels`` pixels, and the
        padding ``(before, after)`` that completes them to whole groups."""
        s = self.scale
        a, b = g0 * s - self.shift, g1 * s - self.shift
        r0, r1 = max(0, a), min(pixels, b)
        return r0, r1, r0 - a, b - r1

    def keys(self, latent: torch.Tensor) -> CodeWindows:
        """Window keys/values of every group: ``latent (B, h, w, latent_dim)`` ->
        ``k, v (B, gh, gw, n*n, dh)`` and an additive mask ``(gh, gw, n*n)`` for out-of-grid codes."""
        before = self.window // 2 + (1 if self.shift else 0)
        after = self.n - 1 - self.window // 2
        kv, valid = window_gather(self.kv(latent), self.n, before, after)  # (B, gh, gw, n2, 2dh)
        k, v = kv.chunk(2, dim=-1)
        return CodeWindows(k, v, (~valid).to(latent.dtype) * _mask_value(latent.dtype))

    def _run_bias(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Additive scores of every row run: learned bias + tent + out-of-grid mask, as
        ``(h*s*w, s*heads, n2)`` for ``mask (h, w, n2)``: run ``(gy, sy, gx)``, query ``(sx, head)``."""
        s, nh, n2 = self.scale, self.heads, self.n**2
        h, w = mask.shape[0], mask.shape[1]
        table = self.bias.to(dtype) + self.tent.to(dtype)  # (heads, s*s, n2)
        table = table.view(nh, s, s, n2).permute(1, 2, 0, 3).reshape(1, s, 1, s * nh, n2)  # (1, sy, 1, sx*heads, n2)
        out = table.new_empty(h, s, w, s * nh, n2)  # written once, in the layout the attention reads
        out.copy_(table.expand(h, s, w, s * nh, n2)).add_(mask.to(dtype).view(h, 1, w, 1, n2))  # (h, sy, w, sx*heads, n2)
        return out.view(h * s * w, s * nh, n2)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x (B, gh*s, gw*s, C)``: the pixels of ``gh x gw`` whole groups (padded where they
        overhang the image) against those groups' keys (rows of :meth:`keys`, sliced).

        Queries stay in the image layout: a run of ``s`` pixels of one pixel row inside one group,
        with the heads folded into the query length (one K/V head), is one attention problem, so
        the batched attention reads ``q`` as a view; only the (4x to 16x smaller) keys are repeated
        per pixel row of a group."""
        B, Hs, Ws, C = x.shape
        s, n2, dh, nh = self.scale, self.n**2, self.head_dim, self.heads
        h, w = k.shape[1], k.shape[2]
        torch._assert(Hs == h * s, "LatentCrossAttention.attend: pixel rows do not match the groups")
        torch._assert(Ws == w * s, "LatentCrossAttention.attend: pixel columns do not match the groups")
        q = self.q(x).view(B * h * s * w, 1, s * nh, dh)  # (runs, 1, s*heads, dh): a view
        # contiguous: at s = 1 the reshape is a view of the gathered windows, whose batch stride of 1
        # sends CPU attention down a per-window loop
        k = k.unsqueeze(2).expand(B, h, s, w, n2, dh).reshape(B * h * s * w, 1, n2, dh).contiguous()  # (runs, 1, n2, dh)
        v = v.unsqueeze(2).expand(B, h, s, w, n2, dh).reshape(B * h * s * w, 1, n2, dh).contiguous()
        bias = self._run_bias(mask, q.dtype)  # (h*s*w, s*heads, n2)
        bias = bias.unsqueeze(0).expand(B, -1, -1, -1).reshape(B * h * s * w, 1, s * nh, n2)
        o = local_attention(q, k, v, bias)  # (runs, 1, s*heads, dh)
        return self.proj(o.view(B, Hs, Ws, C))  # (B, gh*s, gw*s, C)

    def attend_rows(self, x: torch.Tensor, windows: CodeWindows,
                    g0: int, g1: int, height: int) -> torch.Tensor:
        """Output for the pixel rows of groups ``[g0, g1)`` of an image of ``height`` rows:
        ``x (B, r1 - r0, W, C)`` holds those rows (``r0, r1`` from :meth:`pixel_rows`); returns
        the same shape."""
        k, v, mask = windows
        W = x.shape[2]
        r0, r1, top, bottom = self.pixel_rows(g0, g1, height)
        _, _, left, right = self.pixel_rows(0, k.shape[2], W)
        assert x.shape[1] == r1 - r0, f"attend_rows: got {x.shape[1]} rows, groups {g0}..{g1} hold {r1 - r0}"
        if top or bottom or left or right:
            x = F.pad(x, (0, 0, left, right, top, bottom))  # (B, (g1-g0) s, gw s, C)
        out = self.attend(x, k[:, g0:g1], v[:, g0:g1], mask[g0:g1])
        return crop(out, top, r1 - r0, left, W)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``x (B, h*s, w*s, C)``, ``latent (B, h, w, latent_dim)`` -> ``(B, h*s, w*s, C)``."""
        windows = self.keys(latent)
        return self.attend_rows(x, windows, 0, windows.keys.shape[1], x.shape[1])


class Mlp(nn.Module):
    """Two-layer MLP with GELU; with ``conv=True`` a depthwise 3x3 convolution between ``fc1`` and
    the GELU mixes each pixel with its 8 neighbours (Mix-FFN, Xie et al. 2021, SegFormer)."""

    def __init__(self, dim: int, ratio: float, conv: bool = False) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if conv else None
        self.fc2 = nn.Linear(hidden, dim)

    @property
    def halo(self) -> int:
        """Rows of context each side that an output row needs (0: per-token)."""
        return 1 if self.dwconv is not None else 0

    def forward(self, x: torch.Tensor, crop: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """``x (B, H, W, C) -> (B, H - top - bottom, W, C)`` with ``crop = (top, bottom)`` rows of
        context (given when ``x`` is a band of a larger image) dropped from the output."""
        h = self.fc1(x)  # (B, H, W, hidden)
        if self.dwconv is not None:
            h = self.dwconv(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H, W, hidden)
        # before the crop: contiguous (GELU's scalar path for strided ones rounds otherwise); in place without autograd
        h = F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)
        top, bottom = crop
        if top or bottom:
            h = h[:, top : h.shape[1] - bottom]  # (B, H', W, hidden)
        return self.fc2(h)  # (B, H', W, C)
