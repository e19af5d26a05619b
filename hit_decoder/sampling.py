"""Sliding-window sampling of latent grids larger than a transformer prior's context.

Taming-transformers samples images larger than its prior's context only inside a Streamlit script
(``scripts/sample_conditional.py``): it walks the latent grid in raster order and, for every
position, runs the GPT over a ``16 x 16`` window of codes placed around it, prepends the
conditioning and samples from the logits at the position's place in the window. This module holds
that algorithm's parts as library functions — window placement (:func:`window_offset`), wavefront
rounds of independent positions (:func:`wavefront_rounds`), per-position uniforms and filtering
(:func:`draw_uniforms`, :func:`sample_tokens`) — and the entry point
:func:`sample_sliding_window`, which checks the request and hands it to the prior through one
interface, :class:`SamplingPrior` (``sample_grid``). Two priors implement it: taming's
``Net2NetTransformer`` (:mod:`hit_decoder.adapters.gpt_sampler`: ``method="reference"`` is taming's
loop, ``"fast"`` the same logits with prefix truncation, a KV cache per window and wavefront
batching) and the windowed prior (:class:`hit_decoder.prior.WindowedPrior`).

Randomness is per position, not per call: the sampler draws one uniform number for every
``(sample, row, column)`` up front from the caller's generator and turns the filtered distribution
at that position into a token by inverse-CDF lookup. Any schedule that computes the same logits
therefore draws the same token — the fast paths reorder and skip work without changing a sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from .config import int_pair

__all__ = [
    "CONDITIONING",
    "window_offset",
    "window_start",
    "default_window",
    "draw_uniforms",
    "sample_tokens",
    "top_k_top_p_filtering",
    "sample_sliding_window",
    "grid_shape_for",
    "wavefront_rounds",
    "SamplingRequest",
    "SamplingPrior",
    "register_prior_adapter",
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


# ----------------------------------------------------------------------------- conditioning
#: the conditioning kinds of a prior: an SOS token (unconditional) or a class label
CONDITIONING = ("unconditional", "class")


def batch_of(cond_batch: int, batch_size: int | None) -> int:
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


# ----------------------------------------------------------------------------- checks
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


# ----------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class _Filter:
    temperature: float
    top_k: int | None
    top_p: float | None

    def __call__(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return sample_tokens(logits, u, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)


def raster_positions(shape: tuple[int, int], window: tuple[int, int]):
    """Raster order: ``(i, j, i0, j0, t)`` — position, window origin, index inside the window."""
    (H, W), (wh, ww) = shape, window
    for i in range(H):
        i0 = window_start(i, H, wh)
        for j in range(W):
            j0 = window_start(j, W, ww)
            yield i, j, i0, j0, (i - i0) * ww + (j - j0)


def wavefront_rounds(shape: tuple[int, int], window: tuple[int, int]) -> list[list[tuple[int, int, int, int, int]]]:
    """Positions grouped into rounds that can be sampled together: ``(i, j, i0, j0, t)`` as in
    raster order, each in the round after the latest round of the positions its window prefix
    holds (the tokens its logits depend on), so no position depends on another of its round.

    Along a row rounds increase, so the latest dependency of ``(i, j)`` is ``(i, j - 1)`` (when
    inside the window) or the last window column of a row above.
    """
    (H, W), (_, ww) = shape, window
    level = [[0] * W for _ in range(H)]
    rounds: list[list[tuple[int, int, int, int, int]]] = []
    for i, j, i0, j0, t in raster_positions(shape, window):
        dep = level[i][j - 1] if j > j0 else -1
        for r in range(i0, i):
            dep = max(dep, level[r][j0 + ww - 1])
        level[i][j] = dep + 1
        if dep + 1 == len(rounds):
            rounds.append([])
        rounds[dep + 1].append((i, j, i0, j0, t))
    return rounds


# ----------------------------------------------------------------------------- the sampler interface
@dataclass(frozen=True)
class SamplingRequest:
    """What :func:`sample_sliding_window` asks of a prior, checked except for what only the prior
    can check (its conditioning, window and cache options). ``pick(logits (N, V), u (N,))`` turns
    logits into tokens; the prior draws its uniforms with :func:`draw_uniforms` from ``generator``."""

    shape: tuple[int, int]
    cond: object
    batch_size: int | None
    generator: torch.Generator
    pick: _Filter
    method: str
    window: int | tuple[int, int] | None
    max_cached_windows: int | None
    cache_rows: int | None
    progress: bool

    @staticmethod
    def pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
        return int_pair(name, value)


class SamplingPrior(Protocol):
    """The one interface between the core sampler and a prior."""

    def sample_grid(self, request: SamplingRequest) -> torch.Tensor:  # (B, H, W) long
        ...


#: callables that wrap a model without ``sample_grid`` into a :class:`SamplingPrior` (or raise)
_PRIOR_ADAPTERS: list[Callable[[nn.Module], SamplingPrior]] = []


def register_prior_adapter(adapter: Callable[[nn.Module], SamplingPrior]) -> None:
    """Let :func:`sample_sliding_window` accept models of another library (``hit_decoder.adapters``
    registers taming's Net2NetTransformer). Registering the same adapter twice is a no-op."""
    if adapter not in _PRIOR_ADAPTERS:
        _PRIOR_ADAPTERS.append(adapter)


def _prior_of(model: nn.Module) -> SamplingPrior:
    if callable(getattr(model, "sample_grid", None)):
        return model
    if not _PRIOR_ADAPTERS:
        raise ValueError(
            f"sample_sliding_window expects a taming Net2NetTransformer (import hit_decoder.adapters first) "
            f"or a prior with a sample_grid method, got {type(model).__name__}"
        )
    return _PRIOR_ADAPTERS[-1](model)


@contextmanager
def sampling_progress(module: nn.Module, request: SamplingRequest, label: str):
    """``module`` in eval mode (restored afterwards) and a progress bar over the grid's positions."""
    from tqdm.auto import tqdm

    (H, W), was_training = request.shape, module.training
    module.eval()
    bar = tqdm(total=H * W, desc=f"sampling {H}x{W} ({label})", disable=not request.progress, leave=False)
    try:
        yield bar
    finally:
        bar.close()
        module.train(was_training)


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
        transformer: a taming ``Net2NetTransformer`` (its ``.transformer`` is the minGPT; the
            sampler for it, :class:`hit_decoder.adapters.gpt_sampler.TamingGPTPrior`, registers
            itself when :mod:`hit_decoder.adapters` is imported, as it must be for taming to load),
            or any prior with a ``sample_grid(request)`` method (:class:`SamplingRequest`), such as a
            windowed prior (:class:`hit_decoder.prior.WindowedPrior`). A
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
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    prior = _prior_of(transformer)
    shape = int_pair("shape", shape)
    pick = _token_filter(temperature, top_k, top_p)
    if max_cached_windows is not None and max_cached_windows < 1:
        raise ValueError(f"max_cached_windows must be >= 1 or None, got {max_cached_windows}")
    request = SamplingRequest(shape, cond, batch_size, _generator(generator, seed), pick, method, window,
                              max_cached_windows, cache_rows, progress)
    return prior.sample_grid(request)


def _token_filter(temperature: float, top_k: int | None, top_p: float | None) -> _Filter:
    """The checked logits filter of :func:`sample_sliding_window`."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None to disable), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None to disable), got {top_p}")
    return _Filter(float(temperature), top_k, top_p)


def _generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    """The sampler's randomness: ``generator``, or a new one seeded with ``seed`` (fresh OS entropy
    without either; never the global RNG)."""
    if generator is not None and seed is not None:
        raise ValueError("pass either generator= or seed=, not both")
    if generator is not None:
        return generator
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(int(seed))
    else:
        generator.seed()  # fresh entropy from the OS, not the global RNG
    return generator


def grid_shape_for(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """Latent grid ``(H, W)`` for an image ``size = (height, width)`` at downsampling ``factor``."""
    h, w = int_pair("size", size)
    if h % factor or w % factor:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the model's downsampling factor {factor}; "
            f"use e.g. {math.ceil(h / factor) * factor}x{math.ceil(w / factor) * factor}"
        )
    return h // factor, w // factor
