"""Checks on what a model file says about itself, before anything is built from it.

A file's metadata decides the size of the model it rebuilds: an edited ``n_embed`` of 2e7 or a
channel count of 1e6 would allocate gigabytes before the weights are compared. So the model is
first built on the ``meta`` device (shapes only, no memory), its parameter shapes are compared
with the tensors in the file, and only a file whose weights fit its metadata is built for real.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["metadata_json", "check_weights_fit"]


def metadata_json(meta: Mapping[str, str], key: str, path: str | os.PathLike) -> Any:
    """``meta[key]`` parsed as JSON; a missing or unreadable entry is an error naming the file."""
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its metadata entry {key!r} is missing or not valid JSON ({exc}); the file was "
                         "edited or not written by hit-decoder — save or export it again") from None


def check_weights_fit(build: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                      ignore_prefixes: tuple[str, ...] = (), ignore_suffixes: tuple[str, ...] = ()) -> None:
    """Build the model described by a file's metadata on the meta device and check that the file's
    tensors have exactly its parameter names and shapes; mismatches name the file and the keys."""
    skip = lambda k: k.startswith(ignore_prefixes) or (bool(ignore_suffixes) and k.endswith(ignore_suffixes))
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in build().state_dict().items() if not skip(k)}
    given = {k: tuple(v.shape) for k, v in state.items() if not skip(k)}
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    shapes = [f"{k}: file {given[k]} vs metadata {wanted[k]}" for k in sorted(set(wanted) & set(given))
              if wanted[k] != given[k]]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:8]}" if missing else "", f"unexpected {unexpected[:8]}" if unexpected else "",
                 f"shapes {shapes[:8]}" if shapes else ""]
        raise ValueError(f"{path}: its weights do not fit the model its metadata describes "
                         f"({'; '.join(p for p in parts if p)}); the metadata was edited or belongs to another "
                         "file — nothing was built. Save or export the model again")
