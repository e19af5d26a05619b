"""The demo's phases, each a call of the library's public API with a shipped config:

* decoder swap — ``run_training("demo_cnn")`` trains a small taming VQGAN (CNN decoder); its
  taming export (``.ckpt`` + YAML) is the source of ``run_training("demo_swap")`` twice: once with
  ``model.decoder=cnn`` (a fresh CNN decoder of the same shape) and once with the shipped HiT
  decoder, each trained on the frozen encoder and codebook with the same batches and loss;
* stage 1 — ``run_training("demo")``: encoder, codebook and HiT decoder from scratch;
* high-resolution sampling — ``train_prior("demo")`` twice on the stage-1 model's codes of one
  texture photograph (a taming GPT, and with ``architecture=windowed`` a windowed prior), then
  ``sample_sliding_window`` with each on a canvas at least 4x the photograph's code grid and
  ``decode_codes`` tile by tile and whole;

and the measurements on the held-out photographs (whole), which run in the main process after
training, so that decode times are taken with nothing else of the demo running.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import torch

from ..precision import decode_precision
from .plan import PHASE_CONFIGS, PRIOR_KEYS, DemoPlan
from .terminal import BatchProgress, Reporter

__all__ = ["Job", "lpips_state", "run_swap_phases", "run_cnn_phase", "run_cnn_decoder_phase", "run_hit_swap_phase",
           "run_stage1_phase", "run_prior_phases", "sample_phase", "texture_image",
           "evaluate_swap", "evaluate_stage1", "read_metrics", "phase_config"]


class Job:
    """What a phase needs (picklable, for the worker process): the plan, --out, --overwrite,
    whether LPIPS runs, and the demo's start time (phase times are offsets from it)."""

    def __init__(self, plan: DemoPlan, out: Path, overwrite: bool, lpips: bool, t0: float, process: str = "main"):
        self.plan, self.out, self.overwrite, self.lpips, self.t0, self.process = plan, Path(out), overwrite, lpips, t0, process

    def timing(self, key: str, title: str, start: tuple[float, float]) -> dict[str, Any]:
        """A phase's wall seconds and this process's CPU seconds since ``start`` (from :func:`clock`)."""
        return {"phase": key, "title": title, "process": self.process, "start_seconds": start[0] - self.t0,
                "seconds": time.time() - start[0], "cpu_seconds": time.process_time() - start[1]}


def clock() -> tuple[float, float]:
    """(wall time, this process's CPU time): the start of a phase."""
    return time.time(), time.process_time()


def lpips_state() -> tuple[bool, str]:
    """Whether LPIPS can run (its VGG16 weights are on this machine), and a sentence saying so."""
    from ..training.perceptual import VGG16_FILENAME, LPIPSWeightsMissing, default_vgg16_path, find_vgg16_weights

    try:
        return True, f"LPIPS on (VGG16 weights {find_vgg16_weights()})"
    except LPIPSWeightsMissing:
        return False, (f"LPIPS off: the VGG16 weights ({VGG16_FILENAME}) are not in the torch hub cache "
                       f"({default_vgg16_path().parent}); nothing is downloaded")


def training_overrides(job: Job, key: str, extra: list[str] | None = None) -> list[str]:
    """``key=value`` overrides of a phase's shipped config: where, how long, seed, LPIPS."""
    plan = job.plan
    out = [f"out_dir={plan.run_dir(job.out, key)}", f"seed={plan.seed}", "trainer.progress_bar=false"]
    if plan.batches.get(key) is not None:
        out.append(f"trainer.max_batches={plan.batches[key]}")
    if job.overwrite:
        out.append("overwrite=true")
    if key not in PRIOR_KEYS:
        out.append("trainer.tensorboard=false")
        if plan.val_every is not None:
            out += [f"trainer.val_every={plan.val_every}", f"trainer.log_every={max(1, plan.val_every // 2)}"]
        if plan.small_validation:
            out.append("data.val_crops_per_image=1")
        if job.lpips:
            out.append("loss.perceptual_weight=1.0")
    elif plan.val_every is not None:
        out.append(f"trainer.log_every={max(1, plan.val_every // 2)}")
    return out + list(extra or [])


