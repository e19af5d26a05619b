"""diffusers integration: VQGANs saved as diffusers ``VQModel`` folders (aMUSEd's VQGAN, Kandinsky 2.2's
MoVQ, the LDM VQ first stages). The only module of hit-decoder that imports ``diffusers``
(``pip install 'hit-decoder[diffusers]'``).

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
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    from diffusers.models.autoencoders.vq_model import VQModel
except ImportError as exc:  # pragma: no cover  (the extra is installed wherever the tests run)
    raise ImportError(
        f"hit_decoder.adapters.diffusers needs the diffusers package ({exc}); install it with "
        "pip install 'hit-decoder[diffusers]'"
    ) from exc

from hit_decoder.config import HiTDecoderConfig
from hit_decoder.decoder import HiTDecoder
from hit_decoder.fileio import atomic_path
from hit_decoder.metadata import build_and_load, metadata_json
from hit_decoder.serialization import read_safetensors, write_safetensors
from hit_decoder.tiling import TileGeometry, hit_tile_geometry
from hit_decoder.tiling import decode_tiled as _decode_tiled

from ..checkpoints import load_checkpoint_state
from .codes import decode_codes as _decode_codes
from .codes import downsample_factor as _levels_factor
from .codes import decode_indices
from .models import check_decoder_fits, resolve_decoder_config

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
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "HIT_KEY",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
from .sources import FORMAT_DIFFUSERS_VQMODEL, HUB_ID  # noqa: E402
_FORMAT_VERSION = "1"
#: config.json key of a swapped model: ``{"version": "1", "decoder": HiTDecoderConfig fields}``
HIT_KEY = "hit_decoder"
#: keys diffusers writes into every config.json besides the constructor's arguments
_BOOKKEEPING_KEYS = frozenset({"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values"})
_MAX_CONFIG_BYTES = 1_000_000
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _vqmodel_parameters() -> list[str]:
    return [n for n in inspect.signature(VQModel.__init__).parameters if n != "self"]


# --------------------------------------------------------------------------- the decoder
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


def _check_vqmodel(model: Any, what: str) -> None:
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
    _check_vqmodel(model, "swap_decoder")
    latent, quant = decoder_inputs(model)
    z_channels, factor, out_channels = latent + quant, downsample_factor(model), int(model.config.out_channels)
    if isinstance(decoder, HiTDecoder):
        if overrides:
            raise ValueError(f"overrides {sorted(overrides)} only apply when swap_decoder builds the decoder; "
                             "pass a preset name, dict or HiTDecoderConfig instead of a HiTDecoder")
        check_decoder_fits(decoder.config, z_channels, factor, out_channels, "instance")
        if isinstance(decoder, HiTDiffusersDecoder) and decoder.quant_channels == quant:
            new = decoder
        else:
            new = HiTDiffusersDecoder(decoder.config, quant_channels=quant,
                                      inference_chunk_tokens=decoder.inference_chunk_tokens)
            new.load_state_dict(decoder.state_dict())
    elif isinstance(decoder, (HiTDecoderConfig, Mapping, str, os.PathLike)):
        cfg = resolve_decoder_config(decoder, z_channels, factor, out_channels, **overrides)
        new = HiTDiffusersDecoder(cfg, quant_channels=quant)
    else:
        raise ValueError(f"decoder must be a HiTDecoder, HiTDecoderConfig, dict or preset name, got "
                         f"{type(decoder).__name__}")
    weight = model.post_quant_conv.weight
    model.decoder = new.to(device=weight.device, dtype=weight.dtype).train(model.decoder.training)
    model.register_to_config(**{HIT_KEY: {"version": _FORMAT_VERSION, "decoder": new.config.to_dict()}})
    return model


# --------------------------------------------------------------------------- reading
def _hub_id_error(text: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{text!r} is not a local folder. hit-decoder reads diffusers models only from local folders and never "
        f"downloads anything; if {text!r} is a Hugging Face Hub id, download it yourself (e.g. `hf download {text} "
        "--local-dir DIR`) and pass the folder that holds config.json and diffusion_pytorch_model.safetensors "
        "(for a pipeline repository its VQ model's subfolder, e.g. DIR/vqvae or DIR/movq)"
    )


def _model_folder(path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        text = os.fspath(path)
        if HUB_ID.fullmatch(text):
            raise _hub_id_error(text)
        raise FileNotFoundError(f"diffusers model folder {folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a diffusers model folder (config.json + {WEIGHTS_NAME}); "
                         "library files (.safetensors) are read by load_vqmodel too")
    if not (folder / CONFIG_NAME).is_file():
        subs = sorted(p.parent.name for p in folder.glob(f"*/{CONFIG_NAME}"))
        hint = f"; the VQ model of a pipeline folder sits in a subfolder: {', '.join(str(folder / s) for s in subs)}" \
            if subs else ""
        raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}: expected a diffusers VQModel folder (config.json + "
                                f"{WEIGHTS_NAME}, as VQModel.save_pretrained writes){hint}")
    return folder


def _weights_file(folder: Path) -> Path:
    weights = folder / WEIGHTS_NAME
    if weights.is_file():
        return weights
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(
            f"{folder} holds its weights as a pickle ({', '.join(pickles)}), not as {WEIGHTS_NAME}; unpickling can run "
            "code stored in the file, so hit-decoder reads diffusers weights from safetensors only. Convert it where "
            "you trust the file, e.g. python -c \"import torch, safetensors.torch as s; s.save_file(torch.load("
            f"'{folder / pickles[0]}', weights_only=True), '{weights}')\""
        )
    others = sorted(p.name for p in folder.glob("*.safetensors*"))
    raise FileNotFoundError(
        f"{folder} has no {WEIGHTS_NAME}" + (f" (found {', '.join(others)}: sharded or variant weights are not read; "
                                             f"save the model as one {WEIGHTS_NAME})" if others else "")
    )


def read_config(config: Mapping[str, Any] | str | os.PathLike, source: str | None = None) -> dict[str, Any]:
    """A diffusers ``VQModel`` config (a folder, its ``config.json``, or a mapping), checked: the class
    is ``VQModel``, every key is a ``VQModel`` argument (or diffusers' bookkeeping, or ``hit_decoder``
    of a swapped model). Returns the plain dict."""
    if isinstance(config, Mapping):
        data, source = dict(config), source or "config"
    else:
        path = Path(config)
        path = path / CONFIG_NAME if path.is_dir() else path
        source = source or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise ValueError(f"{path} is {path.stat().st_size} bytes, too large for a VQModel config.json")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); expected the config.json diffusers writes") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object of VQModel arguments, got {type(data).__name__}")
    cls = data.get("_class_name")
    if cls != "VQModel":
        raise ValueError(f"{source}: _class_name is {cls!r}; hit-decoder reads diffusers VQModel folders only "
                         "(VQGANs such as aMUSEd's vqvae, Kandinsky 2.2's movq, the LDM VQ first stages)")
    known = set(_vqmodel_parameters())
    unknown = sorted(set(data) - known - _BOOKKEEPING_KEYS - {HIT_KEY})
    if unknown:
        raise ValueError(f"{source}: unknown VQModel config key(s) {unknown}; this diffusers release's VQModel accepts "
                         f"{sorted(known)}. Use the config.json written with the model, or a diffusers release that "
                         "knows these keys")
    hit = data.get(HIT_KEY)
    if hit is not None:
        if not isinstance(hit, dict) or set(hit) != {"version", "decoder"} or not isinstance(hit["decoder"], dict):
            raise ValueError(f"{source}: {HIT_KEY!r} must be {{'version': ..., 'decoder': {{HiT decoder config}}}}, got "
                             f"{hit!r}")
        if str(hit["version"]) != _FORMAT_VERSION:
            raise ValueError(f"{source}: {HIT_KEY} version {hit['version']!r} is not one this hit-decoder reads "
                             f"({_FORMAT_VERSION}); upgrade hit-decoder to read it")
    return data


def _build(config: Mapping[str, Any], source: str) -> VQModel:
    """A ``VQModel`` (with the HiT decoder of a swapped config) with fresh weights; the caller's
    global RNG state is left as it was."""
    params = {k: v for k, v in config.items() if k not in _BOOKKEEPING_KEYS and k != HIT_KEY}
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        try:
            model = VQModel(**params)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"{source}: diffusers cannot build a VQModel from this config ({type(exc).__name__}: "
                             f"{exc}); use the config.json written with the model") from exc
        hit = config.get(HIT_KEY)
        if hit is not None:
            swap_decoder(model, HiTDecoderConfig.from_dict(hit["decoder"]))
    return model


def read_source(source: str | os.PathLike, *, tensors: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """``(config, state, where the weights are)`` of a local diffusers folder or a library file, both
    checked (:func:`read_config`); ``tensors=False`` reads the config only (``state`` is empty) and
    still checks that the weights file is there."""
    path = Path(source).expanduser()
    if path.is_file():
        state, meta = read_safetensors(path, FORMAT_DIFFUSERS_VQMODEL, _FORMAT_VERSION, tensors=tensors)
        return read_config(metadata_json(meta, "config", path), f"{path} (metadata 'config')"), state, str(path)
    folder = _model_folder(source)
    config = read_config(folder)
    weights = _weights_file(folder)
    return config, (load_checkpoint_state(weights) if tensors else {}), str(weights)


def load_vqmodel(source: str | os.PathLike, map_location: str | torch.device = "cpu") -> VQModel:
    """A diffusers ``VQModel`` from a local folder (``config.json`` + ``diffusion_pytorch_model.safetensors``,
    a plain VQGAN or one with a HiT decoder) or a library file written by :func:`save_vqmodel`;
    strict, safetensors only, never from the network. Returned in eval mode."""
    config, state, where = read_source(source)
    model = build_and_load(lambda: _build(config, where), state, where)  # shapes checked on the meta device first
    return model.to(map_location).eval()


# --------------------------------------------------------------------------- writing
def _config_of(model: VQModel) -> dict[str, Any]:
    """The model's diffusers config as plain JSON data, with its current decoder recorded."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()
              if k not in ("_use_default_values", "_name_or_path")}
    config["_class_name"] = "VQModel"
    config.pop(HIT_KEY, None)
    if isinstance(model.decoder, HiTDecoder):
        config[HIT_KEY] = {"version": _FORMAT_VERSION, "decoder": model.decoder.config.to_dict()}
    return config


