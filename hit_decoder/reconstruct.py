"""Reconstruct a folder of images with a VQ model and score them (PSNR, SSIM and seam ratios per image)."""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .fileio import atomic_path, claim_outputs
from .images import UNREADABLE_IMAGE_ERRORS, fit_to_factor, load_rgb, save_png, tensor_to_pil
from .common.data import list_images
from .common.metrics import psnr, seam_periods, seam_ratio, ssim, to_unit_range

__all__ = ["ReconstructionReport", "reconstruct_folder", "claim_reconstruction_outputs"]

log = logging.getLogger(__name__)


@dataclass
class ReconstructionReport:
    rows: list[dict[str, object]] = field(default_factory=list)  # image, width, height, psnr, ssim, seam_p*
    skipped: list[str] = field(default_factory=list)
    periods: list[int] = field(default_factory=list)  # seam-ratio periods (2, 4, ..., the model's factor)

    def _mean(self, key: str) -> float:
        vals = [float(r[key]) for r in self.rows if r[key] != ""]
        return sum(vals) / len(vals) if vals else float("nan")

    @property
    def mean_psnr(self) -> float:
        return self._mean("psnr")

    @property
    def mean_ssim(self) -> float:
        return self._mean("ssim")

    def mean_seam(self, period: int) -> float:
        return self._mean(f"seam_p{period}")

    @property
    def fieldnames(self) -> list[str]:
        return ["image", "width", "height", "psnr", "ssim", *(f"seam_p{p}" for p in self.periods)]

    def markdown(self) -> str:
        fmt = lambda v, spec: format(float(v), spec) if v != "" else "n/a"  # noqa: E731
        seam_head = "".join(f" seam p{p} |" for p in self.periods)
        lines = [f"| image | size | PSNR (dB) | SSIM |{seam_head}", "|---|---|---:|---:|" + "---:|" * len(self.periods)]
        for r in self.rows:
            seams = "".join(f" {fmt(r[f'seam_p{p}'], '.2f')} |" for p in self.periods)
            lines.append(f"| {r['image']} | {r['width']}x{r['height']} | {float(r['psnr']):.2f} | {fmt(r['ssim'], '.4f')} |{seams}")
        seams = "".join(f" **{self.mean_seam(p):.2f}** |" for p in self.periods)
        lines.append(f"| **mean of {len(self.rows)}** | | **{self.mean_psnr:.2f}** | **{self.mean_ssim:.4f}** |{seams}")
        lines += ["", "Seam ratio at period p: mean |luminance step| across the lines of a p-pixel grid / mean elsewhere "
                  "(about 1.0 for a photograph; above 1: the decoder paints its code cells, p = the factor, or its "
                  "upsampling pattern, p = 2)."]
        return "\n".join(lines)


def claim_reconstruction_outputs(images: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool) -> None:
    """Before reconstructing: ``out_dir`` must not hold an earlier run's metrics or a PNG this run
    would write, unless ``overwrite`` (then those, and the PNGs the earlier metrics.csv lists, are
    removed first, so no stale reconstruction is left looking current)."""
    root, out = Path(images), Path(out_dir)
    names = ["metrics.csv", "metrics.md", *(str(p.relative_to(root).with_suffix(".png")) for p in list_images(root))]
    earlier = out / "metrics.csv"
    if overwrite and earlier.is_file():
        with open(earlier, newline="") as fh:
            names += [str(Path(row.get("image") or "").with_suffix(".png")) for row in csv.DictReader(fh)
                      if row.get("image") and not Path(row["image"]).is_absolute() and ".." not in Path(row["image"]).parts]
    claim_outputs(out, names, overwrite=overwrite, what="--out",
                  how="pass --overwrite to replace them, or choose another --out")


@torch.no_grad()
def reconstruct_folder(vq: nn.Module, images: str | os.PathLike, out_dir: str | os.PathLike, *,
                       resize: int | None = None, device: str | torch.device = "cpu") -> ReconstructionReport:
    """Reconstruct every image under ``images`` (recursive) into ``out_dir`` (same relative paths, PNG).

    Images are optionally resized (shorter side = ``resize``), then centre-cropped to multiples of
    the model's factor. Writes ``metrics.csv`` and ``metrics.md`` next to the reconstructions.
    Unreadable files are skipped with a warning and listed in the report.
    """
    from . import adapters

    root, out = Path(images), Path(out_dir)
    paths = list_images(root)
    f = adapters.downsample_factor(vq)
    vq = vq.to(device).eval()
    report = ReconstructionReport(periods=seam_periods(f))
    for path in paths:
        try:
            img = load_rgb(path)
        except UNREADABLE_IMAGE_ERRORS as exc:
            log.warning("skipping unreadable image %s (%s: %s)", path, type(exc).__name__, exc)
            report.skipped.append(str(path))
            continue
        try:
            x = fit_to_factor(img, f, resize)[None].to(device)  # (1, 3, h, w)
        except ValueError as exc:
            log.warning("skipping %s: %s", path, exc)
            report.skipped.append(str(path))
            continue
        h, w = x.shape[-2:]
        quant, _, _ = vq.encode(x)
        xrec = vq.decode(quant).float()  # (1, 3, h, w)
        a, r = to_unit_range(x), to_unit_range(xrec)
        rel = path.relative_to(root).with_suffix(".png")
        save_png(tensor_to_pil(xrec[0]), out / rel)
        report.rows.append({
            "image": str(rel.with_suffix(path.suffix)), "width": w, "height": h,
            "psnr": float(psnr(a, r)[0]), "ssim": float(ssim(a, r)[0]) if min(w, h) >= 11 else "",
            **{f"seam_p{p}": _finite_or_blank(float(seam_ratio(r, p)[0])) for p in report.periods},
        })
    if not report.rows:
        raise ValueError(f"no image under {root} could be reconstructed (skipped: {len(report.skipped)})")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=report.fieldnames)
    writer.writeheader()
    writer.writerows(report.rows)
    with atomic_path(out / "metrics.csv") as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_path(out / "metrics.md") as tmp:
        tmp.write_text(report.markdown() + "\n")
    return report


def _finite_or_blank(v: float) -> float | str:
    return v if v == v and abs(v) != float("inf") else ""
