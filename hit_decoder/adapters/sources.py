"""Which loader a model path needs, decided without importing diffusers: the library's taming file
(``hit-decoder/vqmodel``), or a diffusers source — a folder, or a library file of format
``hit-decoder/diffusers-vqmodel`` — read by :mod:`hit_decoder.adapters.diffusers` (the diffusers
extra), which is imported only then."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import ModuleType

from torch import nn

__all__ = ["is_diffusers_source", "diffusers_adapter", "load_model", "looks_like_hub_id", "FORMAT_DIFFUSERS_VQMODEL",
           "HUB_ID"]

FORMAT_DIFFUSERS_VQMODEL = "hit-decoder/diffusers-vqmodel"
#: what a Hugging Face Hub repository id looks like (``amused/amused-256``)
HUB_ID = re.compile(r"[A-Za-z0-9][\w-]*(\.[\w-]+)*/[A-Za-z0-9][\w.-]*")
#: endings of model and config files: ``export/model.safetensors`` is a missing file, not a Hub id
_FILE_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".yaml", ".yml", ".json"}


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` that is not a file name (a missing ``runs/model.ckpt`` must be reported as a
    missing file, not as a Hub id)."""
    return bool(HUB_ID.fullmatch(text)) and Path(text).suffix.lower() not in _FILE_SUFFIXES


def is_diffusers_source(path: str | os.PathLike) -> bool:
    """A folder, a library file of the diffusers format, or a Hugging Face Hub id (``owner/name``, not a
    local path: the diffusers loader refuses it, naming the local-folder form)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return True
    if not p.is_file():
        return looks_like_hub_id(os.fspath(path))
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT_DIFFUSERS_VQMODEL
    except Exception:  # not a safetensors file: the taming loaders say what it is
        return False


def diffusers_adapter() -> ModuleType:
    """:mod:`hit_decoder.adapters.diffusers`; without the diffusers package a ``RuntimeError`` (one
    line in the CLI) says how to install it."""
    try:
        from . import diffusers
    except ImportError as exc:
        raise RuntimeError(str(exc)) from exc
    return diffusers


def load_model(path: str | os.PathLike, map_location: str = "cpu") -> nn.Module:
    """A VQ model for the library's taming-interface code (reconstruction, priors, sampling): a
    library file (:func:`~hit_decoder.adapters.load_vqmodel`), or a diffusers folder / file as its
    :func:`~hit_decoder.adapters.diffusers.taming_view`."""
    if is_diffusers_source(path):
        hd = diffusers_adapter()
        return hd.taming_view(hd.load_vqmodel(path, map_location=map_location))
    from .export import load_vqmodel

    return load_vqmodel(path, map_location=map_location)
