"""Reading checkpoints without running code from them (loaded strictly by
:func:`~hit_decoder.metadata.load_state_strict`, re-exported here).

A taming checkpoint is a Lightning ``.ckpt`` pickle. Unpickling a stranger's pickle can execute
arbitrary code, so :func:`read_checkpoint` never does that unless asked:

1. ``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors, dicts, lists, numbers).
2. If that fails only because the pickle names classes outside torch's allowlist (Lightning
   <= 1.x put its ``ModelCheckpoint`` *class* into ``callbacks``; numpy scalars sit in
   ``best_model_score``), it is retried with every such global replaced by an inert placeholder
   class of ours: the restricted unpickler still only calls torch's tensor rebuild functions and
   our placeholders, so nothing from the file runs. The weights (``state_dict``) never depend on
   those objects; if a state-dict entry turns out to be such an object, the file is refused.
3. Anything else (an object whose pickle mutates a non-dict container, a blocklisted module such
   as ``os``, a legacy non-zip file naming foreign classes) needs full unpickling: an
   :class:`UnsafeCheckpointError` says so, and ``allow_unsafe_pickle=True`` opts in — for files
   you trust only.

Truncated or corrupt files raise ``ValueError`` naming the file, never a raw pickle traceback.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .metadata import load_state_strict
from .serialization import strip_wrapper_prefixes

__all__ = [
    "UnsafeCheckpointError",
    "LoadedCheckpoint",
    "read_checkpoint",
    "extract_state_dict",
    "load_checkpoint_state",
    "read_weights",
    "first_stage_state",
    "load_state_strict",
    "FIRST_STAGE_PREFIX",
    "check_weights_only",
]

FIRST_STAGE_PREFIX = "first_stage_model."
_UNSAFE_HINT = (
    "Full unpickling can execute arbitrary code stored in the file. Only if you trust where this "
    "file came from, pass allow_unsafe_pickle=True (CLI: --allow-unsafe-pickle)."
)


class UnsafeCheckpointError(ValueError):
    """The file can only be read by full unpickling, which needs an explicit opt-in."""


class _Opaque:
    """Inert stand-in for an object of a class a pickle names but we never import.

    It records what the pickle hands it and does nothing else; subclasses carry the original
    global's name in ``_global`` for messages.
    """

    _global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<unloaded pickled object {self._global}>"


def _placeholder(full_name: str) -> type:
    return type(full_name.rsplit(".", 1)[-1], (_Opaque,), {"_global": full_name})


@dataclass
class LoadedCheckpoint:
    """What :func:`read_checkpoint` found in a file."""

    path: Path
    container: str  # "torch-zip", "torch-legacy" or "safetensors"
    payload: Any  # the unpickled object (or the safetensors tensor dict)
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata
    placeholders: list[str] = field(default_factory=list)  # globals replaced by inert placeholders
    unpickled_unsafely: bool = False


def _corrupt(path: Path, detail: str) -> ValueError:
    return ValueError(
        f"{path} could not be read as a checkpoint: {detail}. The file is probably truncated or "
        "corrupt (an interrupted download or copy); download or export it again."
    )


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: 8-byte little-endian header length, then a JSON object
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _container(path: Path) -> str:
    if _is_safetensors(path):
        return "safetensors"
    if zipfile.is_zipfile(path):
        return "torch-zip"
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"PK":
        raise _corrupt(path, "it starts like a zip archive (torch.save format) but its end is missing")
    if head[:1] == b"\x80":
        return "torch-legacy"
    if not head:
        raise _corrupt(path, "the file is empty")
    raise _corrupt(path, "it is neither a torch.save file (zip or legacy pickle) nor a safetensors file")


_REFUSAL_MARKERS = ("GLOBAL", "global", "Can only", "allowlist", "Trying to call reduce", "is blocked")


def _reason(exc: BaseException) -> str:
    """The informative line of a (weights-only) unpickling error."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [ln for ln in lines if any(m in ln for m in _REFUSAL_MARKERS)]  # the line naming the refused global
    return (named or lines or [type(exc).__name__])[0]


def _is_refusal(exc: BaseException, container: str) -> bool:
    """Did the restricted unpickler refuse a valid pickle (rather than choke on damaged bytes)? A zip
    archive is CRC-checked, so its pickle is intact; for legacy files the message decides."""
    return container == "torch-zip" or any(m in str(exc) for m in _REFUSAL_MARKERS)


_DAMAGE = (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, TypeError, AttributeError,
           UnicodeDecodeError, IndexError, KeyError, MemoryError)


