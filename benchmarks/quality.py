"""Reconstruction quality: taming's CNN decoder vs HiT decoders, swapped onto frozen taming VQGANs,
over several seeds and held-out photographs, with paired statistics.

    python benchmarks/quality.py                       # seeds 0 1 2, then the combined table (~1.8 h on 2 idle cores)
    python benchmarks/quality.py --seeds 1 2 --no-write   # some seeds only (e.g. a second process)
    python benchmarks/quality.py --combine             # paired statistics over OUT/seed*/quality.json
    python benchmarks/quality.py --rescore             # re-score + re-time the saved arms (no training)
    python benchmarks/quality.py --overfit --seeds 0   # one photograph, many steps, a curve (needs seed 0's stage 0)
    python benchmarks/quality.py --adversarial --seeds 0   # CNN vs HiT with L1 + PatchGAN (seed 0's stage 0)
    python benchmarks/quality.py --ablation --seeds 0  # the decoder ablation table
    python benchmarks/quality.py --seeds 0 --steps 20 --stage0-steps 20 --no-write --out /tmp/q   # smoke run
    python benchmarks/quality.py --factor 16 --seeds 0 1 --steps 600   # the f16 family (its own folder and section)

Protocol (photographs shipped inside installed packages; nothing is downloaded):
0. The photographs are split once (:data:`TRAIN_PHOTOS`, :data:`HELD_OUT`) and written as PNG files
   to ``OUT/data/train`` and ``OUT/data/held_out``. Training reads only the first folder.
1. Per seed ``k``: stage 0, a small taming VQGAN, f8 (taming Encoder / VectorQuantizer2 / Decoder,
   ch_mult [1, 2, 2, 4]), trained from scratch with seed ``k`` (L1 + VQ loss, dead-code restarts):
   ``OUT/seed<k>/stage0/model.safetensors``.
2. Its encoder, quant_conv, codebook and post_quant_conv are frozen (bit-identical in every arm of
   that seed). Each arm trains a freshly initialised decoder on them: taming's CNN decoder (the
   stage-0 architecture) and HiT decoders (:data:`HIT`), with identical loss, optimizer, schedule,
   EMA, batch size, number of batches and data order (seed ``k``).
3. Every arm's EMA weights reconstruct the held-out photographs WHOLE (shorter side 256 px, sides
   cut to a multiple of 8): PSNR, SSIM and the seam ratio at periods 2, 4, 8. Each arm is saved as
   ``OUT/seed<k>/<arm>/model.safetensors`` (library format:
   ``hit-decoder reconstruct --model OUT/seed0/hit-m/model.safetensors --images DIR --out DIR2``).
4. ``--combine``: per seed and photograph, HiT arm minus CNN arm (same codes), then the mean over
   all (seed, photograph) pairs with a 95% interval from a two-level bootstrap (seeds, then
   photographs within each drawn seed), the standard error over pairs, and each seed's own mean.
5. Speed variants (``benchmarking.SPEED_VARIANTS``, issue 17): each against the arm it slims down, paired on
   the same codes, with the seeds' spread of that arm (relative to the CNN) as the allowance
   (:func:`variant_check`).
6. ``--factor 16``: the same protocol on an f16 stage 0 (one more level) with HiT arms shaped like
   ``hit-8m-f16`` (:data:`FAMILIES`), so that narrowing an f16 decoder is judged on f16 codes; seam
   ratios then include the code-cell period 16.

Metrics (``hit_decoder.common.metrics``): PSNR on RGB in [0, 1]; SSIM on RGB in [0, 1], each
channel separately then averaged, 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population
statistics, valid windows only = ``skimage.metrics.structural_similarity(..., channel_axis=-1,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` (tested against it);
seam ratio: mean |luminance step| across the period's grid lines / mean elsewhere (1.0 = no grid).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import platform
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarking import F8_VARIANTS, SPEED_VARIANTS, update_section

import torch

from hit_decoder import HiTDecoder, HiTDecoderConfig
from hit_decoder.common.data import embedded_photographs, list_images, load_rgb
from hit_decoder.common.metrics import seam_periods, seam_ratios, to_unit_range
from hit_decoder.common.seeding import seeded
from hit_decoder.fileio import atomic_path
from hit_decoder.flops import count_flops, count_parameters
from hit_decoder.images import fit_to_factor, save_png
from hit_decoder.training import run_training
from hit_decoder.training.evaluate import interleaved_seconds, mean_scores, score_images

ROOT = Path(__file__).resolve().parents[1]

Z_CHANNELS, EMBED_DIM, N_EMBED = 32, 16, 512
DDCONFIG = {"double_z": False, "z_channels": Z_CHANNELS, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 2, 2, 4], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
FACTOR = 2 ** (len(DDCONFIG["ch_mult"]) - 1)
#: the f16 family's stage 0 (``--factor 16``, issue 17): the f8 stage 0 with one more level
DDCONFIG_F16 = {**DDCONFIG, "ch_mult": [1, 2, 2, 4, 4]}
PERIODS = tuple(seam_periods(FACTOR))  # the seam ratio's periods: 2, 4, ..., the factor

#: held out from every training run: six photographs (four colour, one grey portrait, one grey
#: street scene). ``grace_hopper`` ships with matplotlib, the rest with scikit-image.
HELD_OUT = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper", "camera")
#: the training photographs. ``motorcycle_left`` / ``_right`` are the two views of one stereo
#: pair: both train, neither is held out (one would leak the other).
TRAIN_PHOTOS = ("motorcycle_left", "motorcycle_right", "hubble_deep_field", "immunohistochemistry", "retina",
                "coins", "grass", "brick", "gravel", "moon")

_HIT_M = dict(z_channels=Z_CHANNELS, channels=(128, 64, 32, 32), depths=(2, 2, 1, 1), heads=(4, 4, 2, 2),
              num_attention_stages=2, block_size=(4, 8), dilation_grid=(4, 4))
HIT = {
    "hit-m": HiTDecoderConfig(**_HIT_M),
    # the code-cell seam fix candidate: bilinear upsampling into the attention stages too
    "hit-m-ba": HiTDecoderConfig(**_HIT_M, upsample="bilinear_all"),
    "hit-l": HiTDecoderConfig(**dict(_HIT_M, channels=(160, 80, 40, 32))),
    "hit-s": HiTDecoderConfig(**dict(_HIT_M, channels=(64, 32, 16, 16), depths=(2, 1, 1, 1))),
    # hit-m with narrower MLP-only stages, for speed (issue 17): the full-resolution stage (about half
    # of hit-m's decode time at 256²) at 16 channels, then both MLP-only stages at 16
    "hit-m-16": HiTDecoderConfig(**dict(_HIT_M, channels=(128, 64, 32, 16))),
    "hit-m-16-16": HiTDecoderConfig(**dict(_HIT_M, channels=(128, 64, 16, 16))),
}
# The f16 family (``--factor 16``): hit-8m-f16's shape (three attention stages, then two MLP-only stages
# at half the last attention stage's width) at this benchmark's width, and the same narrowing that
# hit-m-16-16 applies to hit-m: both MLP-only stages at half width.
_HIT_M_F16 = dict(z_channels=Z_CHANNELS, channels=(256, 128, 64, 32, 32), depths=(2, 2, 2, 1, 1), heads=(4, 4, 4, 2, 2),
                  num_attention_stages=3, block_size=(4, 8, 8), dilation_grid=(4, 4, 4))
HIT["hit-m-f16"] = HiTDecoderConfig(**_HIT_M_F16)
HIT["hit-m-f16-16-16"] = HiTDecoderConfig(**dict(_HIT_M_F16, channels=(256, 128, 64, 16, 16)))
#: per stage-0 factor: the stage 0's taming config, the default arms, the BENCHMARKS.md section and the
#: default output folder (under runs/)
FAMILIES = {
    8: {"ddconfig": DDCONFIG, "arms": ("cnn", "hit-m", "hit-m-ba", *F8_VARIANTS), "part": "quality",
        "out": "bench_quality"},
    16: {"ddconfig": DDCONFIG_F16, "arms": ("cnn", "hit-m-f16", "hit-m-f16-16-16"), "part": "quality-f16",
         "out": "bench_quality_f16"},
}
DEFAULT_ARMS = FAMILIES[8]["arms"]


def use_factor(factor: int) -> None:
    """Point this script's stage-0 constants (:data:`DDCONFIG`, :data:`FACTOR`, :data:`PERIODS`) at the
    f8 family (the default) or the f16 family (``--factor 16``). One family per process and output folder."""
    global DDCONFIG, FACTOR, PERIODS
    DDCONFIG, FACTOR, PERIODS = FAMILIES[factor]["ddconfig"], factor, tuple(seam_periods(factor))


V1 = dict(cross_attention="cell", upsample="pixel_shuffle", mlp_conv=False, rgb_upsample="nearest", out_conv=False)
# Cumulative, from the v1 decoder (hit-decoder 0.1) to the v2 decoder, on the hit-m architecture.
ABLATION = [
    ("v1 decoder (hit-decoder 0.1)", dict(V1)),
    ("+ pixel-centred code lookup", dict(V1, cross_attention="pixel")),
    ("+ bilinear upsampling into MLP stages", dict(V1, cross_attention="pixel", upsample="bilinear")),
    ("+ bilinear RGB skips", dict(V1, cross_attention="pixel", upsample="bilinear", rgb_upsample="bilinear")),
    ("+ depthwise 3x3 in MLPs", dict(V1, cross_attention="pixel", upsample="bilinear", rgb_upsample="bilinear",
                                     mlp_conv=True)),
    ("+ 3x3 output conv = v2 decoder", {}),
    ("v2 without pixel-centred lookup", dict(cross_attention="cell")),
    ("v2 + bilinear into attention stages too", dict(upsample="bilinear_all")),
]


# ----------------------------------------------------------------------------- photographs
def _photo(name: str):
    if name == "grace_hopper":
        import matplotlib
        from PIL import Image

        return Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    return dict(embedded_photographs([name]))[name]


def write_photos(out: Path) -> dict[str, Path]:
    """The training and held-out photographs as PNG files under ``OUT/data`` (written once)."""
    folders = {"train": out / "data" / "train", "held_out": out / "data" / "held_out"}
    for key, names in (("train", TRAIN_PHOTOS), ("held_out", HELD_OUT)):
        folder = folders[key]
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (folder / f"{name}.png").is_file():
                save_png(_photo(name), folder / f"{name}.png")  # atomic: seeds may run in parallel
    assert not set(TRAIN_PHOTOS) & set(HELD_OUT)
    return folders


def held_out_images(folder: Path, side: int = 256) -> dict[str, torch.Tensor]:
    """The held-out photographs whole: shorter side ``side``, sides cut (centred) to multiples of 8."""
    return {f.stem: fit_to_factor(load_rgb(f), FACTOR, resize=side)[None] for f in list_images(folder)}


# ----------------------------------------------------------------------------- training
def train_config(out_dir: Path, args: argparse.Namespace, seed: int, mode: str, steps: int,
                 data: dict | None = None, loss: dict | None = None) -> dict:
    return {
        "mode": mode, "seed": seed, "out_dir": str(out_dir), "export": False,
        "data": {"train": str(args.data["train"]), "val": str(args.data["held_out"]), "size": args.size,
                 "resize": args.resize, "batch_size": args.batch, "val_batch_size": 8, "num_workers": 0,
                 **(data or {})},
        "loss": {"l1_weight": 1.0, "perceptual_weight": args.lpips, "disc_weight": 0.0,
                 "codebook_weight": 1.0 if mode == "from_scratch" else 0.0, **(loss or {})},
        "optim": {"lr": args.lr, "betas": [0.9, 0.99], "warmup_batches": min(100, steps), "ema_decay": args.ema,
                  "grad_clip": 1.0, "dead_code_restart": mode == "from_scratch", "dead_code_every": 100},
        "trainer": {"max_batches": steps, "log_every": 25, "val_every": steps, "image_every": steps,
                    "ckpt_every": steps, "val_batches": 2, "progress_bar": False, "tensorboard": False},
    }


def _log_rows(run_dir: Path) -> list[dict[str, float]]:
    rows = []
    for log in sorted(run_dir.glob("logs/version_*/metrics.csv")):
        with log.open() as fh:
            for row in csv.DictReader(fh):
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def _load_ema(vq: torch.nn.Module, run_dir: Path) -> torch.nn.Module:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    ema = {k[len("ema_vq."):]: v for k, v in state.items() if k.startswith("ema_vq.")}
    vq.load_state_dict(ema or {k[len("vq."):]: v for k, v in state.items() if k.startswith("vq.")}, strict=True)
    return vq.eval()


def train(vq: torch.nn.Module, cfg: dict, *, curve_every: int = 0, score=None) -> tuple[torch.nn.Module, dict]:
    """Train ``vq`` with ``cfg`` in a scratch folder; return its EMA weights and a record (seconds,
    training-log rows; with ``curve_every``, ``score(vq)`` after every that many batches, continuing
    the same run with ``resume=auto`` — constant learning rate after warm-up, so segments = one run)."""
    scratch = Path(cfg["out_dir"])
    if scratch.exists():
        shutil.rmtree(scratch)  # the benchmark's own scratch folder (checked free by main)
    total, t0, curve = cfg["trainer"]["max_batches"], time.time(), []
    marks = list(range(curve_every, total, curve_every)) + [total] if curve_every else [total]
    for mark in marks:
        seg = copy.deepcopy(cfg)
        seg["trainer"]["max_batches"] = mark
        if mark != marks[0]:
            seg["resume"] = "auto"
        run_training(seg, model=vq)
        if curve_every:
            curve.append({"batches": mark, **score(_load_ema(copy.deepcopy(vq), scratch))})
    seconds = time.time() - t0
    record = {"seconds": seconds, "log": _log_rows(scratch), "curve": curve}
    vq = _load_ema(vq, scratch)
    shutil.rmtree(scratch)
    return vq, record


def build_stage0(args: argparse.Namespace, seed: int, out: Path) -> tuple[torch.nn.Module, dict]:
    import hit_decoder.adapters as adapters

    from taming.models.vqgan import VQModel

    path = out / "stage0" / "model.safetensors"
    if path.is_file() and (out / "stage0" / "info.json").is_file():  # this seed's stage 0, trained earlier
        return adapters.load_vqmodel(path), json.loads((out / "stage0" / "info.json").read_text())
    with seeded(seed):
        vq0 = VQModel(ddconfig=DDCONFIG, lossconfig={"target": "torch.nn.Identity"}, n_embed=N_EMBED, embed_dim=EMBED_DIM)
    vq0, rec = train(vq0, train_config(out / "stage0" / "train", args, seed, "from_scratch", args.stage0_steps))
    adapters.save_vqmodel(vq0, path)
    info = {"steps": args.stage0_steps, "seconds": rec["seconds"], **evaluate(vq0, args.images)["mean"]}
    (out / "stage0" / "info.json").write_text(json.dumps(info, indent=2))
    print(f"seed {seed} stage 0: {args.stage0_steps} batches in {rec['seconds']:.0f}s, held-out PSNR {info['psnr']:.2f}",
          flush=True)
    return vq0, info


def fresh_decoder(name: str, seed: int, parts: dict | None = None) -> torch.nn.Module:
    from taming.modules.diffusionmodules.model import Decoder

    with seeded(seed + 100):
        if name == "cnn":
            return Decoder(**DDCONFIG)
        return HiTDecoder(HIT[name].replace(**(parts or {})))


def with_decoder(vq0: torch.nn.Module, decoder: torch.nn.Module) -> torch.nn.Module:
    import hit_decoder.adapters as adapters

    vq = copy.deepcopy(vq0)
    if isinstance(decoder, HiTDecoder):
        return adapters.swap_decoder(vq, decoder)
    vq.decoder = decoder
    return vq


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(vq: torch.nn.Module, images: dict[str, torch.Tensor]) -> dict:
    per = {}
    for name, x in images.items():
        quant, _, _ = vq.encode(x)
        scores = score_images(x, vq.decode(quant).float(), FACTOR)
        per[name] = {"size": f"{x.shape[-1]}x{x.shape[-2]}", **{k.replace("seam_p", "seam"): v for k, v in scores.items()}}
    return {"images": per, "mean": mean_scores(per)}


def originals_seams(images: dict[str, torch.Tensor]) -> dict[str, float]:
    return {f"seam{p}": statistics.fmean(float(seam_ratios(to_unit_range(x), FACTOR)[p][0]) for x in images.values())
            for p in PERIODS}


@torch.no_grad()
def decode_seconds(decoders: dict[str, torch.nn.Module], repeats: int) -> dict[str, float]:
    """Median seconds per 256² decode (batch 1, a latent of 256 / FACTOR per side: 32x32 at f8, 16x16 at
    f16), interleaved across decoders."""
    z = torch.randn(1, Z_CHANNELS, 256 // FACTOR, 256 // FACTOR, generator=torch.Generator().manual_seed(0))
    return interleaved_seconds({k: (lambda d=d: d.eval()(z)) for k, d in decoders.items()}, repeats)


def cost(decoder: torch.nn.Module) -> dict:
    side = 256 // FACTOR
    return {"params": count_parameters(decoder), "gflops": count_flops(decoder, (1, Z_CHANNELS, side, side)) / 1e9}


def machine(args: argparse.Namespace, t0: float) -> dict:
    return {"minutes": (time.time() - t0) / 60, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
            "command": " ".join(sys.argv[1:]), "args": {k: v for k, v in vars(args).items() if k not in ("data", "images")}}


# ----------------------------------------------------------------------------- parts
def run_seed(args, seed: int) -> dict:
    """Stage 0 and every arm of one seed; ``OUT/seed<k>/quality.json``."""
    import hit_decoder.adapters as adapters

    out, t0 = Path(args.out) / f"seed{seed}", time.time()
    vq0, stage0 = build_stage0(args, seed, out)
    previous = json.loads((out / "quality.json").read_text())["arms"] if (out / "quality.json").is_file() else {}
    arms = {}
    for name in args.arms:
        saved = out / name / "model.safetensors"
        if saved.is_file() and name in previous:  # trained by an earlier run of this protocol
            arms[name] = previous[name]
            continue
        vq, rec = train(with_decoder(vq0, fresh_decoder(name, seed)),
                        train_config(out / name / "train", args, seed, "decoder_swap", args.steps))
        adapters.save_vqmodel(vq, saved)
        arms[name] = {"train_seconds": rec["seconds"], "batches": args.steps, **cost(vq.decoder),
                      **evaluate(vq, args.images)}
        print(f"seed {seed} {name}: {rec['seconds']:.0f}s, held-out PSNR {arms[name]['mean']['psnr']:.2f} "
              f"SSIM {arms[name]['mean']['ssim']:.4f}", flush=True)
        _write_json(out / "quality.json", {"seed": seed, "stage0": stage0, "arms": {**previous, **arms}})
    data = {"seed": seed, "stage0": stage0, "arms": {**previous, **arms}, **machine(args, t0)}
    _write_json(out / "quality.json", data)
    return data


def rescore(args) -> None:
    """Score the saved arms of every seed again (current code) and time them interleaved."""
    import hit_decoder.adapters as adapters

    decoders = {}
    for seed_dir in sorted(Path(args.out).glob("seed*")):
        data = json.loads((seed_dir / "quality.json").read_text())
        for name in data["arms"]:
            vq = adapters.load_vqmodel(seed_dir / name / "model.safetensors").eval()
            data["arms"][name].update(**cost(vq.decoder), **evaluate(vq, args.images))
            decoders.setdefault(name, vq.decoder)
        _write_json(seed_dir / "quality.json", data)
    times = decode_seconds(decoders, args.repeats)
    _write_json(Path(args.out) / "decode_seconds.json", {"seconds": times, **machine(args, time.time())})
    print("decode seconds at 256²:", {k: round(v, 4) for k, v in times.items()})


def bootstrap_interval(diffs: dict[int, list[float]], draws: int = 10000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean paired difference: draw seeds with replacement, then
    photographs with replacement within each drawn seed."""
    rng = random.Random(seed)
    seeds = sorted(diffs)
    means = []
    for _ in range(draws):
        vals = []
        for s in (rng.choice(seeds) for _ in seeds):
            vals += [rng.choice(diffs[s]) for _ in diffs[s]]
        means.append(statistics.fmean(vals))
    means.sort()
    return means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def paired(seeds: dict[int, dict], arm: str, metric: str, base: str = "cnn") -> dict:
    """Arm ``arm`` minus arm ``base`` per (seed, photograph): mean, standard error over pairs, bootstrap
    interval, each seed's mean."""
    diffs = {s: [d["arms"][arm]["images"][p][metric] - d["arms"][base]["images"][p][metric]
                 for p in d["arms"][base]["images"]] for s, d in seeds.items()}
    flat = [v for vs in diffs.values() for v in vs]
    lo, hi = bootstrap_interval(diffs)
    se = statistics.stdev(flat) / len(flat) ** 0.5 if len(flat) > 1 else float("nan")
    return {"mean": statistics.fmean(flat), "se": se, "ci95": [lo, hi], "n": len(flat),
            "per_seed": {str(s): statistics.fmean(v) for s, v in diffs.items()}}


