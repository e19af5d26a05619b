"""Parameter and FLOP counts of decoders, measured with :mod:`torch.utils.flop_counter`.

FLOPs are counted on the ``meta`` device (shapes only, no arithmetic), so counting a decoder at
1024 x 1024 costs milliseconds. Counts are of the operations PyTorch dispatches (matmuls,
attention, convolutions); elementwise work (norms, activations) is not counted, the usual
convention that the 253 GFLOPs quoted for taming's f16 decoder also follows.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_flops"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(decoder: nn.Module, z_shape: tuple[int, int, int, int]) -> int:
    """FLOPs of one ``decoder(z)`` call for a latent of shape ``z_shape`` (counted on meta)."""
    meta = copy.deepcopy(decoder).to("meta")
    z = torch.empty(z_shape, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(z)
    return int(counter.get_total_flops())
