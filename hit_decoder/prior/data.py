"""What a prior learns from: the first stage (VQ model) whose codes it models, every source image
encoded once into a code grid (plus its mirror image), and random ``crop x crop`` windows of those
grids (:class:`CodeCropDataset`), reproducible per stream position."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..common.data import EMBEDDED_TRAIN, embedded_photographs, resolve_images, sample_generator
from ..images import UNREADABLE_IMAGE_ERRORS, fit_to_factor, load_rgb
from .config import FirstStageConfig, PriorDataConfig

__all__ = ["load_first_stage", "encode_grids", "CodeCropDataset", "collate_crops"]

log = logging.getLogger("hit_decoder.prior")


def load_first_stage(cfg: FirstStageConfig, seed: int = 0, *, allow_unsafe_pickle: bool = False) -> tuple[nn.Module, str]:
    """The VQ model whose codes the prior learns, and a description of where it came from
    (``allow_unsafe_pickle``: full unpickling of ``taming_ckpt``, trusted files only)."""
    from .. import adapters

    if cfg.model:
        return adapters.load_model(cfg.model), f"VQ model {cfg.model}"
    if cfg.taming_config:
        vq = adapters.load_vqgan(cfg.taming_config, cfg.taming_ckpt, allow_unsafe_pickle=allow_unsafe_pickle)
        return vq, f"taming VQGAN {cfg.taming_config}" + (f" + {cfg.taming_ckpt}" if cfg.taming_ckpt else " (random weights)")
    from ..training import load_train_config
    from ..training.models import build_models

    train_cfg = load_train_config(cfg.untrained, [f"seed={seed}"])
    log.warning("first_stage.untrained=%s: the prior learns the codes of an UNTRAINED VQ model (smoke test). "
                "Train one with `hit-decoder train --config %s` and set first_stage.model=<out_dir>/export/model.safetensors",
                cfg.untrained, cfg.untrained)
    return build_models(train_cfg).vq.eval(), f"untrained first stage of training config {cfg.untrained!r}"


def _images(cfg: PriorDataConfig) -> list[tuple[str, Any, str]]:
    """``(name, PIL image, class name)`` for every source image."""
    if cfg.images is None:
        return [(n, img, n) for n, img in embedded_photographs(EMBEDDED_TRAIN)]
    root = Path(cfg.images).expanduser()
    out = []
    for p in resolve_images(cfg.images, cfg.root):
        try:
            img = load_rgb(p)
        except UNREADABLE_IMAGE_ERRORS as exc:
            log.warning("skipping unreadable image %s (%s: %s)", p, type(exc).__name__, exc)
            continue
        parent = p.parent.relative_to(root).as_posix() if p.parent != root and root in p.parents else ""
        out.append((str(p), img, parent))
    if not out:
        raise ValueError(f"no readable images under {cfg.images}")
    return out


@torch.no_grad()
def encode_grids(vq: nn.Module, cfg: PriorDataConfig, class_ids: bool) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """Encode every source image (and its mirror) once: code grids ``(h, w)``, class ids, class names."""
    from .. import adapters

    factor = adapters.downsample_factor(vq)
    images = _images(cfg)
    names = sorted({c for _, _, c in images})
    if class_ids and names == [""]:
        raise ValueError(f"conditioning=class needs one subfolder per class under {cfg.images}; all images are in the top folder")
    grids, labels = [], []
    for name, img, cls in images:
        x = fit_to_factor(img, factor, cfg.resize)
        if min(x.shape[1:]) < cfg.crop * factor:
            raise ValueError(
                f"image {name} is {x.shape[2]}x{x.shape[1]} px after resizing, below one {cfg.crop}x{cfg.crop}-code crop "
                f"({cfg.crop * factor} px at f{factor}); raise data.resize or lower data.crop"
            )
        for view in ([x, x.flip(-1)] if cfg.flip else [x]):
            grids.append(adapters.encode_indices(vq, view[None].to(vq.post_quant_conv.weight))[0].cpu())  # (h, w)
            labels.append(names.index(cls))
    return grids, labels, names


class CodeCropDataset(torch.utils.data.Dataset):
    """Random ``crop x crop`` windows of code grids; the crop of stream position ``p`` is a pure
    function of ``(seed, p)`` (keys come from :class:`~hit_decoder.common.loaders.StepBatchSampler`)."""

    def __init__(self, grids: list[torch.Tensor], labels: list[int], crop: int, seed: int, crops_per_grid: int) -> None:
        self.grids, self.labels, self.crop, self.seed = grids, labels, crop, seed
        self.crops_per_grid = crops_per_grid

    def __len__(self) -> int:
        return len(self.grids) * self.crops_per_grid

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        index, position = key if isinstance(key, tuple) else (int(key), int(key))
        k = index % len(self.grids)
        grid, gen = self.grids[k], sample_generator(self.seed, position)
        top = int(torch.randint(0, grid.shape[0] - self.crop + 1, (1,), generator=gen))
        left = int(torch.randint(0, grid.shape[1] - self.crop + 1, (1,), generator=gen))
        return {"codes": grid[top : top + self.crop, left : left + self.crop], "label": torch.tensor(self.labels[k])}


def collate_crops(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {"codes": torch.stack([it["codes"] for it in items]), "label": torch.stack([it["label"] for it in items])}