#: metrics where a larger value is better (PSNR, SSIM); for the seam ratios smaller is better
HIGHER_IS_BETTER = ("psnr", "ssim")


def variant_check(seeds: dict[int, dict], arm: str, base: str, metrics: list[str]) -> dict:
    """A speed variant against the arm it slims down (issue 17's rule: within the spread of the
    seeds). Per metric: the paired difference ``arm - base`` on the same codes (:func:`paired`), and
    the seeds' spread, which is the largest minus the smallest per-seed mean of ``base - cnn``: how
    far the same architecture moves between seeds relative to the CNN. The variant costs quality in
    a metric when its mean difference is worse than that spread allows (below ``-spread`` for PSNR
    and SSIM, above ``+spread`` for the seam ratios)."""
    out = {}
    for m in metrics:
        diff = paired(seeds, arm, m, base=base)
        per_seed = list(paired(seeds, base, m)["per_seed"].values())
        spread = max(per_seed) - min(per_seed)
        worse = -diff["mean"] if m in HIGHER_IS_BETTER else diff["mean"]
        out[m] = {**diff, "spread": spread, "within": worse <= spread}
    return out


def combine(args) -> dict:
    seeds = {}
    for seed_dir in sorted(Path(args.out).glob("seed*"), key=lambda p: int(p.name[4:])):
        if (seed_dir / "quality.json").is_file():
            seeds[int(seed_dir.name[4:])] = json.loads((seed_dir / "quality.json").read_text())
    if not seeds:
        raise SystemExit(f"no OUT/seed*/quality.json under {args.out}: run the seeds first")
    arms = [a for a in seeds[min(seeds)]["arms"] if all(a in d["arms"] for d in seeds.values())]
    metrics = ["psnr", "ssim", *(f"seam{p}" for p in PERIODS)]
    stats = {a: {m: paired(seeds, a, m) for m in metrics} for a in arms if a != "cnn"}
    means = {a: {m: statistics.fmean(d["arms"][a]["mean"][m] for d in seeds.values()) for m in metrics} for a in arms}
    variants = {a: {"base": b, **variant_check(seeds, a, b, metrics)} for a, b in SPEED_VARIANTS.items()
                if a in arms and b in arms and len(seeds) > 1}
    timing = Path(args.out) / "decode_seconds.json"
    data = {"part": FAMILIES[FACTOR]["part"], "factor": FACTOR, "seeds": {str(k): v for k, v in seeds.items()},
            "arms": arms, "paired": stats,
            "variants": variants, "means": means, "originals": originals_seams(args.images),
            "decode": json.loads(timing.read_text()) if timing.is_file() else None,
            "hit_configs": {k: v.to_dict() for k, v in HIT.items() if k in arms}, **machine(args, time.time())}
    return data