def _torch_load(path: Path, weights_only: bool, container: str, placeholders: bool = False) -> Any:
    """``torch.load`` with every failure that means "bad bytes" turned into a clear ValueError;
    weights-only refusals of intact pickles (``pickle.UnpicklingError``) pass through. With
    ``placeholders``, a placeholder used in a way it cannot serve (``TypeError`` /
    ``AttributeError``) is a refusal too."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        if weights_only and _is_refusal(exc, container):
            raise
        raise _corrupt(path, f"unpickling failed ({_reason(exc)})") from exc
    except (TypeError, AttributeError) as exc:
        if placeholders:
            raise pickle.UnpicklingError(f"WeightsUnpickler error: {type(exc).__name__}: {exc}") from exc
        raise _corrupt(path, f"{type(exc).__name__}: {_reason(exc)}") from exc
    except _DAMAGE as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {_reason(exc)}") from exc


def _load_with_placeholders(path: Path) -> tuple[Any, list[str]]:
    """Weights-only load of a zip checkpoint with every non-allowlisted global replaced by an inert
    placeholder class (which only records its arguments and state)."""
    names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    with torch.serialization.safe_globals([(_placeholder(n), n) for n in names]):
        return _torch_load(path, True, "torch-zip", placeholders=True), names


def read_checkpoint(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> LoadedCheckpoint:
    """Read a checkpoint file safely (see the module docstring for the exact policy)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (or is not a file)")
    container = _container(path)
    if container == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise _corrupt(path, f"safetensors: {exc}") from exc
        return LoadedCheckpoint(path, container, tensors, metadata=meta)
    try:
        return LoadedCheckpoint(path, container, _torch_load(path, True, container))
    except pickle.UnpicklingError as first:
        refusal = first
    if container == "torch-zip":
        try:
            payload, names = _load_with_placeholders(path)
            return LoadedCheckpoint(path, container, payload, placeholders=names)
        except pickle.UnpicklingError as exc:
            refusal = exc
    if not allow_unsafe_pickle:
        raise UnsafeCheckpointError(
            f"{path} needs full unpickling: it holds pickled Python objects that the safe loader "
            f"(torch.load(weights_only=True)) cannot read ({_reason(refusal)}). {_UNSAFE_HINT}"
        ) from refusal
    return LoadedCheckpoint(path, container, _torch_load(path, False, container), unpickled_unsafely=True)


def check_weights_only(path: str | os.PathLike, what: str) -> Path:
    """``path`` must be a torch checkpoint that ``torch.load(weights_only=True)`` reads as it is (what
    Lightning does when it resumes): an empty, truncated or foreign file, or one that needs full
    unpickling, is an error naming ``what`` (the option) before anything else starts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist (or is not a file)")
    container = _container(path)
    if container == "safetensors":
        raise ValueError(f"{what}: {path} is a safetensors file; resuming needs the Lightning checkpoint a run wrote "
                         "(out_dir/checkpoints/last.ckpt)")
    try:
        _torch_load(path, True, container)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{what}: {path} cannot be read with torch.load(weights_only=True) ({_reason(exc)}); runs resume only "
            "from checkpoints that load without running code from the file, such as the last.ckpt a hit-decoder "
            "run wrote. Start without resume instead."
        ) from exc
    return path


def extract_state_dict(payload: Any, source: str | os.PathLike = "checkpoint") -> dict[str, torch.Tensor]:
    """The weights inside an unpickled checkpoint: the ``state_dict`` of a Lightning ``.ckpt``, or
    the object itself when it is a plain state dict. DDP ``module.`` and ``torch.compile``
    ``_orig_mod.`` prefixes are removed."""
    if not isinstance(payload, Mapping):
        raise ValueError(
            f"{source} holds a {type(payload).__name__}, expected a dict: a Lightning checkpoint with a "
            "'state_dict' entry, or a plain state dict of tensors"
        )
    state = payload["state_dict"] if "state_dict" in payload else payload
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: its 'state_dict' entry is a {type(state).__name__}, expected a dict of tensors")
    bad = {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}
    if bad:
        opaque = {k: v for k, v in bad.items() if isinstance(v, _Opaque)}
        listed = ", ".join(f"{k!r} ({type(v).__name__})" for k, v in list(bad.items())[:8])
        if opaque:
            raise UnsafeCheckpointError(
                f"{source}: state-dict entries are pickled objects rather than tensors ({listed}); "
                f"reading them needs full unpickling. {_UNSAFE_HINT}"
            )
        top = sorted(map(str, payload))[:12]
        raise ValueError(
            f"{source} is not a state dict: non-tensor entries {listed} (top-level keys: {top}); expected a "
            "Lightning .ckpt (weights under 'state_dict') or a plain {name: tensor} dict"
        )
    return strip_wrapper_prefixes(dict(state))


def load_checkpoint_state(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read ``path`` safely (see :func:`read_checkpoint`) and return its state dict, with the
    Lightning wrapper and DDP / ``torch.compile`` prefixes removed. Accepts ``.ckpt`` / ``.pt`` /
    ``.pth`` files written by ``torch.save`` and ``.safetensors`` files."""
    return read_weights(path, allow_unsafe_pickle=allow_unsafe_pickle)[1]


def read_weights(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False
                 ) -> tuple[LoadedCheckpoint, dict[str, torch.Tensor]]:
    """:func:`read_checkpoint` plus :func:`extract_state_dict`. If the weights themselves are
    pickled objects (left as placeholders by the safe loader) and the caller opted in, the file is
    read again with full unpickling."""
    loaded = read_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    try:
        return loaded, extract_state_dict(loaded.payload, path)
    except UnsafeCheckpointError:
        if not (allow_unsafe_pickle and loaded.placeholders):
            raise
    loaded = LoadedCheckpoint(loaded.path, loaded.container, _torch_load(loaded.path, False, loaded.container),
                              unpickled_unsafely=True)
    return loaded, extract_state_dict(loaded.payload, path)


def first_stage_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VQ model's weights: the ``first_stage_model.`` part of a Net2NetTransformer state dict
    (prefix removed), or the state dict itself."""
    if any(k.startswith(FIRST_STAGE_PREFIX) for k in state):
        n = len(FIRST_STAGE_PREFIX)
        return {k[n:]: v for k, v in state.items() if k.startswith(FIRST_STAGE_PREFIX)}
    return dict(state)
