"""Training and validation images.

Sources, checked at start-up (before any model is built):

* an image folder, searched recursively for common formats (:data:`IMAGE_EXTENSIONS`);
* a taming-style file list (a ``.txt`` with one image path per line; relative paths are
  resolved against ``data.root`` or the list's own folder);
* nothing: the embedded default, photographs bundled with scikit-image (no download), with a
  fixed held-out set of photographs (:data:`EMBEDDED_VAL`) for validation.

Training samples are random crops (+ horizontal flips). Their randomness is a pure function of
``(seed, position in the sample stream)``, and :class:`StepBatchSampler` maps training batch
``b`` to stream positions, so a run resumed at batch ``b`` sees exactly the data an
uninterrupted run would have seen, with any number of loader workers or DDP ranks.

Batching (the samplers and loaders) is in :mod:`hit_decoder.common.loaders`.

An unreadable or corrupt file is skipped with a warning naming it; the sample comes from the
next readable file and carries ``skipped`` (how many files were passed over) and ``unreadable``
(which); the training module logs how many distinct files could not be read (``data/skipped_images``,
validation images dropped at start-up included).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..images import UNREADABLE_IMAGE_ERRORS, load_rgb, resize_shorter, to_tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "EMBEDDED_TRAIN",
    "EMBEDDED_VAL",
    "list_images",
    "read_file_list",
    "resolve_images",
    "load_rgb",
    "embedded_photographs",
    "random_crop_flip",
    "center_crop",
    "sample_generator",
    "ImageFileDataset",
    "PhotoCropDataset",
    "DataSplits",
    "build_data",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm")

# scikit-image's bundled photographs (shipped in its wheel: no download): mostly colour, a few
# grayscale ones (replicated to RGB). The validation photographs are never used for training.
EMBEDDED_TRAIN = (
    "astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "immunohistochemistry",
    "retina", "camera", "coins", "grass", "brick",
)
EMBEDDED_VAL = ("chelsea", "coffee")


# ----------------------------------------------------------------------------- sources
def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted). Missing or empty folder -> error."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist; check data.train / data.val / --data")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder (expected a folder of images or a .txt file list)")
    files, seen_files, seen_dirs = [], set(), set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        # follow links into other folders, but enter each real folder once (no loops, no repeats)
        seen_dirs.add(os.path.realpath(dirpath))
        dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in seen_dirs)
        seen_dirs.update(os.path.realpath(os.path.join(dirpath, d)) for d in dirnames)
        for f in sorted(filenames):
            real = os.path.realpath(os.path.join(dirpath, f))
            # one image, counted once; only regular files (a named pipe called b.png would block reading)
            if f.lower().endswith(IMAGE_EXTENSIONS) and real not in seen_files and os.path.isfile(real):
                seen_files.add(real)
                files.append(Path(dirpath) / f)
    if not files:
        raise ValueError(
            f"image folder {folder} holds no images (searched recursively for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


def read_file_list(list_file: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Paths from a taming-style list file (one per line; ``#`` comments and blank lines ignored).

    Listed files that do not exist are dropped with one warning naming them; a list with no
    existing file is an error.
    """
    list_file = Path(list_file).expanduser()
    if not list_file.is_file():
        raise FileNotFoundError(f"image list file {list_file} does not exist")
    base = Path(root).expanduser() if root is not None else list_file.parent
    lines = [ln.strip() for ln in list_file.read_text().splitlines()]
    paths = [Path(ln) if Path(ln).is_absolute() else base / ln for ln in lines if ln and not ln.startswith("#")]
    if not paths:
        raise ValueError(f"image list file {list_file} lists no images")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        log.warning("%s: %d listed image(s) do not exist and are skipped: %s", list_file, len(missing), shown)
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise FileNotFoundError(
            f"none of the images listed in {list_file} exist (relative paths are resolved against {base}; "
            "set data.root to change that)"
        )
    return paths


