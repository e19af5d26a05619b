"""Config files, one mechanism for all of them: the configs shipped in the wheel
(``hit_decoder/configs/<kind>/<name>.yaml``), a YAML path or shipped name as a source, and strict
merging of YAML layers and ``key=value`` overrides onto a dataclass schema (a misspelt key is a
``ValueError`` naming it). Used by decoder presets, training runs and priors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["shipped_configs", "read_config_source", "strict_config", "require"]


def require(cond: bool, msg: str) -> None:
    """Config validation: ``ValueError(msg)`` unless ``cond``."""
    if not cond:
        raise ValueError(msg)


def shipped_configs(kind: str) -> dict[str, Any]:
    """Shipped configs of ``kind`` (``decoders``, ``train``, ``prior``) by name: ``demo`` ->
    ``hit_decoder/configs/<kind>/demo.yaml`` (importlib resources, so it works from a wheel)."""
    root = resources.files("hit_decoder.configs") / kind
    return {f.name[: -len(".yaml")]: f for f in root.iterdir() if f.name.endswith(".yaml")}


def read_config_source(source: str | os.PathLike, kind: str, what: str) -> tuple[DictConfig, str]:
    """A shipped config name or a YAML path -> ``(config, description)``; ``what`` names the
    config in errors (``"training config"``)."""
    text = str(source)
    shipped = shipped_configs(kind)
    if text in shipped:
        return OmegaConf.create(shipped[text].read_text()), f"shipped {what} {text!r}"
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {text!r} is neither a file nor a shipped config "
                                f"(shipped: {', '.join(sorted(shipped))})")
    try:
        return OmegaConf.load(path), str(path)
    except Exception as exc:  # yaml errors come in several types
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc


def _merge(base: DictConfig, other: Any, where: str, what: str, schema: type) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise ValueError(
            f"{where}: invalid {what} key or value {key!r}: {getattr(exc, 'msg', exc)}. "
            f"Valid keys are the fields of {schema.__module__}.{schema.__qualname__}"
        ) from None


def strict_config(schema: type, layers: Sequence[tuple[Any, str]] = (), overrides: Sequence[str] | None = None,
                  *, what: str = "config") -> Any:
    """An instance of the dataclass ``schema``: its defaults, then each ``(data, description)``
    layer, then ``key=value`` ``overrides``, merged strictly (unknown keys and mistyped values raise
    ``ValueError`` naming the key and where it came from)."""
    conf = OmegaConf.structured(schema)
    OmegaConf.set_struct(conf, True)
    for data, where in layers:
        conf = _merge(conf, data, where, what, schema)
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ValueError(f"overrides must look like key=value (e.g. trainer.max_batches=100), got {bad}")
        try:
            dot = OmegaConf.from_dotlist(list(overrides))
        except OmegaConfBaseException as exc:
            raise ValueError(f"cannot parse overrides {list(overrides)}: {exc}") from None
        conf = _merge(conf, dot, "command-line override", what, schema)
    return OmegaConf.to_object(conf)
