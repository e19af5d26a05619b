"""Replace a taming VQ model's CNN decoder with a HiT decoder, in place.

The encoder, ``quant_conv``, quantizer/codebook and ``post_quant_conv`` are kept as they are. The
model's class becomes the matching HiT class (``VQModel`` -> ``HiTVQModel``, ``GumbelVQ`` ->
``HiTGumbelVQ``): same modules, same taming methods, except ``get_last_layer`` (taming's returns
``decoder.conv_out.weight``, which a HiT decoder does not have) and a working ``decode_code``.
Taming's ``decode``, ``encode``, ``forward`` and Net2NetTransformer's ``decode_to_img`` / ``sample``
run unchanged, because they only call ``decode``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hit_decoder.config import HiTDecoderConfig
from hit_decoder.decoder import HiTDecoder

from taming.models.vqgan import GumbelVQ, VQModel

from .codes import downsample_factor
from .models import HiTGumbelVQ, HiTVQModel, placed_like_decoder, swap_decoder_argument

__all__ = ["swap_decoder", "HIT_CLASS_FOR"]

#: class of a taming VQ model -> class it has once its decoder is a HiT decoder
HIT_CLASS_FOR: dict[type, type] = {
    VQModel: HiTVQModel,
    GumbelVQ: HiTGumbelVQ,
    HiTVQModel: HiTVQModel,
    HiTGumbelVQ: HiTGumbelVQ,
}


def _image_channels(model: VQModel) -> int:
    if isinstance(model.decoder, HiTDecoder):
        return model.decoder.config.out_channels
    return int(model.decoder.conv_out.out_channels)


def swap_decoder(model: VQModel, decoder: HiTDecoder | HiTDecoderConfig | Mapping[str, Any] | str | os.PathLike,
                 **overrides: Any) -> VQModel:
    """Put a HiT decoder into ``model`` (a taming ``VQModel`` / ``GumbelVQ``, or one of ours) and
    return the model.

    ``decoder``: a :class:`HiTDecoder` (used as is), or a config / mapping / preset name / YAML path
    with optional field ``overrides`` (a fresh decoder is built; a preset name or a mapping that
    leaves them out takes ``z_channels`` and ``out_channels`` from the model). The decoder must take
    ``post_quant_conv``'s channels and upsample by the encoder's factor; otherwise ``ValueError``
    says which preset or override would fit. The new decoder is moved to the model's device and
    dtype and gets the old decoder's train/eval mode.

    In place: the returned object is ``model`` itself, its ``decoder`` replaced and its class changed
    to the HiT subclass of its taming class (``VQModel`` -> :class:`HiTVQModel`, ``GumbelVQ`` ->
    :class:`HiTGumbelVQ`; ``isinstance`` checks against the taming class still hold). Copy the model
    first (``copy.deepcopy``) to keep the CNN-decoder version.
    """
    target_cls = HIT_CLASS_FOR.get(type(model))
    if target_cls is None:
        raise ValueError(
            f"swap_decoder supports taming VQModel and GumbelVQ (and HiTVQModel / HiTGumbelVQ), got "
            f"{type(model).__module__}.{type(model).__qualname__}"
        )
    z_channels = int(model.post_quant_conv.out_channels)
    factor = downsample_factor(model)
    out_channels = _image_channels(model)
    new = swap_decoder_argument(decoder, overrides, z_channels, factor, out_channels)
    model.decoder = placed_like_decoder(new if isinstance(new, HiTDecoder) else HiTDecoder(new), model)
    model.__class__ = target_cls
    return model
