"""The demo's report: ``report.json`` (every number) and ``report.html``, one self-contained page
(images and plots embedded as PNG data URIs, no scripts, no network) that opens offline.

:mod:`.figures` draws the pictures, :mod:`.page` renders the page; this module gathers the numbers
of the phases into the report's data and writes the files.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..fileio import atomic_path
from .figures import PRIOR_FILES, codebook_png, prior_curve_png, report_pictures, stage1_curves_png, swap_curves_png
from .page import fmt, render_page
from .phases import read_metrics

__all__ = ["write_report", "losses_that_ran", "report_data"]


def losses_that_ran(cfg: dict[str, Any], batches: int) -> list[str]:
    """The loss terms a training config switched on, in words (with when the GAN term entered)."""
    loss = cfg["loss"]
    out = []
    if loss["l1_weight"] > 0:
        out.append(f"L1 reconstruction (weight {loss['l1_weight']:g})")
    if loss["l2_weight"] > 0:
        out.append(f"L2 reconstruction (weight {loss['l2_weight']:g})")
    if loss["perceptual_weight"] > 0:
        out.append(f"LPIPS (weight {loss['perceptual_weight']:g})")
    if loss["codebook_weight"] > 0 and cfg["mode"] == "from_scratch":
        out.append(f"codebook + commitment (weight {loss['codebook_weight']:g}, beta {cfg['model']['beta']:g})")
    if loss["disc_weight"] > 0:
        if loss["disc_weight_start"] < batches:
            out.append(f"adversarial ({loss['disc_loss']} PatchGAN, weight {loss['disc_weight']:g} x adaptive; the "
                       f"discriminator learns from batch {loss['disc_train_start']}, its term enters the generator loss "
                       f"at batch {loss['disc_weight_start']} of {batches})")
        else:
            out.append(f"adversarial configured but never entered: it starts at batch {loss['disc_weight_start']}, "
                       f"the run had {batches}")
    return out


def _strip(d: Any) -> Any:
    """JSON-ready: tensors and images left out, numbers as floats."""
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if not isinstance(v, (torch.Tensor, Image.Image))
                and not (isinstance(v, dict) and v and all(isinstance(x, torch.Tensor) for x in v.values()))}
    if isinstance(d, (list, tuple)):
        return [_strip(v) for v in d]
    return d


#: the decoder-swap runs by the report's names for them
SWAP_RUNS = {"vqgan": "cnn", "cnn": "cnn_decoder", "hit": "swap"}


def _swap_data(swap: dict, swap_eval: dict) -> dict[str, Any]:
    return {"factor": swap_eval["factor"], "decoders": _strip(swap_eval["decoders"]), "originals": swap_eval["originals"],
            "codes_identical": swap_eval["codes_identical"], "codebook": swap_eval["codebook"],
            "eval_side": swap_eval["eval_side"],
            # "vqgan": the CNN VQGAN (encoder, codebook and its own decoder); "cnn", "hit": the decoders compared
            "batches": {k: swap[run]["batches"] for k, run in SWAP_RUNS.items()},
            "validation": {k: swap[run]["val"] for k, run in SWAP_RUNS.items()},
            "losses": {k: losses_that_ran(swap[run]["config"], swap[run]["batches"]) for k, run in SWAP_RUNS.items()}}


def _stage1_data(stage1: dict, stage1_eval: dict) -> dict[str, Any]:
    return {"batches": stage1["batches"], "images": stage1_eval["images_scores"], "mean": stage1_eval["mean"],
            "codebook": stage1_eval["codebook"], "params": stage1_eval["params"], "gflops": stage1_eval["gflops"],
            "validation": stage1["val"], "losses": losses_that_ran(stage1["config"], stage1["batches"])}


def _sampling_data(priors: dict, sample: dict, scale: int) -> dict[str, Any]:
    f = sample["factor"]
    return {"window": sample["window"], "canvas_codes": sample["canvas_codes"], "factor": f,
            "pixels": [c * f for c in sample["canvas_codes"]], "tile_codes": sample["tile_codes"],
            "period_px": sample["period_px"], "codebook_size": sample["codebook_size"],
            "speedup": sample["speedup"], "display_scale": scale,
            "texture": {k: v for k, v in sample["texture"].items() if k not in ("image", "recon", "codes")},
            "priors": {k: {"batches": priors[k]["batches"], "loss": priors[k]["losses"], "codes_sha": _codes_digest(v["codes"]),
                           **{m: v[m] for m in ("sampling_seconds", "decode_seconds", "max_abs_diff", "mean_abs_diff",
                                                "codes_used", "tv", "seam_window", "seam_shifted")}}
                       for k, v in sample["samples"].items()}}


def _configs(swap: dict, stage1: dict, priors: dict) -> dict[str, Any]:
    return {title: {"name": name, "overrides": run["overrides"], "merged": run["config"]} for title, name, run in (
        ("decoder swap, CNN VQGAN", "train/demo_cnn", swap["cnn"]),
        ("decoder swap, CNN decoder", "train/demo_swap", swap["cnn_decoder"]),
        ("decoder swap, HiT decoder", "train/demo_swap", swap["swap"]),
        ("stage 1", "train/demo", stage1), ("prior", "prior/demo", priors["prior"]),
        ("windowed prior", "prior/demo", priors["windowed"]))}


def summary_lines(data: dict[str, Any], lpips_line: str) -> list[str]:
    """The report's headline numbers, one sentence per part (also the page's summary)."""
    d, st, s = data["swap"]["decoders"], data["stage1"], data["sampling"]
    sp, t = s["priors"], s["texture"]
    return [
        f"Decoder swap (same codes, held-out photographs whole): CNN decoder PSNR {d['cnn']['mean']['psnr']:.2f} dB / SSIM "
        f"{d['cnn']['mean']['ssim']:.3f} / chroma ratio {d['cnn']['mean']['chroma_ratio']:.2f}, HiT decoder PSNR "
        f"{d['hit']['mean']['psnr']:.2f} dB / SSIM {d['hit']['mean']['ssim']:.3f} / "
        f"chroma ratio {d['hit']['mean']['chroma_ratio']:.2f}, "
        f"at {d['hit']['gflops'] / d['cnn']['gflops']:.2f}x the FLOPs; decode {d['cnn']['decode_seconds']:.3f} s vs "
        f"{d['hit']['decode_seconds']:.3f} s.",
        f"Stage 1 (HiT decoder from scratch, {st['batches']} batches; {'; '.join(x.split(' (')[0] for x in st['losses'])}): "
        f"PSNR {st['mean']['psnr']:.2f} dB, SSIM {st['mean']['ssim']:.3f}, chroma ratio {st['mean']['chroma_ratio']:.2f}.",
        f"Sampling: two priors on the codes of {t['name']} ({t['grid_codes'][0]}x{t['grid_codes'][1]} codes) each "
        f"drew {s['canvas_codes'][0]}x{s['canvas_codes'][1]} codes: taming GPT (sliding window) "
        f"{sp['prior']['sampling_seconds']:.1f} s, TV {sp['prior']['tv']:.3f}, "
        f"seam ratio {fmt(sp['prior']['seam_window'], '.2f')}; "
        f"windowed prior (streaming) {sp['windowed']['sampling_seconds']:.1f} s ({s['speedup']:.1f}x faster), "
        f"TV {sp['windowed']['tv']:.3f}, seam ratio {fmt(sp['windowed']['seam_window'], '.2f')} "
        f"(at the {s['period_px']} px window period).",
        lpips_line + ".",
    ]


def report_data(context: dict[str, Any], *, swap: dict, swap_eval: dict, stage1: dict, stage1_eval: dict, priors: dict,
                sample: dict, timings: list[dict], scale: int) -> dict[str, Any]:
    """What ``report.json`` holds: the run, every phase's numbers, the configs, the times, the summary."""
    data: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(context["t0"])),
        "command": context["command"], "command_line": shlex.join(context["command"]),
        "plan": context["plan"], "lpips": context["lpips"], "lpips_line": context["lpips_line"],
        "versions": context["versions"], "machine": context["machine"],
        "swap": _swap_data(swap, swap_eval), "stage1": _stage1_data(stage1, stage1_eval),
        "sampling": _sampling_data(priors, sample, scale), "times": timings, "configs": _configs(swap, stage1, priors),
    }
    data["total_seconds"] = time.time() - context["t0"]
    data["summary"] = summary_lines(data, context["lpips_line"])
    return data


