"""Sliding-window sampling of latent grids larger than a transformer prior's context.

Taming-transformers samples images larger than its prior's context only inside a Streamlit script
(``scripts/sample_conditional.py``): it walks the latent grid in raster order and, for every
position, runs the GPT over a ``16 x 16`` window of codes placed around it, prepends the
conditioning and samples from the logits at the position's place in the window. This module makes
that a library function over a taming ``Net2NetTransformer``, with two paths that return the same
tokens for the same seed:

``method="reference"``
    taming's algorithm as written: one full-window GPT forward per token, the logits of every
    window position computed and one of them used.

``method="fast"`` (default)
    the same arithmetic with work removed that cannot change a logit:

    * *prefix truncation* — under the causal mask the logits for window token ``t`` depend only on
      the conditioning and window tokens ``< t``, so the rest of the window is never fed;
    * *KV caching per window* — positions that share a window (all positions near the top, left,
      right and bottom edges of the grid do) extend one key/value cache instead of re-running the
      prefix; a window's cache is dropped after its last position;
    * *batching independent positions* — positions are grouped into wavefront rounds
      (:func:`wavefront_rounds`): a position joins the round after the latest of the positions its
      logits depend on, so the positions of one round are independent and their new tokens go
      through the GPT's linear layers as one packed sequence (attention stays per window);
    * the output head runs only for the positions that are sampled, not for the whole window.

    The forward pass is our own loop over the GPT's modules (its embeddings, blocks, layer norms
    and head are called as they are; taming's GPT has no cache of its own).

Randomness is per position, not per call: the sampler draws one uniform number for every
``(sample, row, column)`` up front from the caller's generator and turns the filtered distribution
at that position into a token by inverse-CDF lookup. Any schedule that computes the same logits
therefore draws the same token — the fast path reorders and skips work without changing a sample.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "window_offset",
    "window_start",
    "default_window",
    "draw_uniforms",
    "sample_tokens",
    "top_k_top_p_filtering",
    "sample_sliding_window",
    "grid_shape_for",
    "wavefront_rounds",
]

_METHODS = ("fast", "reference")


# ----------------------------------------------------------------------------- window placement
def window_offset(p: int, n: int, win: int) -> int:
    """Offset of position ``p`` inside a window of ``win`` codes on an axis of ``n`` codes.

    Taming's placement (``scripts/sample_conditional.py``, there with ``win=16``, ``half=8``)::

        local = p                      if p <= half
                win - (n - p)          if n - p < half
                half                   otherwise

    with ``half = win // 2``. For odd windows the middle case would push the window past the end
    of the axis, so the second test uses ``n - p < win - half`` (identical for even windows).
    """
    if not 0 <= p < n:
        raise ValueError(f"position {p} is outside an axis of length {n}")
    if win > n:
        raise ValueError(f"window {win} is longer than the axis ({n})")
    half = win // 2
    if p <= half:
        return p
    if n - p < win - half:
        return win - (n - p)
    return half


def window_start(p: int, n: int, win: int) -> int:
    """First position covered by the window that samples position ``p`` (see :func:`window_offset`)."""
    return p - window_offset(p, n, win)


def _as_pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    try:  # integers only (operator.index): 16.5 must not silently become 16, nor True become 1
        items = (value, value) if not isinstance(value, Sequence) else tuple(value)
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        pair = tuple(operator.index(v) for v in items)
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair (rows, cols) of positive ints, got {value!r}")
    return pair  # type: ignore[return-value]


# ----------------------------------------------------------------------------- conditioning
@dataclass(frozen=True)
class _Conditioning:
    """Tokens prepended to every window: a fixed prefix (SOS / class token, ``(B, L)``) or a
    spatial condition grid ``(B, H, W)`` cropped at the same window as the codes."""

    prefix: torch.Tensor | None = None
    grid: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return (self.prefix if self.prefix is not None else self.grid).shape[0]

    def length(self, window: tuple[int, int]) -> int:
        return self.prefix.shape[1] if self.prefix is not None else window[0] * window[1]

    def tokens(self, i0: int, j0: int, window: tuple[int, int]) -> torch.Tensor:
        if self.prefix is not None:
            return self.prefix  # (B, L)
        wh, ww = window
        return self.grid[:, i0 : i0 + wh, j0 : j0 + ww].reshape(self.grid.shape[0], wh * ww)  # (B, wh*ww)


def _batch_of(cond_batch: int, batch_size: int | None) -> int:
    if batch_size is None:
        return cond_batch
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if cond_batch not in (1, batch_size):
        raise ValueError(
            f"cond holds {cond_batch} conditions but batch_size={batch_size}; pass one condition "
            "(it is repeated), one per sample, or leave batch_size unset"
        )
    return batch_size


def _resolve_conditioning(
    model: nn.Module, cond: object, batch_size: int | None, shape: tuple[int, int], device: torch.device
) -> _Conditioning:
    """Turn the user's ``cond`` into conditioning tokens the way the Net2NetTransformer does."""
    if getattr(model, "be_unconditional", False):
        if cond is not None:
            raise ValueError(
                "this prior is unconditional (it prepends an SOS token); call it with cond=None"
            )
        B = _batch_of(1, batch_size)
        return _Conditioning(prefix=torch.full((B, 1), int(model.sos_token), dtype=torch.long, device=device))
    stage = type(getattr(model, "cond_stage_model", None)).__name__
    if cond is None:
        raise ValueError(
            f"this prior is conditional (cond stage {stage}); pass cond= class id(s) for a class-"
            "conditional prior, or a condition grid (B, H, W) of indices / a condition image (B, C, h, w)"
        )
    if isinstance(cond, int) or (
        not isinstance(cond, torch.Tensor) and isinstance(cond, Sequence) and all(isinstance(c, int) for c in cond)
    ):
        cond = torch.as_tensor(cond, dtype=torch.long).reshape(-1)
    if not isinstance(cond, torch.Tensor):
        raise ValueError(f"cond must be None, an int, a list of ints or a tensor, got {type(cond).__name__}")
    if cond.ndim <= 1 and not cond.is_floating_point():  # class labels
        labels = cond.reshape(-1).to(device)
        n_classes = getattr(model.cond_stage_model, "n_classes", None)
        if n_classes is not None and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"class ids {labels.tolist()} out of range: this prior has {n_classes} classes (0..{n_classes - 1})")
        B = _batch_of(labels.shape[0], batch_size)
        _, c = model.encode_to_c(labels.expand(B) if labels.shape[0] == 1 else labels)
        return _Conditioning(prefix=c.reshape(B, -1).long())
    if getattr(model.cond_stage_model, "n_classes", None) is not None:
        raise ValueError(f"this prior is class-conditional ({stage}); pass class ids as cond, got a tensor of shape {tuple(cond.shape)}")
    if cond.ndim == 3 and not cond.is_floating_point():  # spatial indices (B, H, W)
        grid = cond.to(device).long()
    elif cond.ndim == 4 and cond.is_floating_point():  # condition image -> cond stage codes
        quant_c, c = model.encode_to_c(cond.to(device))
        grid = c.reshape(quant_c.shape[0], quant_c.shape[2], quant_c.shape[3]).long()
    else:
        raise ValueError(
            f"cannot interpret cond of shape {tuple(cond.shape)} and dtype {cond.dtype}: expected class "
            "ids (int tensor of shape (B,)), a condition index grid (int tensor (B, H, W)) or a "
            "condition image (float tensor (B, C, h, w))"
        )
    if tuple(grid.shape[1:]) != tuple(shape):
        raise ValueError(
            f"the condition grid is {grid.shape[1]}x{grid.shape[2]} codes but the sample is "
            f"{shape[0]}x{shape[1]}; the condition must cover the sampled grid code for code"
        )
    B = _batch_of(grid.shape[0], batch_size)
    return _Conditioning(grid=grid.expand(B, -1, -1) if grid.shape[0] == 1 else grid)


