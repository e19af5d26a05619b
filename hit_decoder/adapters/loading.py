"""Taming model configs in, taming VQ models out (and back: :func:`taming_config`).

Supported model classes (``target``): taming's ``VQModel`` and ``GumbelVQ``, and our
``HiTVQModel`` / ``HiTGumbelVQ``. A Net2NetTransformer config is accepted too: its
``first_stage_config`` is used. Targets are looked up in this table, never imported from the
string, so a config (or a file's metadata) cannot make us import arbitrary code.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from hit_decoder.decoder import HiTDecoder

from taming.models.vqgan import GumbelVQ, VQModel

from ..checkpoints import first_stage_state, load_checkpoint_state, load_state_strict
from ..targets import check_targets
from .models import HiTGumbelVQ, HiTVQModel, check_ddconfig, plain

__all__ = [
    "load_vqgan",
    "resolve_model_config",
    "build_vqmodel",
    "taming_config",
    "TARGETS",
    "IDENTITY_LOSS",
]

TAMING_VQ = "taming.models.vqgan.VQModel"
TAMING_GUMBEL = "taming.models.vqgan.GumbelVQ"
HIT_VQ = "hit_decoder.adapters.HiTVQModel"
HIT_GUMBEL = "hit_decoder.adapters.HiTGumbelVQ"
NET2NET = "taming.models.cond_transformer.Net2NetTransformer"
IDENTITY_LOSS = {"target": "torch.nn.Identity"}

#: config target -> class; the canonical name of each class is the first one listed for it
TARGETS: dict[str, type] = {
    TAMING_VQ: VQModel,
    TAMING_GUMBEL: GumbelVQ,
    HIT_VQ: HiTVQModel,
    HIT_GUMBEL: HiTGumbelVQ,
    "hit_decoder.adapters.models.HiTVQModel": HiTVQModel,
    "hit_decoder.adapters.models.HiTGumbelVQ": HiTGumbelVQ,
}
_CANONICAL = {cls: name for name, cls in reversed(list(TARGETS.items()))}
_MODEL_KEYS = {"target", "params", "base_learning_rate"}
_LOADER_PARAMS = ("ckpt_path", "ignore_keys")


def _read_config(config: Any) -> tuple[Any, str]:
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"taming config {path} does not exist")
        try:
            return plain(OmegaConf.load(path)), str(path)
        except Exception as exc:  # yaml errors come in several types
            raise ValueError(f"taming config {path} is not valid YAML: {exc}") from exc
    if OmegaConf.is_config(config) or isinstance(config, Mapping):
        return plain(config), "config"
    raise ValueError(f"config must be a YAML path, a dict or an OmegaConf object, got {type(config).__name__}")


def _check_params(cls: type, params: dict[str, Any], source: str) -> None:
    sig = inspect.signature(cls.__init__)
    accepted = [n for n in sig.parameters if n != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{source}: {cls.__name__} has no parameter(s) {unknown}; it accepts {accepted}")
    required = [n for n, p in sig.parameters.items()
                if n not in ("self", "lossconfig") and p.default is inspect.Parameter.empty]
    missing = [n for n in required if n not in params]
    if missing:
        raise ValueError(f"{source}: {cls.__name__} needs parameter(s) {missing}")


def resolve_model_config(config: Any, source: str | None = None) -> dict[str, Any]:
    """``{"target": canonical class name, "params": {...}}`` of a VQ model, from a taming YAML path,
    dict or OmegaConf object in taming's ``model: {target, params}`` layout (or bare
    ``{target, params}``, or a Net2NetTransformer config, whose ``first_stage_config`` is used).
    Every ``target`` in it, at any depth, is checked against the allowlist first
    (:func:`~hit_decoder.targets.check_targets`); ``source`` names the config in messages."""
    data, read_from = _read_config(config)
    source = source or read_from
    path = ""
    if isinstance(data, dict) and "model" in data:
        data, source, path = data["model"], f"{source} (model)", "model"
    check_targets(data, path, source)  # before anything else: nothing named in the config is imported
    if not isinstance(data, dict) or "target" not in data:
        raise ValueError(f"{source}: expected a taming model config, 'model: {{target: ..., params: ...}}' "
                         "or '{target: ..., params: ...}'")
    unknown = sorted(set(data) - _MODEL_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown model key(s) {unknown}; expected {sorted(_MODEL_KEYS)}")
    if data["target"] == NET2NET:
        first = (data.get("params") or {}).get("first_stage_config")
        if first is None:
            raise ValueError(f"{source}: Net2NetTransformer config without params.first_stage_config")
        data, source = first, f"{source} (first_stage_config)"
        if not isinstance(data, dict) or "target" not in data:
            raise ValueError(f"{source}: expected {{target: ..., params: ...}}")
    cls = TARGETS.get(data["target"])
    if cls is None:
        raise ValueError(f"{source}: unsupported model class {data['target']!r}; supported: "
                         f"{', '.join(sorted(set(_CANONICAL.values())))}")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"{source}: params must be a mapping, got {type(params).__name__}")
    _check_params(cls, params, source)
    params = dict(params)
    params["ddconfig"] = check_ddconfig(params["ddconfig"])
    return {"target": _CANONICAL[cls], "params": params}


def build_vqmodel(config: dict[str, Any], *, with_loss: bool = False) -> VQModel:
    """Instantiate a resolved config (see :func:`resolve_model_config`) with fresh weights.

    Without ``with_loss`` the training loss is replaced by ``torch.nn.Identity`` (no LPIPS / VGG).
    ``ckpt_path`` / ``ignore_keys`` must have been taken out by the caller (taming would load them
    unsafely and non-strictly)."""
    cls = TARGETS[config["target"]]
    params = {k: v for k, v in config["params"].items() if k not in _LOADER_PARAMS}
    if not with_loss:
        params["lossconfig"] = dict(IDENTITY_LOSS)
    elif "lossconfig" not in params:
        raise ValueError("with_loss=True needs a lossconfig in the model params")
    with contextlib.redirect_stdout(io.StringIO()):  # taming's CNN decoder prints its set-up
        model = cls(**params)
    if isinstance(model, GumbelVQ):
        model.temperature_scheduler_config = plain(params["temperature_scheduler_config"])
    return model


def load_vqgan(config: Any, ckpt: str | os.PathLike | None = None, *, allow_unsafe_pickle: bool = False,
               with_loss: bool = False) -> VQModel:
    """Build a taming VQ model from its config and load its weights strictly; returns it in eval mode.

    ``ckpt``: a Lightning ``.ckpt`` (weights under ``state_dict``), a plain state dict file, a
    ``.safetensors`` file, or a Net2NetTransformer checkpoint (its ``first_stage_model.`` weights are
    used). Without ``ckpt`` the config's ``ckpt_path`` is used if it has one, else the weights stay
    freshly initialised. Files are read with ``torch.load(weights_only=True)``; see
    :func:`~hit_decoder.adapters.read_checkpoint` for when ``allow_unsafe_pickle`` is needed.
    ``with_loss=True`` also builds the training loss from ``lossconfig`` (taming's LPIPS loss needs
    the VGG16 weights) and loads its ``loss.`` weights.
    """
    cfg = resolve_model_config(config)
    params = cfg["params"]
    ckpt = ckpt if ckpt is not None else params.get("ckpt_path")
    ignore = tuple(params.get("ignore_keys") or ())
    model = build_vqmodel(cfg, with_loss=with_loss)
    if ckpt is not None:
        state = first_stage_state(load_checkpoint_state(ckpt, allow_unsafe_pickle=allow_unsafe_pickle))
        load_state_strict(model, state, str(ckpt), include_loss=with_loss, ignore_prefixes=ignore)
    return model.eval()


# --------------------------------------------------------------------------- model -> config
def _ddconfig_of(model: VQModel) -> dict[str, Any]:
    """Rebuild the ``ddconfig`` from the modules (taming keeps no copy of it)."""
    enc = model.encoder
    levels = range(enc.num_resolutions)
    z = int(model.quant_conv.in_channels)
    if isinstance(model.decoder, HiTDecoder):
        out_ch = model.decoder.config.out_channels
    else:
        out_ch = int(model.decoder.conv_out.out_channels)
    dd = {
        "double_z": int(enc.conv_out.out_channels) == 2 * z,
        "z_channels": z,
        "resolution": int(enc.resolution),
        "in_channels": int(enc.in_channels),
        "out_ch": out_ch,
        "ch": int(enc.ch),
        "ch_mult": [int(enc.down[i].block[0].out_channels) // int(enc.ch) for i in levels],
        "num_res_blocks": int(enc.num_res_blocks),
        "attn_resolutions": [int(enc.resolution) // 2 ** i for i in levels if len(enc.down[i].attn) > 0],
        "dropout": float(enc.down[0].block[0].dropout.p),
    }
    if enc.num_resolutions > 1 and not enc.down[0].downsample.with_conv:
        dd["resamp_with_conv"] = False
    if not isinstance(model.decoder, HiTDecoder) and getattr(model.decoder, "give_pre_end", False):
        dd["give_pre_end"] = True
    return dd


def _constant_temperature(t: float) -> dict[str, Any]:
    return {"target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
            "params": {"warm_up_steps": 0, "lr_min": t, "lr_max": t, "lr_start": t, "max_decay_steps": 1}}


def _model_class(model: nn.Module) -> type:
    cls = type(model)
    if cls not in _CANONICAL:
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} is not supported; supported VQ model classes: "
                         f"{', '.join(sorted(set(_CANONICAL.values())))}")
    if isinstance(model.decoder, HiTDecoder) != (cls in (HiTVQModel, HiTGumbelVQ)):
        raise ValueError(f"{cls.__name__} holds a {type(model.decoder).__name__} decoder; use swap_decoder "
                         "to put a HiT decoder into a taming model")
    return cls


def taming_config(model: VQModel) -> dict[str, Any]:
    """The taming config ``{"target", "params"}`` that rebuilds ``model``'s architecture, derived from
    its modules (so it reflects a swapped decoder). The loss is ``torch.nn.Identity``; a GumbelVQ's
    temperature schedule is the one it was built with, or a constant at its current temperature."""
    cls = _model_class(model)
    q = model.quantize
    params: dict[str, Any] = {
        "embed_dim": int(model.quant_conv.out_channels),
        "n_embed": int(q.n_e if hasattr(q, "n_e") else q.n_embed),
        "ddconfig": _ddconfig_of(model),
        "lossconfig": dict(IDENTITY_LOSS),
    }
    if isinstance(model, GumbelVQ):
        params["temperature_scheduler_config"] = plain(
            getattr(model, "temperature_scheduler_config", None) or _constant_temperature(float(q.temperature)))
        params["kl_weight"] = float(q.kl_weight)
    elif getattr(q, "sane_index_shape", False):
        params["sane_index_shape"] = True
    if isinstance(model.decoder, HiTDecoder):
        params["decoder_config"] = model.decoder.config.to_dict()
    if q.remap is not None:
        params["remap"] = q.remap
    if getattr(model, "image_key", "image") != "image":
        params["image_key"] = model.image_key
    if getattr(model, "monitor", None) is not None:
        params["monitor"] = model.monitor
    if "colorize" in dict(model.named_buffers(recurse=False)):
        params["colorize_nlabels"] = int(model.colorize.shape[1])
    config = {"target": _CANONICAL[cls], "params": params}
    check_targets(config, "", f"config of the {cls.__name__} being exported")  # exports carry allowed targets only
    return config
