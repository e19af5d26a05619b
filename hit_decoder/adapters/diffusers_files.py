"""Reading and writing diffusers ``VQModel``s: local folders (``config.json`` +
``diffusion_pytorch_model.safetensors``) and the library's one-file format, strictly and from
safetensors only, never from the network. Part of :mod:`hit_decoder.adapters.diffusers`."""

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

from hit_decoder.config import HiTDecoderConfig
from hit_decoder.decoder import HiTDecoder
from hit_decoder.fileio import atomic_path
from hit_decoder.metadata import build_and_load, metadata_json
from hit_decoder.serialization import read_safetensors, write_safetensors

from ..checkpoints import load_checkpoint_state
from .diffusers_decoder import FORMAT_VERSION, HIT_KEY, VQModel, check_vqmodel, swap_decoder
from .sources import FORMAT_DIFFUSERS_VQMODEL, looks_like_hub_id

__all__ = ["load_vqmodel", "read_config", "read_source", "save_vqmodel", "export_diffusers", "CONFIG_NAME",
           "WEIGHTS_NAME", "FORMAT_DIFFUSERS_VQMODEL"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
#: keys diffusers writes into every config.json besides the constructor's arguments
_BOOKKEEPING_KEYS = frozenset({"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values"})
_MAX_CONFIG_BYTES = 1_000_000
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _vqmodel_parameters() -> list[str]:
    return [n for n in inspect.signature(VQModel.__init__).parameters if n != "self"]


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
        if looks_like_hub_id(text):
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
        if str(hit["version"]) != FORMAT_VERSION:
            raise ValueError(f"{source}: {HIT_KEY} version {hit['version']!r} is not one this hit-decoder reads "
                             f"({FORMAT_VERSION}); upgrade hit-decoder to read it")
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
        state, meta = read_safetensors(path, FORMAT_DIFFUSERS_VQMODEL, FORMAT_VERSION, tensors=tensors)
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
        config[HIT_KEY] = {"version": FORMAT_VERSION, "decoder": model.decoder.config.to_dict()}
    return config


def save_vqmodel(model: VQModel, path: str | os.PathLike) -> Path:
    """Write ``model`` (diffusers config + weights) to one ``.safetensors`` file atomically; the file
    alone rebuilds it (:func:`load_vqmodel`)."""
    check_vqmodel(model, "save_vqmodel")
    meta = {"format": FORMAT_DIFFUSERS_VQMODEL, "version": FORMAT_VERSION, "config": json.dumps(_config_of(model))}
    return write_safetensors(path, model.state_dict(), meta)


def export_diffusers(model: VQModel, folder: str | os.PathLike) -> Path:
    """Write ``model`` as a diffusers-style folder: ``config.json`` (``_class_name: VQModel``, its
    arguments, and for a HiT decoder the ``hit_decoder`` entry) and ``diffusion_pytorch_model.safetensors``.
    Each file is written atomically, the weights first, so a folder with a config.json is complete.
    :func:`load_vqmodel` reads it back; what diffusers itself makes of it is in docs/diffusers.md."""
    check_vqmodel(model, "export_diffusers")
    folder = Path(folder)
    write_safetensors(folder / WEIGHTS_NAME, model.state_dict(), {"format": "pt"})
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(_config_of(model), indent=2, sort_keys=True) + "\n")
    return folder
