"""Between images and code indices, for any taming VQ model (``VectorQuantizer2`` or
``GumbelQuantize`` codebook, CNN or HiT decoder).

Taming's ``VQModel.decode_code`` calls a quantizer method that does not exist, and
``GumbelVQ.decode_code`` raises ``NotImplementedError``; :func:`decode_indices` is the working
path: ``quantize.get_codebook_entry(flat_indices, shape=(B, h, w, embed_dim))`` then ``decode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hit_decoder.decoder import HiTDecoder
from hit_decoder.tiling import TileGeometry, decode_tiled, hit_tile_geometry

__all__ = ["decode_indices", "encode_indices", "codebook_size", "embed_dim_of", "codebook_fingerprint", "downsample_factor",
           "decode_codes"]


def codebook_size(quantize: nn.Module) -> int:
    """Number of valid code indices (after taming's optional ``remap``)."""
    for attr in ("re_embed", "n_e", "n_embed"):
        if hasattr(quantize, attr):
            return int(getattr(quantize, attr))
    raise ValueError(f"cannot tell the codebook size of {type(quantize).__name__}: expected a taming "
                     "VectorQuantizer2 or GumbelQuantize")


def embed_dim_of(quantize: nn.Module) -> int:
    """Width of a code vector: ``e_dim`` (VectorQuantizer2), ``embedding_dim`` (GumbelQuantize) or
    ``vq_embed_dim`` (diffusers' VectorQuantizer)."""
    for attr in ("e_dim", "embedding_dim", "vq_embed_dim"):
        if hasattr(quantize, attr):
            return int(getattr(quantize, attr))
    raise ValueError(f"cannot tell the code width of {type(quantize).__name__}: expected a taming "
                     "VectorQuantizer2 or GumbelQuantize")


def decode_indices(model: nn.Module, indices: torch.Tensor) -> torch.Tensor:
    """Code indices ``(B, h, w)`` -> images ``(B, C, h f, w f)`` through ``model.decode``."""
    if not isinstance(indices, torch.Tensor) or indices.ndim != 3:
        shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"decode_indices expects code indices of shape (B, h, w), got {shape}; "
                         "reshape flat indices to the latent grid first")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"decode_indices expects integer code indices, got dtype {indices.dtype}")
    n = codebook_size(model.quantize)
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise ValueError(f"code indices must lie in [0, {n}) for this codebook, got values in "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    B, h, w = indices.shape
    device = model.post_quant_conv.weight.device
    flat = indices.reshape(-1).long().to(device)  # (B*h*w,)
    quant = model.quantize.get_codebook_entry(flat, shape=(B, h, w, embed_dim_of(model.quantize)))  # (B, e, h, w)
    return model.decode(quant.to(model.post_quant_conv.weight.dtype))  # (B, C, h f, w f)


def encode_indices(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Images ``(B, C, H, W)`` -> code indices ``(B, H/f, W/f)`` through ``model.encode``."""
    quant, _, info = model.encode(x)  # quant (B, e, h, w)
    B, _, h, w = quant.shape
    return info[2].reshape(B, h, w)  # (B, h, w)


def codebook_fingerprint(quantize: nn.Module) -> str:
    """sha256 of the code vectors (float32 bytes): which codebook a prior's tokens mean."""
    import hashlib

    for attr in ("embedding", "embed"):  # VectorQuantizer2 / GumbelQuantize
        table = getattr(quantize, attr, None)
        if isinstance(table, nn.Embedding):
            data = table.weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
            return hashlib.sha256(data).hexdigest()
    raise ValueError(f"cannot find the code vectors of {type(quantize).__name__}: expected a taming "
                     "VectorQuantizer2 or GumbelQuantize")


def downsample_factor(model: nn.Module | Mapping[str, Any] | int) -> int:
    """Pixels per code along each axis, ``2 ** (number of encoder levels - 1)``, of a taming VQ
    model, of its ``ddconfig`` (a mapping with ``ch_mult``) or of a number of levels. The one place
    this is computed for taming models; a model that states its own ``downsample_factor`` (the
    taming view of a diffusers model) is taken at its word."""
    if isinstance(getattr(model, "downsample_factor", None), int):
        return int(model.downsample_factor)
    if isinstance(model, int):
        levels = model
    elif isinstance(model, Mapping):
        levels = len(model["ch_mult"])
    else:
        levels = int(model.encoder.num_resolutions)
    return 2 ** (int(levels) - 1)


def decode_codes(
    vq: torch.nn.Module,
    indices: torch.Tensor,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    margin: int | None = None,
    align: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Code indices ``(B, h, w)`` -> images through a taming VQ model, whole or tile by tile.

    With ``tile`` (codes), tiles of the index grid are decoded by
    :func:`decode_indices`. For a HiT decoder the defaults are the exact
    geometry of :func:`hit_tile_geometry` with no overlap; for other decoders (approximate) a margin
    of ``tile // 4`` and an overlap of ``tile // 8`` codes.
    """
    if tile is None:
        return decode_indices(vq, indices)
    if not isinstance(indices, torch.Tensor) or indices.ndim != 3:
        raise ValueError(f"decode_codes expects code indices of shape (B, h, w), got {getattr(indices, 'shape', type(indices))}")
    if isinstance(getattr(vq, "decoder", None), HiTDecoder):
        geometry = hit_tile_geometry(vq.decoder.config)
        default_overlap = 0
    else:
        geometry = TileGeometry(align=1, margin=max(1, tile // 4))
        default_overlap = tile // 8
    return decode_tiled(
        lambda t: decode_indices(vq, t[:, 0]),  # (B, 1, h', w') index tile -> image tile
        indices[:, None],
        tile=tile,
        overlap=default_overlap if overlap is None else overlap,
        margin=geometry.margin if margin is None else margin,
        align=geometry.align if align is None else align,
        progress=progress,
    )
