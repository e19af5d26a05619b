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

COLOURS = {"cnn": "#1f77b4", "hit": "#d62728", "stage1": "#2ca02c", "prior": "#9467bd", "windowed": "#ff7f0e"}
#: the priors as the page names them, and their image file stems
PRIOR_NAMES = {"prior": "taming GPT (sliding window)", "windowed": "windowed prior (streaming)"}
PRIOR_FILES = {"prior": "gpt", "windowed": "windowed"}


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


def _enlarged(image: torch.Tensor, scale: int) -> Image.Image:
    img = tensor_to_pil(image)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


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
             _f(v["mean"]["psnr"], ".2f"), _f(v["mean"]["ssim"], ".4f"), _f(v["mean"]["chroma_ratio"], ".2f"),
             *(_f(v["mean"][f"seam_p{p}"], ".2f") for p in periods)]
            for k, v in d.items()]
    rows.append(["<i>original photographs</i>", "", "", "", "", "", "1.00", *(_f(orig[f"seam_p{p}"], ".2f") for p in periods)])
    per = [[_e(n), s["size"], names[k].split(" (")[0], _f(s["psnr"], ".2f"), _f(s["ssim"], ".4f"), _f(s["chroma_ratio"], ".2f"),
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
mean elsewhere (1.0 = no grid; a decoder that paints its code cells scores above 1 at p = {f}). Chroma ratio: mean CIELAB
chroma (&radic;(a*&sup2; + b*&sup2;)) of the reconstruction over the original's (1.0 = colour kept, below 1 = paler).</p>
<p><b>Result:</b> HiT - CNN: PSNR {hit['psnr'] - cnn['psnr']:+.2f} dB, SSIM {hit['ssim'] - cnn['ssim']:+.4f}, at
{d['hit']['gflops'] / d['cnn']['gflops']:.2f}x the CNN decoder's FLOPs and {d['hit']['decode_seconds'] / d['cnn']['decode_seconds']:.2f}x
its decode time. One seed and two photographs at the demo's budget: a difference of a few tenths of a dB here is noise. The quality benchmark (BENCHMARKS.md: 3 seeds, 6 held-out photographs, paired) puts an f8 HiT decoder at 0.17x the CNN's FLOPs 0.3 dB below its CNN decoder (95% interval -1.0 to +0.3 dB), with fewer seams at every period.</p>
{_table(["decoder", "params (M)", "GFLOPs", "decode s", "PSNR (dB)", "SSIM", "chroma ratio", *seam_head], rows)}
{_table(["photograph", "size", "decoder", "PSNR (dB)", "SSIM", "chroma ratio", *seam_head], per)}
<p class="note"><b>What the pictures show:</b> one photograph the models never saw, decoded by both decoders from the same
codes: differences between the two decoders come from the decoders alone. <b>What limits them:</b> a small VQGAN
({data['swap']['codebook']['codebook_size']} codes, f{f}) trained for minutes on {data['swap']['codebook']['photographs']} photographs:
fine detail is lost in the codes themselves, so neither decoder can bring it back.</p>
{''.join(figures)}
{_img(curves, "decoder swap training curves", "Training curves (CSV logs of both runs). The CNN VQGAN trains encoder, codebook and decoder together; the HiT decoder starts after it, on its frozen codes.")}
"""


def _stage1_section(data: dict[str, Any], pngs: dict[str, bytes], curves: bytes, names: list[str]) -> str:
    s = data["stage1"]
    periods = [int(k[len("seam_p"):]) for k in s["mean"] if k.startswith("seam_p")]
    rows = [[_e(n), v["size"], _f(v["psnr"], ".2f"), _f(v["ssim"], ".4f"), _f(v["chroma_ratio"], ".2f"),
             *(_f(v[f"seam_p{p}"], ".2f") for p in periods)] for n, v in s["images"].items()]
    rows.append(["<b>mean</b>", "", _f(s["mean"]["psnr"], ".2f"), _f(s["mean"]["ssim"], ".4f"), _f(s["mean"]["chroma_ratio"], ".2f"),
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
{_table(["photograph", "size", "PSNR (dB)", "SSIM", "chroma ratio", *(f"seam p{p}" for p in periods)], rows)}
<p class="note"><b>What the pictures show:</b> the held-out photographs through encoder, codebook and HiT decoder all trained
together in this run. <b>What limits them:</b> {s['batches']} batches of 64 px crops, no LPIPS unless its weights are on
this machine, and a discriminator that enters late: expect blur and flat, slightly posterised areas, not artefacts of the
decoder's blocks (the seam ratios say whether its code cells show).</p>
{figures}
"""


def _sampling_section(data: dict[str, Any], pngs: dict[str, bytes], curve: bytes) -> str:
    s, t = data["sampling"], data["sampling"]["texture"]
    wh, ww = s["window"]
    ch, cw = s["canvas_codes"]
    th, tw = t["grid_codes"]
    f, scale, period = s["factor"], s["display_scale"], s["period_px"]
    p = s["priors"]
    gpt = p["prior"]

    def exact(v: dict[str, Any]) -> str:
        return "identical (exact tiling)" if v["max_abs_diff"] == 0 else f"max |tiled - whole| = {v['max_abs_diff']:.3e}"

    rows = [[PRIOR_NAMES[k], str(v["batches"]), f"{v['loss'][0]:.3f} &rarr; {v['loss'][1]:.3f}", _f(v["sampling_seconds"], ".1f"),
             f"{s['speedup']:.1f}x" if k == "windowed" else "1.0x", _f(v["tv"], ".3f"), _f(v["seam_window"], ".2f"),
             _f(v["seam_shifted"], ".2f"), f"{v['codes_used']}", exact(v)] for k, v in p.items()]
    rows.append([f"<i>the photograph ({_e(t['name'])}: top half vs bottom half; its reconstruction's seams)</i>", "", "", "", "",
                 _f(t["tv_halves"], ".3f"), _f(t["seam_window"], ".2f"), "", f"{t['codes_used']}", ""])
    pictures = (_img(pngs["texture_photo"], "texture photograph", f"<b>{_e(t['name'])}</b>: the priors' only training data "
                     f"({th * f}x{tw * f} px, {th}x{tw} codes)", "px")
                + _img(pngs["texture_recon"], "its reconstruction", "its stage-1 reconstruction (what the codes can show)", "px"))
    samples = "".join(_img(pngs[f"sample_{PRIOR_FILES[k]}_grid"], f"{PRIOR_NAMES[k]} sample",
                           f"<b>{PRIOR_NAMES[k]}</b>: {ch}x{cw} codes in {v['sampling_seconds']:.1f} s; TV {v['tv']:.3f}, "
                           f"seam ratio at {period} px {_f(v['seam_window'], '.2f')}", "px") for k, v in p.items())
    diffs = "".join(_img(pngs[f"sample_{PRIOR_FILES[k]}_diff"], f"{PRIOR_NAMES[k]} tiled minus whole",
                         f"{PRIOR_NAMES[k]}: |tiled - whole| decode, scaled to its maximum ({exact(v)}; black = equal)", "px")
                    for k, v in p.items())
    return f"""
<h2>3. High-resolution sampling: a canvas four times the training photograph, two priors</h2>
<p class="note">Both priors learned one texture photograph, <b>{_e(t['name'])}</b> from scikit-image, cut to {th * f}x{tw * f} px
and encoded by the stage-1 VQGAN into a {th}x{tw}-code grid (plus its mirror image): config <code>prior/demo</code>, the same
{wh}x{ww}-code crops in the same order, {gpt['batches']} batches each, depth, width and heads equal; only the architecture
differs. Each then drew a {ch}x{cw}-code canvas ({ch * cw / (th * tw):.0f}x the photograph's code grid; top-k
{data['plan']['top_k']}, seed {data['plan']['seed']}), decoded by the stage-1 HiT decoder tile by tile ({s['tile_codes']}x{s['tile_codes']}-code
tiles) and whole. <b>Which is which:</b> the <b>taming GPT</b> sees one {wh}x{ww} crop with absolute positions; to sample
beyond it, the sliding window re-places that crop around each code and runs the GPT over it (taming's algorithm; here its
fast path with a key/value cache per window). The <b>windowed prior</b> predicts each code from a fixed neighbourhood of
earlier codes with relative positions, so one token forward per code streams over any canvas: it samples
{s['speedup']:.1f}x faster here. They differ in what each code is conditioned on: for the GPT, the codes before it (in raster
order) in its {wh}x{ww} window, whose shape depends on where the code sits in the window (the window is clamped at the canvas
edges); for the windowed prior, a neighbourhood of the same shape everywhere, with no window to border on.</p>
<p class="note">Yellow lines: every {wh}x{ww} codes = {period}x{period} px (one prior window, one decoding tile), drawn on both
samples, enlarged {scale}x. <b>TV</b>: total-variation distance between the code histogram of the sample and that of the photograph
(0 = the same codes in the same proportions, 1 = no code in common). <b>Seam ratio at {period} px</b>: the seam ratio of the
decoded sample at the window period (1.0 = window borders invisible); the control measures the same sample on lines half
a window away from the borders, where no window border lies: on a sparse texture both move with where bright spots happen
to fall, and only a seam ratio above its control says that the borders show. The photograph's row gives what two pieces of
the texture itself score.</p>
{_table(["prior", "batches", "training loss (nats/code)", "sampling s", "speed-up", "TV to the photograph",
         f"seam ratio at {period} px", "same, lines shifted half a window (control)", "codes used", "tiled vs whole decode"], rows)}
<div class="row">{pictures}</div>
<div class="row">{samples}</div>
<p class="note"><b>What the pictures show:</b> whether each sample continues the texture of the photograph on the left over a canvas
{ch * cw / (th * tw):.0f}x its area, and whether the window borders (yellow) show. <b>What limits them:</b> two tiny priors
({data['configs']['prior']['merged']['gpt']['n_layer']} layers, width {data['configs']['prior']['merged']['gpt']['n_embd']}) trained for
{gpt['batches']} batches on the codes of one photograph; the decoder and codebook come from the stage-1 run above, so the
sample can be no sharper than the photograph's reconstruction.</p>
<div class="row">{diffs}{_img(curve, 'prior loss', 'training loss of both priors (CSV logs)')}</div>
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
                 priors: dict, sample: dict, timings: list[dict]) -> dict[str, Any]:
    """Write ``out/images/*.png``, ``out/images/sample_{gpt,windowed}_codes.npy``, ``out/report.json``
    and ``out/report.html``; return the report's data (what ``report.json`` holds)."""
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
    f, samples, texture = sample["factor"], sample["samples"], sample["texture"]
    scale = max(1, min(4, 512 // samples["prior"]["tiled"].shape[-1]))
    pngs["texture_photo"] = _png_bytes(_enlarged(texture["image"][0], scale))
    pngs["texture_recon"] = _png_bytes(_enlarged(texture["recon"][0], scale))
    for key, v in samples.items():
        name = f"sample_{PRIOR_FILES[key]}"
        pngs[name] = _png_bytes(tensor_to_pil(v["tiled"][0]))
        pngs[f"{name}_grid"] = _png_bytes(window_grid(v["tiled"][0], (sample["period_px"], sample["period_px"]), scale))
        pngs[f"{name}_diff"] = _png_bytes(difference_image(v["tiled"][0], v["whole"][0], 1))
    for key, png in pngs.items():
        with atomic_path(images / f"{key}.png") as tmp:
            tmp.write_bytes(png)
    for key, v in samples.items():
        with atomic_path(images / f"sample_{PRIOR_FILES[key]}_codes.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, v["codes"].numpy())

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
                     "pixels": [c * f for c in sample["canvas_codes"]], "tile_codes": sample["tile_codes"],
                     "period_px": sample["period_px"], "codebook_size": sample["codebook_size"],
                     "speedup": sample["speedup"], "display_scale": scale,
                     "texture": {k: v for k, v in texture.items() if k not in ("image", "recon", "codes")},
                     "priors": {k: {"batches": priors[k]["batches"], "loss": priors[k]["losses"],
                                    "codes_sha": _codes_digest(v["codes"]),
                                    **{m: v[m] for m in ("sampling_seconds", "decode_seconds", "max_abs_diff", "mean_abs_diff",
                                                         "codes_used", "tv", "seam_window", "seam_shifted")}}
                                for k, v in samples.items()}},
        "times": timings,
        "configs": {title: {"name": name, "overrides": run["overrides"], "merged": run["config"]} for title, name, run in (
            ("decoder swap, CNN VQGAN", "train/demo_cnn", swap["cnn"]), ("decoder swap, HiT decoder", "train/demo_swap", swap["swap"]),
            ("stage 1", "train/demo", stage1), ("prior", "prior/demo", priors["prior"]),
            ("windowed prior", "prior/demo", priors["windowed"]))},
    }
    data["total_seconds"] = time.time() - context["t0"]
    d = data["swap"]["decoders"]
    sp = data["sampling"]["priors"]
    data["summary"] = [
        f"Decoder swap (same codes, held-out photographs whole): CNN decoder PSNR {d['cnn']['mean']['psnr']:.2f} dB / SSIM "
        f"{d['cnn']['mean']['ssim']:.3f} / chroma ratio {d['cnn']['mean']['chroma_ratio']:.2f}, HiT decoder PSNR "
        f"{d['hit']['mean']['psnr']:.2f} dB / SSIM {d['hit']['mean']['ssim']:.3f} / chroma ratio {d['hit']['mean']['chroma_ratio']:.2f}, "
        f"at {d['hit']['gflops'] / d['cnn']['gflops']:.2f}x the FLOPs; decode {d['cnn']['decode_seconds']:.3f} s vs "
        f"{d['hit']['decode_seconds']:.3f} s.",
        f"Stage 1 (HiT decoder from scratch, {stage1_batches} batches; {'; '.join(x.split(' (')[0] for x in data['stage1']['losses'])}): "
        f"PSNR {data['stage1']['mean']['psnr']:.2f} dB, SSIM {data['stage1']['mean']['ssim']:.3f}, "
        f"chroma ratio {data['stage1']['mean']['chroma_ratio']:.2f}.",
        f"Sampling: two priors on the codes of {texture['name']} ({texture['grid_codes'][0]}x{texture['grid_codes'][1]} codes) each "
        f"drew {sample['canvas_codes'][0]}x{sample['canvas_codes'][1]} codes: taming GPT (sliding window) "
        f"{sp['prior']['sampling_seconds']:.1f} s, TV {sp['prior']['tv']:.3f}, seam ratio {_f(sp['prior']['seam_window'], '.2f')}; "
        f"windowed prior (streaming) {sp['windowed']['sampling_seconds']:.1f} s ({sample['speedup']:.1f}x faster), "
        f"TV {sp['windowed']['tv']:.3f}, seam ratio {_f(sp['windowed']['seam_window'], '.2f')} (at the {sample['period_px']} px window period).",
        context["lpips_line"] + ".",
    ]
    curves_swap = swap_curves_png(read_metrics(swap["cnn"]["out_dir"]), read_metrics(swap["swap"]["out_dir"]))
    curves_stage1 = stage1_curves_png(read_metrics(stage1["out_dir"]))
    curve_prior = prior_curve_png({k: read_metrics(priors[k]["out_dir"]) for k in samples})
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
