"""Reconstruct a folder of images with a VQ model and score them (PSNR, SSIM, chroma ratio and seam
ratios per image)."""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .common.data import list_images
from .common.metrics import chroma_ratio, psnr, seam_periods, seam_ratio, ssim, to_unit_range
from .fileio import atomic_path
from .images import UNREADABLE_IMAGE_ERRORS, fit_to_factor, load_rgb, save_png, tensor_to_pil
from .precision import decode_precision

__all__ = ["ReconstructionReport", "reconstruct_folder", "reconstruction_outputs", "output_names"]

log = logging.getLogger(__name__)


@dataclass
class ReconstructionReport:
    rows: list[dict[str, object]] = field(default_factory=list)  # image, width, height, psnr, ssim, chroma_ratio, seam_p*
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

    @property
    def mean_chroma_ratio(self) -> float:
        """Mean over the colour images (a grey image has no chroma ratio)."""
        return self._mean("chroma_ratio")

    def mean_seam(self, period: int) -> float:
        return self._mean(f"seam_p{period}")

    @property
    def fieldnames(self) -> list[str]:
        return ["image", "width", "height", "psnr", "ssim", "chroma_ratio", *(f"seam_p{p}" for p in self.periods)]

    def markdown(self) -> str:
        fmt = lambda v, spec: format(float(v), spec) if v != "" else "n/a"
        seam_head = "".join(f" seam p{p} |" for p in self.periods)
        lines = [f"| image | size | PSNR (dB) | SSIM | chroma ratio |{seam_head}",
                 "|---|---|---:|---:|---:|" + "---:|" * len(self.periods)]
        for r in self.rows:
            seams = "".join(f" {fmt(r[f'seam_p{p}'], '.2f')} |" for p in self.periods)
            lines.append(f"| {r['image']} | {r['width']}x{r['height']} | {float(r['psnr']):.2f} | {fmt(r['ssim'], '.4f')} | "
                         f"{fmt(r['chroma_ratio'], '.2f')} |{seams}")
        seams = "".join(f" **{self.mean_seam(p):.2f}** |" for p in self.periods)
        lines.append(f"| **mean of {len(self.rows)}** | | **{self.mean_psnr:.2f}** | **{self.mean_ssim:.4f}** | "
                     f"**{fmt(self.mean_chroma_ratio, '.2f')}** |{seams}")
        lines += ["", "Chroma ratio: mean CIELAB chroma of the reconstruction / of the original (1.0 = colour kept, "
                  "below 1 = paler; n/a for grey originals).",
                  "", "Seam ratio at period p: mean |luminance step| across the lines of a p-pixel grid / mean elsewhere "
                  "(about 1.0 for a photograph; above 1: the decoder paints its code cells, p = the factor, or its "
                  "upsampling pattern, p = 2)."]
        return "\n".join(lines)


def output_names(images: str | os.PathLike, paths: list[Path]) -> dict[Path, Path]:
    """The reconstruction (relative PNG path) of each input image: ``a/b.jpg`` -> ``a/b.png``; two
    inputs that would share one name (``x.jpg`` and ``x.png``) keep their suffix (``x.jpg.png``, ``x.png.png``)."""
    root = Path(images)
    rel = {p: p.relative_to(root) for p in paths}
    stems: dict[Path, int] = {}
    for r in rel.values():
        stems[r.with_suffix("")] = stems.get(r.with_suffix(""), 0) + 1
    return {p: r.with_suffix(".png") if stems[r.with_suffix("")] == 1 else r.with_name(r.name + ".png")
            for p, r in rel.items()}


def reconstruction_outputs(images: str | os.PathLike, out_dir: str | os.PathLike) -> list[str]:
    """What reconstructing ``images`` into ``out_dir`` writes (for the check before anything runs);
    an ``out_dir`` that is ``images`` or inside it is an error (the reconstructions would mix with
    the input images, and could replace them)."""
    root, out = Path(images), Path(out_dir)
    real_root, real_out = os.path.realpath(root), os.path.realpath(out)
    if real_out == real_root or real_out.startswith(real_root + os.sep):
        raise ValueError(f"--out {out} is --images {root} or a folder inside it: the reconstructions would mix with "
                         "the input images; choose an --out outside --images")
    return ["metrics.csv", "metrics.md", *(str(r) for r in output_names(root, list_images(root)).values())]


@torch.no_grad()
def reconstruct_folder(vq: nn.Module, images: str | os.PathLike, out_dir: str | os.PathLike, *,
                       resize: int | None = None, device: str | torch.device = "cpu",
                       precision: str = "fp32") -> ReconstructionReport:
    """Reconstruct every image under ``images`` (recursive) into ``out_dir`` (same relative paths, PNG).

    Images are optionally resized (shorter side = ``resize``), then centre-cropped to multiples of
    the model's factor. Writes ``metrics.csv`` and ``metrics.md`` next to the reconstructions.
    Unreadable files are skipped with a warning and listed in the report.
    """
    from . import adapters

    root, out = Path(images), Path(out_dir)
    paths = list_images(root)
    names = output_names(root, paths)
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
        with decode_precision(precision, device):
            xrec = vq.decode(quant).float()  # (1, 3, h, w)
        a, r = to_unit_range(x), to_unit_range(xrec)
        save_png(tensor_to_pil(xrec[0]), out / names[path])
        report.rows.append({
            "image": str(path.relative_to(root)), "width": w, "height": h,
            "psnr": float(psnr(a, r)[0]), "ssim": float(ssim(a, r)[0]) if min(w, h) >= 11 else "",
            "chroma_ratio": _finite_or_blank(float(chroma_ratio(a, r)[0])),
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


def check_reconstruction_memory(vq: nn.Module, images: str | os.PathLike, resize: int | None) -> None:
    """Refuse, before any image is decoded, a folder whose largest image (its size read from the file
    header, after ``resize``) cannot be reconstructed in the memory available: the decoded image, four
    float copies and about three activations of the model's widest full-resolution layer per pixel."""
    from .images import image_size
    from .memory import GB, fits

    widths = [int(m.out_channels) for m in (getattr(getattr(vq, "encoder", None), "conv_in", None),) if m is not None]
    dec = vq.decoder
    widths.append(dec.config.channels[-1] if hasattr(dec, "config") else int(dec.conv_out.in_channels))
    per_pixel = 3 + 4 * 3 * 4 + 3 * 4 * max(widths)
    biggest = None
    for path in list_images(images):
        try:
            w, h = image_size(path)
        except UNREADABLE_IMAGE_ERRORS:
            continue  # skipped with a warning when it is read
        if resize is not None:
            s = resize / min(w, h)
            w, h = max(resize, round(w * s)), max(resize, round(h * s))
        if biggest is None or w * h > biggest[1] * biggest[2]:
            biggest = (path, w, h)
    if biggest is None:
        return
    path, w, h = biggest
    ok, free = fits(w * h * per_pixel)
    if not ok:
        after = f" after --resize {resize}" if resize is not None else ""
        raise MemoryError(f"{path} is {w}x{h} px{after}; reconstructing it needs about {w * h * per_pixel / GB:.1f} GB, "
                          f"but {free / GB:.1f} GB of memory is available: use a smaller --resize (e.g. --resize 1024), "
                          "or leave the image out")


def _finite_or_blank(v: float) -> float | str:
    return v if v == v and abs(v) != float("inf") else ""