def _write_images(images: Path, pngs: dict[str, bytes], samples: dict[str, Any]) -> None:
    """``images/*.png`` and each sample's codes as ``images/sample_*_codes.npy``."""
    images.mkdir(parents=True, exist_ok=True)
    for key, png in pngs.items():
        with atomic_path(images / f"{key}.png") as tmp:
            tmp.write_bytes(png)
    for key, v in samples.items():
        with atomic_path(images / f"sample_{PRIOR_FILES[key]}_codes.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, v["codes"].numpy())


def _plots(swap: dict, stage1: dict, priors: dict, data: dict[str, Any]) -> dict[str, bytes]:
    return {"swap": swap_curves_png(*(read_metrics(swap[k]["out_dir"]) for k in ("cnn", "cnn_decoder", "swap"))),
            "stage1": stage1_curves_png(read_metrics(stage1["out_dir"])),
            "prior": prior_curve_png({k: read_metrics(priors[k]["out_dir"]) for k in data["sampling"]["priors"]}),
            "codebook": codebook_png({"CNN VQGAN (decoder swap)": data["swap"]["codebook"],
                                      "stage-1 VQGAN": data["stage1"]["codebook"]})}


def write_report(out: Path, context: dict[str, Any], *, swap: dict, swap_eval: dict, stage1: dict, stage1_eval: dict,
                 priors: dict, sample: dict, timings: list[dict]) -> dict[str, Any]:
    """Write ``out/images/*.png``, ``out/images/sample_{gpt,windowed}_codes.npy``, ``out/report.json``
    and ``out/report.html``; return the report's data (what ``report.json`` holds)."""
    out = Path(out)
    pngs, scale = report_pictures(swap_eval, stage1_eval, sample)
    _write_images(out / "images", pngs, sample["samples"])
    data = report_data(context, swap=swap, swap_eval=swap_eval, stage1=stage1, stage1_eval=stage1_eval, priors=priors,
                       sample=sample, timings=timings, scale=scale)
    page = render_page(data, pngs, _plots(swap, stage1, priors, data))
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return data


def _codes_digest(codes: torch.Tensor) -> str:
    return hashlib.sha256(codes.to(torch.int64).numpy().tobytes()).hexdigest()[:16]
