"""Image I/O shared by training, reconstruction, the prior and sampling: decode a file to RGB,
resize, fit to a model's downsampling factor, convert to and from ``[-1, 1]`` tensors, write PNGs.

:data:`UNREADABLE_IMAGE_ERRORS` is the one list of errors that mean "this file is not a readable
image" (skip it with a warning and count it), Pillow's decompression-bomb error among them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_path

__all__ = [
    "UNREADABLE_IMAGE_ERRORS",
    "load_rgb",
    "resize_shorter",
    "to_tensor",
    "fit_to_factor",
    "tensor_to_pil",
    "save_png",
]

#: what decoding a corrupt, truncated, oversized (decompression bomb) or foreign file raises
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)

#: full scale of high-bit-depth PIL modes (16-bit PNG / TIFF open as "I;16*", or as "I" in older Pillow)
_FULL_SCALE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image fully and convert it to RGB (gray, palette, alpha, CMYK all accepted).

    High-bit-depth images are scaled by their bit depth, never by their own range: a 16-bit white
    pixel (65535) becomes 255, a float pixel 1.0 becomes 255."""
    with Image.open(path) as img:
        img.load()
        if img.mode in _FULL_SCALE:
            arr = np.asarray(img, dtype=np.float64)
            if img.mode == "I" and (arr.min() < 0 or arr.max() > 65535):
                raise ValueError(f"{path}: 32-bit integer pixels outside the 16-bit range [0, 65535] "
                                 f"(found {arr.min():.0f}..{arr.max():.0f}); convert the image to 8 or 16 bits")
            scaled = np.clip(np.rint(arr / _FULL_SCALE[img.mode] * 255.0), 0, 255)
            img = Image.fromarray(scaled.astype(np.uint8))
        return img.convert("RGB")


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """Bicubic resize so that the shorter side is ``side`` pixels (the image itself if it already is)."""
    w, h = img.size
    s = side / min(w, h)
    if abs(s - 1.0) < 1e-9:
        return img
    return img.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BICUBIC)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``(3, H, W)`` float tensor in [-1, 1]."""
    arr = np.asarray(img, dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)  # (3, H, W) in [-1, 1]


def fit_to_factor(img: Image.Image, factor: int, resize: int | None = None) -> torch.Tensor:
    """Optionally resize (shorter side = ``resize``), then centre-crop to multiples of ``factor``:
    ``(3, H, W)`` in [-1, 1]. An image smaller than ``factor`` is a ``ValueError``."""
    if resize is not None:
        img = resize_shorter(img, resize)
    w, h = img.size
    W, H = w // factor * factor, h // factor * factor
    if W == 0 or H == 0:
        raise ValueError(f"{w}x{h} px is smaller than the model's factor {factor}")
    left, top = (w - W) // 2, (h - H) // 2
    return to_tensor(img.crop((left, top, left + W, top + H)))  # (3, H, W)


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` in [-1, 1] -> RGB PIL image."""
    unit = ((x.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0)  # (3, H, W) in [0, 1]
    arr = (unit.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr)


def save_png(img: Image.Image, path: str | os.PathLike) -> Path:
    """Write ``img`` as PNG atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
