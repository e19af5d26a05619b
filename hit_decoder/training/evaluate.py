"""Evaluating reconstructions: a loop over image batches, whole held-out photographs scored one by
one (PSNR, SSIM, seam ratios), interleaved timing, and PNG grids for eyes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from ..common.data import EMBEDDED_VAL, embedded_photographs
from ..common.metrics import psnr, seam_periods, seam_ratio, ssim, to_unit_range
from ..images import fit_to_factor, tensor_to_pil

__all__ = ["evaluate_reconstructions", "image_grid", "held_out_images", "score_images", "mean_scores",
           "interleaved_seconds"]


@torch.no_grad()
def evaluate_reconstructions(
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[torch.Tensor],
    *,
    perceptual: torch.nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Mean PSNR / SSIM (and LPIPS, if a real-weights LPIPS is given) over images in [-1, 1].

    ``batches`` yields ``(B, 3, H, W)`` tensors; ``reconstruct`` maps them to reconstructions of
    the same shape. Per-image values are averaged with equal weight per image.
    """
    sums: dict[str, float] = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0}
    n = 0
    use_lpips = perceptual is not None and not getattr(perceptual, "random_backbone", True)
    for x in batches:
        x = x.to(device)
        xrec = reconstruct(x).float()
        a, r = to_unit_range(x), to_unit_range(xrec)
        sums["psnr"] += float(psnr(a, r).sum())
        sums["ssim"] += float(ssim(a, r).sum()) if min(x.shape[-2:]) >= 11 else float("nan")
        if use_lpips:
            sums["lpips"] += float(perceptual(x.float(), xrec).flatten(1).mean(1).sum())
        n += x.shape[0]
    if n == 0:
        raise ValueError("evaluate_reconstructions: no images to evaluate")
    out: dict[str, Any] = {"images": n, "psnr": sums["psnr"] / n, "ssim": sums["ssim"] / n}
    if use_lpips:
        out["lpips"] = sums["lpips"] / n
    return out


def image_grid(rows: list[torch.Tensor], pad: int = 2) -> Image.Image:
    """Rows of ``(B, 3, H, W)`` image batches in [-1, 1] (same shapes) -> one grid image."""
    if not rows:
        raise ValueError("image_grid needs at least one row")
    b, _, h, w = rows[0].shape
    grid = Image.new("RGB", (b * w + (b + 1) * pad, len(rows) * h + (len(rows) + 1) * pad), (255, 255, 255))
    for r, batch in enumerate(rows):
        if batch.shape != rows[0].shape:
            raise ValueError(f"image_grid: row {r} has shape {tuple(batch.shape)}, expected {tuple(rows[0].shape)}")
        for c in range(b):
            grid.paste(tensor_to_pil(batch[c]), (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def held_out_images(factor: int, side: int = 256, names: Sequence[str] = EMBEDDED_VAL) -> dict[str, torch.Tensor]:
    """The held-out embedded photographs WHOLE: shorter side ``side``, sides cut (centred) to
    multiples of ``factor``; ``{name: (1, 3, h, w) in [-1, 1]}``."""
    return {name: fit_to_factor(img, factor, resize=side)[None] for name, img in embedded_photographs(names)}


def score_images(x: torch.Tensor, xrec: torch.Tensor, factor: int) -> dict[str, float]:
    """PSNR, SSIM and the seam ratio at periods 2, 4, ..., ``factor`` (``seam_p{p}``) of one
    reconstruction: ``(1, 3, h, w)`` tensors in [-1, 1]."""
    a, r = to_unit_range(x), to_unit_range(xrec)
    return {"psnr": float(psnr(a, r)[0]), "ssim": float(ssim(a, r)[0]),
            **{f"seam_p{p}": float(seam_ratio(r, p)[0]) for p in seam_periods(factor)}}


def mean_scores(per_image: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of every numeric score over images (equal weight per image)."""
    rows = list(per_image.values())
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
    return {k: statistics.fmean(float(r[k]) for r in rows) for k in keys}


def interleaved_seconds(tasks: Mapping[str, Callable[[], Any]], repeats: int = 3) -> dict[str, float]:
    """Median wall seconds of each task, run once to warm up and then ``repeats`` times, the tasks
    interleaved (so that a change in machine load hits all of them alike)."""
    for task in tasks.values():
        task()
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for _ in range(max(1, repeats)):
        for k, task in tasks.items():
            t = time.perf_counter()
            task()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}
