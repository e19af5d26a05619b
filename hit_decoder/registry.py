"""Named decoder presets. The YAML files under ``hit_decoder/configs/decoders/`` (shipped in the wheel as
``hit_decoder.configs``) are the single source of truth: one file per preset, named after it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .config import HiTDecoderConfig
from .configfile import shipped_configs
from .decoder import HiTDecoder

__all__ = ["list_decoders", "get_decoder_config", "create_decoder", "load_decoder_config", "preset_name",
           "RENAMED_PRESETS"]

_PRESET_DIR = "decoders"

#: presets of hit-decoder <= 0.2 whose names promised HiT's sizes (HiT-B has 46.2M parameters,
#: "hit-b-f16" had 8.4M): the old names still work, with a warning
RENAMED_PRESETS = {"hit-b-f16": "hit-8m-f16", "hit-b-f8": "hit-2m-f8", "hit-s-f16": "hit-1m-f16"}


def preset_name(name: str) -> str:
    """``name`` itself, or the current name of a renamed preset (with a ``FutureWarning``)."""
    if name in RENAMED_PRESETS:
        import warnings

        warnings.warn(f"decoder preset {name!r} is now called {RENAMED_PRESETS[name]!r} (the old name promised "
                      "HiT's model size); the old name will go", FutureWarning, stacklevel=3)
        return RENAMED_PRESETS[name]
    return name


def _preset_files() -> dict[str, Any]:
    return shipped_configs(_PRESET_DIR)


@lru_cache(maxsize=None)
def _preset_dicts() -> dict[str, dict[str, Any]]:
    out = {}
    for name, f in _preset_files().items():
        data = OmegaConf.to_container(OmegaConf.create(f.read_text()), resolve=True)
        HiTDecoderConfig.from_dict(data)  # a broken shipped preset fails loudly here
        out[name] = data
    return out


def list_decoders() -> list[str]:
    """Names of the shipped decoder presets."""
    return sorted(_preset_dicts())


def get_decoder_config(name: str, **overrides: Any) -> HiTDecoderConfig:
    """The preset ``name`` as a :class:`HiTDecoderConfig`, with optional field overrides."""
    presets = _preset_dicts()
    name = preset_name(name)
    if name not in presets:
        raise ValueError(f"unknown decoder preset {name!r}; available presets: {', '.join(sorted(presets))}")
    return HiTDecoderConfig.from_dict(presets[name], **overrides)


def load_decoder_config(source: str | os.PathLike | Mapping[str, Any] | HiTDecoderConfig,
                        **overrides: Any) -> HiTDecoderConfig:
    """A config from a preset name, a YAML file path, a mapping (dict / OmegaConf) or a config."""
    if isinstance(source, HiTDecoderConfig):
        return source.replace(**overrides) if overrides else source
    if isinstance(source, Mapping) or OmegaConf.is_config(source):
        data = OmegaConf.to_container(source, resolve=True) if OmegaConf.is_config(source) else dict(source)
        return HiTDecoderConfig.from_dict(data, **overrides)
    text = preset_name(str(source))
    if text in _preset_dicts():
        return get_decoder_config(text, **overrides)
    path = Path(text)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"decoder config file {path} does not exist")
        try:
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as exc:  # yaml and OmegaConf errors come in several types
            raise ValueError(f"decoder config {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"decoder config {path} must be a mapping of HiTDecoderConfig fields")
        return HiTDecoderConfig.from_dict(data, **overrides)
    raise ValueError(
        f"{text!r} is neither a decoder preset ({', '.join(list_decoders())}) nor a .yaml file"
    )


def create_decoder(spec: str | os.PathLike | Mapping[str, Any] | HiTDecoderConfig = "hit-8m-f16",
                   **overrides: Any) -> HiTDecoder:
    """Build a freshly initialised :class:`HiTDecoder` from a preset name, YAML path, mapping or
    config, with optional field overrides (``create_decoder("hit-8m-f16", z_channels=4)``)."""
    return HiTDecoder(load_decoder_config(spec, **overrides))
