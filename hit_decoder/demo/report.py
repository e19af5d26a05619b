"""The demo's report: ``report.json`` (every number) and ``report.html``, one self-contained page
(images and plots embedded as PNG data URIs, no scripts, no network) that opens offline.

Plots are drawn with matplotlib's object API (``Figure`` + the Agg canvas), so no global backend is
switched for the caller.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..fileio import atomic_path
from ..images import tensor_to_pil
from .phases import read_metrics

__all__ = ["write_report", "losses_that_ran"]

COLOURS = {"cnn": "#1f77b4", "hit": "#d62728", "stage1": "#2ca02c", "prior": "#9467bd"}


# ----------------------------------------------------------------------------- pictures
def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
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


def swap_curves_png(cnn_rows: list[dict], hit_rows: list[dict]) -> bytes:
    fig, (a, b) = _figure(11, 3.4, 2)
    _curve(a, cnn_rows, "train/rec", "CNN VQGAN (encoder + codebook + CNN decoder)", COLOURS["cnn"])
    _curve(a, hit_rows, "train/rec", "HiT decoder on the frozen codes", COLOURS["hit"])
    a.set(title="training reconstruction loss (L1)", xlabel="batch", ylabel="L1 on [-1, 1] pixels")
    _curve(b, cnn_rows, "val/psnr", "CNN VQGAN", COLOURS["cnn"], ".-")
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


def prior_curve_png(rows: list[dict]) -> bytes:
    fig, (a,) = _figure(6, 3.2)
    _curve(a, rows, "train/loss", "cross-entropy", COLOURS["prior"])
    a.set(title="prior training loss", xlabel="batch", ylabel="nats per code")
    a.grid(alpha=0.3)
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


def difference_image(a: torch.Tensor, b: torch.Tensor, scale: int) -> Image.Image:
    """|a - b| (largest over channels) scaled so that the largest difference is white; black where equal."""
    d = (a.float() - b.float()).abs().amax(0)  # (H, W)
    top = float(d.max())
    arr = (d / top * 255).round().to(torch.uint8).numpy() if top > 0 else np.zeros(tuple(d.shape), np.uint8)
    img = Image.fromarray(arr, mode="L").convert("RGB")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


# ----------------------------------------------------------------------------- numbers
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


# ----------------------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}figure{margin:0}figcaption{font-size:.85em;color:#555;max-width:620px}
img.px{image-rendering:pixelated}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
.meta{color:#555;font-size:.9em}.note{color:#555;font-size:.9em;max-width:70em}code{background:#f3f3f3;padding:0 .2em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(png: bytes, alt: str, caption: str = "", cls: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    c = f' class="{cls}"' if cls else ""
    return f'<figure><img{c} src="{_data_uri(png)}" alt="{_e(alt)}">{cap}</figure>'


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{x}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{x}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _f(v: float, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def _yaml(cfg: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(cfg))


def _swap_section(data: dict[str, Any], swap_eval: dict[str, Any], pngs: dict[str, bytes], curves: bytes) -> str:
    d, f, orig = data["swap"]["decoders"], data["swap"]["factor"], data["swap"]["originals"]
    periods = [int(k[len("seam_p"):]) for k in orig]
    names = {"cnn": "CNN decoder (taming, trained with the VQGAN)", "hit": "HiT decoder (swapped in, frozen codes)"}
    seam_head = [f"seam p{p}" + (" (code cell)" if p == f else "") for p in periods]
    rows = [[names[k], f"{v['params'] / 1e6:.3f}", _f(v["gflops"], ".2f"), _f(v["decode_seconds"], ".3f"),
             _f(v["mean"]["psnr"], ".2f"), _f(v["mean"]["ssim"], ".4f"), *(_f(v["mean"][f"seam_p{p}"], ".2f") for p in periods)]
            for k, v in d.items()]
    rows.append(["<i>original photographs</i>", "", "", "", "", "", *(_f(orig[f"seam_p{p}"], ".2f") for p in periods)])
    per = [[_e(n), s["size"], names[k].split(" (")[0], _f(s["psnr"], ".2f"), _f(s["ssim"], ".4f"),
            *(_f(s[f"seam_p{p}"], ".2f") for p in periods)]
           for k, v in d.items() for n, s in v["images"].items()]
    cnn, hit = d["cnn"]["mean"], d["hit"]["mean"]
    budget = data["swap"]["batches"]
    figures = []
    for name in swap_eval["images"]:
        size = d["cnn"]["images"][name]["size"]
        figures.append('<div class="row">' + "".join(
            _img(pngs[f"{name}_{k}"], f"{name} {k}", f"<b>{name}</b> {size}: {cap}")
            for k, cap in (("original", "original"), ("cnn", f"CNN decoder, PSNR {d['cnn']['images'][name]['psnr']:.2f} dB"),
                           ("hit", f"HiT decoder, PSNR {d['hit']['images'][name]['psnr']:.2f} dB"))) + "</div>")
    return f"""
