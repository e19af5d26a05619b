"""The allowlist of ``target`` classes a taming config may name.

Taming builds objects from configs with ``instantiate_from_config``, which imports whatever module
a ``target`` string names and calls it with ``params``: ``{target: subprocess.call, params: ...}``
anywhere in a config (a ``lossconfig``, a GumbelVQ's ``temperature_scheduler_config``, ...) runs a
command. :func:`check_targets` walks a config to any depth and refuses every ``target`` that is not
one of the classes below *before* anything is imported or called. Every entry point that reads a
config (``load_vqgan``, ``load_vqmodel``, the CLI commands, ``HiTVQModel`` / ``HiTGumbelVQ``
themselves) and every export goes through it. Only strings are compared: nothing is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ALLOWED_TARGETS", "UnsupportedTargetError", "check_targets"]

#: every class a config may name, by the dotted name taming's ``instantiate_from_config`` imports
ALLOWED_TARGETS: frozenset[str] = frozenset({
    # VQ models (first stages)
    "taming.models.vqgan.VQModel",
    "taming.models.vqgan.GumbelVQ",
    "hit_decoder.adapters.HiTVQModel",
    "hit_decoder.adapters.HiTGumbelVQ",
    "hit_decoder.adapters.models.HiTVQModel",
    "hit_decoder.adapters.models.HiTGumbelVQ",
    # losses (lossconfig)
    "torch.nn.Identity",
    "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
    "taming.modules.losses.vqperceptual.DummyLoss",
    "taming.modules.losses.DummyLoss",
    # GumbelVQ temperature schedule
    "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
    # Net2NetTransformer and the parts of it a first-stage config sits in
    "taming.models.cond_transformer.Net2NetTransformer",
    "taming.modules.transformer.mingpt.GPT",
    "taming.modules.transformer.permuter.Identity",
    "taming.modules.util.Labelator",
    "taming.modules.util.SOSProvider",
})


class UnsupportedTargetError(ValueError):
    """A config names a ``target`` outside :data:`ALLOWED_TARGETS`."""


def check_targets(config: Any, path: str, source: str = "config") -> None:
    """Raise :class:`UnsupportedTargetError` if any ``target`` in ``config`` (dicts and lists, any
    depth) is not in :data:`ALLOWED_TARGETS`. ``path`` is the key path of ``config`` itself (e.g.
    ``"model"``), used in the message: ``model.params.lossconfig.target``."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "target" and (not isinstance(value, str) or value not in ALLOWED_TARGETS):
                raise UnsupportedTargetError(
                    f"{source}: {where} = {value!r} is not a class hit-decoder supports, so it is refused before "
                    "anything is imported (taming's instantiate_from_config would import and call it, which can run "
                    f"any code). Allowed targets: {', '.join(sorted(ALLOWED_TARGETS))}. Use a config that names one "
                    "of these, e.g. the YAML taming shipped with the checkpoint."
                )
            check_targets(value, where, source)
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            check_targets(value, f"{path}[{i}]", source)
