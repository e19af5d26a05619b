"""A prior whose context is a fixed causal 2-D neighbourhood, sampled by streaming.

The taming GPT sees one ``16 x 16`` crop with absolute positions, so sampling a larger canvas
re-runs it over a new window for (nearly) every code. :class:`WindowedPrior` is built for the
canvas instead (local 2-D attention as in the Image Transformer, Parmar et al. 2018; sliding-
window attention with a rolling KV cache as in language models):

* **Context.** The code at ``(i, j)`` is predicted from the codes *before it in raster order*
  inside the neighbourhood ``N(i, j)`` = rows ``i - r .. i`` and columns ``j - c .. j + c``
  (``r = rows_above``, ``c = cols_each_side``; in row ``i`` only columns ``< j``), plus one
  conditioning token (a learned start vector, or the class embedding). Codes outside the grid are
  absent, so the borders of a canvas look like the borders of a training crop.
* **Streams.** Every position has a residual stream ``h`` that starts at the conditioning vector
  and never holds its own code. Layer ``l`` updates ``h_p`` by attending to the keys/values of
  the positions ``q`` in ``N(p)``, computed from ``LN(h_q + embedding(code_q))`` at layer ``l``
  (the code of ``q`` together with what ``q`` knew of its own past). The logits for ``p`` come
  from ``h_p`` after the last layer, so ``p`` never sees its own code and every dependency is on
  earlier codes (the receptive field grows with depth, as in a stack of causal convolutions).
* **Size-free positions.** Attention logits get a learned bias per head and relative offset
  ``(dy, dx)`` (and one for the conditioning token); there are no absolute positions, so the model
  trained on crops runs on any canvas with the same neighbourhood.

Sampling (:meth:`WindowedPrior.sample_codes`, reached through
:func:`hit_decoder.sampling.sample_sliding_window`) streams: the keys/values of every layer are
kept for a ring of recent rows only (memory grows with the canvas width, not its area), each code
costs one token forward (the query position through every layer, then the sampled code's
keys/values), and positions whose contexts are complete go together in wavefront rounds.
``method="reference"`` runs the whole masked model over the grid once per code instead; both draw
the same tokens from the same per-position uniforms.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..sampling import SamplingRequest, draw_uniforms, sampling_progress

__all__ = ["WindowedPrior", "context_offsets", "wavefront_schedule", "default_cache_rows"]


def context_offsets(rows_above: int, cols_each_side: int) -> list[tuple[int, int]]:
    """The relative offsets ``(dy, dx)`` of a position's context, in raster order: rows
    ``-rows_above .. 0``, columns ``-cols_each_side .. cols_each_side``, and in row 0 only ``dx < 0``."""
    r, c = rows_above, cols_each_side
    return [(dy, dx) for dy in range(-r, 1) for dx in range(-c, c + 1) if dy < 0 or dx < 0]


def default_cache_rows(width: int, rows_above: int, cols_each_side: int) -> int:
    """Rows the streaming sampler keeps keys/values for by default: the ``rows_above`` rows a
    position reads, its own row, and up to 32 more rows whose wavefronts run at the same time (on
    narrow canvases fewer can: one row starts ``cols_each_side + 1`` codes after the row above)."""
    in_flight = min(32, math.ceil(width / (cols_each_side + 1)))
    return rows_above + 1 + in_flight


def wavefront_schedule(shape: tuple[int, int], rows_above: int, cols_each_side: int,
                       cache_rows: int) -> list[list[tuple[int, int]]]:
    """Positions grouped into rounds that the streaming sampler runs together.

    ``(i, j)`` joins the round after the later of ``(i, j - 1)`` and ``(i - 1, min(j + c, W - 1))``:
    every other code of its context comes before one of those two. With keys/values kept for only
    ``cache_rows`` rows (row ``i`` overwrites row ``i - cache_rows``), row ``i`` also waits until
    the last row that reads row ``i - cache_rows`` (row ``i - cache_rows + rows_above``) is done.
    """
    H, W = shape
    r, c = rows_above, cols_each_side
    if cache_rows < min(H, r + 1):
        raise ValueError(f"cache_rows must be at least rows_above + 1 = {r + 1} (or the grid's height), got {cache_rows}")
    level = [[0] * W for _ in range(H)]
    rounds: list[list[tuple[int, int]]] = []
    for i in range(H):
        wait = level[i - cache_rows + r][W - 1] if i - cache_rows + r >= 0 and cache_rows < H else -1
        for j in range(W):
            dep = max(wait, level[i][j - 1] if j else -1, level[i - 1][min(j + c, W - 1)] if i else -1)
            level[i][j] = dep + 1
            while len(rounds) <= dep + 1:
                rounds.append([])
            rounds[dep + 1].append((i, j))
    return rounds


class _Block(nn.Module):
    """One layer: attention from each position's stream to its context's keys/values, then an MLP."""

    def __init__(self, n_embd: int, n_head: int, n_offsets: int, attn_pdrop: float, resid_pdrop: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_q = nn.LayerNorm(n_embd)
        self.ln_kv = nn.LayerNorm(n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.key_value = nn.Linear(n_embd, 2 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        # relative-position bias per head: the context offsets in raster order, then the conditioning token
        self.offset_bias = nn.Parameter(torch.zeros(n_head, n_offsets + 1))
        self.ln_mlp = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
        self.attn_pdrop = attn_pdrop
        self.drop = nn.Dropout(resid_pdrop)

    def kv(self, stream: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Keys and values ``(..., 2C)`` of positions with residual ``stream`` and code ``embedding``."""
        return self.key_value(self.ln_kv(stream + embedding))

    def heads(self, t: torch.Tensor) -> torch.Tensor:  # (..., N, C) -> (..., nh, N, hd)
        return t.unflatten(-1, (self.n_head, -1)).transpose(-3, -2)

    def attend(self, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``h (..., N, C)`` attends keys/values ``(..., [N,] K, C)`` with additive ``bias`` (per head)."""
        q = self.heads(self.query(self.ln_q(h)))
        p = self.attn_pdrop if self.training else 0.0
        y = F.scaled_dot_product_attention(q, self.heads(k), self.heads(v), attn_mask=bias, dropout_p=p)
        return self.drop(self.proj(y.transpose(-3, -2).flatten(-2)))

    def feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.drop(self.mlp(self.ln_mlp(h)))


class WindowedPrior(nn.Module):
    """A decoder-only transformer over code grids in raster order with a causal 2-D neighbourhood
    as its whole context (see the module docstring). ``n_cond`` conditioning vectors: 1 for an
    unconditional prior, the number of classes for a class-conditional one."""

    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int, rows_above: int = 7,
                 cols_each_side: int = 7, n_cond: int = 1, class_conditional: bool = False,
                 embd_pdrop: float = 0.0, resid_pdrop: float = 0.0, attn_pdrop: float = 0.0) -> None:
        super().__init__()
        if rows_above < 0 or cols_each_side < 0 or rows_above + cols_each_side < 1:
            raise ValueError(f"the neighbourhood needs rows_above >= 0, cols_each_side >= 0 and at least one of them "
                             f"> 0, got rows_above={rows_above}, cols_each_side={cols_each_side}")
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.vocab_size, self.rows_above, self.cols_each_side = vocab_size, rows_above, cols_each_side
        self.n_cond, self.class_conditional = n_cond, class_conditional
        self.offsets = context_offsets(rows_above, cols_each_side)
        self._index, self._index_shape = torch.empty(0, dtype=torch.long), None
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.cond_emb = nn.Embedding(n_cond, n_embd)
        self.emb_drop = nn.Dropout(embd_pdrop)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head, len(self.offsets), attn_pdrop, resid_pdrop) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------- whole-grid model
    def context_index(self, shape: tuple[int, int]) -> torch.Tensor:
        """``(n, n + 1)`` long: for query ``p`` and key ``q`` (key 0 = the conditioning token, key
        ``1 + q`` = grid position ``q``), the index of their offset's bias, or -1 where ``q`` is
        not in ``p``'s context. Kept for the last grid shape asked for."""
        if self._index_shape != shape:
            self._index, self._index_shape = self._context_index(shape), shape
        return self._index

    def _context_index(self, shape: tuple[int, int]) -> torch.Tensor:
        H, W = shape
        n = H * W
        index = torch.full((n, n + 1), -1, dtype=torch.long)
        index[:, 0] = len(self.offsets)
        i, j = torch.div(torch.arange(n), W, rounding_mode="floor"), torch.arange(n) % W
        for k, (dy, dx) in enumerate(self.offsets):
            ok = (i + dy >= 0) & (j + dx >= 0) & (j + dx < W)
            p = torch.nonzero(ok).squeeze(1)
            index[p, 1 + p + dy * W + dx] = k
        return index

    def attention_bias(self, block: _Block, index: torch.Tensor) -> torch.Tensor:
        """Additive attention bias ``(nh, n, n + 1)``: the offset bias inside the context, -inf outside."""
        table = torch.cat([block.offset_bias, torch.full_like(block.offset_bias[:, :1], -math.inf)], dim=1)
        return table[:, index]  # index -1 picks the -inf column

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, H, W, V)`` for every position of ``codes (B, H, W)`` given its context;
        ``cond (B,)`` holds conditioning ids (default 0: the unconditional start vector)."""
        B, H, W = codes.shape
        cond = self._cond_ids(cond, B, codes.device)
        start = self.cond_emb(cond)  # (B, C)
        e = self.emb_drop(self.tok_emb(codes.reshape(B, H * W)))  # (B, n, C)
        h = start[:, None].expand(-1, H * W, -1)  # (B, n, C): no stream holds its own code
        index = self.context_index((H, W)).to(codes.device)  # (n, n + 1)
        for block in self.blocks:
            kv = torch.cat([block.kv(start, 0)[:, None], block.kv(h, e)], dim=1)  # (B, 1 + n, 2C)
            k, v = kv.chunk(2, dim=-1)
            h = h + block.attend(h, k, v, self.attention_bias(block, index).to(h.dtype))
            h = h + block.feed_forward(h)
        return self.head(self.ln_f(h)).reshape(B, H, W, -1)

    def _cond_ids(self, cond: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if cond is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        return cond.to(device=device, dtype=torch.long).reshape(-1).expand(batch)

    def nll(self, codes: torch.Tensor, cond: torch.Tensor | None = None, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood (nats per code) of ``codes`` given their contexts; the
        contexts are read from ``inputs`` when given (token dropout), else from ``codes``."""
        logits = self(codes if inputs is None else inputs, cond)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))

    def optimizer_groups(self, weight_decay: float = 0.01) -> list[dict]:
        """taming's grouping: weight decay on the weights of linear layers only."""
        decay = {f"{m}.weight" if m else "weight" for m, mod in self.named_modules() if isinstance(mod, nn.Linear)}
        params = dict(self.named_parameters())
        return [{"params": [params[n] for n in sorted(params) if n in decay], "weight_decay": weight_decay},
                {"params": [params[n] for n in sorted(params) if n not in decay], "weight_decay": 0.0}]

    # ------------------------------------------------------------------------- sampling
    def condition_ids(self, cond: object, batch_size: int | None, device: torch.device) -> torch.Tensor:
        """The user's ``cond`` (None, or class id(s)) as conditioning ids ``(B,)``."""
        if not self.class_conditional:
            if cond is not None:
                raise ValueError("this prior is unconditional; call it with cond=None")
            return torch.zeros(batch_size or 1, dtype=torch.long, device=device)
        if cond is None:
            raise ValueError(f"this prior is class-conditional ({self.n_cond} classes); pass cond= class id(s)")
        if isinstance(cond, torch.Tensor):
            if cond.is_floating_point() or cond.ndim > 1:
                raise ValueError(f"this prior is class-conditional: pass class ids (int or (B,) int tensor), got a "
                                 f"{cond.dtype} tensor of shape {tuple(cond.shape)}")
            ids = cond.reshape(-1).to(device=device, dtype=torch.long)
        else:
            items = [cond] if not isinstance(cond, Sequence) else list(cond)
            try:
                ids = torch.tensor([operator.index(c) for c in items], dtype=torch.long, device=device)
            except TypeError:
                raise ValueError(f"cond must be class id(s) (an int, a list of ints or a (B,) tensor), got {cond!r}") from None
        if ids.numel() == 0 or ids.min() < 0 or ids.max() >= self.n_cond:
            raise ValueError(f"class ids {ids.tolist()} out of range: "
                             f"this prior has {self.n_cond} classes (0..{self.n_cond - 1})")
        if batch_size is not None:
            if ids.numel() not in (1, batch_size):
                raise ValueError(f"cond holds {ids.numel()} class ids but batch_size={batch_size}; pass one class id "
                                 "(it is repeated), one per sample, or leave batch_size unset")
            ids = ids.expand(batch_size)
        return ids

    def sample_grid(self, request: SamplingRequest) -> torch.Tensor:
        """The core sampler's interface (:func:`hit_decoder.sampling.sample_sliding_window`): the
        request's conditioning, uniforms and filter, then :meth:`sample_codes`."""
        r = request
        if r.window is not None or r.max_cached_windows is not None:
            raise ValueError("a windowed prior has no sampling window (its context is its neighbourhood at every "
                             "position): leave window= and max_cached_windows= unset")
        if r.cache_rows is not None and r.cache_rows < 1:
            raise ValueError(f"cache_rows must be >= 1 or None, got {r.cache_rows}")
        device = next(self.parameters()).device
        ids = self.condition_ids(r.cond, r.batch_size, device)  # (B,)
        u = draw_uniforms((ids.shape[0], *r.shape), r.generator, device)  # (B, H, W)
        with sampling_progress(self, r, "streaming" if r.method == "fast" else r.method) as bar:
            return self.sample_codes(ids, u, r.pick, method=r.method, cache_rows=r.cache_rows, progress=bar)

    @torch.no_grad()
    def sample_codes(self, cond: torch.Tensor, u: torch.Tensor, pick, *, method: str = "fast",
                     cache_rows: int | None = None, progress=None, stats: dict | None = None) -> torch.Tensor:
        """Codes ``(B, H, W)`` drawn with the uniforms ``u (B, H, W)`` by ``pick(logits (N, V), u (N,))``.

        ``method="fast"`` streams (ring KV cache of ``cache_rows`` rows, wavefront rounds);
        ``"reference"`` runs :meth:`forward` over the whole grid once per code. ``stats``, when
        given, receives the streaming sampler's ``cache_rows``, ``cache_bytes`` and ``rounds``.
        """
        if method == "reference":
            return self._sample_reference(cond, u, pick, progress)
        return self._sample_streaming(cond, u, pick, cache_rows, progress, {} if stats is None else stats)

    def _sample_reference(self, cond, u, pick, progress) -> torch.Tensor:
        B, H, W = u.shape
        idx = torch.zeros((B, H, W), dtype=torch.long, device=u.device)
        for i in range(H):
            for j in range(W):
                idx[:, i, j] = pick(self(idx, cond)[:, i, j], u[:, i, j])
                if progress is not None:
                    progress.update(1)
        return idx

    def _sample_streaming(self, cond, u, pick, cache_rows, progress, stats) -> torch.Tensor:
        B, H, W = u.shape
        r, c = self.rows_above, self.cols_each_side
        rows = min(H, cache_rows or default_cache_rows(W, r, c))
        rounds = wavefront_schedule((H, W), r, c, rows)
        dev, dtype = u.device, self.head.weight.dtype
        nh = self.blocks[0].n_head
        C = self.head.weight.shape[1]
        hd = C // nh
        start = self.cond_emb(cond)  # (B, C)
        # keys / values of every layer: slot = (row % rows) * W + column, then one slot that stays
        # empty (context outside the grid, masked) and one with the conditioning token
        empty, cond_slot = rows * W, rows * W + 1
        keys = torch.zeros((len(self.blocks), B, rows * W + 2, C), dtype=dtype, device=dev)
        values = torch.zeros_like(keys)
        stats.update(cache_rows=rows, rounds=len(rounds), cache_bytes=keys.nbytes + values.nbytes)
        for layer, block in enumerate(self.blocks):
            keys[layer, :, cond_slot], values[layer, :, cond_slot] = block.kv(start, 0).chunk(2, dim=-1)
        # per-head dot products as one matrix product: each query spread over a block-diagonal (nh, C)
        diagonal = torch.eye(nh, dtype=dtype, device=dev)[:, :, None]  # (nh, nh, 1)
        dy = torch.tensor([o[0] for o in self.offsets] + [0], device=dev)
        dx = torch.tensor([o[1] for o in self.offsets] + [0], device=dev)
        is_cond = torch.arange(len(dy), device=dev) == len(dy) - 1
        scale = 1.0 / math.sqrt(hd)
        idx = torch.zeros((B, H, W), dtype=torch.long, device=dev)
        for rnd in rounds:
            pi = torch.tensor([q[0] for q in rnd], device=dev)
            pj = torch.tensor([q[1] for q in rnd], device=dev)
            P = len(rnd)
            ci, cj = pi[:, None] + dy, pj[:, None] + dx  # (P, K + 1): context positions, then the cond token
            inside = (ci >= 0) & (cj >= 0) & (cj < W)
            slot = torch.where(is_cond, cond_slot, torch.where(inside, (ci % rows) * W + cj, empty))  # (P, K + 1)
            masked = (~(inside | is_cond)).repeat(B, 1)[:, None]  # (B*P, 1, K + 1)
            flat = slot.reshape(-1)
            h = start[:, None].expand(B, P, C)  # (B, P, C)
            streams = []
            for layer, block in enumerate(self.blocks):
                streams.append(h)
                q = (block.query(block.ln_q(h)).reshape(B * P, nh, 1, hd) * diagonal).reshape(B * P, nh, C)
                k = keys[layer].index_select(1, flat).view(B * P, -1, C)  # (B*P, K + 1, C)
                v = values[layer].index_select(1, flat).view(B * P, -1, C)
                logits = torch.bmm(q, k.transpose(1, 2)) * scale  # (B*P, nh, K + 1)
                logits = (logits + block.offset_bias.to(dtype)).masked_fill(masked, -math.inf)
                y = torch.bmm(logits.softmax(-1), v).view(B * P, nh, nh, hd).diagonal(dim1=1, dim2=2)  # (B*P, hd, nh)
                h = h + block.proj(y.transpose(1, 2).reshape(B, P, C))
                h = h + block.feed_forward(h)
            logits = self.head(self.ln_f(h))  # (B, P, V)
            codes = pick(logits.reshape(B * P, -1), u[:, pi, pj].reshape(B * P)).view(B, P)
            idx[:, pi, pj] = codes
            e = self.tok_emb(codes)  # (B, P, C)
            where = (pi % rows) * W + pj  # (P,)
            for layer, block in enumerate(self.blocks):
                keys[layer][:, where], values[layer][:, where] = block.kv(streams[layer], e).chunk(2, dim=-1)
            if progress is not None:
                progress.update(P)
        return idx
