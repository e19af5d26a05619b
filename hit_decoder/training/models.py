"""Building the networks a run trains: a taming VQ model whose decoder is a HiT decoder.

* ``from_scratch``: taming's CNN encoder + ``quant_conv`` + vector quantizer + ``post_quant_conv``
  and a fresh HiT decoder (``hit_decoder.adapters.HiTVQModel``).
* ``decoder_swap``: an existing taming VQGAN (YAML + checkpoint, loaded strictly by
  ``hit_decoder.adapters.load_vqgan``) or diffusers ``VQModel`` folder (``model.diffusers_model``,
  ``hit_decoder.adapters.diffusers``; trained through its taming view) whose CNN decoder is replaced
  by a HiT decoder (``swap_decoder``), or with ``model.decoder: cnn`` by a freshly initialised CNN
  decoder of the same shape (a baseline trained like the HiT decoder); everything before the decoder
  stays frozen. The CNN decoder is returned
  separately (frozen) when the run distils toward it.

Model construction uses the global RNG (taming's layers initialise themselves with it); it runs
inside :func:`torch.random.fork_rng` seeded from the run seed, so runs are reproducible and the
caller's global RNG state is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..common.seeding import seeded
from ..config import HiTDecoderConfig
from ..decoder import HiTDecoder
from .ema import make_ema_copy

__all__ = ["BuiltModels", "build_models", "wrap_prebuilt", "decoder_config_for", "frozen_parts"]

FROZEN_IN_SWAP = ("encoder", "quant_conv", "quantize", "post_quant_conv")


@dataclass
class BuiltModels:
    vq: nn.Module  # taming VQModel (or GumbelVQ) with a HiTDecoder as ``.decoder``
    teacher: nn.Module | None  # frozen CNN decoder (decoder_swap with distillation)
    decoder_config: HiTDecoderConfig | None  # None for a prebuilt model with a CNN decoder
    description: str


def decoder_config_for(model_cfg: Any, z_channels: int, factor: int, out_channels: int = 3) -> HiTDecoderConfig:
    """The run's HiT decoder config (preset / YAML / mapping + ``decoder_overrides``), checked to fit
    a VQ model with ``z_channels`` decoder inputs and downsampling ``factor``."""
    from .. import adapters

    return adapters.resolve_decoder_config(model_cfg.decoder, z_channels, factor, out_channels,
                                           **dict(model_cfg.decoder_overrides or {}))


def frozen_parts(vq: nn.Module) -> list[nn.Module]:
    """The modules ``decoder_swap`` keeps frozen."""
    return [getattr(vq, name) for name in FROZEN_IN_SWAP]


def _freeze_before_decoder(vq: nn.Module) -> None:
    """Freeze everything before the decoder (:func:`frozen_parts`): no gradients, eval mode."""
    for part in frozen_parts(vq):
        part.requires_grad_(False)
        part.eval()


def _build_from_scratch(cfg: Any) -> BuiltModels:
    from .. import adapters
    from .config import CNN_DECODER

    enc = cfg.model.encoder
    ddconfig = {
        "double_z": enc.double_z, "z_channels": enc.z_channels, "resolution": enc.resolution,
        "in_channels": enc.in_channels, "out_ch": enc.out_ch, "ch": enc.ch, "ch_mult": list(enc.ch_mult),
        "num_res_blocks": enc.num_res_blocks, "attn_resolutions": list(enc.attn_resolutions), "dropout": enc.dropout,
    }
    factor = adapters.downsample_factor(ddconfig)
    if cfg.model.decoder == CNN_DECODER:  # a plain taming VQGAN
        vq = adapters.build_vqmodel(adapters.resolve_model_config({"target": "taming.models.vqgan.VQModel", "params": {
            "ddconfig": ddconfig, "n_embed": cfg.model.n_embed, "embed_dim": cfg.model.embed_dim}}))
        desc = (f"from_scratch: taming VQGAN, encoder and CNN decoder (ch {enc.ch}, ch_mult {list(enc.ch_mult)}, "
                f"f{factor}), codebook {cfg.model.n_embed} x {cfg.model.embed_dim}")
        return BuiltModels(vq=vq, teacher=None, decoder_config=None, description=desc)
    dec_cfg = decoder_config_for(cfg.model, enc.z_channels, factor, enc.out_ch)
    vq = adapters.HiTVQModel(
        ddconfig=ddconfig, lossconfig={"target": "torch.nn.Identity"}, n_embed=cfg.model.n_embed,
        embed_dim=cfg.model.embed_dim, decoder_config=dec_cfg.to_dict(),
    )
    desc = (f"from_scratch: taming encoder (ch {enc.ch}, ch_mult {list(enc.ch_mult)}, f{factor}), codebook "
            f"{cfg.model.n_embed} x {cfg.model.embed_dim}, HiT decoder {cfg.model.decoder!r}")
    return BuiltModels(vq=vq, teacher=None, decoder_config=dec_cfg, description=desc)


def _build_decoder_swap(cfg: Any, allow_unsafe_pickle: bool) -> BuiltModels:
    from .. import adapters
    from .config import CNN_DECODER

    vq = adapters.load_vqgan(cfg.model.vqgan_config, cfg.model.vqgan_ckpt, allow_unsafe_pickle=allow_unsafe_pickle)
    z_channels = int(vq.post_quant_conv.out_channels)
    factor = adapters.downsample_factor(vq)
    if cfg.model.decoder == CNN_DECODER:  # a baseline trained exactly like a swapped-in HiT decoder
        return _fresh_cnn_decoder(cfg, vq, factor)
    dec_cfg = decoder_config_for(cfg.model, z_channels, factor, int(vq.decoder.conv_out.out_channels))
    teacher = make_ema_copy(vq.decoder) if cfg.loss.distill_weight > 0 else None
    adapters.swap_decoder(vq, HiTDecoder(dec_cfg))
    _freeze_before_decoder(vq)
    desc = (f"decoder_swap: frozen encoder/quantizer/codebook ({adapters.codebook_size(vq.quantize)} codes, f{factor}) from "
            f"{cfg.model.vqgan_ckpt}, new HiT decoder {cfg.model.decoder!r}"
            + (f", distilling toward the CNN decoder (weight {cfg.loss.distill_weight})" if teacher is not None else ""))
    return BuiltModels(vq=vq, teacher=teacher, decoder_config=dec_cfg, description=desc)


def _fresh_cnn_decoder(cfg: Any, vq: nn.Module, factor: int) -> BuiltModels:
    """``decoder_swap`` with ``model.decoder: cnn``: the VQGAN's CNN decoder replaced by a freshly
    initialised one of the same shape (from its own config), trained on the frozen codes."""
    from .. import adapters

    teacher = make_ema_copy(vq.decoder) if cfg.loss.distill_weight > 0 else None
    vq.decoder = adapters.build_vqmodel(adapters.resolve_model_config(cfg.model.vqgan_config)).decoder
    _freeze_before_decoder(vq)
    desc = (f"decoder_swap: frozen encoder/quantizer/codebook ({adapters.codebook_size(vq.quantize)} codes, f{factor}) from "
            f"{cfg.model.vqgan_ckpt}, its CNN decoder re-initialised (same shape)")
    return BuiltModels(vq=vq, teacher=teacher, decoder_config=None, description=desc)


def check_diffusers_source(cfg: Any) -> int:
    """Start-up check of ``model.diffusers_model`` (folder, config, weights file; no weights read):
    returns the model's downsampling factor."""
    from ..adapters import diffusers as hd

    config, _, _ = hd.read_source(cfg.model.diffusers_model, tensors=False)
    if cfg.loss.distill_weight > 0 and config.get("norm_type") == "spatial":
        raise ValueError("loss.distill_weight > 0 is not available for norm_type='spatial' (MoVQ) diffusers models: "
                         "their CNN decoder needs the quantized map a second time, which the distillation target "
                         "does not get; set loss.distill_weight=0")
    if hd.HIT_KEY in config:
        raise ValueError(f"model.diffusers_model: {cfg.model.diffusers_model} already has a HiT decoder; "
                         "finetune-decoder starts from the VQGAN with its CNN decoder")
    return hd.downsample_factor(config)


