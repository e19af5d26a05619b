"""Taming VQ models whose decoder is a :class:`~hit_decoder.HiTDecoder`.

``HiTVQModel`` (a taming ``VQModel``) and ``HiTGumbelVQ`` (a taming ``GumbelVQ``) take the same
parameters as their taming parents plus ``decoder_config`` (a preset name, a YAML path, a mapping
or a :class:`~hit_decoder.HiTDecoderConfig`), so a taming-format YAML with
``target: hit_decoder.adapters.HiTVQModel`` works with taming's ``instantiate_from_config`` and as
a Net2NetTransformer ``first_stage_config``. They differ from the parents in three places only:

* no CNN decoder is built (taming's ``__init__`` would build one just to have it replaced);
* ``get_last_layer`` returns the HiT decoder's final weight and ``decode_code`` works;
* ``ckpt_path`` loads safely and strictly (taming loads any pickle with ``strict=False``).
  Checkpoint ``loss.`` keys are ignored there: fine-tuning builds its own losses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch

from hit_decoder.config import HiTDecoderConfig
from hit_decoder.configfile import plain
from hit_decoder.decoder import HiTDecoder
from hit_decoder.registry import DecoderSource, get_decoder_config, list_decoders, load_decoder_config

from taming.main import instantiate_from_config
from taming.models.vqgan import GumbelVQ, VQModel
from taming.modules.diffusionmodules.model import Encoder
from taming.modules.vqvae.quantize import GumbelQuantize, VectorQuantizer2

from ..checkpoints import first_stage_state, load_checkpoint_state, load_state_strict
from ..targets import check_targets
from .codes import decode_indices, downsample_factor

__all__ = [
    "HiTVQModel",
    "HiTGumbelVQ",
    "DDCONFIG_KEYS",
    "check_ddconfig",
    "plain",
    "resolve_decoder_config",
    "check_decoder_fits",
]

DDCONFIG_KEYS = frozenset({
    "double_z", "z_channels", "resolution", "in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks",
    "attn_resolutions", "dropout", "resamp_with_conv", "give_pre_end",
})
_DDCONFIG_REQUIRED = ("z_channels", "resolution", "in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks",
                      "attn_resolutions")


def check_ddconfig(ddconfig: Any) -> dict[str, Any]:
    """Taming's encoder/decoder swallow unknown ``ddconfig`` keys; we name them instead."""
    dd = plain(ddconfig)
    if not isinstance(dd, dict):
        raise ValueError(f"ddconfig must be a mapping of taming Encoder arguments, got {type(dd).__name__}")
    unknown = sorted(set(dd) - DDCONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown ddconfig key(s) {unknown}; taming's Encoder/Decoder accept {sorted(DDCONFIG_KEYS)}")
    missing = [k for k in _DDCONFIG_REQUIRED if k not in dd]
    if missing:
        raise ValueError(f"ddconfig is missing {missing}; a taming ddconfig needs {list(_DDCONFIG_REQUIRED)}")
    return dd


def _presets_with_factor(factor: int) -> list[str]:
    return [n for n in list_decoders() if get_decoder_config(n).downsample_factor == factor]


def check_decoder_fits(cfg: HiTDecoderConfig, z_channels: int, factor: int, out_channels: int | None,
                       what: str) -> None:
    """A decoder fits a VQ model when it takes ``post_quant_conv``'s channels, upsamples by the
    encoder's factor, and emits the model's image channels. Errors say what would fit."""
    if cfg.z_channels != z_channels:
        raise ValueError(
            f"decoder {what} expects z_channels={cfg.z_channels}, but the VQ model's post_quant_conv outputs "
            f"{z_channels} channels: pass a preset name (z_channels is then taken from the model) or override "
            f"z_channels={z_channels}"
        )
    if cfg.downsample_factor != factor:
        fits = _presets_with_factor(factor)
        stages = int(math.log2(factor)) + 1
        hint = (f"use a preset with f={factor}: {', '.join(fits)}" if fits else
                f"no shipped preset has f={factor}")
        raise ValueError(
            f"decoder {what} upsamples by {cfg.downsample_factor}, but the encoder downsamples by {factor}: {hint} "
            f"(or override channels/depths/heads with {stages} stages each)"
        )
    if out_channels is not None and cfg.out_channels != out_channels:
        raise ValueError(
            f"decoder {what} emits {cfg.out_channels} image channels but the VQ model's images have "
            f"{out_channels}: override out_channels={out_channels}"
        )


def resolve_decoder_config(spec: DecoderSource, z_channels: int, factor: int, out_channels: int | None = None, /,
                           **overrides: Any) -> HiTDecoderConfig:
    """The decoder config for a VQ model with the given interface.

    The interface fields ``z_channels`` and ``out_channels`` are filled in from the model when the
    spec is a preset name or a mapping / YAML file without them (see
    :func:`~hit_decoder.registry.load_decoder_config`); a spec that sets them differently, or that
    upsamples by the wrong factor, raises ``ValueError`` saying what would fit. The model's values
    are positional-only, so ``overrides`` may name ``z_channels`` too (checked like any other spec).
    """
    interface = {"z_channels": z_channels, **({} if out_channels is None else {"out_channels": out_channels})}
    label = repr(str(spec)) if isinstance(spec, (str, os.PathLike)) else "config"
    cfg = load_decoder_config(spec, interface=interface, **overrides)
    check_decoder_fits(cfg, z_channels, factor, out_channels, label)
    return cfg


def swap_decoder_argument(decoder: Any, overrides: dict[str, Any], z_channels: int, factor: int,
                          out_channels: int | None) -> HiTDecoder | HiTDecoderConfig:
    """The decoder argument of a swap, checked: a :class:`HiTDecoder` that fits the model (no
    ``overrides`` allowed), or the config resolved from a preset name / YAML path / mapping /
    :class:`HiTDecoderConfig` and ``overrides``."""
    if isinstance(decoder, HiTDecoder):
        if overrides:
            raise ValueError(f"overrides {sorted(overrides)} only apply when swap_decoder builds the decoder; "
                             "pass a preset name, dict or HiTDecoderConfig instead of a HiTDecoder")
        check_decoder_fits(decoder.config, z_channels, factor, out_channels, "instance")
        return decoder
    if isinstance(decoder, (HiTDecoderConfig, Mapping, str, os.PathLike)):
        return resolve_decoder_config(decoder, z_channels, factor, out_channels, **overrides)
    raise ValueError(f"decoder must be a HiTDecoder, HiTDecoderConfig, dict or preset name, got "
                     f"{type(decoder).__name__}")


def placed_like_decoder(new: torch.nn.Module, model: torch.nn.Module) -> torch.nn.Module:
    """``new`` on the device and dtype of ``model.post_quant_conv``, in the train/eval mode of
    ``model.decoder`` (the decoder it replaces)."""
    weight = model.post_quant_conv.weight
    return new.to(device=weight.device, dtype=weight.dtype).train(model.decoder.training)


def _build_parts(model: VQModel, ddconfig: Any, lossconfig: Any, embed_dim: int, decoder_config: Any,
                 make_quantize, image_key: str, colorize_nlabels: int | None, monitor: str | None) -> None:
    """What taming's ``VQModel.__init__`` builds, with a HiT decoder in place of the CNN one."""
    check_targets(plain(lossconfig), "lossconfig", f"{type(model).__name__} parameters")
    dd = check_ddconfig(ddconfig)
    z = int(dd["z_channels"])
    factor = downsample_factor(dd)
    model.image_key = image_key
    model.encoder = Encoder(**dd)
    model.decoder = HiTDecoder(resolve_decoder_config(decoder_config, z, factor, int(dd["out_ch"])))
    model.loss = instantiate_from_config(lossconfig)
    model.quantize = make_quantize(z)
    model.quant_conv = torch.nn.Conv2d(z, embed_dim, 1)
    model.post_quant_conv = torch.nn.Conv2d(embed_dim, z, 1)
    if colorize_nlabels is not None:
        model.register_buffer("colorize", torch.randn(3, int(colorize_nlabels), 1, 1))
    if monitor is not None:
        model.monitor = monitor


class _HiTDecoderMethods:
    """Methods that differ from taming's when the decoder is a :class:`HiTDecoder`."""

    decoder: HiTDecoder

    def get_last_layer(self) -> torch.Tensor:
        """Final weight of the HiT decoder (taming's adaptive GAN weight differentiates through it)."""
        return self.decoder.get_last_layer()

    def decode_code(self, code_b: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` -> images (taming's own ``decode_code`` is broken)."""
        return decode_indices(self, code_b)

    def init_from_ckpt(self, path: str | os.PathLike, ignore_keys: Iterable[str] = ()) -> None:
        """Load weights from a checkpoint safely and strictly (``loss.`` keys are ignored)."""
        state = first_stage_state(load_checkpoint_state(path))
        load_state_strict(self, state, str(path), include_loss=False, ignore_prefixes=tuple(ignore_keys or ()))


class HiTVQModel(_HiTDecoderMethods, VQModel):
    """Taming ``VQModel`` (CNN encoder, ``VectorQuantizer2``) with a HiT decoder."""

    def __init__(self, ddconfig: Any, lossconfig: Any, n_embed: int, embed_dim: int, decoder_config: Any,
                 ckpt_path: str | None = None, ignore_keys: Iterable[str] = (), image_key: str = "image",
                 colorize_nlabels: int | None = None, monitor: str | None = None, remap: str | None = None,
                 sane_index_shape: bool = False) -> None:
        pl.LightningModule.__init__(self)  # not VQModel.__init__: it would build a CNN decoder
        _build_parts(
            self, ddconfig, lossconfig, embed_dim, decoder_config,
            lambda z: VectorQuantizer2(n_embed, embed_dim, beta=0.25, remap=remap, sane_index_shape=sane_index_shape),
            image_key, colorize_nlabels, monitor,
        )
        if ckpt_path is not None:
            self.init_from_ckpt(ckpt_path, ignore_keys=ignore_keys)


class HiTGumbelVQ(_HiTDecoderMethods, GumbelVQ):
    """Taming ``GumbelVQ`` (CNN encoder, ``GumbelQuantize``) with a HiT decoder."""

    def __init__(self, ddconfig: Any, lossconfig: Any, n_embed: int, embed_dim: int,
                 temperature_scheduler_config: Any, decoder_config: Any, ckpt_path: str | None = None,
                 ignore_keys: Iterable[str] = (), image_key: str = "image", colorize_nlabels: int | None = None,
                 monitor: str | None = None, kl_weight: float = 1e-8, remap: str | None = None) -> None:
        pl.LightningModule.__init__(self)  # not GumbelVQ.__init__: it would build a CNN decoder
        check_targets(plain(temperature_scheduler_config), "temperature_scheduler_config", "HiTGumbelVQ parameters")
        _build_parts(
            self, ddconfig, lossconfig, embed_dim, decoder_config,
            lambda z: GumbelQuantize(z, embed_dim, n_embed=n_embed, kl_weight=kl_weight, temp_init=1.0, remap=remap),
            image_key, colorize_nlabels, monitor,
        )
        self.loss.n_classes = n_embed
        self.vocab_size = n_embed
        self.temperature_scheduler = instantiate_from_config(temperature_scheduler_config)
        self.temperature_scheduler_config = plain(temperature_scheduler_config)
        if ckpt_path is not None:
            self.init_from_ckpt(ckpt_path, ignore_keys=ignore_keys)
