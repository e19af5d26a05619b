"""diffusers integration: VQGANs saved as diffusers ``VQModel`` folders (aMUSEd's VQGAN, Kandinsky 2.2's
MoVQ, the LDM VQ first stages). With its three parts (below), the only code of hit-decoder that
imports ``diffusers`` (``pip install 'hit-decoder[diffusers]'``).

* :func:`load_vqmodel` — a local folder (``config.json`` + ``diffusion_pytorch_model.safetensors``,
  written by ``VQModel.save_pretrained``, or by :func:`export_diffusers`) or a library file
  (:func:`save_vqmodel`), read strictly: only the ``VQModel`` class and its known config keys,
  weights from safetensors only, every missing / unexpected / misshapen key an error naming it.
  Nothing is ever downloaded: a Hub id is refused with the local-folder form to use instead.
* :func:`swap_decoder` — the CNN decoder replaced by a HiT decoder (:class:`HiTDiffusersDecoder`);
  encoder, ``quant_conv``, quantizer / codebook and ``post_quant_conv`` untouched. The result is
  still a diffusers ``VQModel``: ``encode``, ``decode`` (also the code-index path,
  ``force_not_quantize=True`` with ``lookup_from_codebook``) and ``forward`` work as before.
* :func:`decode_tiled` — ``VQModel.decode`` tile by tile through the library's
  :func:`~hit_decoder.tiling.decode_tiled`; exact (equal to whole decoding) for HiT decoders.
* :func:`save_vqmodel` (one self-describing ``.safetensors``) and :func:`export_diffusers` (a
  diffusers-style folder); :func:`taming_view` — the model behind taming's ``VQModel`` interface,
  which the library's training, reconstruction and sampling code speaks.

What maps to what. diffusers' ``VQModel.decode`` calls ``decoder(post_quant_conv(quant), quant if
norm_type == "spatial" else None)``. For ``norm_type="group"`` (aMUSEd, LDM VQ) the HiT decoder
takes ``post_quant_conv(quant)``, exactly as taming's. For ``norm_type="spatial"`` (MoVQ) the CNN
decoder gets ``quant`` a second time, in every ``SpatialNorm`` (the quantized map modulates every
norm); the HiT decoder gets both maps stacked along channels, ``[post_quant_conv(quant), quant]``
(``z_channels = latent_channels + vq_embed_dim``), so the keys and values of its cross-attention
blocks, which open every stage (HiT's counterpart of that modulation), are made from ``quant``.

The code sits in three modules, re-exported here: :mod:`.diffusers_decoder` (the decoder and the
swap), :mod:`.diffusers_files` (reading and writing), :mod:`.diffusers_view` (tiled decoding, the
taming interface, inspection).
"""

from __future__ import annotations

from .diffusers_decoder import (
                                FORMAT_VERSION,
                                HIT_KEY,
                                HiTDiffusersDecoder,
                                VQModel,
                                decoder_inputs,
                                downsample_factor,
                                swap_decoder,
)
from .diffusers_files import (
                                CONFIG_NAME,
                                FORMAT_DIFFUSERS_VQMODEL,
                                WEIGHTS_NAME,
                                export_diffusers,
                                load_vqmodel,
                                read_config,
                                read_source,
                                save_vqmodel,
)
from .diffusers_view import TamingView, decode_tiled, describe, taming_view

__all__ = [
    "VQModel",
    "HiTDiffusersDecoder",
    "TamingView",
    "load_vqmodel",
    "read_config",
    "read_source",
    "swap_decoder",
    "decoder_inputs",
    "downsample_factor",
    "decode_tiled",
    "save_vqmodel",
    "export_diffusers",
    "taming_view",
    "describe",
    "FORMAT_DIFFUSERS_VQMODEL",
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "HIT_KEY",
]