def _build_diffusers_swap(cfg: Any) -> BuiltModels:
    from .. import adapters
    from ..adapters import diffusers as hd

    model = hd.load_vqmodel(cfg.model.diffusers_model)
    latent, quant = hd.decoder_inputs(model)
    factor = hd.downsample_factor(model)
    dec_cfg = decoder_config_for(cfg.model, latent + quant, factor, int(model.config.out_channels))
    teacher = make_ema_copy(model.decoder) if cfg.loss.distill_weight > 0 else None
    hd.swap_decoder(model, dec_cfg)
    vq = hd.taming_view(model)
    _freeze_before_decoder(vq)
    desc = (f"decoder_swap: frozen diffusers VQModel encoder/quantizer/codebook ({adapters.codebook_size(vq.quantize)} "
            f"codes, f{factor}, norm_type {model.config.norm_type}) from {cfg.model.diffusers_model}, new HiT decoder "
            f"{cfg.model.decoder!r}" + (f", distilling toward the CNN decoder (weight {cfg.loss.distill_weight})"
                                        if teacher is not None else ""))
    return BuiltModels(vq=vq, teacher=teacher, decoder_config=dec_cfg, description=desc)


def build_models(cfg: Any, *, allow_unsafe_pickle: bool = False) -> BuiltModels:
    """The VQ model (and distillation teacher) of a run, initialised from ``cfg.seed``;
    ``allow_unsafe_pickle`` lets ``decoder_swap`` fully unpickle ``model.vqgan_ckpt`` (trusted files only)."""
    with seeded(cfg.seed):
        if cfg.mode == "from_scratch":
            return _build_from_scratch(cfg)
        if cfg.model.diffusers_model:
            return _build_diffusers_swap(cfg)
        return _build_decoder_swap(cfg, allow_unsafe_pickle)


def wrap_prebuilt(cfg: Any, vq: nn.Module) -> BuiltModels:
    """Use a model built by the caller (any taming VQ model, e.g. with a CNN decoder for a
    benchmark baseline); ``decoder_swap`` freezes everything before its decoder."""
    if cfg.loss.distill_weight > 0:
        raise ValueError("loss.distill_weight needs a VQGAN loaded from model.vqgan_config/ckpt, not a prebuilt model")
    if cfg.mode == "decoder_swap":
        _freeze_before_decoder(vq)
    return BuiltModels(vq=vq, teacher=None, decoder_config=getattr(vq.decoder, "config", None),
                       description=f"{cfg.mode}: prebuilt {type(vq).__name__} with a {type(vq.decoder).__name__} decoder")