def phase_config(key: str, overrides: list[str]) -> dict[str, Any]:
    """The merged config of a phase (shipped config + overrides) as plain data."""
    from omegaconf import OmegaConf

    if key in PRIOR_KEYS:
        from ..prior import load_prior_config

        cfg = load_prior_config(PHASE_CONFIGS[key], overrides)
    else:
        from ..training.config import load_train_config

        cfg = load_train_config(PHASE_CONFIGS[key], overrides, check=False)
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def _max_batches(key: str, overrides: list[str]) -> int:
    return int(phase_config(key, overrides)["trainer"]["max_batches"])


def _train(job: Job, reporter: Reporter, key: str, title: str, extra: list[str] | None = None) -> dict[str, Any]:
    from ..training import run_training

    overrides = training_overrides(job, key, extra)
    start = clock()
    reporter.start(key, title, _max_batches(key, overrides))
    result = run_training(PHASE_CONFIGS[key], overrides, callbacks=[BatchProgress(reporter, key)])
    if "model" not in result.exports:
        raise RuntimeError(f"the {key} phase wrote no model export (exports: {result.exports})")
    return {"key": key, "overrides": overrides, "config": phase_config(key, overrides), "exports": result.exports,
            "val": result.metrics,
            "batches": result.batches_done, "out_dir": str(result.out_dir), "timing": job.timing(key, title, start)}


def _val_line(run: dict[str, Any]) -> str:
    v = run["val"]
    return f"{run['batches']} batches, validation crops PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}"


def run_cnn_phase(job: Job, reporter: Reporter) -> dict[str, Any]:
    """Part 1a: train the CNN VQGAN whose frozen encoder + codebook both swapped decoders decode."""
    cnn = _train(job, reporter, "cnn", "[swap] CNN VQGAN")
    reporter.finish("cnn", f"[swap] taming VQGAN with its CNN decoder trained from scratch: {_val_line(cnn)}",
                    cnn["timing"]["seconds"])
    return cnn


def _frozen_source(cnn: dict[str, Any]) -> list[str]:
    return [f"model.vqgan_config={cnn['exports']['taming_yaml']}", f"model.vqgan_ckpt={cnn['exports']['taming_ckpt']}"]


def run_cnn_decoder_phase(job: Job, reporter: Reporter, cnn: dict[str, Any]) -> dict[str, Any]:
    """Part 1b: a fresh CNN decoder of the VQGAN's own shape on its frozen encoder + codebook."""
    fresh = _train(job, reporter, "cnn_decoder", "[swap] fresh CNN decoder on frozen codes",
                   [*_frozen_source(cnn), "model.decoder=cnn"])
    reporter.finish("cnn_decoder", f"[swap] a fresh CNN decoder of the same shape, trained on the frozen encoder + codebook: "
                    f"{_val_line(fresh)}", fresh["timing"]["seconds"])
    return fresh


def run_hit_swap_phase(job: Job, reporter: Reporter, cnn: dict[str, Any]) -> dict[str, Any]:
    """Part 1c: a HiT decoder on the same frozen encoder + codebook, with the same config as 1b but
    the decoder (``demo_swap``): the same codes, batches, loss and schedule."""
    hit = _train(job, reporter, "swap", "[swap] HiT decoder on frozen codes", _frozen_source(cnn))
    reporter.finish("swap", f"[swap] its decoder swapped for a HiT decoder, trained on the frozen encoder + codebook: "
                    f"{_val_line(hit)}", hit["timing"]["seconds"])
    return hit


def run_swap_phases(job: Job, reporter: Reporter) -> dict[str, Any]:
    """Part 1 in one process: the CNN VQGAN, then on its frozen encoder + codebook a fresh CNN decoder
    of its own shape and a HiT decoder."""
    cnn = run_cnn_phase(job, reporter)
    return {"cnn": cnn, "cnn_decoder": run_cnn_decoder_phase(job, reporter, cnn),
            "swap": run_hit_swap_phase(job, reporter, cnn)}


def run_stage1_phase(job: Job, reporter: Reporter) -> dict[str, Any]:
    """Part 2: a VQGAN with a HiT decoder trained from scratch (L1 + codebook + GAN, + LPIPS if on)."""
    run = _train(job, reporter, "stage1", "[stage 1] HiT VQGAN")
    reporter.finish("stage1", f"[stage 1] VQGAN with a HiT decoder trained from scratch: {_val_line(run)}",
                    run["timing"]["seconds"])
    return run


