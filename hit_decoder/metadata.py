"""Checks that a file's weights fit a model: the one strict-load check of the library.

A file's metadata decides the size of the model it rebuilds: an edited ``n_embed`` of 2e7 or a
channel count of 1e6 would allocate gigabytes before the weights are compared. So the model is
first built on the ``meta`` device (shapes only, no memory), its parameter shapes are compared
with the tensors in the file (:func:`check_weights_fit`), and only a file whose weights fit its
metadata is built for real and loaded (:func:`build_and_load`). :func:`load_state_strict` loads a
state dict into a built model with every missing, unexpected or misshapen key an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["metadata_json", "check_weights_fit", "load_state_strict", "build_and_load"]


def metadata_json(meta: Mapping[str, str], key: str, path: str | os.PathLike) -> Any:
    """``meta[key]`` parsed as JSON; a missing or unreadable entry is an error naming the file."""
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its metadata entry {key!r} is missing or not valid JSON ({exc}); the file was "
                         "edited or not written by hit-decoder — save or export it again") from None


def _kept(key: str, ignore_prefixes: tuple[str, ...], ignore_suffixes: tuple[str, ...]) -> bool:
    return not key.startswith(ignore_prefixes) and not (ignore_suffixes and key.endswith(ignore_suffixes))


def _shapes(state: Mapping[str, torch.Tensor], ignore_prefixes: tuple[str, ...] = (),
            ignore_suffixes: tuple[str, ...] = ()) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the entries of ``state`` not under an ignored prefix or suffix."""
    return {k: tuple(v.shape) for k, v in state.items() if _kept(k, ignore_prefixes, ignore_suffixes)}


def _mismatches(wanted: Mapping[str, Sequence[int]],
                given: Mapping[str, Sequence[int]]) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, misshapen)`` keys of ``given`` against ``wanted`` (key -> shape), in
    ``wanted``'s order then ``given``'s."""
    missing = [k for k in wanted if k not in given]
    unexpected = [k for k in given if k not in wanted]
    misshapen = [k for k in wanted if k in given and tuple(given[k]) != tuple(wanted[k])]
    return missing, unexpected, misshapen


def check_weights_fit(build: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                      ignore_prefixes: tuple[str, ...] = (), ignore_suffixes: tuple[str, ...] = ()) -> None:
    """Build the model described by a file's metadata on the meta device and check that the file's
    tensors have exactly its parameter names and shapes; mismatches name the file and the keys."""
    with torch.device("meta"):
        wanted = _shapes(build().state_dict(), ignore_prefixes, ignore_suffixes)
    given = _shapes(state, ignore_prefixes, ignore_suffixes)
    missing, unexpected, misshapen = (sorted(keys) for keys in _mismatches(wanted, given))
    shapes = [f"{k}: file {given[k]} vs metadata {wanted[k]}" for k in misshapen]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:8]}" if missing else "", f"unexpected {unexpected[:8]}" if unexpected else "",
                 f"shapes {shapes[:8]}" if shapes else ""]
        raise ValueError(f"{path}: its weights do not fit the model its metadata describes "
                         f"({'; '.join(p for p in parts if p)}); the metadata was edited or belongs to another "
                         "file — nothing was built. Save or export the model again")


def _component(key: str) -> str:
    return key.split(".", 1)[0] if "." in key else "(model)"


def _grouped(keys: Iterable[str], per_group: int = 12) -> str:
    groups: dict[str, list[str]] = {}
    for k in sorted(keys):
        groups.setdefault(_component(k), []).append(k)
    parts = []
    for comp, ks in groups.items():
        shown = ", ".join(ks[:per_group]) + (f", ... and {len(ks) - per_group} more" if len(ks) > per_group else "")
        parts.append(f"    {comp} ({len(ks)}): {shown}")
    return "\n".join(parts)


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, *,
                      include_loss: bool = False, ignore_prefixes: Iterable[str] = (),
                      ignore_suffixes: Iterable[str] = ()) -> None:
    """Load ``state`` into ``model``; every key must match in name and shape.

    ``loss.`` keys (taming checkpoints carry the discriminator and LPIPS) are skipped unless
    ``include_loss``. Keys under ``ignore_prefixes`` (taming's ``ignore_keys``) or ending in
    ``ignore_suffixes`` (buffers rebuilt from the config) are dropped from the checkpoint and may
    stay missing in the model. Mismatches raise ``ValueError`` listing the keys per component
    (encoder, decoder, quantize, quant_conv, post_quant_conv, ...).
    """
    prefixes = tuple(ignore_prefixes) + (() if include_loss else ("loss.",))
    suffixes = tuple(ignore_suffixes)
    given = {k: v for k, v in state.items() if _kept(k, prefixes, suffixes)}
    wanted = model.state_dict()
    missing, unexpected, misshapen = _mismatches(_shapes(wanted, prefixes, suffixes), _shapes(given))
    shapes = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(wanted[k].shape)}" for k in misshapen]
    if missing or unexpected or shapes:
        msg = [f"{source} does not match the model built from the config ({type(model).__name__}):"]
        if missing:
            msg.append(f"  missing keys (in the model, not in the checkpoint), {len(missing)}:\n{_grouped(missing)}")
        if unexpected:
            msg.append(f"  unexpected keys (in the checkpoint, not in the model), {len(unexpected)}:\n{_grouped(unexpected)}")
        if shapes:
            msg.append("  shape mismatches:\n    " + "\n    ".join(shapes[:20]))
        msg.append(
            "  Check that the config (ddconfig, n_embed, embed_dim, decoder) is the one this checkpoint was "
            "trained with; a CNN-decoder checkpoint needs a taming VQModel/GumbelVQ config, a HiT one a "
            "HiTVQModel/HiTGumbelVQ config."
        )
        raise ValueError("\n".join(msg))
    model.load_state_dict(given, strict=False)


def build_and_load(build: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], path: str | os.PathLike, *,
                   part: Callable[[nn.Module], nn.Module] | None = None, ignore_prefixes: tuple[str, ...] = (),
                   ignore_suffixes: tuple[str, ...] = ()) -> nn.Module:
    """The model a file describes, with the file's weights: ``build``'s model is checked against
    ``state`` on the meta device first (:func:`check_weights_fit`), then built for real and loaded
    strictly (:func:`load_state_strict`). ``part`` picks the submodule the file holds the weights
    of (the whole model by default); keys under ``ignore_prefixes`` / ``ignore_suffixes`` are not
    compared (nor loaded)."""
    part = part or (lambda model: model)
    check_weights_fit(lambda: part(build()), state, path, ignore_prefixes, ignore_suffixes)
    model = build()
    load_state_strict(part(model), state, str(path), include_loss=True, ignore_prefixes=ignore_prefixes,
                      ignore_suffixes=ignore_suffixes)
    return model