def run_ablation(args, seed: int) -> dict:
    vq0, _ = build_stage0(args, seed, Path(args.out) / f"seed{seed}")
    rows = []
    for label, parts in ABLATION:
        dec = fresh_decoder("hit-m", seed, parts)
        vq, rec = train(with_decoder(vq0, dec), train_config(Path(args.out) / "ablation" / "train", args, seed,
                                                             "decoder_swap", args.ablation_steps))
        rows.append({"variant": label, "parts": parts, "train_seconds": rec["seconds"], **cost(vq.decoder),
                     **evaluate(vq, args.images)["mean"]})
        print(f"ablation {label}: PSNR {rows[-1]['psnr']:.2f} SSIM {rows[-1]['ssim']:.4f} "
              f"seams {rows[-1]['seam2']:.2f}/{rows[-1]['seam4']:.2f}/{rows[-1]['seam8']:.2f}", flush=True)
    return {"part": "ablation", "rows": rows, "originals": originals_seams(args.images)}


def run_overfit(args, seed: int) -> dict:
    """CNN and HiT decoders trained on crops of ONE photograph, scored on it whole every
    ``--curve-every`` batches."""
    vq0, _ = build_stage0(args, seed, Path(args.out) / f"seed{seed}")
    name = args.overfit_image
    folder = Path(args.out) / "overfit" / "image"
    folder.mkdir(parents=True, exist_ok=True)
    save_png(_photo(name), folder / f"{name}.png")
    images = held_out_images(folder)
    data = {"train": str(folder), "val": str(folder)}
    rows = {}
    for arm in args.overfit_arms:
        vq, rec = train(with_decoder(vq0, fresh_decoder(arm, seed)),
                        train_config(Path(args.out) / "overfit" / "train", args, seed, "decoder_swap",
                                     args.overfit_steps, data),
                        curve_every=args.curve_every, score=lambda v: evaluate(v, images)["mean"])
        rows[arm] = {"train_seconds": rec["seconds"], **cost(vq.decoder), **evaluate(vq, images)["mean"],
                     "curve": rec["curve"]}
        print(f"overfit {arm}: " + ", ".join(f"{c['batches']}: {c['psnr']:.2f}" for c in rec["curve"]), flush=True)
    return {"part": "overfit", "image": name, "seed": seed, "rows": rows}


