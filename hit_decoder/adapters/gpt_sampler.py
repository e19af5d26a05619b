"""Sliding-window sampling with a taming ``Net2NetTransformer`` (minGPT): the sampler interface of
:func:`hit_decoder.sampling.sample_sliding_window` for taming priors.

Everything here reads taming's internals: the Net2NetTransformer's conditioning (SOS token, class
labels, a spatial condition encoded by its cond stage) and minGPT's modules, which the fast path
calls one by one to keep one key/value cache per window (taming's GPT has no cache of its own).
The algorithm's parts (window placement, wavefront rounds, per-position uniforms, filtering) are
the core's (:mod:`hit_decoder.sampling`). Two paths return the same tokens for the same seed:

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
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..sampling import (
    SamplingRequest,
    batch_of,
    default_window,
    draw_uniforms,
    raster_positions,
    sampling_progress,
    wavefront_rounds,
)

__all__ = ["TamingGPTPrior"]


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


def _resolve_conditioning(
    model: nn.Module, cond: object, batch_size: int | None, shape: tuple[int, int], device: torch.device
) -> _Conditioning:
    """Turn the user's ``cond`` into conditioning tokens the way the Net2NetTransformer does."""
    if getattr(model, "be_unconditional", False):
        if cond is not None:
            raise ValueError(
                "this prior is unconditional (it prepends an SOS token); call it with cond=None"
            )
        B = batch_of(1, batch_size)
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
        B = batch_of(labels.shape[0], batch_size)
        _, c = model.encode_to_c(labels.expand(B) if labels.shape[0] == 1 else labels)
        return _Conditioning(prefix=c.reshape(B, -1).long())
    if getattr(model.cond_stage_model, "n_classes", None) is not None:
        raise ValueError(f"this prior is class-conditional ({stage}); pass class ids as cond, "
                         f"got a tensor of shape {tuple(cond.shape)}")
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
    B = batch_of(grid.shape[0], batch_size)
    return _Conditioning(grid=grid.expand(B, -1, -1) if grid.shape[0] == 1 else grid)


# ----------------------------------------------------------------------------- checks
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
    heads = lambda t: t.reshape(B, -1, nh, C // nh).transpose(1, 2)  # (B, n, C) -> (B, nh, n, hd)
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
def _sample_reference(gpt, cond, u, shape, window, pick, bar) -> torch.Tensor:
    """taming's loop: full window (minus its last token) through the GPT for every position."""
    B = u.shape[0]
    wh, ww = window
    idx = torch.zeros((B, *shape), dtype=torch.long, device=u.device)  # (B, H, W)
    for i, j, i0, j0, t in raster_positions(shape, window):
        patch = idx[:, i0 : i0 + wh, j0 : j0 + ww].reshape(B, wh * ww)  # (B, wh*ww)
        seq = torch.cat([cond.tokens(i0, j0, window), patch], dim=1)  # (B, L + wh*ww)
        logits, _ = gpt(seq[:, :-1])  # (B, L + wh*ww - 1, V)
        logits = logits[:, -wh * ww :]  # (B, wh*ww, V): position k predicts window token k
        idx[:, i, j] = pick(logits[:, t], u[:, i, j])
        bar.update(1)
    return idx


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
        for _i, _j, i0, j0, t in rnd:
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



class TamingGPTPrior:
    """A taming ``Net2NetTransformer`` behind the core sampler's interface (``sample_grid``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.gpt = _gpt_of(model)

    @classmethod
    def wrap(cls, model: nn.Module) -> TamingGPTPrior:
        return cls(model)

    def sample_grid(self, request: SamplingRequest) -> torch.Tensor:
        """Codes ``(B, H, W)`` for ``request`` (see :func:`hit_decoder.sampling.sample_sliding_window`)."""
        r, gpt = request, self.gpt
        if r.cache_rows is not None:
            raise ValueError("cache_rows is for windowed priors; this is a taming GPT prior (see max_cached_windows)")
        device = gpt.pos_emb.device
        conditioning = _resolve_conditioning(self.model, r.cond, r.batch_size, r.shape, device)
        window = r.window
        if window is None:
            prefix_len = None if conditioning.prefix is None else conditioning.prefix.shape[1]
            window = default_window(gpt.get_block_size(), prefix_len)
        window = r.pair("window", window)
        cond_len = conditioning.length(window)
        _check_window(window, r.shape, cond_len, gpt.get_block_size(), int(getattr(gpt.config, "n_unmasked", 0)))
        vocab = gpt.config.vocab_size
        for tok in (conditioning.prefix, conditioning.grid):
            if tok is not None and (tok.min() < 0 or tok.max() >= vocab):
                raise ValueError(f"conditioning tokens must lie in [0, {vocab}) (the GPT's vocabulary), "
                                 f"got range [{int(tok.min())}, {int(tok.max())}]")
        u = draw_uniforms((conditioning.batch, *r.shape), r.generator, device)  # (B, H, W)
        with sampling_progress(gpt, r, r.method) as bar:
            if r.method == "reference":
                return _sample_reference(gpt, conditioning, u, r.shape, window, r.pick, bar)
            return _sample_fast(gpt, conditioning, u, r.shape, window, r.pick, bar, r.max_cached_windows)