def save_vqmodel(model: VQModel, path: str | os.PathLike) -> Path:
    """Write ``model`` (diffusers config + weights) to one ``.safetensors`` file atomically; the file
    alone rebuilds it (:func:`load_vqmodel`)."""
    _check_vqmodel(model, "save_vqmodel")
    meta = {"format": FORMAT_DIFFUSERS_VQMODEL, "version": _FORMAT_VERSION, "config": json.dumps(_config_of(model))}
    return write_safetensors(path, model.state_dict(), meta)


def export_diffusers(model: VQModel, folder: str | os.PathLike) -> Path:
    """Write ``model`` as a diffusers-style folder: ``config.json`` (``_class_name: VQModel``, its
    arguments, and for a HiT decoder the ``hit_decoder`` entry) and ``diffusion_pytorch_model.safetensors``.
    Each file is written atomically, the weights first, so a folder with a config.json is complete.
    :func:`load_vqmodel` reads it back; what diffusers itself makes of it is in docs/diffusers.md."""
    _check_vqmodel(model, "export_diffusers")
    folder = Path(folder)
    write_safetensors(folder / WEIGHTS_NAME, model.state_dict(), {"format": "pt"})
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(_config_of(model), indent=2, sort_keys=True) + "\n")
    return folder


# --------------------------------------------------------------------------- decoding and the taming interface
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
        _check_vqmodel(model, "taming_view")
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