def run_adversarial(args, seed: int) -> dict:
    """The CNN arm and a HiT arm with L1 + PatchGAN (hinge, adaptive weight through
    ``get_last_layer``), the same discriminator and schedule; scored like the quality arms."""
    import hit_decoder.adapters as adapters

    out = Path(args.out) / f"seed{seed}"
    vq0, _ = build_stage0(args, seed, out)
    steps = args.adv_steps
    loss = {"disc_weight": args.disc_weight, "disc_loss": "hinge", "disc_train_start": steps // 5,
            "disc_weight_start": steps // 5 * 2, "disc_layers": 2, "disc_channels": 32}
    rows = {}
    for arm in args.adv_arms:
        vq, rec = train(with_decoder(vq0, fresh_decoder(arm, seed)),
                        train_config(out / f"gan-{arm}" / "train", args, seed, "decoder_swap", steps, loss=loss))
        adapters.save_vqmodel(vq, out / f"gan-{arm}" / "model.safetensors")
        tail = [r for r in rec["log"] if "train/d_loss" in r][-8:]
        stability = {k: statistics.fmean(r[f"train/{k}"] for r in tail) if tail else float("nan")
                     for k in ("d_loss", "logits_real", "logits_fake", "gan_weight", "g_adv")}
        finite = all(v == v and abs(v) != float("inf") for r in rec["log"] for v in r.values())
        rows[arm] = {"train_seconds": rec["seconds"], **cost(vq.decoder), **evaluate(vq, args.images),
                     "stability": stability, "all_logged_finite": finite}
        print(f"adversarial {arm}: PSNR {rows[arm]['mean']['psnr']:.2f} SSIM {rows[arm]['mean']['ssim']:.4f} "
              f"d_loss {stability['d_loss']:.3f}", flush=True)
    return {"part": "adversarial", "seed": seed, "loss": loss, "steps": steps, "rows": rows}


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:  # the library's atomic writer (seeds run in parallel processes)
        tmp.write_text(json.dumps(data, indent=2))


# ----------------------------------------------------------------------------- rendering
def _meta(d: dict) -> str:
    return (f"{d['machine']}, {d['threads']} torch threads, torch {d['torch']}, {d['date']}; "
            f"command `python benchmarks/quality.py {d['command']}`")


def _ci(s: dict, fmt: str) -> str:
    return f"{s['mean']:{fmt}} [{s['ci95'][0]:{fmt}}, {s['ci95'][1]:{fmt}}] (SE {s['se']:{fmt[1:] if fmt[0] == '+' else fmt}})"


def render_quality(d: dict) -> str:
    a, seeds, arms, means, orig = argparse.Namespace(**d["args"]), d["seeds"], d["arms"], d["means"], d["originals"]
    first = seeds[min(seeds, key=int)]
    cnn_gflops = first["arms"]["cnn"]["gflops"]
    photos = list(first["arms"]["cnn"]["images"])
    secs = (d.get("decode") or {}).get("seconds", {})
    base = next((a for a in arms if a != "cnn" and a not in SPEED_VARIANTS), None)  # the family's reference HiT arm
    lines = [
        "## Reconstruction quality: taming CNN decoder vs HiT decoders, paired over seeds and photographs (issue 16)"
        if FACTOR == 8 else "## Reconstruction quality, f16 family: taming CNN decoder vs HiT decoders shaped like "
        "hit-8m-f16, and its speed variant (issue 17)",
        "",
        f"{len(seeds)} seeds; per seed a frozen f{FACTOR} taming VQGAN (stage 0, {first['stage0']['steps']} batches) and "
        f"one decoder per arm trained {first['arms']['cnn'].get('batches', a.steps)} batches on its codes. "
        f"{len(photos)} held-out photographs "
        f"({', '.join(photos)}) reconstructed **whole** (shorter side 256 px) by every arm's EMA weights.",
        "",
        "Mean over seeds and photographs:",
        "",
        "| decoder | params (M) | GFLOPs at 256² | FLOPs vs CNN | decode s at 256² | PSNR (dB) | SSIM "
        + "".join(f"| seam p{p} " for p in PERIODS) + "|",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(PERIODS),
    ]
    for name in arms:
        r, m = first["arms"][name], means[name]
        t = f"{secs[name]:.3f}" if name in secs else "not measured"
        lines.append(f"| {name} | {r['params'] / 1e6:.3f} | {r['gflops']:.2f} | {r['gflops'] / cnn_gflops:.3f} | {t} | "
                     f"{m['psnr']:.2f} | {m['ssim']:.4f} | " + " | ".join(f"{m[f'seam{p}']:.2f}" for p in PERIODS) + " |")
    lines.append("| *original photographs* | | | | | | | " + " | ".join(f"{orig[f'seam{p}']:.2f}" for p in PERIODS) + " |")
    lines += ["", "Paired differences, HiT arm minus CNN arm on the same codes: mean over (seed, photograph) pairs, "
                  "[95% two-level bootstrap interval] (standard error over pairs), and each seed's mean:", "",
              "| arm | n | ΔPSNR (dB) | ΔSSIM | " + "".join(f"Δseam p{p} | " for p in PERIODS) + "ΔPSNR per seed |",
              "|---|---:|---|---|" + "---|" * len(PERIODS) + "---|"]
    for name, st in d["paired"].items():
        per_seed = ", ".join(f"{s}: {v:+.2f}" for s, v in st["psnr"]["per_seed"].items())
        lines.append(f"| {name} | {st['psnr']['n']} | {_ci(st['psnr'], '+.2f')} | {_ci(st['ssim'], '+.4f')} | "
                     + "".join(f"{_ci(st[f'seam{p}'], '+.3f')} | " for p in PERIODS) + f"{per_seed} |")
    verdicts = []
    for name, st in d["paired"].items():
        lo, hi = st["psnr"]["ci95"]
        seams = ", ".join(f"p{p} {means[name][f'seam{p}']:.2f} vs {means['cnn'][f'seam{p}']:.2f}" for p in PERIODS)
        verdicts.append(f"{name} ({first['arms'][name]['gflops'] / cnn_gflops:.3f}x the CNN's FLOPs) ΔPSNR "
                        f"{st['psnr']['mean']:+.2f} dB [{lo:+.2f}, {hi:+.2f}], ΔSSIM {st['ssim']['mean']:+.4f}, seams {seams}")
    lines += ["", f"Result ({len(seeds)} seeds x {len(photos)} held-out photographs, paired against the CNN arm): "
              + "; ".join(verdicts) + ".", "", "Per seed (mean over photographs):", "",
              "| seed | stage 0 PSNR | " + " | ".join(f"{n} PSNR / SSIM / seam p{FACTOR}" for n in arms) + " |",
              "|---|---:|" + "---|" * len(arms)]
    for s, sd in seeds.items():
        cells = [f"{sd['arms'][n]['mean']['psnr']:.2f} / {sd['arms'][n]['mean']['ssim']:.4f} / "
                 f"{sd['arms'][n]['mean'][f'seam{FACTOR}']:.2f}" for n in arms]
        lines.append(f"| {s} | {sd['stage0']['psnr']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Per photograph (mean over seeds), PSNR:", "", "| photograph | " + " | ".join(arms) + " |",
              "|---|" + "---:|" * len(arms)]
    for p in photos:
        lines.append(f"| {p} | " + " | ".join(
            f"{statistics.fmean(sd['arms'][n]['images'][p]['psnr'] for sd in seeds.values()):.2f}" for n in arms) + " |")
    lines += ["", "Targets (issue 16): a HiT arm at <= 1/4 of the CNN's FLOPs with mean paired ΔPSNR >= 0, ΔSSIM >= "
                  "-(its interval's half-width), every seam period <= the CNN's, the same verdict in every seed:"]
    for name, st in d["paired"].items():
        ratio = first["arms"][name]["gflops"] / cnn_gflops
        half = (st["ssim"]["ci95"][1] - st["ssim"]["ci95"][0]) / 2
        seams_ok = all(means[name][f"seam{p}"] <= means["cnn"][f"seam{p}"] for p in PERIODS)
        signs = {v >= 0 for v in st["psnr"]["per_seed"].values()}
        lines.append(
            f"- {name} ({ratio:.3f}x the CNN's FLOPs): ΔPSNR {_ci(st['psnr'], '+.2f')} dB — >= 0: "
            f"**{'met' if st['psnr']['mean'] >= 0 else 'not met'}**; ΔSSIM {st['ssim']['mean']:+.4f} vs -{half:.4f}: "
            f"**{'met' if st['ssim']['mean'] >= -half else 'not met'}**; seams "
            + ", ".join(f"p{p} {means[name][f'seam{p}']:.3f} vs {means['cnn'][f'seam{p}']:.3f}" for p in PERIODS)
            + f": **{'met' if seams_ok else 'not met'}**; per-seed ΔPSNR sign "
            f"{'the same in every seed' if len(signs) == 1 else 'differs between seeds'}.")
    lines += render_variants(d, secs)
    lines += [
        "",
        "Protocol:",
        f"- photographs (shipped in scikit-image's and matplotlib's wheels): training {', '.join(TRAIN_PHOTOS)}; "
        f"held out {', '.join(HELD_OUT)} (never trained on; grey ones replicated to RGB).",
        f"- stage 0 per seed: taming VQModel, ch {DDCONFIG['ch']}, ch_mult {DDCONFIG['ch_mult']} (f{FACTOR}), "
        f"{DDCONFIG['num_res_blocks']} res block, z_channels {Z_CHANNELS}, codebook {N_EMBED} x {EMBED_DIM}; L1 + VQ loss, "
        "dead-code restarts; its own (jointly trained) decoder's held-out PSNR per seed is in the per-seed table.",
        f"- arms: encoder, quant_conv, codebook, post_quant_conv frozen; only the decoder trains. cnn: a fresh taming "
        f"Decoder with the stage-0 config; hit-*: fresh HiT decoders ({base}: {json.dumps(d['hit_configs'].get(base))}"
        + ("; hit-m-ba: the same with upsample=bilinear_all" if "hit-m-ba" in arms else "")
        + "; the speed variants: the same with the channels of their table).",
        f"- identical for every arm of a seed: L1 loss{' + LPIPS %g' % a.lpips if a.lpips else ''} (no GAN here: see the "
        f"adversarial pair); Adam lr {a.lr:g}, betas (0.9, 0.99), "
        f"{min(100, first['arms']['cnn'].get('batches', a.steps))} warm-up batches, grad clip 1.0, "
        f"EMA {a.ema}; batch {a.batch} of {a.size}² crops (+ flips) of the training photographs resized to shorter side "
        f"{a.resize}; decoder initialisation and data order from the seed.",
        "- SSIM: RGB in [0, 1], per channel then averaged, 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, "
        "population statistics, valid windows (= skimage's structural_similarity with gaussian_weights=True, "
        "use_sample_covariance=False; tests/test_losses.py checks it). Seam ratio: mean |luminance step| across the "
        "period's grid lines / mean elsewhere (1.0 = no grid).",
        f"- GFLOPs: torch.utils.flop_counter on a {256 // FACTOR}x{256 // FACTOR} latent (256² output); "
        "decode s: median of interleaved decodes "
        + (f"at batch 1 ({_meta(d['decode'])})." if d.get("decode") else "(not measured in this run)."),
        f"- machine: {_meta(d)}",
    ]
    return "\n".join(lines)


def render_variants(d: dict, secs: dict) -> list[str]:
    """The speed variants' table (:func:`variant_check`), or nothing when the run has none."""
    variants = d.get("variants") or {}
    if not variants:
        return []
    lines = ["", "Speed variants (issue 17), paired against the arm they slim down, on the same codes. An "
             "architecture change made for speed may not cost quality beyond the spread of the seeds: in each metric, the "
             "largest minus the smallest per-seed mean of the `vs` arm minus the CNN (shown as ±spread). Cells: mean "
             "difference [95% bootstrap interval] ±spread.", "",
             "| arm | vs | channels | decode s at 256² | speed | ΔPSNR (dB) | ΔSSIM | "
             + " | ".join(f"Δseam p{p}" for p in PERIODS) + " |", "|---|---|---|---:|---:|---|---|" + "---|" * len(PERIODS)]
    cell = lambda st, f: f"{st['mean']:{f}} [{st['ci95'][0]:{f}}, {st['ci95'][1]:{f}}] ±{st['spread']:{f[1:]}}"
    metrics = ["psnr", "ssim", *(f"seam{p}" for p in PERIODS)]
    fmts = {"psnr": "+.2f", "ssim": "+.4f"}
    verdicts = []
    for name, v in variants.items():
        base = v["base"]
        speed = f"{secs[base] / secs[name]:.2f}x" if name in secs and base in secs else "not measured"
        t = f"{secs[name]:.3f}" if name in secs else "not measured"
        channels = d["hit_configs"].get(name, {}).get("channels")
        lines.append(f"| {name} | {base} | {channels} | {t} | {speed} | "
                     + " | ".join(cell(v[m], fmts.get(m, "+.3f")) for m in metrics) + " |")
        costs = [m for m in metrics if not v[m]["within"]]
        verdicts.append(f"- {name} vs {base} ({speed} the speed at 256²): "
                        + (f"**costs quality** beyond the seeds' spread in {', '.join(costs)}" if costs
                           else "**within the seeds' spread** in PSNR, SSIM and every seam period"))
    return lines + ["", *verdicts]


def render_ablation(d: dict) -> str:
    a, orig = argparse.Namespace(**d["args"]), d["originals"]
    lines = [
        "## Decoder ablation: from the v1 to the v2 HiT decoder (issue 8)",
        "",
        f"hit-m architecture, each variant trained {a.ablation_steps} batches (same seed, data order, optimizer) on "
        f"a frozen stage-0 VQGAN of the quality benchmark; held-out photographs whole, mean of {len(HELD_OUT)}.",
        "",
        "| variant | GFLOPs at 256² | params (M) | PSNR (dB) | SSIM | seam p2 | seam p4 | seam p8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        lines.append(f"| {r['variant']} | {r['gflops']:.2f} | {r['params'] / 1e6:.3f} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['seam2']:.2f} | {r['seam4']:.2f} | {r['seam8']:.2f} |")
    lines.append(f"| *original photographs* | | | | | {orig['seam2']:.2f} | {orig['seam4']:.2f} | {orig['seam8']:.2f} |")
    lines += ["", f"- machine: {_meta(d)}"]
    return "\n".join(lines)


def render_overfit(d: dict) -> str:
    a = argparse.Namespace(**d["args"])
    rows = d["rows"]
    marks = [c["batches"] for c in next(iter(rows.values()))["curve"]]
    lines = [
        "## Overfit test: one photograph, many steps, the curve (issue 16)",
        "",
        f"Decoders trained {a.overfit_steps} batches on {a.size}² crops of `{d['image']}` only (seed {d['seed']}'s "
        "frozen stage-0 VQGAN), scored on that photograph whole (PSNR, dB) after every "
        f"{a.curve_every} batches. If the HiT decoder could not reach the CNN here, capacity or optimisation would be the "
        "problem, not data.",
        "",
        "| decoder | GFLOPs at 256² | " + " | ".join(str(m) for m in marks) + " | SSIM at the end | seam p8 at the end |",
        "|---|---:|" + "---:|" * len(marks) + "---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['gflops']:.2f} | " + " | ".join(f"{c['psnr']:.2f}" for c in r["curve"])
                     + f" | {r['ssim']:.4f} | {r['seam8']:.2f} |")
    cnn = rows["cnn"]
    for name, r in rows.items():
        if name != "cnn":
            lines += ["", f"{name}: PSNR at least the CNN's at the end: **{'met' if r['psnr'] >= cnn['psnr'] else 'not met'}** "
                          f"(ΔPSNR {r['psnr'] - cnn['psnr']:+.2f} dB; per point: "
                          + ", ".join(f"{c['batches']}: {c['psnr'] - k['psnr']:+.2f}" for c, k in zip(r["curve"], cnn["curve"]))
                          + ")."]
    lines += ["", f"- machine: {_meta(d)}"]
    return "\n".join(lines)


def render_adversarial(d: dict) -> str:
    rows, loss = d["rows"], d["loss"]
    lines = [
        "## Adversarial arm pair: CNN vs HiT decoder with L1 + PatchGAN (issue 16)",
        "",
        f"Seed {d['seed']}'s frozen stage 0; each decoder trained {d['steps']} batches with L1 + a hinge PatchGAN "
        f"({loss['disc_layers']} layers, {loss['disc_channels']} channels; the discriminator learns from batch "
        f"{loss['disc_train_start']}, its term enters the decoder's loss at batch {loss['disc_weight_start']} with taming's "
        f"adaptive weight through `get_last_layer`, scale {loss['disc_weight']}); same discriminator, schedule, optimizer "
        f"and data for both. Held-out photographs whole, mean of {len(HELD_OUT)}. Stability: mean of the last logged "
        f"training rows (logged every 25 batches).",
        "",
        "| decoder | GFLOPs at 256² | PSNR (dB) | SSIM | seam p2 | seam p4 | seam p8 | d_loss | logits real / fake | "
        "adaptive weight | every logged value finite |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, r in rows.items():
        m, s = r["mean"], r["stability"]
        lines.append(f"| {name} | {r['gflops']:.2f} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['seam2']:.2f} | "
                     f"{m['seam4']:.2f} | {m['seam8']:.2f} | {s['d_loss']:.3f} | {s['logits_real']:+.2f} / "
                     f"{s['logits_fake']:+.2f} | {s['gan_weight']:.3g} | {r['all_logged_finite']} |")
    cnn = rows["cnn"]["mean"]
    for name, r in rows.items():
        if name != "cnn":
            m = r["mean"]
            ok = m["psnr"] >= cnn["psnr"] and m["ssim"] >= cnn["ssim"]
            lines += ["", f"{name} vs cnn: ΔPSNR {m['psnr'] - cnn['psnr']:+.2f} dB, ΔSSIM {m['ssim'] - cnn['ssim']:+.4f} — "
                          f"PSNR and SSIM at least the CNN's: **{'met' if ok else 'not met'}** (one seed)."]
    lines += ["", f"- machine: {_meta(d)}"]
    return "\n".join(lines)


RENDERERS = {"quality": render_quality, "quality-f16": render_quality, "ablation": render_ablation, "overfit": render_overfit,
             "adversarial": render_adversarial}


# ----------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--factor", type=int, default=8, choices=sorted(FAMILIES),
                   help="the stage 0's downsampling factor: the f8 family (default) or the f16 family")
    p.add_argument("--arms", nargs="+", default=None, choices=["cnn", *HIT],
                   help="default: the family's arms (f8: %s; f16: %s)" % tuple(", ".join(FAMILIES[f]["arms"]) for f in (8, 16)))
    p.add_argument("--stage0-steps", type=int, default=1200)
    p.add_argument("--steps", type=int, default=800, help="training batches per decoder arm")
    p.add_argument("--combine", action="store_true", help="only combine OUT/seed*/quality.json into the table")
    p.add_argument("--rescore", action="store_true", help="re-score and time the saved arms, then combine")
    p.add_argument("--ablation", action="store_true", help="run the ablation variants instead of the arms")
    p.add_argument("--ablation-steps", type=int, default=500)
    p.add_argument("--overfit", action="store_true", help="run the one-photograph overfit test instead of the arms")
    p.add_argument("--overfit-steps", type=int, default=1200)
    p.add_argument("--curve-every", type=int, default=300)
    p.add_argument("--overfit-image", default="chelsea")
    p.add_argument("--overfit-arms", nargs="+", default=["cnn", "hit-m-ba"])
    p.add_argument("--adversarial", action="store_true", help="train the CNN / HiT pair with L1 + PatchGAN")
    p.add_argument("--adv-steps", type=int, default=800)
    p.add_argument("--adv-arms", nargs="+", default=["cnn", "hit-m-ba"])
    p.add_argument("--disc-weight", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="crop side in pixels")
    p.add_argument("--resize", type=int, default=256, help="photographs' shorter side before cropping")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--lpips", type=float, default=0.0, help="LPIPS weight (needs the VGG16 weights file)")
    p.add_argument("--repeats", type=int, default=7, help="interleaved 256² decodes per arm for the time column")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", default=None, help="default: the family's folder under runs/ (f8: %s; f16: %s)"
                   % tuple(FAMILIES[f]["out"] for f in (8, 16)))
    p.add_argument("--stage0-only", action="store_true", help="only train (or reuse) the seeds' stage 0 and stop")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    p.add_argument("--render", metavar="JSON", help="only re-render BENCHMARKS.md from a saved result file")
    args = p.parse_args()
    if args.render:
        data = json.loads(Path(args.render).read_text())
        use_factor(data.get("factor", 8))
        return _publish(args, data)
    use_factor(args.factor)
    args.arms = args.arms or list(FAMILIES[args.factor]["arms"])
    args.out = args.out or str(ROOT / "runs" / FAMILIES[args.factor]["out"])
    wrong = [a for a in args.arms if a != "cnn" and HIT[a].downsample_factor != args.factor]
    if wrong or (args.factor != 8 and (args.ablation or args.overfit or args.adversarial)):
        p.error(f"--factor {args.factor}: the arms {wrong or ['hit-m']} decode at another factor; the f{args.factor} "
                f"family's arms are {', '.join(FAMILIES[args.factor]['arms'])} (ablation, overfit and adversarial: f8 only)")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    args.data = write_photos(out)
    args.images = held_out_images(args.data["held_out"])
    t0 = time.time()
    if args.stage0_only:
        for seed in args.seeds:
            build_stage0(args, seed, out / f"seed{seed}")
        return 0
    if args.ablation or args.overfit or args.adversarial:
        run = run_ablation if args.ablation else run_overfit if args.overfit else run_adversarial
        data = run(args, args.seeds[0])
        data.update(machine(args, t0))
        _write_json(out / f"{data['part']}.json", data)
        return _publish(args, data)
    if args.rescore:
        rescore(args)
    elif not args.combine:
        for seed in args.seeds:
            run_seed(args, seed)
    data = combine(args)
    _write_json(out / "quality.json", data)
    return _publish(args, data)


def _publish(args, data: dict) -> int:
    body = RENDERERS[data["part"]](data)
    print(body)
    if not args.no_write:
        update_section(ROOT / "BENCHMARKS.md", data["part"], body)
        print(f"updated {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
