"""Self-describing decoder files: safetensors weights with the config in the metadata, so the file
alone rebuilds the model. Writes are atomic; reads check the format and load strictly."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import HiTDecoderConfig
from .decoder import HiTDecoder
from .fileio import atomic_path
from .metadata import build_and_load, metadata_json

__all__ = ["save_decoder", "load_decoder", "strip_wrapper_prefixes", "portable_state", "write_safetensors",
           "read_safetensors", "FORMAT_DECODER", "RETIRED_DECODER_VERSIONS"]

FORMAT_DECODER = "hit-decoder/decoder"
_FORMAT_VERSION = "2"
#: Format versions whose decoder architecture this version no longer builds, and why.
RETIRED_DECODER_VERSIONS = {
    "1": "the v1 HiT decoder of hit-decoder 0.1 (per-cell cross-attention, depth-to-space into the MLP stages, "
         "nearest RGB skips), which painted the code grid onto its images; hit-decoder 0.2 builds only the "
         "seam-free v2 decoder, whose weights differ in shape and meaning. Train or fine-tune a new decoder "
         "(hit-decoder finetune-decoder / train), or read the file with hit-decoder 0.1",
}
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP ``module.`` and ``torch.compile`` ``_orig_mod.`` prefixes (in any order/number)."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in _WRAPPER_PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def portable_state(state: Mapping[str, torch.Tensor], drop: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """``state`` as a file holds it: wrapper prefixes stripped, keys for which ``drop`` is true left
    out, tensors detached to contiguous CPU copies."""
    return {k: v.detach().cpu().contiguous() for k, v in strip_wrapper_prefixes(dict(state)).items()
            if drop is None or not drop(k)}


def write_safetensors(path: str | os.PathLike, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str], *,
                      drop: Callable[[str], bool] | None = None) -> Path:
    """The one safetensors writer: :func:`portable_state` of ``state`` with ``metadata``, written to
    ``path`` atomically (a temporary name, then a rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(portable_state(state, drop), str(tmp), metadata=dict(metadata))
    return path


def save_decoder(decoder: HiTDecoder, path: str | os.PathLike) -> Path:
    """Write ``decoder`` (config + weights) to ``path`` (``.safetensors``) atomically."""
    if not isinstance(decoder, HiTDecoder):
        raise TypeError(f"save_decoder expects a HiTDecoder, got {type(decoder).__name__}")
    meta = {"format": FORMAT_DECODER, "version": _FORMAT_VERSION, "config": json.dumps(decoder.config.to_dict())}
    return write_safetensors(path, decoder.state_dict(), meta)


def read_safetensors(path: str | os.PathLike, expected_format: str, version: str | tuple[str, ...] = "1",
                     retired: dict[str, str] | None = None, *,
                     tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors + metadata of a hit-decoder safetensors file, with clear errors
    (``tensors=False``: the metadata only, the returned state is empty).

    ``version`` is the format version this library writes (or a tuple of the versions it reads);
    files of a ``retired`` version (with the reason) or of a newer version are refused with an
    error that says what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path)) if tensors else {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated or corrupt — "
            "re-export or re-download it"
        ) from exc
    if meta.get("format") != expected_format:
        raise ValueError(
            f"{path} is not a {expected_format} file (its metadata format is {meta.get('format')!r}); "
            "save it with the matching hit_decoder function"
        )
    found = meta.get("version", "1")
    readable = (version,) if isinstance(version, str) else tuple(version)
    if found not in readable:
        if retired and found in retired:
            raise ValueError(f"{path} is a {expected_format} file of format version {found}: {retired[found]}")
        newer = found.isdigit() and all(v.isdigit() and int(found) > int(v) for v in readable)
        raise ValueError(
            f"{path} is a {expected_format} file of format version {found!r}, but this hit-decoder "
            f"({_library_version()}) reads version {' and '.join(readable)}"
            + ("; upgrade hit-decoder (pip install -U hit-decoder) to read it" if newer else "")
        )
    return state, meta


def _library_version() -> str:
    from . import __version__

    return __version__


def load_decoder(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HiTDecoder:
    """Rebuild a decoder saved by :func:`save_decoder` (strict: every weight must match)."""
    state, meta = read_safetensors(path, FORMAT_DECODER, _FORMAT_VERSION, RETIRED_DECODER_VERSIONS)
    try:
        config = HiTDecoderConfig.from_dict(metadata_json(meta, "config", path))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its metadata 'config' is not a valid decoder config ({exc})") from None
    return build_and_load(lambda: HiTDecoder(config), state, path).to(map_location)  # shapes checked before allocating
