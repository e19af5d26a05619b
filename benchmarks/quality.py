"""Reconstruction quality: taming's CNN decoder vs HiT decoders, swapped onto one frozen taming VQGAN.

    python benchmarks/quality.py                         # stage 0 + arms (~40 min on 2 CPU cores)
    python benchmarks/quality.py --ablation --reuse-stage0   # the decoder ablation table
    python benchmarks/quality.py --overfit --reuse-stage0    # one photograph, many steps
    python benchmarks/quality.py --reuse-stage0 --reuse-arms --overwrite   # re-score saved arms, train new ones
    python benchmarks/quality.py --steps 20 --stage0-steps 20 --no-write --out /tmp/q   # smoke run

Protocol (scikit-image's bundled photographs; nothing is downloaded):
0. Stage 0: a small taming VQGAN, f8 (taming Encoder / VectorQuantizer2 / Decoder, ch_mult
   [1, 2, 2, 4]), trained from scratch on random crops of the training photographs (L1 + VQ loss,
   dead-code restarts). Saved as ``OUT/stage0/model.safetensors``.
1. Its encoder, quant_conv, codebook and post_quant_conv are frozen (bit-identical in every arm).
2. Each arm trains a freshly initialised decoder on them: taming's CNN decoder (the stage-0
   architecture) and HiT decoders of three sizes, with identical loss, optimizer, learning-rate
   schedule, EMA, batch size, number of batches and data order (same seed).
3. Every arm's EMA weights reconstruct the held-out photographs WHOLE (shorter side 256 px, sides
   cut to a multiple of 8): PSNR, SSIM and the seam ratio at periods 2, 4, 8 (the originals' seam
   ratios are listed for reference). Decode time at 256² is measured in the same process,
   interleaved across arms. Each arm is saved as ``OUT/<arm>/model.safetensors`` (library
   format: ``hit-decoder reconstruct --model OUT/<arm>/model.safetensors --images DIR``).

``--ablation`` trains the variants between the v1 decoder and the v2 decoder (one change at a
time, same budget and seed) on the same frozen stage 0; ``--overfit`` trains the CNN and the
medium HiT decoder on crops of ONE photograph for many steps and scores that photograph.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from hit_decoder import HiTDecoder, HiTDecoderConfig
from benchmarking import update_section
from hit_decoder.flops import count_flops, count_parameters
from hit_decoder.training import run_training
from hit_decoder.training.data import EMBEDDED_TRAIN, EMBEDDED_VAL, embedded_photographs
from hit_decoder.training.evaluate import held_out_images as library_held_out_images
from hit_decoder.training.evaluate import interleaved_seconds, mean_scores, score_images
from hit_decoder.training.metrics import seam_ratios, to_unit_range
from hit_decoder.training.models import seeded

ROOT = Path(__file__).resolve().parents[1]

Z_CHANNELS, EMBED_DIM, N_EMBED = 32, 16, 512
DDCONFIG = {"double_z": False, "z_channels": Z_CHANNELS, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 2, 2, 4], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
FACTOR = 2 ** (len(DDCONFIG["ch_mult"]) - 1)
V1 = dict(cross_attention="cell", upsample="pixel_shuffle", mlp_conv=False, rgb_upsample="nearest", out_conv=False)
HIT = {
    "hit-m": HiTDecoderConfig(z_channels=Z_CHANNELS, channels=(128, 64, 32, 32), depths=(2, 2, 1, 1), heads=(4, 4, 2, 2),
                              num_attention_stages=2, block_size=(4, 8), dilation_grid=(4, 4)),
    "hit-l": HiTDecoderConfig(z_channels=Z_CHANNELS, channels=(160, 80, 40, 32), depths=(2, 2, 1, 1), heads=(4, 4, 2, 2),
                              num_attention_stages=2, block_size=(4, 8), dilation_grid=(4, 4)),
    "hit-s": HiTDecoderConfig(z_channels=Z_CHANNELS, channels=(64, 32, 16, 16), depths=(2, 1, 1, 1), heads=(4, 2, 2, 2),
                              num_attention_stages=2, block_size=(4, 8), dilation_grid=(4, 4)),
}
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


# ----------------------------------------------------------------------------- training
def train_config(out_dir: Path, args: argparse.Namespace, mode: str, steps: int, data: dict | None = None) -> dict:
    return {
        "mode": mode, "seed": args.seed, "out_dir": str(out_dir), "export": False,
        "data": {"size": args.size, "resize": args.resize, "batch_size": args.batch, "val_batch_size": 8,
                 "num_workers": 0, "val_crops_per_image": 4, **(data or {})},
        "loss": {"l1_weight": 1.0, "perceptual_weight": args.lpips, "disc_weight": 0.0,
                 "codebook_weight": 1.0 if mode == "from_scratch" else 0.0},
        "optim": {"lr": args.lr, "betas": [0.9, 0.99], "warmup_batches": min(100, steps), "ema_decay": args.ema,
                  "grad_clip": 1.0, "dead_code_restart": mode == "from_scratch", "dead_code_every": 100},
        "trainer": {"max_batches": steps, "log_every": 50, "val_every": steps, "image_every": steps,
                    "ckpt_every": steps, "progress_bar": False, "tensorboard": False},
    }


def train(vq: torch.nn.Module, cfg: dict) -> tuple[torch.nn.Module, float]:
    """Train ``vq`` with ``cfg`` in a scratch folder; return its EMA weights and the seconds taken."""
    scratch = Path(cfg["out_dir"])
    if scratch.exists():
        shutil.rmtree(scratch)  # the benchmark's own scratch folder (checked free by main)
    t0 = time.time()
    run_training(cfg, model=vq)
    seconds = time.time() - t0
    state = torch.load(scratch / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    ema = {k[len("ema_vq."):]: v for k, v in state.items() if k.startswith("ema_vq.")}
    vq.load_state_dict(ema or {k[len("vq."):]: v for k, v in state.items() if k.startswith("vq.")}, strict=True)
    shutil.rmtree(scratch)
    return vq.eval(), seconds


def build_stage0(args: argparse.Namespace, out: Path) -> tuple[torch.nn.Module, dict]:
    import hit_decoder.adapters as adapters
    from taming.models.vqgan import VQModel

    path = out / "stage0" / "model.safetensors"
    if args.reuse_stage0 and path.is_file():
        info = json.loads((out / "stage0" / "info.json").read_text())
        return adapters.load_vqmodel(path), info
    with seeded(args.seed):
        vq0 = VQModel(ddconfig=DDCONFIG, lossconfig={"target": "torch.nn.Identity"}, n_embed=N_EMBED, embed_dim=EMBED_DIM)
    vq0, seconds = train(vq0, train_config(out / "stage0" / "train", args, "from_scratch", args.stage0_steps))
    adapters.save_vqmodel(vq0, path)
    info = {"steps": args.stage0_steps, "seconds": seconds, **evaluate(vq0)["mean"]}
    (out / "stage0" / "info.json").write_text(json.dumps(info, indent=2))
    print(f"stage 0: {args.stage0_steps} batches in {seconds:.0f}s, held-out PSNR {info['psnr']:.2f}", flush=True)
    return vq0, info


def fresh_decoder(name: str, args: argparse.Namespace, parts: dict | None = None) -> torch.nn.Module:
    from taming.modules.diffusionmodules.model import Decoder

    with seeded(args.seed + 100):
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
def held_out_images(names=EMBEDDED_VAL, side: int = 256) -> dict[str, torch.Tensor]:
    """The held-out photographs whole: shorter side ``side``, sides cut (centred) to multiples of 8."""
    return library_held_out_images(FACTOR, side, names)


@torch.no_grad()
def evaluate(vq: torch.nn.Module, images: dict[str, torch.Tensor] | None = None) -> dict:
    images = images or held_out_images()
    per = {}
    for name, x in images.items():
        quant, _, _ = vq.encode(x)
        scores = score_images(x, vq.decode(quant).float(), FACTOR)
        per[name] = {"size": f"{x.shape[-1]}x{x.shape[-2]}", **{k.replace("seam_p", "seam"): v for k, v in scores.items()}}
    return {"images": per, "mean": mean_scores(per)}


def originals_seams(images: dict[str, torch.Tensor]) -> dict[str, float]:
    return {f"seam{p}": statistics.fmean(float(seam_ratios(to_unit_range(x), FACTOR)[p][0]) for x in images.values())
            for p in (2, 4, 8)}


@torch.no_grad()
def decode_seconds(decoders: dict[str, torch.nn.Module], repeats: int) -> dict[str, float]:
    """Median seconds per 256² decode (batch 1, a 32x32 latent), interleaved across decoders."""
    z = torch.randn(1, Z_CHANNELS, 256 // FACTOR, 256 // FACTOR, generator=torch.Generator().manual_seed(0))
    return interleaved_seconds({k: (lambda d=d: d.eval()(z)) for k, d in decoders.items()}, repeats)


def cost(decoder: torch.nn.Module) -> dict:
    return {"params": count_parameters(decoder), "gflops": count_flops(decoder, (1, Z_CHANNELS, 32, 32)) / 1e9}


# ----------------------------------------------------------------------------- parts
def run_arms(args, out: Path, vq0, stage0: dict) -> dict:
    import hit_decoder.adapters as adapters

    images = held_out_images()
    arms, decoders = {}, {}
    previous = json.loads((out / "quality.json").read_text())["arms"] if (out / "quality.json").is_file() else {}
    for name in ("cnn", *HIT):
        saved = out / name / "model.safetensors"
        if args.reuse_arms and saved.is_file() and name in previous:  # trained by an earlier run of this protocol
            vq, seconds = adapters.load_vqmodel(saved), previous[name]["train_seconds"]
        else:
            vq, seconds = train(with_decoder(vq0, fresh_decoder(name, args)),
                                train_config(out / name / "train", args, "decoder_swap", args.steps))
            adapters.save_vqmodel(vq, saved)
        decoders[name] = vq.decoder
        arms[name] = {"train_seconds": seconds, **cost(vq.decoder), **evaluate(vq, images)}
        print(f"{name}: {seconds:.0f}s, held-out PSNR {arms[name]['mean']['psnr']:.2f} SSIM {arms[name]['mean']['ssim']:.4f}",
              flush=True)
    for name, s in decode_seconds(decoders, args.repeats).items():
        arms[name]["decode_seconds_256"] = s
    return {"arms": arms, "stage0": stage0, "originals": originals_seams(images),
            "hit_configs": {k: v.to_dict() for k, v in HIT.items()}}


def run_ablation(args, out: Path, vq0) -> dict:
    images = held_out_images()
    rows = []
    for label, parts in ABLATION:
        dec = fresh_decoder("hit-m", args, parts)
        vq, seconds = train(with_decoder(vq0, dec), train_config(out / "ablation" / "train", args, "decoder_swap",
                                                                 args.ablation_steps))
        rows.append({"variant": label, "parts": parts, "train_seconds": seconds, **cost(vq.decoder),
                     **evaluate(vq, images)["mean"]})
        print(f"ablation {label}: PSNR {rows[-1]['psnr']:.2f} SSIM {rows[-1]['ssim']:.4f} "
              f"seams {rows[-1]['seam2']:.2f}/{rows[-1]['seam4']:.2f}/{rows[-1]['seam8']:.2f}", flush=True)
    return {"rows": rows, "originals": originals_seams(images)}


def run_overfit(args, out: Path, vq0) -> dict:
    from PIL import Image

    name = args.overfit_image
    folder = out / "overfit" / "image"
    folder.mkdir(parents=True, exist_ok=True)
    img = dict(embedded_photographs([name]))[name]
    img.save(folder / f"{name}.png")
    images = {name: held_out_images([name])[name]}
    data = {"train": str(folder), "val": str(folder), "resize": args.resize}
    rows = {}
    for arm in ("cnn", "hit-m"):
        vq, seconds = train(with_decoder(vq0, fresh_decoder(arm, args)),
                            train_config(out / "overfit" / "train", args, "decoder_swap", args.overfit_steps, data))
        rows[arm] = {"train_seconds": seconds, **cost(vq.decoder), **evaluate(vq, images)["mean"]}
        print(f"overfit {arm}: PSNR {rows[arm]['psnr']:.2f}", flush=True)
    del Image
    return {"image": name, "rows": rows}


# ----------------------------------------------------------------------------- rendering
def _meta(d: dict) -> str:
    return (f"{d['machine']}, {d['threads']} torch threads, torch {d['torch']}, {d['minutes']:.1f} min, "
            f"{d['date']}; command `python benchmarks/quality.py {d['command']}`".replace(" `", " `").rstrip())


def render_quality(d: dict) -> str:
    a, arms, st, orig = argparse.Namespace(**d["args"]), d["arms"], d["stage0"], d["originals"]
    cnn = arms["cnn"]
    lines = [
        "## Reconstruction quality: taming CNN decoder vs HiT decoders (issue 8)",
        "",
        f"Decoders trained for {a.steps} batches of {a.batch} random {a.size}² crops on a frozen f{FACTOR} taming "
        f"VQGAN (stage 0: {st['steps']} batches); EMA weights reconstruct the held-out photographs "
        f"({', '.join(EMBEDDED_VAL)}) **whole** (shorter side 256 px). Mean over the photographs.",
        "",
        "| decoder | params (M) | GFLOPs at 256² | FLOPs vs CNN | decode s at 256² | PSNR (dB) | SSIM | seam p2 | seam p4 | seam p8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in arms.items():
        m = r["mean"]
        lines.append(f"| {name} | {r['params'] / 1e6:.3f} | {r['gflops']:.2f} | {r['gflops'] / cnn['gflops']:.3f} | "
                     f"{r['decode_seconds_256']:.3f} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['seam2']:.2f} | "
                     f"{m['seam4']:.2f} | {m['seam8']:.2f} |")
    lines.append(f"| *original photographs* | | | | | | | {orig['seam2']:.2f} | {orig['seam4']:.2f} | {orig['seam8']:.2f} |")
    lines += ["", "Per photograph:", "", "| decoder | photograph | size | PSNR | SSIM | seam p2 | seam p4 | seam p8 |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, r in arms.items():
        for img, m in r["images"].items():
            lines.append(f"| {name} | {img} | {m['size']} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['seam2']:.2f} | "
                         f"{m['seam4']:.2f} | {m['seam8']:.2f} |")
    verdicts = []
    for name, r in arms.items():
        if name != "cnn":
            m = r["mean"]
            worst = max(max(v[f'seam{p}'] for p in (2, 4, 8)) for v in r["images"].values())
            verdicts.append(f"{name} at {r['gflops'] / cnn['gflops']:.3f}x the CNN's FLOPs: ΔPSNR "
                            f"{m['psnr'] - cnn['mean']['psnr']:+.2f} dB, ΔSSIM {m['ssim'] - cnn['mean']['ssim']:+.4f}, "
                            f"worst seam ratio {worst:.2f}")
    lines += ["", "Result: " + "; ".join(verdicts) + " (held-out photographs, whole).", "", "Targets (issue 8):"]
    for name, r in arms.items():
        if name == "cnn":
            continue
        m, ratio = r["mean"], r["gflops"] / cnn["gflops"]
        ok = ratio <= 0.25 and m["psnr"] >= cnn["mean"]["psnr"] and m["ssim"] >= cnn["mean"]["ssim"]
        lines.append(f"- {name} ({ratio:.3f} of the CNN's FLOPs; target <= 0.25): ΔPSNR {m['psnr'] - cnn['mean']['psnr']:+.2f} dB, "
                     f"ΔSSIM {m['ssim'] - cnn['mean']['ssim']:+.4f} — PSNR and SSIM at least the CNN's: "
                     f"**{'met' if ok else 'not met'}**")
        worst = max(max(v[f'seam{p}'] for p in (2, 4, 8)) for v in r["images"].values())
        lines.append(f"- {name}: worst seam ratio over photographs and periods {worst:.2f} (target <= 1.10): "
                     f"**{'met' if worst <= 1.10 else 'not met'}**")
    lines += [
        "",
        "Protocol:",
        f"- stage 0: taming VQModel, ch {DDCONFIG['ch']}, ch_mult {DDCONFIG['ch_mult']} (f{FACTOR}), "
        f"{DDCONFIG['num_res_blocks']} res block, z_channels {Z_CHANNELS}, codebook {N_EMBED} x {EMBED_DIM}; L1 + VQ loss, "
        f"dead-code restarts; held-out PSNR of its own (jointly trained) decoder {st['psnr']:.2f} dB, SSIM {st['ssim']:.4f}.",
        f"- arms: encoder, quant_conv, codebook, post_quant_conv frozen; only the decoder trains. cnn: a fresh taming "
        f"Decoder with the stage-0 config; hit-*: fresh v2 HiT decoders ({json.dumps(d['hit_configs']['hit-m'])}; "
        + "; ".join(f"{k}: channels {c['channels']}, depths {c['depths']}" for k, c in d["hit_configs"].items() if k != "hit-m")
        + ").",
        f"- identical for every arm: L1 loss{' + LPIPS %g' % a.lpips if a.lpips else ''} (no GAN: LPIPS needs the VGG16 "
        f"download); Adam lr {a.lr:g}, betas (0.9, 0.99), {min(100, a.steps)} warm-up batches, grad clip 1.0, EMA "
        f"{a.ema}; batch {a.batch} of {a.size}² crops (+ flips) of {len(EMBEDDED_TRAIN)} photographs resized to shorter "
        f"side {a.resize}; seed {a.seed} (same data order).",
        "- seam ratio: `hit_decoder.training.metrics.seam_ratio` (mean |luminance step| across the period's grid lines "
        "/ mean elsewhere; 1.0 = no grid).",
        "- GFLOPs: torch.utils.flop_counter on a 32x32 latent (256² output); decode s: median of "
        f"{a.repeats} interleaved decodes per arm at batch 1, same process.",
        f"- machine: {_meta(d)}",
    ]
    return "\n".join(lines)


def render_ablation(d: dict) -> str:
    a, orig = argparse.Namespace(**d["args"]), d["originals"]
    lines = [
        "## Decoder ablation: from the v1 to the v2 HiT decoder (issue 8)",
        "",
        f"hit-m architecture, each variant trained {a.ablation_steps} batches (same seed, data order, optimizer) on "
        f"the frozen stage-0 VQGAN of the quality benchmark; held-out photographs whole, mean of {len(EMBEDDED_VAL)}.",
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
    lines = [
        "## Overfit test: one photograph, many steps (issue 8)",
        "",
        f"CNN and hit-m decoders trained {a.overfit_steps} batches on {a.size}² crops of `{d['image']}` only (frozen "
        "stage-0 VQGAN), scored on that photograph whole. If the HiT decoder could not reach the CNN here, capacity or "
        "optimisation would be the problem, not data.",
        "",
        "| decoder | GFLOPs at 256² | PSNR (dB) | SSIM | seam p2 | seam p4 | seam p8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in d["rows"].items():
        lines.append(f"| {name} | {r['gflops']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seam2']:.2f} | "
                     f"{r['seam4']:.2f} | {r['seam8']:.2f} |")
    hit, cnn = d["rows"]["hit-m"], d["rows"]["cnn"]
    lines += ["", f"HiT PSNR at least the CNN's: **{'met' if hit['psnr'] >= cnn['psnr'] else 'not met'}** "
                  f"(ΔPSNR {hit['psnr'] - cnn['psnr']:+.2f} dB).", "", f"- machine: {_meta(d)}"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage0-steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=2000, help="training batches per decoder arm")
    p.add_argument("--ablation", action="store_true", help="run the ablation variants instead of the arms")
    p.add_argument("--ablation-steps", type=int, default=500)
    p.add_argument("--overfit", action="store_true", help="run the one-photograph overfit test instead of the arms")
    p.add_argument("--overfit-steps", type=int, default=800)
    p.add_argument("--overfit-image", default="astronaut")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="crop side in pixels")
    p.add_argument("--resize", type=int, default=256, help="photographs' shorter side before cropping")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--lpips", type=float, default=0.0, help="LPIPS weight (needs the VGG16 weights file)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5, help="interleaved 256² decodes per arm for the time column")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_quality"))
    p.add_argument("--reuse-stage0", action="store_true", help="reuse OUT/stage0/model.safetensors if present")
    p.add_argument("--stage0-only", action="store_true",
                   help="only train (or reuse) stage 0, e.g. for benchmarks/prior_quality.py, and stop")
    p.add_argument("--reuse-arms", action="store_true",
                   help="re-evaluate arms already trained in OUT (OUT/<arm>/model.safetensors + quality.json) "
                        "instead of training them again; arms not yet there are trained")
    p.add_argument("--overwrite", action="store_true", help="replace results already in OUT")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    p.add_argument("--render", metavar="JSON", help="only re-render BENCHMARKS.md from a saved result file")
    args = p.parse_args()
    part = "ablation" if args.ablation else "overfit" if args.overfit else "quality"
    renderers = {"quality": render_quality, "ablation": render_ablation, "overfit": render_overfit}
    if args.render:
        data = json.loads(Path(args.render).read_text())
        body = renderers[data["part"]](data)
        print(body)
        if not args.no_write:
            update_section(ROOT / "BENCHMARKS.md", data["part"], body)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    result_file = out / f"{part}.json"
    if result_file.exists() and not args.overwrite and not args.stage0_only:
        raise SystemExit(f"{result_file} exists: pass --overwrite to replace it, or choose another --out")
    t0 = time.time()
    vq0, stage0 = build_stage0(args, out)
    if args.stage0_only:
        print(f"stage 0: {out / 'stage0' / 'model.safetensors'}")
        return 0
    if part == "quality":
        data = run_arms(args, out, vq0, stage0)
    elif part == "ablation":
        data = run_ablation(args, out, vq0)
    else:
        data = run_overfit(args, out, vq0)
    data.update(part=part, args=vars(args), minutes=(time.time() - t0) / 60, threads=torch.get_num_threads(),
                torch=torch.__version__, machine=platform.processor() or platform.machine(),
                date=time.strftime("%Y-%m-%d"), command=" ".join(sys.argv[1:]))
    result_file.write_text(json.dumps(data, indent=2))
    body = renderers[part](data)
    print(body)
    if not args.no_write:
        update_section(ROOT / "BENCHMARKS.md", part, body)
        print(f"updated {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
