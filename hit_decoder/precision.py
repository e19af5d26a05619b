"""Decoding precision: ``fp32`` (the default) or ``bf16`` (bfloat16 matrix products under
:func:`torch.autocast`; layer norms and softmax statistics stay in float32).

bf16 pays off where the hardware has bf16 matrix units (CPUs with AMX-BF16 or AVX512-BF16, recent
GPUs); elsewhere it can be slower than fp32. A decoder can also be cast as a whole
(``decoder.to(torch.bfloat16)``, or ``torch.float16`` on a GPU) with a latent of the same dtype.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "decode_precision"]

PRECISIONS = ("fp32", "bf16")


def decode_precision(precision: str, device: str | torch.device = "cpu"):
    """A context manager that runs decoding at ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