# ----------------------------------------------------------------------------- checks
def _gpt_of(model: nn.Module) -> nn.Module:
    gpt = getattr(model, "transformer", None)
    needed = ("tok_emb", "pos_emb", "blocks", "ln_f", "head", "config")
    if gpt is None or not all(hasattr(gpt, a) for a in needed):
        raise ValueError(
            f"sample_sliding_window expects a taming Net2NetTransformer (with a minGPT .transformer), "
            f"got {type(model).__name__}"
        )
    permuter = getattr(model, "permuter", None)
    if permuter is not None and type(permuter).__name__ != "Identity":
        raise ValueError(
            f"sliding-window sampling needs raster order, but this prior uses the permuter "
            f"{type(permuter).__name__}; only taming's Identity permuter is supported"
        )
    return gpt


def default_window(block_size: int, cond_length: int | None) -> int:
    """Largest square window ``w`` whose tokens fit the GPT: ``L + w*w - 1 <= block_size``, with
    ``L = cond_length`` for a token prefix or ``L = w*w`` for a spatial condition (``None``).
    Taming's models were built so that this is 16 (256 + SOS/class token, or 2 x 256 spatial)."""
    w = 1
    while True:
        nxt = w + 1
        cond_len = nxt * nxt if cond_length is None else cond_length
        if cond_len + nxt * nxt - 1 > block_size:
            return w
        w = nxt


