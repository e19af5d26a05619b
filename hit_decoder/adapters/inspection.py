"""What a checkpoint holds, read from tensor names and shapes alone (nothing in it is run).

Understands taming VQGAN checkpoints (CNN or HiT decoder, ``VectorQuantizer2`` or Gumbel
codebook), Net2NetTransformer checkpoints (first stage + GPT), plain state dicts, and the
library's own ``.safetensors`` files (whose metadata carries the config).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hit_decoder.serialization import FORMAT_DECODER

from ..checkpoints import FIRST_STAGE_PREFIX, first_stage_state, read_weights
from .codes import downsample_factor

__all__ = ["describe_checkpoint", "format_description"]

_FORMAT_VQMODEL = "hit-decoder/vqmodel"  # same string as export.FORMAT_VQMODEL (kept import-light)


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """Number of distinct integers ``i`` for which some key matches ``pattern`` (with ``(\\d+)``)."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    return tuple(state[key].shape) if key in state else None


def _components(state: Mapping[str, torch.Tensor]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for k, v in state.items():
        comp = k.split(".", 1)[0] if "." in k else "(top level)"
        entry = out.setdefault(comp, {"tensors": 0, "elements": 0})
        entry["tensors"] += 1
        entry["elements"] += int(v.numel())
    return out


def _describe_vq(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    vq: dict[str, Any] = {}
    conv_in = _shape(state, "encoder.conv_in.weight")
    if conv_in is not None:
        levels = _count(state, r"encoder\.down\.(\d+)\.")
        conv_out = _shape(state, "encoder.conv_out.weight")
        vq["encoder"] = {"ch": conv_in[0], "in_channels": conv_in[1], "levels": levels,
                         "downsampling_factor": downsample_factor(levels),
                         "out_channels": conv_out[0] if conv_out else None}
    if (emb := _shape(state, "quantize.embedding.weight")) is not None:
        vq["codebook"] = {"kind": "VectorQuantizer2", "size": emb[0], "dim": emb[1]}
    elif (emb := _shape(state, "quantize.embed.weight")) is not None:
        vq["codebook"] = {"kind": "GumbelQuantize", "size": emb[0], "dim": emb[1]}
    if (used := _shape(state, "quantize.used")) is not None:
        vq.setdefault("codebook", {})["remapped_to"] = used[0]
    if (qc := _shape(state, "quant_conv.weight")) is not None:
        vq["quant_conv"] = {"in": qc[1], "out": qc[0]}
    if (pq := _shape(state, "post_quant_conv.weight")) is not None:
        vq["post_quant_conv"] = {"in": pq[1], "out": pq[0]}
    if (dci := _shape(state, "decoder.conv_in.weight")) is not None:
        levels = _count(state, r"decoder\.up\.(\d+)\.")
        dco = _shape(state, "decoder.conv_out.weight")
        vq["decoder"] = {"kind": "CNN (taming Decoder)", "z_channels": dci[1], "downsample_factor": downsample_factor(levels),
                         "out_channels": dco[0] if dco else None}
    elif (lat := _shape(state, "decoder.latent_embed.weight")) is not None:
        stages = _count(state, r"decoder\.stages\.(\d+)\.")
        vq["decoder"] = {"kind": "HiT", "z_channels": lat[1], "downsample_factor": downsample_factor(stages),
                         "stages": stages}
    loss = sum(1 for k in state if k.startswith("loss."))
    if loss:
        vq["loss_tensors"] = loss
    return vq


def _describe_transformer(state: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    tok = _shape(state, "transformer.tok_emb.weight")
    if tok is None:
        return None
    pos = _shape(state, "transformer.pos_emb")
    return {"vocab_size": tok[0], "n_embd": tok[1], "n_layer": _count(state, r"transformer\.blocks\.(\d+)\."),
            "block_size": pos[1] if pos else None}


def describe_checkpoint(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> dict[str, Any]:
    """A JSON-friendly summary of ``path``: layout, components (tensor and element counts), and for
    VQ models the encoder, codebook, decoder and downsampling factor."""
    loaded, state = read_weights(path, allow_unsafe_pickle=allow_unsafe_pickle)
    path = Path(path)
    info: dict[str, Any] = {"file": str(path), "size_bytes": path.stat().st_size, "container": loaded.container}
    if loaded.container == "safetensors":
        fmt = loaded.metadata.get("format")
        info["layout"] = {_FORMAT_VQMODEL: "hit-decoder VQ model", FORMAT_DECODER: "hit-decoder decoder"}.get(
            fmt, "safetensors state dict")
        if "config" in loaded.metadata:
            info["config"] = json.loads(loaded.metadata["config"])
    else:
        payload = loaded.payload
        info["layout"] = "Lightning checkpoint" if isinstance(payload, Mapping) and "state_dict" in payload \
            else "plain state dict"
        if isinstance(payload, Mapping):
            info["training"] = {k: payload[k] for k in ("epoch", "global_step", "pytorch-lightning_version")
                                if isinstance(payload.get(k), (int, str))}
    if loaded.placeholders:
        info["not_loaded"] = loaded.placeholders
    if loaded.unpickled_unsafely:
        info["unpickled_unsafely"] = True
    if info["layout"] == "hit-decoder decoder":
        state = {f"decoder.{k}": v for k, v in state.items()}
    info["components"] = _components(state)
    if any(k.startswith(FIRST_STAGE_PREFIX) for k in state):
        info["layout"] += " (Net2NetTransformer)"
        info["transformer"] = _describe_transformer(state)
    info["vq"] = _describe_vq(first_stage_state(state))
    return info


def _line(label: str, d: Mapping[str, Any]) -> str:
    return f"  {label}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items() if v is not None)


def format_description(info: Mapping[str, Any]) -> str:
    """Human-readable text for :func:`describe_checkpoint`'s result."""
    out = [f"{info['file']}: {info['layout']} ({info['container']}, {info['size_bytes'] / 1e6:.2f} MB)"]
    if info.get("training"):
        out.append(_line("training state", info["training"]))
    if info.get("not_loaded"):
        out.append("  pickled objects not loaded (inert placeholders, no code run): " + ", ".join(info["not_loaded"]))
    if info.get("unpickled_unsafely"):
        out.append("  read with full unpickling (allow_unsafe_pickle)")
    out.append("components:")
    for comp, c in info["components"].items():
        out.append(f"  {comp:<20} {c['tensors']:>6} tensors {c['elements'] / 1e6:>10.3f}M elements")
    vq = info.get("vq") or {}
    if vq:
        out.append("VQ model:")
        for key in ("encoder", "quant_conv", "codebook", "post_quant_conv", "decoder"):
            if key in vq:
                out.append(_line(key.replace("_", " "), vq[key]))
        if "loss_tensors" in vq:
            out.append(f"  loss: {vq['loss_tensors']} tensors (training loss; ignored for inference)")
    if info.get("transformer"):
        out.append(_line("transformer (GPT)", info["transformer"]))
    if info.get("config"):
        out.append("config (from the file's metadata):")
        out.append("  " + json.dumps(info["config"], sort_keys=True))
    return "\n".join(out)
