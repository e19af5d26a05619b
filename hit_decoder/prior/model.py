"""A prior's model and file: build a taming ``Net2NetTransformer`` over a first stage, save its
GPT weights with everything needed to rebuild it (``prior.safetensors``), read such a file once
(:func:`read_prior`) and load it, checked against the first stage it is given."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..metadata import build_and_load
from ..serialization import read_safetensors, write_safetensors
from .windowed import WindowedPrior

__all__ = ["FORMAT_PRIOR", "PriorFile", "build_prior", "save_prior", "read_prior", "prior_info", "load_prior",
           "first_stage_summary"]

FORMAT_PRIOR = "hit-decoder/prior"
#: format versions: "1" taming GPT priors (unchanged), "2" windowed priors (an ``architecture`` section)
_FORMAT_VERSION = "1"
_WINDOWED_VERSION = "2"
#: key suffix of the causal-mask buffers, which files leave out (rebuilt from the config)
_MASK = "attn.mask"


def _weights(net: nn.Module) -> nn.Module:
    """The part of a prior its file holds the weights of: a windowed prior, or a taming prior's GPT."""
    return net if isinstance(net, WindowedPrior) else net.transformer


def build_prior(first_stage: nn.Module, gpt: dict[str, Any], conditioning: dict[str, Any],
                architecture: dict[str, Any] | None = None) -> nn.Module:
    """A taming ``Net2NetTransformer`` over ``first_stage`` (see :func:`hit_decoder.adapters.build_net2net`),
    or, with ``architecture={"kind": "windowed", "rows_above": r, "cols_each_side": c}``, a
    :class:`~hit_decoder.prior.windowed.WindowedPrior` of the same depth, width and vocabulary
    (it does not hold the first stage)."""
    if architecture is not None and architecture.get("kind") == "windowed":
        classes = conditioning["kind"] == "class"
        return WindowedPrior(gpt["vocab_size"], gpt["n_layer"], gpt["n_head"], gpt["n_embd"],
                             architecture["rows_above"], architecture["cols_each_side"],
                             n_cond=conditioning["n_classes"] if classes else 1, class_conditional=classes,
                             embd_pdrop=gpt.get("embd_pdrop", 0.0), resid_pdrop=gpt.get("resid_pdrop", 0.0),
                             attn_pdrop=gpt.get("attn_pdrop", 0.0))
    from .. import adapters

    return adapters.build_net2net(first_stage, gpt, conditioning)


def save_prior(net: nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write the weights of ``net`` (a taming GPT's, or a windowed prior's) and ``info`` (see
    :func:`prior_info`) atomically."""
    windowed = isinstance(net, WindowedPrior)
    weights = _weights(net).state_dict()
    meta = {"format": FORMAT_PRIOR, "version": _WINDOWED_VERSION if windowed else _FORMAT_VERSION,
            "info": json.dumps(info)}
    return write_safetensors(path, weights, meta, drop=lambda k: k.endswith(_MASK))  # masks: rebuilt from the config


_INFO_KEYS = {"gpt": {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "embd_pdrop", "resid_pdrop",
                       "attn_pdrop"},
              "first_stage": {"codebook_size", "downsample_factor", "source", "file", "codebook_sha256"}}
_CONDITIONING_KEYS = {"unconditional": {"kind", "sos_token"}, "class": {"kind", "n_classes", "class_names"}}
_REQUIRED = {"gpt": {"vocab_size", "block_size", "n_layer", "n_head", "n_embd"},
             "first_stage": {"codebook_size", "downsample_factor"}}


def _check_info(info: Any, path: Any) -> dict[str, Any]:
    """Prior metadata, checked key by key: edited or foreign metadata is an error naming the file and key."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: prior metadata 'info' {what}; the file was edited or not written by "
                          "hit_decoder.prior.save_prior — train or export the prior again")

    if not isinstance(info, dict):
        raise bad(f"is a {type(info).__name__}, expected a JSON object")
    expected = {"gpt", "conditioning", "window", "first_stage"}
    if set(info) - {"architecture"} != expected:
        raise bad(f"has keys {sorted(info)}, expected {sorted(expected)} (and 'architecture' for a windowed prior)")
    for section, allowed in _INFO_KEYS.items():
        part = info[section]
        if not isinstance(part, dict) or set(part) - allowed or _REQUIRED[section] - set(part):
            keys = sorted(part) if isinstance(part, dict) else type(part).__name__
            raise bad(f"section {section!r} has {keys}; allowed keys {sorted(allowed)}, required {sorted(_REQUIRED[section])}")
    for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        if not isinstance(info["gpt"][key], int) or isinstance(info["gpt"][key], bool) or info["gpt"][key] < 1:
            raise bad(f"gpt.{key} = {info['gpt'][key]!r} is not a positive integer")
    cond = info["conditioning"]
    kind = cond.get("kind") if isinstance(cond, dict) else None
    if kind not in _CONDITIONING_KEYS or set(cond) - _CONDITIONING_KEYS[kind]:
        raise bad(f"section 'conditioning' is {cond!r}; expected kind 'unconditional' (sos_token) or 'class' "
                  "(n_classes, class_names)")
    window = info["window"]
    if not (isinstance(window, list) and len(window) == 2 and all(isinstance(v, int) and v >= 1 for v in window)):
        raise bad(f"window = {window!r} is not two positive integers")
    arch = info.get("architecture")
    if arch is not None:
        sizes = [arch.get(k) for k in ("rows_above", "cols_each_side")] if isinstance(arch, dict) else []
        if not (isinstance(arch, dict) and set(arch) == {"kind", "rows_above", "cols_each_side"}
                and arch["kind"] == "windowed" and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes)
                and sum(sizes) >= 1):
            raise bad(f"section 'architecture' is {arch!r}; expected kind 'windowed' with integer rows_above and "
                      "cols_each_side")
    return info