<h2>1. Decoder swap: a taming VQGAN's CNN decoder replaced by a HiT decoder</h2>
<p class="note">A small taming VQGAN (CNN encoder, {data['swap']['codebook']['codebook_size']}-code codebook, CNN decoder, f{f})
was trained from scratch for {budget['cnn']} batches (config <code>demo_cnn</code>) and exported in taming's format. Its
decoder was then replaced by a new HiT decoder trained for {budget['swap']} batches on the frozen encoder + codebook
(config <code>demo_swap</code>, which loads that taming checkpoint). Both decoders below decode the <b>same codes</b>
(checked: identical) of the held-out photographs, <b>whole</b> (shorter side {swap_eval['eval_side']} px), in the
same process. Decode time: median of {data['plan']['timing_repeats']} interleaved runs over both photographs, one thread.
GFLOPs per 256x256 output. Seam ratio at period p: mean luminance step across the lines of a p-pixel grid over the
mean elsewhere (1.0 = no grid; a decoder that paints its code cells scores above 1 at p = {f}).</p>
<p><b>Result:</b> HiT - CNN: PSNR {hit['psnr'] - cnn['psnr']:+.2f} dB, SSIM {hit['ssim'] - cnn['ssim']:+.4f}, at
{d['hit']['gflops'] / d['cnn']['gflops']:.2f}x the CNN decoder's FLOPs and {d['hit']['decode_seconds'] / d['cnn']['decode_seconds']:.2f}x
its decode time.</p>
{_table(["decoder", "params (M)", "GFLOPs", "decode s", "PSNR (dB)", "SSIM", *seam_head], rows)}
{_table(["photograph", "size", "decoder", "PSNR (dB)", "SSIM", *seam_head], per)}
{''.join(figures)}
{_img(curves, "decoder swap training curves", "Training curves (CSV logs of both runs). The CNN VQGAN trains encoder, codebook and decoder together; the HiT decoder starts after it, on its frozen codes.")}
"""


def _stage1_section(data: dict[str, Any], pngs: dict[str, bytes], curves: bytes, names: list[str]) -> str:
    s = data["stage1"]
    periods = [int(k[len("seam_p"):]) for k in s["mean"] if k.startswith("seam_p")]
    rows = [[_e(n), v["size"], _f(v["psnr"], ".2f"), _f(v["ssim"], ".4f"), *(_f(v[f"seam_p{p}"], ".2f") for p in periods)]
            for n, v in s["images"].items()]
    rows.append(["<b>mean</b>", "", _f(s["mean"]["psnr"], ".2f"), _f(s["mean"]["ssim"], ".4f"),
                 *(_f(s["mean"][f"seam_p{p}"], ".2f") for p in periods)])
    figures = '<div class="row">' + "".join(
        _img(pngs[f"{n}_original"], f"{n} original", f"<b>{n}</b> original") +
        _img(pngs[f"{n}_stage1"], f"{n} stage 1", f"<b>{n}</b> stage-1 VQGAN, PSNR {s['images'][n]['psnr']:.2f} dB")
        for n in names) + "</div>"
    losses = "".join(f"<li>{_e(x)}</li>" for x in s["losses"])
    return f"""
