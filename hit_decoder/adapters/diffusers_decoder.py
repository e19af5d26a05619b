"""diffusers ``VQModel``s with a HiT decoder: :class:`HiTDiffusersDecoder` (diffusers' decoder call)
and :func:`swap_decoder`. Part of :mod:`hit_decoder.adapters.diffusers`, whose docstring says what
maps to what; this is where ``diffusers`` is first imported."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

try:
    from diffusers.models.autoencoders.vq_model import VQModel
except ImportError as exc:  # pragma: no cover  (the extra is installed wherever the tests run)
    raise ImportError(
        f"hit_decoder.adapters.diffusers needs the diffusers package ({exc}); install it with "
        "pip install 'hit-decoder[diffusers]'"
    ) from exc

from hit_decoder.config import HiTDecoderConfig
from hit_decoder.decoder import HiTDecoder

from .codes import downsample_factor as _levels_factor
from .models import placed_like_decoder, swap_decoder_argument

__all__ = ["VQModel", "HiTDiffusersDecoder", "swap_decoder", "decoder_inputs", "downsample_factor", "check_vqmodel",
           "HIT_KEY", "FORMAT_VERSION"]

#: format version of a swapped model's ``hit_decoder`` config entry and of the library's diffusers files
FORMAT_VERSION = "1"
#: config.json key of a swapped model: ``{"version": "1", "decoder": HiTDecoderConfig fields}``
HIT_KEY = "hit_decoder"


class HiTDiffusersDecoder(HiTDecoder):
    """A :class:`~hit_decoder.HiTDecoder` with diffusers' ``Decoder`` call: ``forward(z,
    latent_embeds=None)``. With ``quant_channels > 0`` (a ``norm_type="spatial"`` model) the
    quantized map ``latent_embeds`` is required and stacked onto ``z`` along channels, so the
    decoder's ``z_channels`` is ``z``'s channels plus ``quant_channels``. Same weights and state-dict
    keys as a plain HiT decoder of that config."""

    def __init__(self, config: HiTDecoderConfig, *, quant_channels: int = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if not 0 <= quant_channels < config.z_channels:
            raise ValueError(f"quant_channels must lie in [0, z_channels={config.z_channels}), got {quant_channels}")
        self.quant_channels = int(quant_channels)

    def forward(self, z: torch.Tensor, latent_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """``z (B, z_channels - quant_channels, h, w)``, ``latent_embeds (B, quant_channels, h, w)`` ->
        ``(B, out_channels, h f, w f)``."""
        if self.quant_channels:
            if latent_embeds is None:
                raise ValueError("this HiT decoder replaces a norm_type='spatial' (MoVQ) decoder: call it as "
                                 "decoder(post_quant_conv(quant), quant), as VQModel.decode does")
            z = torch.cat([z, latent_embeds.to(z.dtype)], dim=1)  # (B, latent + embed, h, w)
        return super().forward(z)


def decoder_inputs(model: VQModel) -> tuple[int, int]:
    """``(channels of post_quant_conv's output, channels of the quantized map the decoder also gets)``;
    the second is 0 unless ``norm_type="spatial"``."""
    cfg = model.config
    embed = int(model.quantize.vq_embed_dim)
    return int(model.post_quant_conv.out_channels), (embed if cfg.norm_type == "spatial" else 0)


def downsample_factor(model: VQModel | Mapping[str, Any]) -> int:
    """Pixels per code along each axis: ``2 ** (number of encoder blocks - 1)`` (diffusers' encoder
    downsamples in every block but the last)."""
    cfg = model.config if isinstance(model, VQModel) else model
    return _levels_factor(len(cfg["block_out_channels"]))


def check_vqmodel(model: Any, what: str) -> None:
    """``ValueError`` unless ``model`` is a diffusers ``VQModel``; ``what`` names the caller."""
    if not isinstance(model, VQModel):
        raise ValueError(f"{what} expects a diffusers VQModel (from hit_decoder.adapters.diffusers.load_vqmodel), "
                         f"got {type(model).__module__}.{type(model).__qualname__}")


def swap_decoder(model: VQModel, decoder: HiTDecoder | HiTDecoderConfig | Mapping[str, Any] | str | os.PathLike,
                 **overrides: Any) -> VQModel:
    """Put a HiT decoder into a diffusers ``VQModel`` in place and return the model.

    ``decoder``: a :class:`HiTDecoder` (its weights are used), or a preset name / YAML path / mapping /
    :class:`HiTDecoderConfig` with field ``overrides`` (a fresh decoder; ``z_channels`` and
    ``out_channels`` are filled in from the model). The decoder must take ``post_quant_conv``'s
    channels (plus ``vq_embed_dim`` for ``norm_type="spatial"``) and upsample by the encoder's
    factor; otherwise ``ValueError`` says what would fit. The model's ``config`` records the decoder
    (key ``hit_decoder``), so ``save_pretrained`` writes a folder :func:`load_vqmodel` reads back."""
    check_vqmodel(model, "swap_decoder")
    latent, quant = decoder_inputs(model)
    z_channels, factor, out_channels = latent + quant, downsample_factor(model), int(model.config.out_channels)
    checked = swap_decoder_argument(decoder, overrides, z_channels, factor, out_channels)
    if not isinstance(checked, HiTDecoder):
        new = HiTDiffusersDecoder(checked, quant_channels=quant)
    elif isinstance(checked, HiTDiffusersDecoder) and checked.quant_channels == quant:
        new = checked
    else:
        new = HiTDiffusersDecoder(checked.config, quant_channels=quant, inference_chunk_tokens=checked.inference_chunk_tokens)
        new.load_state_dict(checked.state_dict())
    model.decoder = placed_like_decoder(new, model)
    model.register_to_config(**{HIT_KEY: {"version": FORMAT_VERSION, "decoder": new.config.to_dict()}})
    return model