@dataclass
class PriorFile:
    """A prior file read once: its path, GPT weights (empty when read for metadata only) and checked metadata."""

    path: Path
    state: dict[str, torch.Tensor]
    info: dict[str, Any]


def read_prior(path: str | os.PathLike, *, weights: bool = True) -> PriorFile:
    """Read a prior file once (format and metadata checked; ``weights=False``: metadata only)."""
    state, meta = read_safetensors(path, FORMAT_PRIOR, (_FORMAT_VERSION, _WINDOWED_VERSION), tensors=weights)
    try:
        info = json.loads(meta["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: prior metadata 'info' is missing or not valid JSON ({exc}); the file was edited "
                         "or not written by hit_decoder.prior.save_prior — train or export the prior again") from None
    info = _check_info(info, path)
    if (meta.get("version") == _WINDOWED_VERSION) != ("architecture" in info):
        raise ValueError(f"{path}: format version {meta.get('version')!r} does not match its metadata (a windowed prior "
                         f"is version {_WINDOWED_VERSION} with an 'architecture' section); the file was edited — "
                         "train or export the prior again")
    return PriorFile(Path(path), state, info)


def prior_info(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a prior file: ``gpt``, ``conditioning``, ``window``, ``first_stage`` (checked)."""
    return read_prior(path, weights=False).info


def load_prior(source: str | os.PathLike | PriorFile, first_stage: nn.Module,
               map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a prior saved by :func:`save_prior` (a path, or a :class:`PriorFile` already read)
    over ``first_stage`` (strict weight loading; the first stage must have the codebook the prior
    was trained on: same size, factor and code vectors)."""
    prior = source if isinstance(source, PriorFile) and source.state else read_prior(
        source.path if isinstance(source, PriorFile) else source)
    path, info = prior.path, prior.info
    expected, got = info["first_stage"], first_stage_summary(first_stage)
    for key in ("codebook_size", "downsample_factor"):
        if expected[key] != got[key]:
            raise ValueError(
                f"{path} was trained on codes of a first stage with {key}={expected[key]}, but the given model "
                f"has {key}={got[key]}; sample with the VQ model the prior was trained on"
            )
    if "codebook_sha256" not in expected:
        warnings.warn(f"{path} records no codebook fingerprint (written before it was recorded): cannot check that "
                      "the given VQ model has the codebook the prior was trained on", stacklevel=2)
    elif expected["codebook_sha256"] != got["codebook_sha256"]:
        raise ValueError(
            f"{path} was trained on the codes of another codebook (sha256 {expected['codebook_sha256'][:12]}..., the "
            f"given model's is {got['codebook_sha256'][:12]}...): same size, different code vectors, so its tokens "
            f"would decode to other images; sample with the VQ model the prior was trained on ({expected.get('source')})"
        )
    args = (first_stage, info["gpt"], info["conditioning"], info.get("architecture"))
    # the metadata's sizes against the file's tensors, on the meta device, before anything is allocated
    net = build_and_load(lambda: build_prior(*args), prior.state, path, part=_weights, ignore_suffixes=(_MASK,))
    return net.to(map_location).eval()


def first_stage_summary(vq: nn.Module) -> dict[str, Any]:
    """What a prior records of the first stage whose codes it learns: codebook size, downsampling
    factor and the codebook's sha256."""
    from .. import adapters

    return {"codebook_size": adapters.codebook_size(vq.quantize), "downsample_factor": adapters.downsample_factor(vq),
            "codebook_sha256": adapters.codebook_fingerprint(vq.quantize)}
