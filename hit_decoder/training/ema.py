"""Exponential moving average of a model's trained weights (for evaluation and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ema_decay_at", "ema_update_", "make_ema_copy"]


def ema_decay_at(batch: int, decay: float) -> float:
    """Decay used after ``batch`` updates: ``min(decay, (1 + batch) / (10 + batch))``.

    The warm-up keeps the average from being dominated by the random initialisation early on
    (0.1 at the first update, 0.5 after 8, ``decay`` eventually).
    """
    return min(decay, (1.0 + batch) / (10.0 + batch))


@torch.no_grad()
def ema_update_(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * live`` for the parameters ``live`` trains
    (``requires_grad``); frozen parameters never change, so their copies stay equal. Buffers
    are copied."""
    ema_params = dict(ema.named_parameters())
    for name, p in live.named_parameters():
        if p.requires_grad:
            ema_params[name].lerp_(p.detach().to(ema_params[name].dtype), 1.0 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, b in live.named_buffers():
        ema_buffers[name].copy_(b)


def make_ema_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` to hold its average."""
    ema = copy.deepcopy(module)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema.eval()