def _check_window(
    window: tuple[int, int], shape: tuple[int, int], cond_len: int, block_size: int, n_unmasked: int
) -> None:
    H, W = shape
    wh, ww = window
    if H < wh or W < ww:
        raise ValueError(
            f"the latent grid {H}x{W} is smaller than the sampling window {wh}x{ww}; sample a grid of at "
            f"least {wh}x{ww} codes (e.g. {wh * 16}x{ww * 16} px for an f16 model) or pass a smaller window="
        )
    need = cond_len + wh * ww - 1
    if need > block_size:
        raise ValueError(
            f"a {wh}x{ww} window with {cond_len} conditioning token(s) needs {need} positions but the "
            f"GPT's block size is {block_size}; use a smaller window"
        )
    if n_unmasked > cond_len:
        raise ValueError(
            f"the GPT leaves its first {n_unmasked} positions unmasked (n_unmasked), more than the "
            f"{cond_len} conditioning tokens; sliding-window sampling needs a causal mask over the codes"
        )


# ----------------------------------------------------------------------------- token draws
def draw_uniforms(
    shape: tuple[int, int, int], generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """One uniform number in ``(0, 1]`` per ``(sample, row, column)``, float64, drawn at once."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device)
    return (1.0 - u).to(device)  # (B, H, W), in (0, 1]


def top_k_top_p_filtering(
    logits: torch.Tensor,
    top_k: int = 0,
    top_p: float = 1.0,
    filter_value: float = -float("inf"),
    min_tokens_to_keep: int = 1,
) -> torch.Tensor:
    """Mask logits outside the top-k and the nucleus of mass ``top_p`` (last dim).

    Same contract as the function taming imported from ``transformers``: ``top_k=0`` and
    ``top_p=1.0`` disable the respective filter; at least ``min_tokens_to_keep`` survive.
    Returns a new tensor.
    """
    logits = logits.clone()
    vocab = logits.shape[-1]
    if top_k and top_k > 0:
        k = min(max(int(top_k), min_tokens_to_keep), vocab)
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, filter_value)
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cum > top_p
        # shift right so the token that crosses the threshold is kept
        remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()
        remove_sorted[..., :min_tokens_to_keep] = False
        remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)
        logits = logits.masked_fill(remove, filter_value)
    return logits


def sample_tokens(
    logits: torch.Tensor,
    u: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Draw one token per row of ``logits (B, V)`` from ``softmax(filter(logits / temperature))``.

    ``u (B,)`` in ``(0, 1]`` picks the token by inverse-CDF: the first token whose cumulative
    probability reaches ``u``. Filtering as taming's ``top_k_top_p_filtering`` (top-k, then the
    nucleus of mass ``top_p``). Tokens with probability 0 are never drawn. Returns ``(B,)`` long.
    """
    logits = logits / temperature  # (B, V)
    if top_k is not None or top_p is not None:
        logits = top_k_top_p_filtering(logits, top_k=top_k or 0, top_p=1.0 if top_p is None else top_p)
    cdf = torch.softmax(logits.to(torch.float64), dim=-1).cumsum(dim=-1)  # (B, V)
    target = (u.to(cdf) * cdf[:, -1]).unsqueeze(-1)  # (B, 1)
    return torch.searchsorted(cdf, target).squeeze(-1).clamp_(max=logits.shape[-1] - 1)  # (B,)


# ----------------------------------------------------------------------------- GPT with a KV cache
class _WindowCache:
    """Keys and values of one window for every layer: ``(n_layer, B, heads, T, head_dim)`` each,
    of which the first ``length`` positions are filled."""

    def __init__(self, gpt: nn.Module, batch: int, capacity: int) -> None:
        cfg = gpt.config
        shape = (cfg.n_layer, batch, cfg.n_head, capacity, cfg.n_embd // cfg.n_head)
        p = gpt.pos_emb
        self.k = torch.empty(shape, dtype=p.dtype, device=p.device)
        self.v = torch.empty(shape, dtype=p.dtype, device=p.device)
        self.length = 0


def _chunk_mask(start: int, n: int, n_unmasked: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(n, start + n)`` mask (True = attend) for queries at ``start .. start+n-1``:
    causal, except that the first ``n_unmasked`` positions see each other (taming's GPT)."""
    q = torch.arange(start, start + n, device=device).unsqueeze(1)  # (n, 1)
    k = torch.arange(start + n, device=device).unsqueeze(0)  # (1, start+n)
    return (k <= q) | ((k < n_unmasked) & (q < n_unmasked))  # (n, start+n)


@dataclass
class _Chunk:
    """New tokens ``(B, n)`` for one window's cache, at sequence positions ``cache.length ..``."""

    tokens: torch.Tensor
    cache: _WindowCache


def _attention_plan(chunks: list[_Chunk], n_unmasked: int, device: torch.device) -> list[tuple]:
    """Per chunk: ``(cache, offset in the packed sequence, start, length, mask, plain_causal)``."""
    plan, offset = [], 0
    for ch in chunks:
        start, n = ch.cache.length, ch.tokens.shape[1]
        causal = start == 0 and n > 1 and n_unmasked <= 1  # SDPA builds the mask itself
        # a single new position sees every cached one: no mask
        mask = None if causal or n == 1 else _chunk_mask(start, n, n_unmasked, device)
        plan.append((ch.cache, offset, start, n, mask, causal))
        offset += n
    return plan


def _packed_attention(attn: nn.Module, h: torch.Tensor, plan: list[tuple], layer: int) -> torch.Tensor:
    """taming's ``CausalSelfAttention`` (its own ``key``/``query``/``value``/``proj`` layers; dropout
    is off in eval) over packed chunks of several windows: the projections run once over all new
    tokens, attention runs per window against that window's cached keys and values."""
    B, N, C = h.shape
    nh = attn.n_head
    heads = lambda t: t.reshape(B, -1, nh, C // nh).transpose(1, 2)  # noqa: E731  (B, n, C) -> (B, nh, n, hd)
    q, k, v = attn.query(h), attn.key(h), attn.value(h)  # (B, N, C) each
    out = []
    for cache, o, start, n, mask, causal in plan:
        end = start + n
        cache.k[layer, :, :, start:end] = heads(k[:, o : o + n])
        cache.v[layer, :, :, start:end] = heads(v[:, o : o + n])
        y = F.scaled_dot_product_attention(
            heads(q[:, o : o + n]), cache.k[layer, :, :, :end], cache.v[layer, :, :, :end],
            attn_mask=mask, is_causal=causal,
        )  # (B, nh, n, hd)
        out.append(y.transpose(1, 2).reshape(B, n, C))  # (B, n, C)
    y = torch.cat(out, dim=1) if len(out) > 1 else out[0]  # (B, N, C)
    return attn.resid_drop(attn.proj(y))  # (B, N, C)


def _forward_packed(gpt: nn.Module, chunks: list[_Chunk]) -> torch.Tensor:
    """Feed every chunk to its window's cache in one pass over the GPT and return the logits
    ``(B, P, V)`` predicted at each chunk's last token (the logits of that window's next token)."""
    device = chunks[0].tokens.device
    plan = _attention_plan(chunks, int(getattr(gpt.config, "n_unmasked", 0)), device)
    tokens = torch.cat([ch.tokens for ch in chunks], dim=1)  # (B, N)
    pos = torch.cat([torch.arange(start, start + n) for _, _, start, n, _, _ in plan]).to(device)  # (N,)
    x = gpt.drop(gpt.tok_emb(tokens) + gpt.pos_emb[0, pos])  # (B, N, C)
    for layer, block in enumerate(gpt.blocks):
        x = x + _packed_attention(block.attn, block.ln1(x), plan, layer)  # (B, N, C)
        x = x + block.mlp(block.ln2(x))  # (B, N, C)
    for cache, _, start, n, _, _ in plan:
        cache.length = start + n
    last = torch.tensor([o + n - 1 for _, o, _, n, _, _ in plan], device=device)  # (P,)
    return gpt.head(gpt.ln_f(x[:, last]))  # (B, P, V)


# ----------------------------------------------------------------------------- the two paths
@dataclass(frozen=True)
class _Filter:
    temperature: float
    top_k: int | None
    top_p: float | None

    def __call__(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return sample_tokens(logits, u, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)


def _positions(shape: tuple[int, int], window: tuple[int, int]):
    """Raster order: ``(i, j, i0, j0, t)`` — position, window origin, index inside the window."""
    (H, W), (wh, ww) = shape, window
    for i in range(H):
        i0 = window_start(i, H, wh)
        for j in range(W):
            j0 = window_start(j, W, ww)
            yield i, j, i0, j0, (i - i0) * ww + (j - j0)


def _sample_reference(gpt, cond, u, shape, window, pick, bar) -> torch.Tensor:
    """taming's loop: full window (minus its last token) through the GPT for every position."""
    B = u.shape[0]
    wh, ww = window
    idx = torch.zeros((B, *shape), dtype=torch.long, device=u.device)  # (B, H, W)
    for i, j, i0, j0, t in _positions(shape, window):
        patch = idx[:, i0 : i0 + wh, j0 : j0 + ww].reshape(B, wh * ww)  # (B, wh*ww)
        seq = torch.cat([cond.tokens(i0, j0, window), patch], dim=1)  # (B, L + wh*ww)
        logits, _ = gpt(seq[:, :-1])  # (B, L + wh*ww - 1, V)
        logits = logits[:, -wh * ww :]  # (B, wh*ww, V): position k predicts window token k
        idx[:, i, j] = pick(logits[:, t], u[:, i, j])
        bar.update(1)
    return idx


def wavefront_rounds(shape: tuple[int, int], window: tuple[int, int]) -> list[list[tuple[int, int, int, int, int]]]:
    """Positions grouped into rounds that can be sampled together: ``(i, j, i0, j0, t)`` as in
    raster order, each in the round after the latest round of the positions its window prefix
    holds (the tokens its logits depend on), so no position depends on another of its round.

    Along a row rounds increase, so the latest dependency of ``(i, j)`` is ``(i, j - 1)`` (when
    inside the window) or the last window column of a row above.
    """
    (H, W), (wh, ww) = shape, window
    level = [[0] * W for _ in range(H)]
    rounds: list[list[tuple[int, int, int, int, int]]] = []
    for i, j, i0, j0, t in _positions(shape, window):
        dep = level[i][j - 1] if j > j0 else -1
        for r in range(i0, i):
            dep = max(dep, level[r][j0 + ww - 1])
        level[i][j] = dep + 1
        if dep + 1 == len(rounds):
            rounds.append([])
        rounds[dep + 1].append((i, j, i0, j0, t))
    return rounds


def _sample_fast(gpt, cond, u, shape, window, pick, bar, max_cached_windows) -> torch.Tensor:
    """Prefix truncation + one KV cache per window + positions of one wavefront round packed
    into one GPT pass (see the module docstring)."""
    B = u.shape[0]
    wh, ww = window
    L = cond.length(window)
    capacity = L + wh * ww
    idx = torch.zeros((B, *shape), dtype=torch.long, device=u.device)  # (B, H, W)
    rounds = wavefront_rounds(shape, window)
    uses = Counter((i0, j0) for rnd in rounds for _, _, i0, j0, _ in rnd)  # positions per window
    caches: OrderedDict[tuple[int, int], _WindowCache] = OrderedDict()
    for rnd in rounds:
        chunks = []
        for i, j, i0, j0, t in rnd:
            cache = caches.pop((i0, j0), None) or _WindowCache(gpt, B, capacity)
            codes = idx[:, i0 : i0 + wh, j0 : j0 + ww].reshape(B, wh * ww)  # (B, wh*ww)
            if cache.length == 0:
                new = torch.cat([cond.tokens(i0, j0, window), codes[:, :t]], dim=1)  # (B, L + t)
            else:
                new = codes[:, cache.length - L : t]  # (B, t - fed): tokens sampled since the last visit
            chunks.append(_Chunk(new, cache))
            caches[(i0, j0)] = cache
        logits = _forward_packed(gpt, chunks)  # (B, P, V): window token t of every position
        ii = torch.tensor([p[0] for p in rnd], device=idx.device)
        jj = torch.tensor([p[1] for p in rnd], device=idx.device)
        P = len(rnd)
        idx[:, ii, jj] = pick(logits.reshape(B * P, -1), u[:, ii, jj].reshape(B * P)).view(B, P)
        for _, _, i0, j0, _ in rnd:
            uses[(i0, j0)] -= 1
            if uses[(i0, j0)] == 0:  # the window's last position: its cache is never needed again
                del caches[(i0, j0)]
        while max_cached_windows is not None and len(caches) > max_cached_windows:
            caches.popitem(last=False)  # least recently used; rebuilt from scratch if needed again
        bar.update(P)
    return idx


# ----------------------------------------------------------------------------- public entry point
@torch.no_grad()
def sample_sliding_window(
    transformer: nn.Module,
    shape: tuple[int, int],
    *,
    cond: object = None,
    batch_size: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    method: str = "fast",
    window: int | tuple[int, int] | None = None,
    max_cached_windows: int | None = None,
    cache_rows: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Sample a ``(B, H, W)`` grid of code indices with a taming ``Net2NetTransformer`` or a
    windowed prior (:class:`hit_decoder.prior.WindowedPrior`).

    Args:
        transformer: a taming ``Net2NetTransformer`` (its ``.transformer`` is the minGPT), or a
            windowed prior: any module with ``sample_codes`` and ``condition_ids`` methods. A
            windowed prior has no window: its context is its neighbourhood wherever it samples;
            ``method="fast"`` streams it (one token forward per code), ``"reference"`` runs its
            whole masked model once per code. ``cond`` is then None or class id(s).
        shape: latent grid ``(H, W)``; at least the window in each dimension.
        cond: ``None`` for an unconditional prior (SOS token); class id(s) (int, list or ``(B,)``
            tensor) for a class-conditional one; a condition index grid ``(B, H, W)`` or a
            condition image ``(B, C, h, w)`` (encoded by the cond stage) for a spatial one — the
            grid is cropped at the same window as the codes.
        batch_size: number of samples (default: one per condition, or 1).
        temperature, top_k, top_p: logits are divided by ``temperature`` then filtered to the
            ``top_k`` tokens and the nucleus of mass ``top_p`` (``None`` disables either).
        generator, seed: the randomness (give at most one). All draws come from it, one uniform
            per position (see :func:`draw_uniforms`), so both methods give the same tokens.
        method: ``"fast"`` (default) or ``"reference"`` (taming's full-window loop).
        window: window side (int) or ``(rows, cols)``; default: the largest square window that
            fits the GPT's block size with the conditioning (:func:`default_window`, 16 for
            taming's models).
        max_cached_windows: fast path only — keep at most this many window KV caches (least
            recently used are dropped and rebuilt when needed; results do not change). Default:
            no limit: caches live from a window's first to its last position, about one band of
            windows at a time (49 for a 32x64 grid with 16x16 windows, 136 for 64x256), each
            ``2 * n_layer * B * (L + rows*cols) * n_embd`` numbers.
        cache_rows: windowed priors only — rows of keys/values the streaming sampler keeps (at
            least the neighbourhood's rows + 1; more rows let more of them run at once). Default:
            :func:`hit_decoder.prior.windowed.default_cache_rows`. Results do not change.
        progress: show a progress bar (tqdm) over the ``H * W`` positions.

    Returns:
        LongTensor ``(B, H, W)`` on the transformer's device.
    """
    from tqdm.auto import tqdm

    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    windowed = callable(getattr(transformer, "sample_codes", None))
    gpt = None if windowed else _gpt_of(transformer)
    shape = _as_pair("shape", shape)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None to disable), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None to disable), got {top_p}")
    if max_cached_windows is not None and max_cached_windows < 1:
        raise ValueError(f"max_cached_windows must be >= 1 or None, got {max_cached_windows}")
    if generator is not None and seed is not None:
        raise ValueError("pass either generator= or seed=, not both")
    if generator is None:
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(int(seed))
        else:
            generator.seed()  # fresh entropy from the OS, not the global RNG
    pick = _Filter(float(temperature), top_k, top_p)
    if windowed:
        return _sample_windowed(transformer, shape, cond, batch_size, generator, pick, method, window,
                                max_cached_windows, cache_rows, progress)
    if cache_rows is not None:
        raise ValueError("cache_rows is for windowed priors; this is a taming GPT prior (see max_cached_windows)")

    device = gpt.pos_emb.device
    conditioning = _resolve_conditioning(transformer, cond, batch_size, shape, device)
    if window is None:
        prefix_len = None if conditioning.prefix is None else conditioning.prefix.shape[1]
        window = default_window(gpt.get_block_size(), prefix_len)
    window = _as_pair("window", window)
    cond_len = conditioning.length(window)
    _check_window(window, shape, cond_len, gpt.get_block_size(), int(getattr(gpt.config, "n_unmasked", 0)))
    vocab = gpt.config.vocab_size
    for tok in (conditioning.prefix, conditioning.grid):
        if tok is not None and (tok.min() < 0 or tok.max() >= vocab):
            raise ValueError(f"conditioning tokens must lie in [0, {vocab}) (the GPT's vocabulary), got range [{int(tok.min())}, {int(tok.max())}]")

    u = draw_uniforms((conditioning.batch, *shape), generator, device)  # (B, H, W)
    was_training = gpt.training
    gpt.eval()
    bar = tqdm(total=shape[0] * shape[1], desc=f"sampling {shape[0]}x{shape[1]} ({method})", disable=not progress, leave=False)
    try:
        if method == "reference":
            return _sample_reference(gpt, conditioning, u, shape, window, pick, bar)
        return _sample_fast(gpt, conditioning, u, shape, window, pick, bar, max_cached_windows)
    finally:
        bar.close()
        gpt.train(was_training)


def _sample_windowed(prior, shape, cond, batch_size, generator, pick, method, window, max_cached_windows,
                     cache_rows, progress) -> torch.Tensor:
    """:func:`sample_sliding_window` for a windowed prior: same conditioning, uniforms and filter."""
    from tqdm.auto import tqdm

    if window is not None or max_cached_windows is not None:
        raise ValueError("a windowed prior has no sampling window (its context is its neighbourhood at every "
                         "position): leave window= and max_cached_windows= unset")
    if cache_rows is not None and cache_rows < 1:
        raise ValueError(f"cache_rows must be >= 1 or None, got {cache_rows}")
    device = next(prior.parameters()).device
    ids = prior.condition_ids(cond, batch_size, device)  # (B,)
    u = draw_uniforms((ids.shape[0], *shape), generator, device)  # (B, H, W)
    was_training = prior.training
    prior.eval()
    label = "streaming" if method == "fast" else method
    bar = tqdm(total=shape[0] * shape[1], desc=f"sampling {shape[0]}x{shape[1]} ({label})", disable=not progress, leave=False)
    try:
        return prior.sample_codes(ids, u, pick, method=method, cache_rows=cache_rows, progress=bar)
    finally:
        bar.close()
        prior.train(was_training)


def grid_shape_for(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """Latent grid ``(H, W)`` for an image ``size = (height, width)`` at downsampling ``factor``."""
    h, w = _as_pair("size", size)
    if h % factor or w % factor:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the model's downsampling factor {factor}; "
            f"use e.g. {math.ceil(h / factor) * factor}x{math.ceil(w / factor) * factor}"
        )
    return h // factor, w // factor
