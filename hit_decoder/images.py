"""Image I/O shared by training, reconstruction, the prior and sampling: decode a file to RGB,
resize, fit to a model's downsampling factor, convert to and from ``[-1, 1]`` tensors, write PNGs.

:data:`UNREADABLE_IMAGE_ERRORS` is the one list of errors that mean "this file is not a readable
image" (skip it with a warning and count it), Pillow's decompression-bomb error among them."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .fileio import atomic_path

__all__ = [
    "UNREADABLE_IMAGE_ERRORS",
    "MAX_PIXELS",
    "image_size",
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


#: most pixels an image may have to be decoded: Pillow's decompression-bomb warning level (about
#: 89 Mpx, 268 MB as RGB); larger images are refused from their header, before decoding
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def _open(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` of a regular file (a named pipe or device would block or never end) whose header
    size is at most :data:`MAX_PIXELS` (a 17 KB PNG can claim 12000 x 12000 px)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path} is not a regular file (a named pipe, device or socket); only regular files are read")
    with warnings.catch_warnings():  # Pillow warns above MAX_PIXELS (errors above twice that); refused below
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(path)
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ValueError(f"{path}: {w}x{h} px ({w * h / 1e6:.0f} Mpx, read from its header) is more than the "
                         f"{MAX_PIXELS / 1e6:.0f} Mpx this library decodes (a decompression bomb, or a very large "
                         "image); downscale it first")
    return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding (errors as :func:`load_rgb`)."""
    with _open(path) as img:
        return img.size


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image fully and convert it to RGB (gray, palette, alpha, CMYK all accepted), upright
    as its EXIF orientation says (camera photographs).

    High-bit-depth images are scaled by their bit depth, never by their own range: a 16-bit white
    pixel (65535) becomes 255, a float pixel 1.0 becomes 255 (float pixels outside [0, 1] are an error)."""
    with _open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in _FULL_SCALE:
            arr = np.asarray(img, dtype=np.float64)
            if img.mode == "I" and (arr.min() < 0 or arr.max() > 65535):
                raise ValueError(f"{path}: 32-bit integer pixels outside the 16-bit range [0, 65535] "
                                 f"(found {arr.min():.0f}..{arr.max():.0f}); convert the image to 8 or 16 bits")
            if img.mode == "F" and not (np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1):
                raise ValueError(f"{path}: float pixels outside [0, 1] (found {np.nanmin(arr):g}..{np.nanmax(arr):g}); "
                                 "float images are read as 0 = black, 1 = white: rescale it, or save it as 8 or 16 bits")
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
