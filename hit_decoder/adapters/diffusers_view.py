"""A diffusers ``VQModel`` as the rest of the library uses it: tiled decoding, the taming interface
(:class:`TamingView`) and :func:`describe`. Part of :mod:`hit_decoder.adapters.diffusers`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hit_decoder.decoder import HiTDecoder
from hit_decoder.tiling import TileGeometry, hit_tile_geometry
from hit_decoder.tiling import decode_tiled as _decode_tiled

from .codes import decode_codes as _decode_codes
from .codes import decode_indices
from .diffusers_decoder import HIT_KEY, VQModel, check_vqmodel, downsample_factor
from .diffusers_files import export_diffusers, read_source, save_vqmodel

__all__ = ["TamingView", "taming_view", "decode_tiled", "describe"]


def _view(model: VQModel | TamingView) -> TamingView:
    return model if isinstance(model, TamingView) else taming_view(model)


def decode_tiled(model: VQModel | TamingView, latents: torch.Tensor, *, tile: int | tuple[int, int],
                 overlap: int | None = None, margin: int | None = None, align: int | None = None,
                 force_not_quantize: bool = False, progress: bool = False) -> torch.Tensor:
    """``VQModel.decode(latents, force_not_quantize).sample`` computed tile by tile with the library's
    :func:`~hit_decoder.tiling.decode_tiled` (peak memory: one tile). ``latents``: the encoder's
    ``(B, vq_embed_dim, h, w)`` output (quantized here, as ``decode`` does), a quantized map with
    ``force_not_quantize=True``, or code indices ``(B, h, w)`` (the ``lookup_from_codebook`` path).
    ``tile`` and the geometry are in codes; for a HiT decoder the defaults give exact tiling (equal to
    whole decoding), for a CNN decoder an approximation with a margin of ``tile // 4`` and an overlap
    of ``tile // 8``."""
    view = _view(model)
    if not latents.is_floating_point():
        return _decode_codes(view, latents, tile=tile, overlap=overlap, margin=margin, align=align, progress=progress)
    if force_not_quantize and view.model.config.lookup_from_codebook:
        raise ValueError("this VQModel has lookup_from_codebook: with force_not_quantize its decode takes code "
                         "indices; pass them as an integer (B, h, w) tensor")
    t = tile if isinstance(tile, int) else min(tile)
    if isinstance(view.decoder, HiTDecoder):
        geometry, default_overlap = hit_tile_geometry(view.decoder.config), 0
    else:
        geometry, default_overlap = TileGeometry(align=1, margin=max(1, t // 4)), t // 8
    vq = view.model

    def decode_fn(z: torch.Tensor) -> torch.Tensor:
        return vq.decode(z, force_not_quantize=force_not_quantize).sample  # (B, C, h f, w f)

    return _decode_tiled(decode_fn, latents, tile=tile, overlap=default_overlap if overlap is None else overlap,
                         margin=geometry.margin if margin is None else margin,
                         align=geometry.align if align is None else align, progress=progress)


class TamingView(nn.Module):
    """A diffusers ``VQModel`` behind taming's ``VQModel`` interface, which the library's training,
    reconstruction, prior and sampling code use: ``encode(x) -> (quant, loss, (None, None, indices))``,
    ``decode(quant)`` (a *quantized* map, as taming's), ``get_last_layer()``, ``decode_code``, and the
    parts ``encoder``, ``quant_conv``, ``quantize``, ``post_quant_conv``, ``decoder``. It holds the
    model itself (``.model``, state-dict keys ``model.*``), so both always agree."""

    def __init__(self, model: VQModel) -> None:
        super().__init__()
        check_vqmodel(model, "taming_view")
        self.model = model

    encoder = property(lambda self: self.model.encoder)
    quant_conv = property(lambda self: self.model.quant_conv)
    quantize = property(lambda self: self.model.quantize)
    post_quant_conv = property(lambda self: self.model.post_quant_conv)
    decoder = property(lambda self: self.model.decoder)

    @property
    def downsample_factor(self) -> int:
        return downsample_factor(self.model)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        h = self.model.encode(x).latents  # (B, vq_embed_dim, h, w)
        return self.model.quantize(h)  # (B, vq_embed_dim, h, w), loss, (None, None, indices (B h w, 1))

    def decode(self, quant: torch.Tensor) -> torch.Tensor:
        """A quantized map ``(B, vq_embed_dim, h, w)`` -> images, as ``VQModel.decode(quant,
        force_not_quantize=True)`` of a model without ``lookup_from_codebook``."""
        spatial = self.model.config.norm_type == "spatial"
        return self.model.decoder(self.model.post_quant_conv(quant), quant if spatial else None)  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quant, loss, _ = self.encode(x)
        return self.decode(quant), loss

    def get_last_layer(self) -> torch.Tensor:
        return self.model.decoder.get_last_layer() if isinstance(self.model.decoder, HiTDecoder) \
            else self.model.decoder.conv_out.weight

    def decode_code(self, indices: torch.Tensor) -> torch.Tensor:
        return decode_indices(self, indices)

    def export_files(self, out_dir: str | os.PathLike) -> dict[str, str]:
        """The training run's exports: the HiT decoder alone, the library file and a diffusers folder."""
        from hit_decoder.serialization import save_decoder

        out = Path(out_dir)
        paths = {"decoder": str(save_decoder(self.model.decoder, out / "decoder.safetensors"))} \
            if isinstance(self.model.decoder, HiTDecoder) else {}
        paths["model"] = str(save_vqmodel(self.model, out / "model.safetensors"))
        paths["diffusers"] = str(export_diffusers(self.model, out / "diffusers"))
        return paths


def taming_view(model: VQModel) -> TamingView:
    """``model`` behind taming's VQModel interface (see :class:`TamingView`)."""
    return TamingView(model)


# --------------------------------------------------------------------------- inspection
def describe(source: str | os.PathLike) -> dict[str, Any]:
    """What a diffusers folder or library file holds (the structure of
    :func:`~hit_decoder.adapters.describe_checkpoint`'s result), read from its config and tensor
    shapes; nothing is built."""
    config, state, where = read_source(source)
    path = Path(source).expanduser()
    layout = "hit-decoder diffusers VQ model" if path.is_file() else "diffusers VQModel folder"
    info: dict[str, Any] = {"file": str(path), "size_bytes": Path(where).stat().st_size, "container": "safetensors",
                            "layout": layout}
    from .inspection import _components, _shape

    info["components"] = _components(state)
    hit = config.get(HIT_KEY)
    vq: dict[str, Any] = {"encoder": {"ch": config.get("block_out_channels", [None])[0],
                                      "in_channels": config.get("in_channels", 3),
                                      "levels": len(config.get("block_out_channels", [])),
                                      "downsampling_factor": downsample_factor(config)}}
    if (emb := _shape(state, "quantize.embedding.weight")) is not None:
        vq["codebook"] = {"kind": "diffusers VectorQuantizer", "size": emb[0], "dim": emb[1],
                          "lookup_from_codebook": bool(config.get("lookup_from_codebook", False))}
    for conv in ("quant_conv", "post_quant_conv"):
        if (w := _shape(state, f"{conv}.weight")) is not None:
            vq[conv] = {"in": w[1], "out": w[0]}
    norm = config.get("norm_type", "group")
    if hit is None:
        vq["decoder"] = {"kind": f"CNN (diffusers Decoder, norm_type {norm})",
                         "z_channels": config.get("latent_channels"), "downsample_factor": downsample_factor(config)}
    else:
        vq["decoder"] = {"kind": f"HiT (replacing a norm_type {norm} decoder)", "z_channels": hit["decoder"].get("z_channels"),
                         "downsample_factor": downsample_factor(config), "stages": len(hit["decoder"].get("channels", []))}
    info["vq"] = vq
    info["config"] = config
    return info