def resolve_images(spec: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """A folder (recursive) or a ``.txt`` file list -> image paths."""
    p = Path(spec).expanduser()
    if p.suffix.lower() in (".txt", ".lst", ".list") or p.is_file():
        return read_file_list(p, root)
    return list_images(p)


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data as skd

    if name in ("motorcycle_left", "motorcycle_right"):  # the two views of a stereo pair
        arr = skd.stereo_motorcycle()[0 if name == "motorcycle_left" else 1]
    else:
        arr = getattr(skd, name)()
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def embedded_photographs(names: Sequence[str]) -> list[tuple[str, Image.Image]]:
    """scikit-image's bundled photographs as RGB PIL images (gray ones replicated to RGB)."""
    return [(n, Image.fromarray(_skimage_photo(n))) for n in names]


# ----------------------------------------------------------------------------- augmentation
def sample_generator(seed: int, position: int) -> torch.Generator:
    """The random generator of sample ``position`` of run ``seed`` (independent of workers/ranks)."""
    return torch.Generator().manual_seed((int(seed) * 0x9E3779B1 + int(position) * 0x85EBCA77 + 1) % (2 ** 63 - 1))


def _prepare(img: Image.Image, size: int, resize: int | None) -> Image.Image:
    if resize is not None:
        return resize_shorter(img, resize)
    if min(img.size) < size:
        return resize_shorter(img, size)
    return img


def random_crop_flip(img: Image.Image, size: int, resize: int | None, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """A random ``size``² crop (after optional resizing), flipped with probability ½: ``(3, size, size)``."""
    img = _prepare(img, size, resize)
    w, h = img.size
    top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
    left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
    out = to_tensor(img.crop((left, top, left + size, top + size)))
    if flip and bool(torch.rand((), generator=gen) < 0.5):
        out = out.flip(-1)
    return out


def center_crop(img: Image.Image, size: int, resize: int | None) -> torch.Tensor:
    img = _prepare(img, size, resize)
    w, h = img.size
    top, left = (h - size) // 2, (w - size) // 2
    return to_tensor(img.crop((left, top, left + size, top + size)))


# ----------------------------------------------------------------------------- datasets
class ImageFileDataset(Dataset):
    """Images from files. Training keys are ``(index, position)`` pairs from
    :class:`StepBatchSampler` (random crop seeded by position); validation keys are plain indices
    (centre crop). Items: ``{"image": (3, size, size) in [-1, 1], "skipped": int, "unreadable": [int]}``
    (how many files were passed over for this sample, and their indices)."""

    def __init__(self, paths: Sequence[Path], size: int, resize: int | None = None, flip: bool = True,
                 seed: int = 0, train: bool = True) -> None:
        if not paths:
            raise ValueError("ImageFileDataset needs at least one image path")
        self.paths = list(paths)
        self.size, self.resize, self.flip, self.seed, self.train = size, resize, flip, seed, train
        self._bad: set[int] = set()  # per process: files already reported

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> Image.Image | None:
        if i in self._bad:
            return None
        try:
            return load_rgb(self.paths[i])
        except UNREADABLE_IMAGE_ERRORS as exc:
            self._bad.add(i)
            log.warning("skipping unreadable image %s (%s: %s)", self.paths[i], type(exc).__name__, exc)
            return None

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, position = key if isinstance(key, tuple) else (int(key), int(key))
        n = len(self.paths)
        for skipped in range(n):
            img = self._read((index + skipped) % n)
            if img is not None:
                break
        else:
            raise RuntimeError(f"none of the {n} images could be read (first: {self.paths[0]}); see the warnings above")
        if self.train:
            x = random_crop_flip(img, self.size, self.resize, self.flip, sample_generator(self.seed, position))
        else:
            x = center_crop(img, self.size, self.resize)
        return {"image": x, "skipped": skipped, "unreadable": [(index + s) % n for s in range(skipped)]}


class PhotoCropDataset(Dataset):
    """Crops of in-memory photographs (the embedded default).

    Training: ``crops_per_image`` random crops per photograph per data epoch, seeded by stream
    position. Validation (``train=False``): ``crops_per_image`` fixed crops per photograph at
    positions that depend only on the photograph index (the same for every run).
    """

    def __init__(self, photos: Sequence[tuple[str, Image.Image]], size: int, resize: int | None = None,
                 flip: bool = True, seed: int = 0, crops_per_image: int = 64, train: bool = True) -> None:
        if not photos:
            raise ValueError("PhotoCropDataset needs at least one photograph")
        self.names = [n for n, _ in photos]
        self.images = [_prepare(img, size, resize) for _, img in photos]
        self.size, self.flip, self.seed, self.train = size, flip, seed, train
        self.crops_per_image = crops_per_image

    def __len__(self) -> int:
        return len(self.images) * self.crops_per_image

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, position = key if isinstance(key, tuple) else (int(key), int(key))
        img = self.images[index % len(self.images)]
        if self.train:
            gen = sample_generator(self.seed, position)
            x = random_crop_flip(img, self.size, None, self.flip, gen)
        else:
            gen = sample_generator(-1, index)  # fixed validation crops, the same in every run
            x = random_crop_flip(img, self.size, None, False, gen)
        return {"image": x, "skipped": 0, "unreadable": []}


# ----------------------------------------------------------------------------- assembly
@dataclass
class DataSplits:
    train: Dataset
    val: Dataset
    description: str
    unreadable_at_start: int = 0  # validation images dropped at start-up because they do not decode


def _split_val(paths: list[Path], fraction: float, max_images: int, seed: int) -> tuple[list[Path], list[Path]]:
    if len(paths) < 2:
        raise ValueError(
            f"{paths[0].parent} holds a single image: need at least 2 to hold one out for validation, "
            "or give a separate validation folder with data.val"
        )
    k = min(max(1, round(len(paths) * fraction)), max_images, len(paths) - 1)
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    val_idx = set(order[:k])
    return [p for i, p in enumerate(paths) if i not in val_idx], [p for i, p in enumerate(paths) if i in val_idx]


def readable_images(paths: list[Path], what: str) -> list[Path]:
    """The paths that decode, checked now (validation images: a bad one must not end a run after
    training); unreadable ones are dropped with a warning naming them, none readable is an error."""
    good = []
    for p in paths:
        try:
            load_rgb(p)
            good.append(p)
        except UNREADABLE_IMAGE_ERRORS as exc:
            log.warning("%s: skipping unreadable validation image %s (%s: %s)", what, p, type(exc).__name__, exc)
    if not good:
        raise ValueError(f"{what}: none of the {len(paths)} validation images can be read (first: {paths[0]}); "
                         "fix or replace them, or point data.val at a folder of readable images")
    return good


def build_data(cfg: Any, seed: int) -> DataSplits:
    """Train/val datasets from a :class:`~hit_decoder.training.config.DataConfig` (start-up checks here)."""
    if cfg.train is None:
        if cfg.val is not None:
            raise ValueError("data.val is set but data.train is not: give both, or neither for the embedded photographs")
        names = tuple(getattr(cfg, "embedded_train", None) or EMBEDDED_TRAIN)
        train = PhotoCropDataset(embedded_photographs(names), cfg.size, cfg.resize, cfg.flip, seed,
                                 cfg.epoch_crops_per_image, train=True)
        val = PhotoCropDataset(embedded_photographs(EMBEDDED_VAL), cfg.size, cfg.resize, False, seed,
                               cfg.val_crops_per_image, train=False)
        desc = (f"embedded scikit-image photographs: train {len(names)} ({', '.join(names)}), "
                f"val {len(EMBEDDED_VAL)} held out ({', '.join(EMBEDDED_VAL)}) x {cfg.val_crops_per_image} crops")
        return DataSplits(train, val, desc)
    train_paths = resolve_images(cfg.train, cfg.root)
    if cfg.val is not None:
        val_paths = resolve_images(cfg.val, cfg.root)[: cfg.val_max_images]
        how = f"from {cfg.val}"
    else:
        train_paths, val_paths = _split_val(train_paths, cfg.val_fraction, cfg.val_max_images, seed)
        how = f"held out from {cfg.train} (data.val_fraction={cfg.val_fraction})"
    listed = len(val_paths)
    val_paths = readable_images(val_paths, "data.val" if cfg.val is not None else "data.train (held-out part)")
    train = ImageFileDataset(train_paths, cfg.size, cfg.resize, cfg.flip, seed, train=True)
    val = ImageFileDataset(val_paths, cfg.size, cfg.resize, False, seed, train=False)
    return DataSplits(train, val,
                      f"{len(train_paths)} training images from {cfg.train}, {len(val_paths)} validation images {how}",
                      unreadable_at_start=listed - len(val_paths))
