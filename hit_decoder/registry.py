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
from .configfile import plain, shipped_configs
from .decoder import HiTDecoder

__all__ = ["list_decoders", "get_decoder_config", "create_decoder", "load_decoder_config", "preset_name",
           "RENAMED_PRESETS"]

_PRESET_DIR = "decoders"

#: presets of hit-decoder <= 0.2 whose names promised HiT's sizes (HiT-B has 46.2M parameters,
#: "hit-b-f16" had 8.4M): the old names still work, with a warning
RENAMED_PRESETS = {"hit-b-f16": "hit-8m-f16", "hit-b-f8": "hit-2m-f8", "hit-s-f16": "hit-1m-f16"}


def preset_name(name: str, stacklevel: int = 3) -> str:
    """``name`` itself, or the current name of a renamed preset (with a ``FutureWarning`` pointing
    ``stacklevel`` frames up: the caller's caller by default)."""
    if name in RENAMED_PRESETS:
        import warnings

        warnings.warn(f"decoder preset {name!r} is now called {RENAMED_PRESETS[name]!r} (the old name promised "
                      "HiT's model size); the old name will go", FutureWarning, stacklevel=stacklevel)
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


DecoderSource = str | os.PathLike | Mapping[str, Any] | HiTDecoderConfig


def _decoder_fields(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(HiTDecoderConfig fields, whether they come from a preset)`` of a preset name, a YAML path or
    a mapping (dict / OmegaConf)."""
    if isinstance(source, Mapping) or OmegaConf.is_config(source):
        return plain(source), False
    text = preset_name(str(source), stacklevel=4)  # the warning points at whoever called load_decoder_config
    presets = _preset_dicts()
    if text in presets:
        return dict(presets[text]), True
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
        return data, False
    raise ValueError(
        f"{text!r} is neither a decoder preset ({', '.join(list_decoders())}) nor a .yaml file"
    )


def load_decoder_config(source: DecoderSource, *, interface: Mapping[str, Any] | None = None,
                        **overrides: Any) -> HiTDecoderConfig:
    """A config from a preset name, a YAML file path, a mapping (dict / OmegaConf) or a config: the
    one place where a decoder source becomes a :class:`HiTDecoderConfig`.

    ``interface``: the fields a model dictates (``z_channels``, ``out_channels`` of the VQ model the
    decoder serves): they replace a preset's values and fill in what a YAML file or mapping leaves
    out (a value the file or mapping sets is kept; the caller checks that it fits). ``overrides``
    replace the fields of any source."""
    if isinstance(source, HiTDecoderConfig):
        return source.replace(**overrides) if overrides else source
    data, preset = _decoder_fields(source)
    fill = {k: v for k, v in (interface or {}).items() if preset or k not in data}
    return HiTDecoderConfig.from_dict(data, **{**fill, **overrides})


def create_decoder(spec: DecoderSource = "hit-8m-f16",
                   **overrides: Any) -> HiTDecoder:
    """Build a freshly initialised :class:`HiTDecoder` from a preset name, YAML path, mapping or
    config, with optional field overrides (``create_decoder("hit-8m-f16", z_channels=4)``)."""
    return HiTDecoder(load_decoder_config(spec, **overrides))
