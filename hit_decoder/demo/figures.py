"""The demo report's pictures: PNG bytes of images and plots, and the images the page shows (the
held-out photographs, the texture, the samples with their window grid, tiled-minus-whole).

Plots are drawn with matplotlib's object API (``Figure`` + the Agg canvas), so no global backend is
switched for the caller.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..images import tensor_to_pil

__all__ = ["COLOURS", "PRIOR_NAMES", "PRIOR_FILES", "png_bytes", "data_uri", "swap_curves_png", "stage1_curves_png",
           "prior_curve_png", "codebook_png", "window_grid", "enlarged", "difference_image", "report_pictures"]

COLOURS = {"cnn": "#1f77b4", "hit": "#d62728", "stage1": "#2ca02c", "prior": "#9467bd", "windowed": "#ff7f0e"}
#: the priors as the page names them, and their image file stems
PRIOR_NAMES = {"prior": "taming GPT (sliding window)", "windowed": "windowed prior (streaming)"}
PRIOR_FILES = {"prior": "gpt", "windowed": "windowed"}


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _curve(ax: Any, rows: list[dict[str, float]], key: str, label: str, colour: str, style: str = "-") -> bool:
    pts = [(r["batch"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
    if pts:
        ax.plot(*zip(*pts), style, color=colour, label=label, linewidth=1.4)
    return bool(pts)


def swap_curves_png(vqgan_rows: list[dict], cnn_rows: list[dict], hit_rows: list[dict]) -> bytes:
    fig, (a, b) = _figure(11, 3.4, 2)
    _curve(a, vqgan_rows, "train/rec", "CNN VQGAN (encoder + codebook + CNN decoder)", "#7f7f7f")
    _curve(a, cnn_rows, "train/rec", "fresh CNN decoder on the frozen codes", COLOURS["cnn"])
    _curve(a, hit_rows, "train/rec", "HiT decoder on the frozen codes", COLOURS["hit"])
    a.set(title="training reconstruction loss (L1)", xlabel="batch", ylabel="L1 on [-1, 1] pixels")
    _curve(b, vqgan_rows, "val/psnr", "CNN VQGAN", "#7f7f7f", ".-")
    _curve(b, cnn_rows, "val/psnr", "CNN decoder", COLOURS["cnn"], ".-")
    _curve(b, hit_rows, "val/psnr", "HiT decoder", COLOURS["hit"], ".-")
    b.set(title="validation PSNR (held-out photographs, 64 px crops)", xlabel="batch", ylabel="dB")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _figure_png(fig)


def stage1_curves_png(rows: list[dict]) -> bytes:
    fig, (a, b, c) = _figure(14, 3.4, 3)
    for key, label, colour in (("train/rec", "reconstruction (L1)", COLOURS["stage1"]), ("train/vq", "codebook (VQ)", "#8c564b"),
                               ("train/lpips", "LPIPS", "#e377c2")):
        if any(r.get(key, 0) for r in rows):
            _curve(a, rows, key, label, colour)
    a.set(title="generator loss terms", xlabel="batch")
    shown = _curve(b, rows, "train/g_adv", "generator adversarial", "#ff7f0e")
    shown |= _curve(b, rows, "train/d_loss", "discriminator (hinge)", "#7f7f7f")
    b.set(title="adversarial terms" if shown else "adversarial terms (none logged)", xlabel="batch")
    _curve(c, rows, "val/psnr", "validation PSNR", COLOURS["stage1"], ".-")
    c.set(title="validation PSNR (held-out photographs, 64 px crops)", xlabel="batch", ylabel="dB")
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _figure_png(fig)


def prior_curve_png(rows: dict[str, list[dict]]) -> bytes:
    """Training loss of each prior (``{key: CSV rows}``), on one plot."""
    fig, (a,) = _figure(6, 3.2)
    for key, r in rows.items():
        _curve(a, r, "train/loss", PRIOR_NAMES[key], COLOURS[key])
    a.set(title="prior training loss (same crops, same order)", xlabel="batch", ylabel="nats per code")
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    return _figure_png(fig)


def codebook_png(usages: dict[str, dict[str, Any]]) -> bytes:
    fig, axes = _figure(6 * len(usages), 3.2, len(usages))
    for ax, (label, u) in zip(axes, usages.items()):
        counts = np.sort(np.asarray(u["counts"]))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="#4c72b0")
        ax.set(title=f"{label}: {u['used']} of {u['codebook_size']} codes used, perplexity {u['perplexity']:.0f}",
               xlabel="code (sorted by use)", ylabel="uses on the training photographs")
        ax.set_yscale("symlog")
        ax.title.set_fontsize(9)
    return _figure_png(fig)


def window_grid(image: torch.Tensor, step_px: tuple[int, int], scale: int) -> Image.Image:
    """The sample enlarged ``scale`` times (nearest) with a line every ``step_px`` pixels."""
    img = tensor_to_pil(image)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    for x in range(0, img.width + 1, step_px[1] * scale):
        draw.line([(min(x, img.width - 1), 0), (min(x, img.width - 1), img.height)], fill=(255, 255, 0), width=1)
    for y in range(0, img.height + 1, step_px[0] * scale):
        draw.line([(0, min(y, img.height - 1)), (img.width, min(y, img.height - 1))], fill=(255, 255, 0), width=1)
    return img


def enlarged(image: torch.Tensor, scale: int) -> Image.Image:
    img = tensor_to_pil(image)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def difference_image(a: torch.Tensor, b: torch.Tensor, scale: int) -> Image.Image:
    """|a - b| (largest over channels) scaled so that the largest difference is white; black where equal."""
    d = (a.float() - b.float()).abs().amax(0)  # (H, W)
    top = float(d.max())
    arr = (d / top * 255).round().to(torch.uint8).numpy() if top > 0 else np.zeros(tuple(d.shape), np.uint8)
    img = Image.fromarray(arr, mode="L").convert("RGB")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def report_pictures(swap_eval: dict[str, Any], stage1_eval: dict[str, Any],
                    sample: dict[str, Any]) -> tuple[dict[str, bytes], int]:
    """PNG bytes of every image the report shows (``{file stem: png}``) and the enlargement of the
    texture pictures (so that a sample is shown at most 512 px wide)."""
    pngs: dict[str, bytes] = {}
    for n in swap_eval["images"]:
        pngs[f"{n}_original"] = png_bytes(tensor_to_pil(swap_eval["images"][n][0]))
        for k in ("cnn", "hit"):
            pngs[f"{n}_{k}"] = png_bytes(tensor_to_pil(swap_eval["recon"][k][n][0]))
        pngs[f"{n}_stage1"] = png_bytes(tensor_to_pil(stage1_eval["recon"][n][0]))
    samples, texture, period = sample["samples"], sample["texture"], sample["period_px"]
    scale = max(1, min(4, 512 // samples["prior"]["tiled"].shape[-1]))
    pngs["texture_photo"] = png_bytes(enlarged(texture["image"][0], scale))
    pngs["texture_recon"] = png_bytes(enlarged(texture["recon"][0], scale))
    for key, v in samples.items():
        name = f"sample_{PRIOR_FILES[key]}"
        pngs[name] = png_bytes(tensor_to_pil(v["tiled"][0]))
        pngs[f"{name}_grid"] = png_bytes(window_grid(v["tiled"][0], (period, period), scale))
        pngs[f"{name}_diff"] = png_bytes(difference_image(v["tiled"][0], v["whole"][0], 1))
    return pngs, scale