<h2>2. Stage-1 training: a VQGAN with a HiT decoder from scratch</h2>
<p class="note">Encoder, codebook and HiT decoder trained together for {s['batches']} batches (config <code>demo</code>;
{s['params'] / 1e6:.3f} M decoder parameters, {s['gflops']:.2f} GFLOPs per 256x256 output). Losses that ran:</p>
<ul>{losses}</ul><p class="note">{_e(data['lpips_line'])}.</p>
{_img(curves, "stage-1 training curves", "Loss terms and validation PSNR from the run's CSV log.")}
{_table(["photograph", "size", "PSNR (dB)", "SSIM", *(f"seam p{p}" for p in periods)], rows)}
{figures}
"""


def _sampling_section(data: dict[str, Any], pngs: dict[str, bytes], curve: bytes) -> str:
    s = data["sampling"]
    wh, ww = s["window"]
    ch, cw = s["canvas_codes"]
    f, scale = s["factor"], s["display_scale"]
    exact = "identical (exact tiling)" if s["max_abs_diff"] == 0 else f"max |tiled - whole| = {s['max_abs_diff']:.3e}"
    return f"""
<h2>3. High-resolution sampling: a canvas larger than the prior's window</h2>
<p class="note">A transformer prior (config <code>prior/demo</code>, {s['prior_batches']} batches) learned the stage-1 model's
code grids in {wh}x{ww}-code windows; its loss went from {s['prior_loss'][0]:.3f} to {s['prior_loss'][1]:.3f}. The sliding-window
sampler drew a {ch}x{cw}-code canvas ({ch // wh}x{cw // ww} windows; every code is sampled from the {wh}x{ww} window around it,
clamped to the canvas; top-k {data['plan']['top_k']}, seed {data['plan']['seed']}; {s['codes_used']} of {s['codebook_size']} codes used)
in {s['sampling_seconds']:.1f} s, and the stage-1 HiT decoder decoded it tile by tile ({s['tile_codes']}x{s['tile_codes']}-code
tiles, {s['decode_seconds']['tiled']:.2f} s) and whole ({s['decode_seconds']['whole']:.2f} s): {exact}. Shown enlarged {scale}x;
yellow lines every {wh}x{ww} codes = {wh * f}x{ww * f} px: one prior window, and one decoding tile.</p>
<div class="row">{_img(pngs['sample_grid'], 'sample with window grid', f'{ch * f}x{cw * f} px sample, window / tile grid', 'px')}</div>
<div class="row">{_img(pngs['sample'], 'sample', 'the sample (tiled decode) at its own size', 'px')}
{_img(pngs['sample_diff'], 'tiled minus whole', f'|tiled - whole| decode, scaled to its maximum ({exact}; black = equal)', 'px')}
{_img(curve, 'prior loss', 'prior training loss (CSV log)')}</div>
"""


def _html(data: dict[str, Any], body: str) -> str:
    times = [[_e(t["title"]), _e(t["process"]), f"{t['start_seconds']:.0f}", f"{t['seconds']:.1f}", f"{t['cpu_seconds']:.1f}"]
             for t in data["times"]]
    times.append(["<b>whole demo (wall clock)</b>", "", "0", f"<b>{data['total_seconds']:.1f}</b>", ""])
    configs = "".join(f"<details><summary>{_e(k)}: shipped config <code>{_e(v['name'])}</code> + overrides "
                      f"<code>{_e(' '.join(v['overrides']))}</code></summary><pre>{_e(_yaml(v['merged']))}</pre></details>"
                      for k, v in data["configs"].items())
    versions = _table(["package", "version"], [[_e(k), _e(v)] for k, v in data["versions"].items()])
    m = data["machine"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hit-decoder demo report</title>
<style>{CSS}</style></head><body>
<h1>hit-decoder demo</h1>
<p class="meta">{_e(data['date'])} &middot; seed {data['plan']['seed']} &middot; {data['total_seconds']:.0f} s on {_e(m['processor'])}
({m['cpu_count']} CPUs; {m['processes']} process{'es' if m['processes'] > 1 else ''}, one torch thread each) &middot;
command <code>{_e(data['command_line'])}</code></p>
<p class="note">Everything here was trained and measured in this run, on scikit-image's bundled photographs
(nothing downloaded). Models are tiny and budgets are minutes, so absolute quality is low; the comparisons are
what the page is for.</p>
<h2>Summary</h2><ul>{''.join(f'<li>{_e(x)}</li>' for x in data['summary'])}</ul>
{body}
<h2>Time of every phase</h2>
<p class="note">The decoder-swap phases run in a second process beside stage 1 and the prior when two processes are used
("starts at" is seconds after the demo started). CPU seconds are the phase's process's; wall seconds well above
them mean that something else shared the cores.</p>
{_table(["phase", "process", "starts at (s)", "wall seconds", "CPU seconds"], times)}
<h2>Run</h2>
<p>Command: <code>{_e(data['command_line'])}</code></p>
<h3>Merged configs</h3>{configs}
<h3>Versions</h3>{versions}
<p class="meta">{_e(m['system'])}</p>
</body></html>
"""


def write_report(out: Path, context: dict[str, Any], *, swap: dict, swap_eval: dict, stage1: dict, stage1_eval: dict,
                 prior: dict, sample: dict, timings: list[dict]) -> dict[str, Any]:
    """Write ``out/images/*.png``, ``out/images/sample_codes.npy``, ``out/report.json`` and
    ``out/report.html``; return the report's data (what ``report.json`` holds)."""
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = list(swap_eval["images"])
    pngs: dict[str, bytes] = {}
    for n in names:
        pngs[f"{n}_original"] = _png_bytes(tensor_to_pil(swap_eval["images"][n][0]))
        for k in ("cnn", "hit"):
            pngs[f"{n}_{k}"] = _png_bytes(tensor_to_pil(swap_eval["recon"][k][n][0]))
        pngs[f"{n}_stage1"] = _png_bytes(tensor_to_pil(stage1_eval["recon"][n][0]))
    f = sample["factor"]
    scale = max(1, min(4, 640 // sample["tiled"].shape[-1]))
    pngs["sample"] = _png_bytes(tensor_to_pil(sample["tiled"][0]))
    pngs["sample_grid"] = _png_bytes(window_grid(sample["tiled"][0], (sample["window"][0] * f, sample["window"][1] * f), scale))
    pngs["sample_diff"] = _png_bytes(difference_image(sample["tiled"][0], sample["whole"][0], 1))
    for key, png in pngs.items():
        with atomic_path(images / f"{key}.png") as tmp:
            tmp.write_bytes(png)
    with atomic_path(images / "sample_codes.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, sample["codes"].numpy())

    stage1_batches = stage1["batches"]
    data: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(context["t0"])),
        "command": context["command"], "command_line": shlex.join(context["command"]),
        "plan": context["plan"], "lpips": context["lpips"], "lpips_line": context["lpips_line"],
        "versions": context["versions"], "machine": context["machine"],
        "swap": {"factor": swap_eval["factor"], "decoders": _strip(swap_eval["decoders"]), "originals": swap_eval["originals"],
                 "codes_identical": swap_eval["codes_identical"], "codebook": swap_eval["codebook"],
                 "batches": {"cnn": swap["cnn"]["batches"], "swap": swap["swap"]["batches"]},
                 "validation": {"cnn": swap["cnn"]["val"], "hit": swap["swap"]["val"]},
                 "losses": {"cnn": losses_that_ran(swap["cnn"]["config"], swap["cnn"]["batches"]),
                            "hit": losses_that_ran(swap["swap"]["config"], swap["swap"]["batches"])}},
        "stage1": {"batches": stage1_batches, "images": stage1_eval["images_scores"], "mean": stage1_eval["mean"],
                   "codebook": stage1_eval["codebook"], "params": stage1_eval["params"], "gflops": stage1_eval["gflops"],
                   "validation": stage1["val"], "losses": losses_that_ran(stage1["config"], stage1_batches)},
        "sampling": {"window": sample["window"], "canvas_codes": sample["canvas_codes"], "factor": f,
                     "pixels": list(sample["tiled"].shape[-2:]), "tile_codes": sample["tile_codes"],
                     "max_abs_diff": sample["max_abs_diff"], "mean_abs_diff": sample["mean_abs_diff"],
                     "codes_used": sample["codes_used"], "codebook_size": sample["codebook_size"],
                     "codes_sha": _codes_digest(sample["codes"]), "prior_batches": prior["batches"],
                     "prior_loss": prior["losses"], "decode_seconds": sample["decode_seconds"],
                     "sampling_seconds": sample["timings"][0]["seconds"], "display_scale": scale},
        "times": timings,
        "configs": {title: {"name": name, "overrides": run["overrides"], "merged": run["config"]} for title, name, run in (
            ("decoder swap, CNN VQGAN", "train/demo_cnn", swap["cnn"]), ("decoder swap, HiT decoder", "train/demo_swap", swap["swap"]),
            ("stage 1", "train/demo", stage1), ("prior", "prior/demo", prior))},
    }
    data["total_seconds"] = time.time() - context["t0"]
    d = data["swap"]["decoders"]
    data["summary"] = [
        f"Decoder swap (same codes, held-out photographs whole): CNN decoder PSNR {d['cnn']['mean']['psnr']:.2f} dB / SSIM "
        f"{d['cnn']['mean']['ssim']:.3f}, HiT decoder PSNR {d['hit']['mean']['psnr']:.2f} dB / SSIM {d['hit']['mean']['ssim']:.3f}, "
        f"at {d['hit']['gflops'] / d['cnn']['gflops']:.2f}x the FLOPs; decode {d['cnn']['decode_seconds']:.3f} s vs "
        f"{d['hit']['decode_seconds']:.3f} s.",
        f"Stage 1 (HiT decoder from scratch, {stage1_batches} batches; {'; '.join(x.split(' (')[0] for x in data['stage1']['losses'])}): "
        f"PSNR {data['stage1']['mean']['psnr']:.2f} dB, SSIM {data['stage1']['mean']['ssim']:.3f}.",
        f"Sampling: {sample['canvas_codes'][0]}x{sample['canvas_codes'][1]} codes with a {sample['window'][0]}x"
        f"{sample['window'][1]} window -> {sample['tiled'].shape[-2]}x{sample['tiled'].shape[-1]} px, decoded in tiles; "
        f"max |tiled - whole| = {sample['max_abs_diff']:.2e}.",
        context["lpips_line"] + ".",
    ]
    curves_swap = swap_curves_png(read_metrics(swap["cnn"]["out_dir"]), read_metrics(swap["swap"]["out_dir"]))
    curves_stage1 = stage1_curves_png(read_metrics(stage1["out_dir"]))
    curve_prior = prior_curve_png(read_metrics(prior["out_dir"]))
    usage = codebook_png({"CNN VQGAN (decoder swap)": data["swap"]["codebook"], "stage-1 VQGAN": data["stage1"]["codebook"]})
    body = (_swap_section(data, swap_eval, pngs, curves_swap)
            + "<h3>Codebook usage</h3>" + _img(usage, "codebook usage", "How often each code is used when the training "
                                               "photographs (whole) are encoded, most used first (symmetric log scale).")
            + _stage1_section(data, pngs, curves_stage1, names) + _sampling_section(data, pngs, curve_prior))
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(_html(data, body), encoding="utf-8")
    return data


def _codes_digest(codes: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(codes.to(torch.int64).numpy().tobytes()).hexdigest()[:16]
