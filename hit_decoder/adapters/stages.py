"""taming modules that training and the prior build around a VQ model: the PatchGAN discriminator
and the ``Net2NetTransformer`` (minGPT prior). Built here so that only ``hit_decoder.adapters``
imports ``taming``."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from torch import nn

from hit_decoder.sampling import CONDITIONING

from taming.models.cond_transformer import Net2NetTransformer
from taming.modules.discriminator.model import NLayerDiscriminator, weights_init

__all__ = ["build_discriminator", "build_net2net"]


def build_discriminator(channels: int, layers: int, actnorm: bool) -> nn.Module:
    """taming's ``NLayerDiscriminator`` (PatchGAN) with taming's ``weights_init``."""
    d = NLayerDiscriminator(input_nc=3, ndf=channels, n_layers=layers, use_actnorm=actnorm)
    return d.apply(weights_init)


class _FrozenFirstStageNet2Net(Net2NetTransformer):
    """taming's ``Net2NetTransformer`` whose ``train()`` leaves the first stage in eval mode.
    Taming gets that by rebinding the stage's own ``train`` method (``disabled_train``); a stage
    passed in by the caller keeps its methods, and only the prior's ``train()`` skips it."""

    def train(self, mode: bool = True):
        super().train(mode)
        self.first_stage_model.eval()
        return self


def build_net2net(first_stage: nn.Module, gpt: dict[str, Any], conditioning: dict[str, Any]) -> nn.Module:
    """A taming ``Net2NetTransformer`` over ``first_stage`` (a taming VQ model instance).

    ``gpt``: minGPT arguments (``vocab_size``, ``block_size``, ``n_layer``, ...).
    ``conditioning``: ``{"kind": "unconditional", "sos_token": t}`` or
    ``{"kind": "class", "n_classes": K}``. taming builds its first stage from a config; here it is
    built as a placeholder and replaced by ``first_stage``, which — as taming does with the stages
    it builds — is put in eval mode with its weights frozen (``requires_grad=False``); the prior's
    ``train()`` keeps it in eval mode. ``first_stage``'s own methods are left as they are.
    """
    kind = conditioning.get("kind")
    tcfg = {"target": "taming.modules.transformer.mingpt.GPT", "params": dict(gpt)}
    with contextlib.redirect_stdout(io.StringIO()):  # taming prints its set-up
        if kind == "unconditional":
            net = _FrozenFirstStageNet2Net(tcfg, {"target": "torch.nn.Identity"}, "__is_unconditional__",
                                     unconditional=True, sos_token=int(conditioning.get("sos_token", 0)))
        elif kind == "class":
            net = _FrozenFirstStageNet2Net(tcfg, {"target": "torch.nn.Identity"},
                                     {"target": "taming.modules.util.Labelator",
                                      "params": {"n_classes": int(conditioning["n_classes"])}},
                                     cond_stage_key="class_label")
        else:
            raise ValueError(f"conditioning kind must be one of {CONDITIONING}, got {kind!r}")
    nn.Module.train(first_stage, False).requires_grad_(False)  # also when a prior was built over it before
    net.first_stage_model = first_stage
    return net
