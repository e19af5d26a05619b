"""What one stage-1 training step computes, as small named values and pure functions: the encoding
of a batch (:class:`Encoded`), the generator and discriminator steps' losses
(:class:`GeneratorStep`, :class:`DiscriminatorStep`), the learning-rate warm-up and Adam's
weight-decay groups. :class:`~hit_decoder.training.module.StageOneModule` wires them together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Encoded", "GeneratorStep", "DiscriminatorStep", "warmup_lr", "weight_decay_groups"]


@dataclass
class Encoded:
    #: (B, embed_dim, h, w) encoder output before quantization (from_scratch; the codes dead-code
    #: restart draws from); ``None`` in decoder_swap, whose frozen encoder keeps only the quantized map
    pre_quant: torch.Tensor | None
    quant: torch.Tensor  # (B, embed_dim, h, w) quantized, straight-through to the encoder
    indices: torch.Tensor  # (B, h, w) code indices
    vq: torch.Tensor  # scalar VQ loss (0 when the quantizer is frozen)


@dataclass
class GeneratorStep:
    total: torch.Tensor
    nll: torch.Tensor
    rec: torch.Tensor
    perceptual: torch.Tensor
    distill: torch.Tensor
    vq: torch.Tensor
    g_adv: torch.Tensor
    gan_weight: torch.Tensor  # adaptive weight x disc_weight x gate (0 before disc_weight_start)


@dataclass
class DiscriminatorStep:
    loss: torch.Tensor
    logits_real: torch.Tensor
    logits_fake: torch.Tensor


def warmup_lr(base_lr: float, batch: int, warmup_batches: int) -> float:
    """Linear warm-up: ``base_lr * min(1, (batch + 1) / warmup_batches)``."""
    if warmup_batches <= 0:
        return base_lr
    return base_lr * min(1.0, (batch + 1) / warmup_batches)


def weight_decay_groups(params: list[nn.Parameter], decoder: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Adam parameter groups: ``weight_decay`` on every parameter except those the decoder's
    ``no_weight_decay()`` names (relative-position biases), which get none. One group when
    ``weight_decay`` is 0 (the optimizer state of earlier runs keeps its layout)."""
    if weight_decay == 0 or not hasattr(decoder, "no_weight_decay"):
        return [{"params": list(params), "weight_decay": weight_decay}]
    exempt = {id(p) for name, p in decoder.named_parameters() if name in decoder.no_weight_decay()}
    decay = [p for p in params if id(p) not in exempt]
    no_decay = [p for p in params if id(p) in exempt]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]
