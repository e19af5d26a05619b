"""Writing VQ models out: the library's self-describing file and a taming ``.ckpt`` + YAML pair.

* :func:`save_vqmodel` / :func:`load_vqmodel`: one ``.safetensors`` file, weights plus the whole
  taming model config (``{"target", "params"}`` as JSON in the metadata), so the file alone
  rebuilds the model. Loading never unpickles anything, and the config's target must be one of
  the supported classes (see :data:`~hit_decoder.adapters.loading.TARGETS`).
* :func:`export_taming`: ``{"state_dict": ...}`` saved with ``torch.save`` and a taming YAML
  (``model: {base_learning_rate, target, params}``), which taming's own code reads back:
  ``instantiate_from_config(OmegaConf.load(yaml).model)`` then ``load_state_dict(...)``.

Only the model's weights are written, never ``loss.`` weights; the configs carry
``lossconfig: torch.nn.Identity`` unless told otherwise. All writes are atomic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from hit_decoder.configfile import plain
from hit_decoder.fileio import atomic_path
from hit_decoder.metadata import build_and_load, metadata_json
from hit_decoder.serialization import RETIRED_DECODER_VERSIONS, portable_state, read_safetensors, write_safetensors

from taming.models.vqgan import VQModel

from ..targets import check_targets
from .loading import build_vqmodel, resolve_model_config, taming_config

__all__ = ["save_vqmodel", "load_vqmodel", "export_taming", "FORMAT_VQMODEL", "TAMING_BASE_LR"]

FORMAT_VQMODEL = "hit-decoder/vqmodel"
_FORMAT_VERSION = "2"  # 2: the v2 (seam-free) HiT decoder; version-1 files hold the retired v1 decoder
#: taming's base learning rate for VQGANs (its main.py scales it by batch size and GPUs)
TAMING_BASE_LR = 4.5e-6


def _is_loss(key: str) -> bool:
    """Loss weights (discriminator, LPIPS) are never written."""
    return key.startswith("loss.")


def save_vqmodel(model: VQModel, path: str | os.PathLike) -> Path:
    """Write ``model`` (config + weights, no loss) to ``path`` (``.safetensors``) atomically."""
    config = taming_config(model)
    meta = {"format": FORMAT_VQMODEL, "version": _FORMAT_VERSION, "config": json.dumps(config)}
    return write_safetensors(path, model.state_dict(), meta, drop=_is_loss)


def load_vqmodel(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VQModel:
    """Rebuild a model saved by :func:`save_vqmodel` (strict: every weight must match); eval mode."""
    state, meta = read_safetensors(path, FORMAT_VQMODEL, _FORMAT_VERSION, RETIRED_DECODER_VERSIONS)
    config = metadata_json(meta, "config", path)
    resolved = resolve_model_config(config, source=f"{path} (metadata 'config')")
    model = build_and_load(lambda: build_vqmodel(resolved, with_loss=False), state, path, ignore_prefixes=("loss.",))
    return model.to(map_location).eval()


def export_taming(model: VQModel, ckpt_path: str | os.PathLike, yaml_path: str | os.PathLike, *,
                  lossconfig: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``model`` as taming ships models: a Lightning-style ``.ckpt`` (``{"state_dict": ...}``,
    readable with ``torch.load(weights_only=True)``) and a taming YAML. ``lossconfig`` replaces the
    YAML's ``torch.nn.Identity`` loss (e.g. taming's ``VQLPIPSWithDiscriminator`` for its trainer,
    which loads checkpoints with ``strict=False`` and so starts that loss fresh)."""
    config = taming_config(model)
    if lossconfig is not None:
        config["params"]["lossconfig"] = plain(lossconfig)
        check_targets(config["params"]["lossconfig"], "lossconfig", "export_taming")
    ckpt_path, yaml_path = Path(ckpt_path), Path(yaml_path)
    with atomic_path(ckpt_path) as tmp:
        torch.save({"state_dict": portable_state(model.state_dict(), drop=_is_loss)}, tmp)
    doc = {"model": {"base_learning_rate": TAMING_BASE_LR, **config}}
    header = ("# taming-transformers model config written by hit-decoder (export_taming).\n"
              f"# Weights: {ckpt_path.name} (a Lightning-style checkpoint holding only 'state_dict').\n")
    with atomic_path(yaml_path) as tmp:
        tmp.write_text(header + OmegaConf.to_yaml(OmegaConf.create(doc)))
    return ckpt_path, yaml_path
