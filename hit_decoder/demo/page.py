"""The demo report's HTML page: ``templates/report.html`` rendered by Jinja2 with autoescaping, so
every value that reaches the page (names, paths, config values, numbers) is escaped and markup lives
only in the template. The functions here turn the report's data into what each section shows."""

from __future__ import annotations

import math
from typing import Any

from .figures import PRIOR_FILES, PRIOR_NAMES, data_uri

__all__ = ["render_page", "table", "figure", "CSS"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.reference td{font-style:italic}
tr.total td{font-weight:bold}
.row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}figure{margin:0}figcaption{font-size:.85em;color:#555;max-width:620px}
img.px{image-rendering:pixelated}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
.meta{color:#555;font-size:.9em}.note{color:#555;font-size:.9em;max-width:70em}code{background:#f3f3f3;padding:0 .2em}
"""


def fmt(v: Any, spec: str) -> str:
    """A number formatted with ``spec``; ``n/a`` for a missing or non-finite one."""
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def table(head: list[str], rows: list[list[Any]], kinds: dict[int, str] | None = None) -> dict[str, Any]:
    """A table for the template: header cells, and rows of cells (``kinds``: a CSS class per row
    index, ``reference`` or ``total``)."""
    kinds = kinds or {}
    return {"head": head, "rows": [{"cells": [str(c) for c in r], "kind": kinds.get(i, "")}
                                   for i, r in enumerate(rows)]}


def figure(png: bytes, alt: str, caption: str = "", title: str = "", cls: str = "") -> dict[str, str]:
    """An embedded PNG with its caption (``title`` is shown in bold before it)."""
    return {"src": data_uri(png), "alt": alt, "caption": caption, "title": title, "cls": cls}


def _yaml(cfg: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(cfg))


def _seam_periods(scores: dict[str, Any]) -> list[int]:
    return [int(k[len("seam_p"):]) for k in scores if k.startswith("seam_p")]


def swap_view(data: dict[str, Any], pngs: dict[str, bytes], curves: bytes) -> dict[str, Any]:
    """Section 1: the decoders' means and per-photograph scores, the photographs, the curves."""
    sw = data["swap"]
    d, f, orig = sw["decoders"], sw["factor"], sw["originals"]
    periods = _seam_periods(orig)
    names = {"cnn": "CNN decoder (taming's, fresh, frozen codes)", "hit": "HiT decoder (swapped in, fresh, frozen codes)"}
    seam_head = [f"seam p{p}" + (" (code cell)" if p == f else "") for p in periods]
    means = [[names[k], f"{v['params'] / 1e6:.3f}", fmt(v["gflops"], ".2f"), fmt(v["decode_seconds"], ".3f"),
              fmt(v["mean"]["psnr"], ".2f"), fmt(v["mean"]["ssim"], ".4f"), fmt(v["mean"]["chroma_ratio"], ".2f"),
              *(fmt(v["mean"][f"seam_p{p}"], ".2f") for p in periods)] for k, v in d.items()]
    means.append(["original photographs", "", "", "", "", "", "1.00", *(fmt(orig[f"seam_p{p}"], ".2f") for p in periods)])
    per = [[n, s["size"], names[k].split(" (")[0], fmt(s["psnr"], ".2f"), fmt(s["ssim"], ".4f"), fmt(s["chroma_ratio"], ".2f"),
            *(fmt(s[f"seam_p{p}"], ".2f") for p in periods)] for k, v in d.items() for n, s in v["images"].items()]
    photos = [[figure(pngs[f"{n}_{k}"], f"{n} {k}", f"{d['cnn']['images'][n]['size']}: {cap}", n)
               for k, cap in (("original", "original"), ("cnn", f"CNN decoder, PSNR {d['cnn']['images'][n]['psnr']:.2f} dB"),
                              ("hit", f"HiT decoder, PSNR {d['hit']['images'][n]['psnr']:.2f} dB"))]
              for n in d["cnn"]["images"]]
    cnn, hit = d["cnn"]["mean"], d["hit"]["mean"]
    return {
        "codebook_size": sw["codebook"]["codebook_size"], "photographs": sw["codebook"]["photographs"], "factor": f,
        "batches": sw["batches"], "eval_side": sw["eval_side"], "timing_repeats": data["plan"]["timing_repeats"],
        "delta_psnr": f"{hit['psnr'] - cnn['psnr']:+.2f}", "delta_ssim": f"{hit['ssim'] - cnn['ssim']:+.4f}",
        "flops_ratio": f"{d['hit']['gflops'] / d['cnn']['gflops']:.2f}",
        "time_ratio": f"{d['hit']['decode_seconds'] / d['cnn']['decode_seconds']:.2f}",
        "means": table(["decoder", "params (M)", "GFLOPs", "decode s", "PSNR (dB)", "SSIM", "chroma ratio", *seam_head],
                       means, {len(means) - 1: "reference"}),
        "per_image": table(["photograph", "size", "decoder", "PSNR (dB)", "SSIM", "chroma ratio", *seam_head], per),
        "photos": photos,
        "curves": figure(curves, "decoder swap training curves", "Training curves (CSV logs of the three runs). The CNN VQGAN "
                         "trains encoder, codebook and its decoder together; the two decoders compared start after it, "
                         "from fresh weights, on its frozen codes."),
    }


def stage1_view(data: dict[str, Any], pngs: dict[str, bytes], curves: bytes) -> dict[str, Any]:
    """Section 2: the stage-1 VQGAN's scores per photograph, its reconstructions, the losses that ran."""
    s = data["stage1"]
    periods = _seam_periods(s["mean"])
    rows = [[n, v.get("size", ""), fmt(v["psnr"], ".2f"), fmt(v["ssim"], ".4f"), fmt(v["chroma_ratio"], ".2f"),
             *(fmt(v[f"seam_p{p}"], ".2f") for p in periods)] for n, v in [*s["images"].items(), ("mean", s["mean"])]]
    photos = [fig for n in s["images"] for fig in (
        figure(pngs[f"{n}_original"], f"{n} original", "original", n),
        figure(pngs[f"{n}_stage1"], f"{n} stage 1", f"stage-1 VQGAN, PSNR {s['images'][n]['psnr']:.2f} dB", n))]
    return {"batches": s["batches"], "params": f"{s['params'] / 1e6:.3f}", "gflops": f"{s['gflops']:.2f}",
            "losses": s["losses"], "lpips_line": data["lpips_line"],
            "curves": figure(curves, "stage-1 training curves", "Loss terms and validation PSNR from the run's CSV log."),
            "scores": table(["photograph", "size", "PSNR (dB)", "SSIM", "chroma ratio", *(f"seam p{p}" for p in periods)],
                            rows, {len(rows) - 1: "total"}),
            "photos": photos}


def _exact(v: dict[str, Any]) -> str:
    return "identical (exact tiling)" if v["max_abs_diff"] == 0 else f"max |tiled - whole| = {v['max_abs_diff']:.3e}"


def sampling_view(data: dict[str, Any], pngs: dict[str, bytes], curve: bytes) -> dict[str, Any]:
    """Section 3: both priors' numbers beside the photograph's, the photograph, the samples, the differences."""
    s, t = data["sampling"], data["sampling"]["texture"]
    (wh, ww), (ch, cw), (th, tw) = s["window"], s["canvas_codes"], t["grid_codes"]
    f, period, p = s["factor"], s["period_px"], s["priors"]
    rows = [[PRIOR_NAMES[k], v["batches"], f"{v['loss'][0]:.3f} → {v['loss'][1]:.3f}", fmt(v["sampling_seconds"], ".1f"),
             f"{s['speedup']:.1f}x" if k == "windowed" else "1.0x", fmt(v["tv"], ".3f"), fmt(v["seam_window"], ".2f"),
             fmt(v["seam_shifted"], ".2f"), v["codes_used"], _exact(v)] for k, v in p.items()]
    rows.append([f"the photograph ({t['name']}: top half vs bottom half; its reconstruction's seams)", "", "", "", "",
                 fmt(t["tv_halves"], ".3f"), fmt(t["seam_window"], ".2f"), "", t["codes_used"], ""])
    gpt = data["configs"]["prior"]["merged"]["gpt"]
    return {
        "texture": t["name"], "photo_px": f"{th * f}x{tw * f}", "photo_codes": f"{th}x{tw}", "window": f"{wh}x{ww}",
        "canvas": f"{ch}x{cw}", "area_ratio": f"{ch * cw / (th * tw):.0f}", "tile": f"{s['tile_codes']}x{s['tile_codes']}",
        "batches": p["prior"]["batches"], "top_k": data["plan"]["top_k"], "seed": data["plan"]["seed"],
        "speedup": f"{s['speedup']:.1f}", "period": period, "scale": s["display_scale"],
        "layers": gpt["n_layer"], "width": gpt["n_embd"],
        "priors": table(["prior", "batches", "training loss (nats/code)", "sampling s", "speed-up", "TV to the photograph",
                         f"seam ratio at {period} px", "same, lines shifted half a window (control)", "codes used",
                         "tiled vs whole decode"], rows, {len(rows) - 1: "reference"}),
        "pictures": [figure(pngs["texture_photo"], "texture photograph", f"the priors' only training data ({th * f}x{tw * f} px, "
                            f"{th}x{tw} codes)", t["name"], "px"),
                     figure(pngs["texture_recon"], "its reconstruction", "its stage-1 reconstruction (what the codes can show)",
                            cls="px")],
        "samples": [figure(pngs[f"sample_{PRIOR_FILES[k]}_grid"], f"{PRIOR_NAMES[k]} sample",
                           f"{ch}x{cw} codes in {v['sampling_seconds']:.1f} s; TV {v['tv']:.3f}, seam ratio at {period} px "
                           f"{fmt(v['seam_window'], '.2f')}", PRIOR_NAMES[k], "px") for k, v in p.items()],
        "diffs": [*(figure(pngs[f"sample_{PRIOR_FILES[k]}_diff"], f"{PRIOR_NAMES[k]} tiled minus whole",
                           f"{PRIOR_NAMES[k]}: |tiled - whole| decode, scaled to its maximum "
                           f"({_exact(v)}; black = equal)", cls="px")
                    for k, v in p.items()),
                  figure(curve, "prior loss", "training loss of both priors (CSV logs)")],
    }


def run_view(data: dict[str, Any]) -> dict[str, Any]:
    """The header, the phase times, the merged configs and the versions."""
    times = [[t["title"], t["process"], f"{t['start_seconds']:.0f}", f"{t['seconds']:.1f}", f"{t['cpu_seconds']:.1f}"]
             for t in data["times"]]
    times.append(["whole demo (wall clock)", "", "0", f"{data['total_seconds']:.1f}", ""])
    return {
        "css": CSS, "date": data["date"], "seed": data["plan"]["seed"], "total": f"{data['total_seconds']:.0f}",
        "machine": data["machine"], "command_line": data["command_line"], "summary": data["summary"],
        "times": table(["phase", "process", "starts at (s)", "wall seconds", "CPU seconds"], times, {len(times) - 1: "total"}),
        "configs": [{"title": k, "name": v["name"], "overrides": " ".join(v["overrides"]), "yaml": _yaml(v["merged"])}
                    for k, v in data["configs"].items()],
        "versions": table(["package", "version"], [[k, v] for k, v in data["versions"].items()]),
    }


def render_page(data: dict[str, Any], pngs: dict[str, bytes], plots: dict[str, bytes]) -> str:
    """The report page: ``data`` is what ``report.json`` holds, ``pngs`` the images by file stem,
    ``plots`` the PNG plots (``swap``, ``stage1``, ``prior``, ``codebook``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("hit_decoder.demo", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, keep_trailing_newline=True)
    codebook = figure(plots["codebook"], "codebook usage", "How often each code is used when the training photographs "
                      "(whole) are encoded, most used first (symmetric log scale).")
    return env.get_template("report.html").render(
        **run_view(data), codebook=codebook, swap=swap_view(data, pngs, plots["swap"]),
        stage1=stage1_view(data, pngs, plots["stage1"]), sampling=sampling_view(data, pngs, plots["prior"]))