def texture_image(name: str, side: int, factor: int) -> torch.Tensor:
    """The scikit-image photograph ``name`` resized (shorter side ``side``) and cut to a centred
    square whose side is a multiple of ``factor``: ``(1, 3, S, S)`` in [-1, 1]."""
    from ..common.data import embedded_photographs
    from ..images import fit_to_factor, resize_shorter

    [(_, img)] = embedded_photographs([name])
    img = resize_shorter(img, side)
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    return fit_to_factor(img.crop((left, top, left + s, top + s)), factor)[None]


PRIOR_TITLES = {"prior": "taming GPT prior", "windowed": "windowed prior"}


def run_prior_phases(job: Job, reporter: Reporter, stage1_model: str) -> dict[str, Any]:
    """Part 3a: the texture photograph (``plan.texture``) written to ``out/texture/``, and two priors
    on the stage-1 model's codes of it, with the same prior config, crops, seed and budget: a taming
    GPT (sampled with the sliding window) and a windowed prior (sampled by streaming)."""
    from .. import adapters
    from ..images import save_png, tensor_to_pil
    from ..prior import train_prior

    plan = job.plan
    vq = adapters.load_vqmodel(stage1_model).eval()
    photo = texture_image(plan.texture, plan.texture_side, adapters.downsample_factor(vq))  # (1, 3, S, S)
    folder = job.out / "texture"
    save_png(tensor_to_pil(photo[0]), folder / f"{plan.texture}.png")
    source = ["first_stage.untrained=null", f"first_stage.model={stage1_model}", f"data.images={folder}", "data.resize=null"]
    out: dict[str, Any] = {"texture": {"name": plan.texture, "file": str(folder / f"{plan.texture}.png"), "image": photo}}
    for key in PRIOR_KEYS:
        title = f"[sampling] {PRIOR_TITLES[key]}"
        overrides = training_overrides(job, key, source + (["architecture=windowed"] if key == "windowed" else []))
        start = clock()
        reporter.start(key, title, _max_batches(key, overrides))
        result = train_prior(PHASE_CONFIGS[key], overrides, callbacks=[BatchProgress(reporter, key)])
        timing = job.timing(key, title, start)
        reporter.finish(key, f"{title} trained on the codes of {plan.texture}: {result.batches_done} batches, "
                        f"loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}", timing["seconds"])
        out[key] = {"key": key, "overrides": overrides, "config": phase_config(key, overrides), "prior": str(result.prior),
                    "batches": result.batches_done, "losses": [result.losses[0], result.losses[-1]],
                    "out_dir": str(result.out_dir), "timing": timing}
    return out


