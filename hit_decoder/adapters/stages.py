"""taming modules that training and the prior build around a VQ model: the PatchGAN discriminator
and the ``Net2NetTransformer`` (minGPT prior). Built here so that only ``hit_decoder.adapters``
imports ``taming``."""

from __future__ import annotations

import contextlib
import io
import types
from typing import Any

from taming.models.cond_transformer import Net2NetTransformer, disabled_train
from taming.modules.discriminator.model import NLayerDiscriminator, weights_init
from torch import nn

__all__ = ["build_discriminator", "build_net2net", "CONDITIONING_KINDS"]

#: conditioning kinds of :func:`build_net2net`
CONDITIONING_KINDS = ("unconditional", "class")


def build_discriminator(channels: int, layers: int, actnorm: bool) -> nn.Module:
    """taming's ``NLayerDiscriminator`` (PatchGAN) with taming's ``weights_init``."""
    d = NLayerDiscriminator(input_nc=3, ndf=channels, n_layers=layers, use_actnorm=actnorm)
    return d.apply(weights_init)


def build_net2net(first_stage: nn.Module, gpt: dict[str, Any], conditioning: dict[str, Any]) -> nn.Module:
    """A taming ``Net2NetTransformer`` over ``first_stage`` (a taming VQ model instance).

    ``gpt``: minGPT arguments (``vocab_size``, ``block_size``, ``n_layer``, ...).
    ``conditioning``: ``{"kind": "unconditional", "sos_token": t}`` or
    ``{"kind": "class", "n_classes": K}``. taming builds its first stage from a config; here it is
    built as a placeholder and replaced by ``first_stage``, which — as taming does with the stages
    it builds — is put in eval mode with ``train()`` disabled and its weights frozen.
    """
    kind = conditioning.get("kind")
    tcfg = {"target": "taming.modules.transformer.mingpt.GPT", "params": dict(gpt)}
    with contextlib.redirect_stdout(io.StringIO()):  # taming prints its set-up
        if kind == "unconditional":
            net = Net2NetTransformer(tcfg, {"target": "torch.nn.Identity"}, "__is_unconditional__",
                                     unconditional=True, sos_token=int(conditioning.get("sos_token", 0)))
        elif kind == "class":
            net = Net2NetTransformer(tcfg, {"target": "torch.nn.Identity"},
                                     {"target": "taming.modules.util.Labelator",
                                      "params": {"n_classes": int(conditioning["n_classes"])}},
                                     cond_stage_key="class_label")
        else:
            raise ValueError(f"conditioning kind must be one of {CONDITIONING_KINDS}, got {kind!r}")
    nn.Module.train(first_stage, False).requires_grad_(False)  # also when a prior was built over it before
    first_stage.train = types.MethodType(disabled_train, first_stage)  # taming's: train() no longer switches modes
    net.first_stage_model = first_stage
    return net
