"""Config files, one mechanism for all of them: the configs shipped in the wheel
(``hit_decoder/configs/<kind>/<name>.yaml``), a YAML path or shipped name as a source, and strict
merging of YAML layers and ``key=value`` overrides onto a dataclass schema (a misspelt key is a
``ValueError`` naming it). Used by decoder presets, training runs and priors."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["shipped_configs", "read_config_source", "strict_config", "require", "plain"]


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (resolved), also inside mappings and sequences;
    anything else unchanged."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


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


def check_devices(value: Any, key: str) -> None:
    """``trainer.devices`` as Lightning takes it: ``auto``, -1 (all), a positive count, or a list of
    device indices (also as text, ``"0,1"``); anything else is a ``ValueError`` naming ``key``."""
    ok = False
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok = value == -1 or value >= 1
    elif isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        ok = len(value) > 0 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        ok = value == "auto" or (len(parts) > 0 and all(p.lstrip("-").isdigit() for p in parts)
                                 and (len(parts) > 1 and all(int(p) >= 0 for p in parts)
                                      or int(parts[0]) >= -1 and int(parts[0]) != 0))
    if not ok:
        raise ValueError(f"{key} must be 'auto', -1 (all devices), a positive number of devices or a list of device "
                         f"indices (e.g. [0, 1]); got {value!r}")


def _merge(base: DictConfig, other: Any, where: str, what: str, schema: type) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise ValueError(
            f"{where}: invalid {what} key or value {key!r}: {getattr(exc, 'msg', exc)}. "
            f"Valid keys are the fields of {schema.__module__}.{schema.__qualname__}"
        ) from None


#: keys that a config must not set: opting into full unpickling (which can run code stored in a
#: checkpoint) is for the person running the command, never for a file they were given
UNPICKLE_OPT_INS = ("model.allow_unsafe_pickle", "first_stage.allow_unsafe_pickle")


def _without_opt_ins(data: Any, where: str) -> Any:
    """``data`` without the :data:`UNPICKLE_OPT_INS` keys: a false one is dropped (it asks for
    nothing), a true one is an error naming the flag to type instead."""
    conf = data.copy() if isinstance(data, DictConfig) else OmegaConf.create(data) if isinstance(data, dict) else data
    if not isinstance(conf, DictConfig):
        return data
    for key in UNPICKLE_OPT_INS:
        section, name = key.split(".")
        node = conf.get(section) if section in conf else None
        if not isinstance(node, DictConfig) or name not in node:
            continue
        if node[name] not in (False, None, "false", "False"):
            raise ValueError(f"{where}: {key} is not read from configs: a file cannot opt itself into full "
                             "unpickling, which can run code stored in the checkpoint. Remove the key and, only "
                             "if you trust the checkpoint, pass --allow-unsafe-pickle on the command line "
                             "(Python: allow_unsafe_pickle=True)")
        del node[name]
    return conf


def strict_config(schema: type, layers: Sequence[tuple[Any, str]] = (), overrides: Sequence[str] | None = None,
                  *, what: str = "config") -> Any:
    """An instance of the dataclass ``schema``: its defaults, then each ``(data, description)``
    layer, then ``key=value`` ``overrides``, merged strictly (unknown keys and mistyped values raise
    ``ValueError`` naming the key and where it came from). A layer or override that opts into full
    unpickling (:data:`UNPICKLE_OPT_INS`) is refused."""
    conf = OmegaConf.structured(schema)
    OmegaConf.set_struct(conf, True)
    for data, where in layers:
        conf = _merge(conf, _without_opt_ins(data, where), where, what, schema)
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ValueError(f"overrides must look like key=value (e.g. trainer.max_batches=100), got {bad}")
        try:
            dot = OmegaConf.from_dotlist(list(overrides))
        except Exception as exc:  # OmegaConf and yaml errors (e.g. 'data=[1,2')
            raise ValueError(f"cannot parse overrides {list(overrides)}: {exc}; quote values that are not YAML "
                             "(key='text')") from None
        conf = _merge(conf, _without_opt_ins(dot, "command-line override"), "command-line override", what, schema)
    return OmegaConf.to_object(conf)