@torch.no_grad()
def sample_phase(job: Job, reporter: Reporter, stage1_model: str, priors: dict[str, Any], bars: bool) -> dict[str, Any]:
    """Part 3b: each prior samples a canvas ``plan.canvas_scale`` times the texture photograph's code
    grid per side (the taming GPT with the sliding window, the windowed prior by streaming); each
    sample is decoded tile by tile (one tile per prior window) and whole, and compared with the
    photograph: code-histogram distance and the seam ratio at the window period."""
    from .. import adapters
    from ..common.metrics import code_histogram_tv, seam_ratio, to_unit_range
    from ..prior import load_prior, prior_info
    from ..sampling import sample_sliding_window

    plan = job.plan
    vq = adapters.load_vqmodel(stage1_model).eval()
    factor, n_codes = adapters.downsample_factor(vq), adapters.codebook_size(vq.quantize)
    photo = priors["texture"]["image"]
    photo_codes = adapters.encode_indices(vq, photo)  # (1, h, w)
    window = [int(v) for v in prior_info(priors["prior"]["prior"])["window"]]
    period = window[0] * factor  # the window period in pixels (square windows)
    shape = (plan.canvas_scale * photo_codes.shape[1], plan.canvas_scale * photo_codes.shape[2])
    h2 = photo_codes.shape[1] // 2
    texture = {**priors["texture"],
               "codes": photo_codes[0], "recon": adapters.decode_indices(vq, photo_codes).float(),
               "grid_codes": list(photo_codes.shape[1:]),
               "codes_used": int(photo_codes.unique().numel()),
               # what two pieces of the photograph itself score: its top half against its bottom half
               "tv_halves": code_histogram_tv(photo_codes[:, :h2], photo_codes[:, h2:], n_codes)}
    texture["seam_window"] = _finite_or_none(float(seam_ratio(to_unit_range(texture["recon"]), period)[0]))
    samples, timings = {}, []
    for key in PRIOR_KEYS:
        prior = load_prior(priors[key]["prior"], vq).eval()
        how = "the sliding window" if key == "prior" else "streaming"
        start = clock()
        reporter.start(f"sample_{key}", f"[sampling] {PRIOR_TITLES[key]}: {shape[0]}x{shape[1]} codes")
        idx = sample_sliding_window(prior, shape, seed=plan.seed, top_k=plan.top_k, progress=bars)  # (1, h, w)
        timing = job.timing(f"sample_{key}", f"sampling, {PRIOR_TITLES[key]} ({how})", start)
        timings.append(timing)
        t = time.perf_counter()
        with decode_precision(plan.precision):
            tiled = adapters.decode_codes(vq, idx, tile=min(window), progress=bars)  # (1, 3, H, W) in [-1, 1]
        tiled_seconds = time.perf_counter() - t
        t = time.perf_counter()
        with decode_precision(plan.precision):
            whole = adapters.decode_codes(vq, idx)
        whole_seconds = time.perf_counter() - t
        diff = (tiled - whole).abs()
        samples[key] = {"codes": idx[0], "tiled": tiled, "whole": whole, "sampling_seconds": timing["seconds"],
                        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                        "decode_seconds": {"tiled": tiled_seconds, "whole": whole_seconds},
                        "codes_used": int(idx.unique().numel()), "tv": code_histogram_tv(idx, photo_codes, n_codes),
                        "seam_window": _finite_or_none(float(seam_ratio(to_unit_range(tiled), period)[0])),
                        # control: the same image measured on lines half a window away from the window borders
                        "seam_shifted": _finite_or_none(
                            float(seam_ratio(to_unit_range(tiled[..., period // 2:, period // 2:]), period)[0]))}
        reporter.finish(f"sample_{key}", f"[sampling] {PRIOR_TITLES[key]} sampled {shape[0]}x{shape[1]} codes with {how}, "
                        f"decoded in {min(window)}x{min(window)}-code tiles: code-histogram TV to {plan.texture} "
                        f"{samples[key]['tv']:.3f}, seam ratio at {period} px {_num(samples[key]['seam_window'])}, "
                        f"max |tiled - whole| {samples[key]['max_abs_diff']:.1e}", timing["seconds"])
    return {"samples": samples, "texture": texture, "window": window, "canvas_codes": list(shape), "tile_codes": min(window),
            "factor": factor, "period_px": period, "codebook_size": n_codes,
            "speedup": samples["prior"]["sampling_seconds"] / max(samples["windowed"]["sampling_seconds"], 1e-9),
            "timings": timings}


def _finite_or_none(v: float) -> float | None:
    """``None`` for a measurement that does not exist here (a seam ratio of an image with no line of the grid inside)."""
    return v if math.isfinite(v) else None


def _num(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


# ----------------------------------------------------------------------------- measurements
def _codebook_usage(vq: torch.nn.Module, images: list[torch.Tensor]) -> dict[str, Any]:
    from .. import adapters
    from ..common.metrics import codebook_perplexity

    n = adapters.codebook_size(vq.quantize)
    idx = torch.cat([adapters.encode_indices(vq, x).flatten() for x in images])
    counts = torch.bincount(idx, minlength=n)
    return {"codebook_size": n, "photographs": len(images), "codes": int(idx.numel()), "used": int((counts > 0).sum()),
            "used_fraction": float((counts > 0).float().mean()), "perplexity": float(codebook_perplexity(idx, n)),
            "counts": counts.tolist()}


def _training_photographs(factor: int, train: tuple[tuple[str, ...], int]) -> list[torch.Tensor]:
    """The photographs a phase trained on (``(names, shorter side)``), whole."""
    from ..training.evaluate import held_out_images

    names, side = train
    return list(held_out_images(factor, side, names).values())


@torch.no_grad()
def _reconstruct(vq: torch.nn.Module, images: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Codes and reconstructions of every image: ``{name: (1, h, w) codes}``, ``{name: image}``."""
    from .. import adapters

    codes = {name: adapters.encode_indices(vq, x) for name, x in images.items()}
    return codes, {name: adapters.decode_indices(vq, c).float() for name, c in codes.items()}


def _scores(x: torch.Tensor, xrec: torch.Tensor, factor: int) -> dict[str, Any]:
    """One held-out photograph's size, PSNR, SSIM, seam ratios and chroma ratio (colour kept)."""
    from ..common.metrics import chroma_ratio, to_unit_range
    from ..training.evaluate import score_images

    return {"size": f"{x.shape[-1]}x{x.shape[-2]}", **score_images(x, xrec, factor),
            "chroma_ratio": float(chroma_ratio(to_unit_range(x), to_unit_range(xrec))[0])}


def _decoder_cost(vq: torch.nn.Module, latent: tuple[int, int]) -> dict[str, float]:
    from ..flops import count_flops, count_parameters

    z = int(vq.post_quant_conv.out_channels)
    return {"params": count_parameters(vq.decoder), "gflops": count_flops(vq.decoder, (1, z, *latent)) / 1e9}


@torch.no_grad()
def evaluate_swap(plan: DemoPlan, cnn_model: str, hit_model: str, train: tuple[tuple[str, ...], int]) -> dict[str, Any]:
    """The CNN and the HiT decoder on the SAME codes of the held-out photographs (whole): scores,
    reconstructions, cost, and decode times measured interleaved in this process."""
    from .. import adapters
    from ..common.metrics import seam_periods, seam_ratio, to_unit_range
    from ..training.evaluate import held_out_images, interleaved_seconds, mean_scores

    models = {"cnn": adapters.load_vqmodel(cnn_model).eval(), "hit": adapters.load_vqmodel(hit_model).eval()}
    factor = adapters.downsample_factor(models["cnn"])
    images = held_out_images(factor, plan.eval_side)
    codes = {name: adapters.encode_indices(models["cnn"], x) for name, x in images.items()}
    hit_codes = {name: adapters.encode_indices(models["hit"], x) for name, x in images.items()}
    identical = all(torch.equal(codes[n], hit_codes[n]) for n in images)
    if not identical:
        raise RuntimeError("the swapped model encodes the held-out photographs to other codes than the CNN VQGAN: "
                           "its encoder or codebook was not frozen")
    recon = {k: {n: adapters.decode_indices(vq, c).float() for n, c in codes.items()} for k, vq in models.items()}
    decoders = {}
    for k, vq in models.items():
        per = {n: _scores(x, recon[k][n], factor) for n, x in images.items()}
        decoders[k] = {"images": per, "mean": mean_scores(per), **_decoder_cost(vq, (256 // factor, 256 // factor))}
    seconds = interleaved_seconds({k: (lambda vq=vq: [adapters.decode_indices(vq, c) for c in codes.values()])
                                   for k, vq in models.items()}, plan.timing_repeats)
    for k, s in seconds.items():
        decoders[k]["decode_seconds"] = s
    originals = {f"seam_p{p}": sum(float(seam_ratio(to_unit_range(x), p)[0]) for x in images.values()) / len(images)
                 for p in seam_periods(factor)}
    usage = _codebook_usage(models["cnn"], _training_photographs(factor, train))
    return {"factor": factor, "decoders": decoders, "originals": originals, "codes_identical": identical,
            "codebook": usage, "images": images, "recon": recon, "eval_side": plan.eval_side}


@torch.no_grad()
def evaluate_stage1(plan: DemoPlan, model: str, train: tuple[tuple[str, ...], int]) -> dict[str, Any]:
    """The stage-1 VQGAN (HiT decoder) on the held-out photographs, whole, and its codebook usage."""
    from .. import adapters
    from ..training.evaluate import held_out_images, mean_scores

    vq = adapters.load_vqmodel(model).eval()
    factor = adapters.downsample_factor(vq)
    images = held_out_images(factor, plan.eval_side)
    _, recon = _reconstruct(vq, images)
    per = {n: _scores(x, recon[n], factor) for n, x in images.items()}
    return {"factor": factor, "images_scores": per, "mean": mean_scores(per), "recon": recon,
            "codebook": _codebook_usage(vq, _training_photographs(factor, train)),
            **_decoder_cost(vq, (256 // factor, 256 // factor))}


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a run's newest CSV log (``logs/version_*/metrics.csv``), numbers only, with the
    training batch of each row in ``batch`` (Lightning logs 0-based steps)."""
    logs = sorted(Path(run_dir).glob("logs/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    if not logs:
        return []
    rows = []
    with open(logs[-1], newline="") as fh:
        for row in csv.DictReader(fh):
            vals = {k: float(v) for k, v in row.items() if v not in ("", None)}
            vals["batch"] = vals.get("train/batch", vals.get("step", 0.0) + 1)
            rows.append(vals)
    return rows
