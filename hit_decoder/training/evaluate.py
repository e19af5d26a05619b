"""Evaluating reconstructions: a loop over image batches, and PNG grids for eyes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from PIL import Image

from ..images import tensor_to_pil
from .metrics import psnr, ssim, to_unit_range

__all__ = ["evaluate_reconstructions", "image_grid"]


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
