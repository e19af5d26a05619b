"""Reconstruction quality: a taming CNN decoder vs a HiT decoder with <= 1/5 of its FLOPs, trained
the same way on the same frozen VQGAN encoder + codebook.

    python benchmarks/quality.py                  # ~15-25 min on 2 CPU cores; writes BENCHMARKS.md
    python benchmarks/quality.py --steps 20 --stage0-steps 20 --no-write   # smoke run

Protocol (all on scikit-image's bundled photographs, no downloads):
0. Stage 0: train a small VQGAN (taming CNN encoder, VectorQuantizer2 codebook, taming CNN decoder)
   from scratch on random crops of the training photographs (L1 + VQ loss, dead-code restarts).
1. Freeze its encoder, quant_conv, codebook and post_quant_conv.
2. Train (a) a freshly initialised taming CNN decoder (the stage-0 architecture) and (b) a freshly
   initialised HiT decoder with <= 1/5 of the CNN decoder's FLOPs, with identical losses, steps,
   batch size, optimizer, learning rate, EMA and data order (same seed).
3. Report PSNR and SSIM (EMA weights) on fixed crops of photographs never used for training
   (chelsea, coffee), plus the stage-0 decoder (trained jointly, for reference).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

from hit_decoder import HiTDecoder, HiTDecoderConfig
from hit_decoder.benchmarking import update_section
from hit_decoder.flops import count_flops, count_parameters
from hit_decoder.training import run_training
from hit_decoder.training.data import EMBEDDED_TRAIN, EMBEDDED_VAL
from hit_decoder.training.models import seeded

ROOT = Path(__file__).resolve().parents[1]

Z_CHANNELS, EMBED_DIM, N_EMBED = 32, 16, 256
DDCONFIG = {"double_z": False, "z_channels": Z_CHANNELS, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
HIT = HiTDecoderConfig(z_channels=Z_CHANNELS, channels=(96, 48, 24), depths=(2, 1, 1), heads=(4, 2, 2),
                       num_attention_stages=2, block_size=(4, 4), dilation_grid=(2, 4))


def base_config(out_dir: Path, args: argparse.Namespace, mode: str, steps: int) -> dict:
    return {
        "mode": mode, "seed": args.seed, "out_dir": str(out_dir), "export": False,
        "data": {"size": args.size, "resize": args.resize, "batch_size": args.batch, "val_batch_size": 32,
                 "num_workers": 0, "val_crops_per_image": args.val_crops},
        "loss": {"l1_weight": 1.0, "perceptual_weight": args.lpips, "disc_weight": 0.0,
                 "codebook_weight": 1.0 if mode == "from_scratch" else 0.0},
        "optim": {"lr": args.lr, "warmup_batches": min(50, steps), "ema_decay": 0.99, "grad_clip": 1.0,
                  "dead_code_restart": mode == "from_scratch", "dead_code_every": 50},
        "trainer": {"max_batches": steps, "log_every": 25, "val_every": steps, "image_every": steps,
                    "ckpt_every": steps, "progress_bar": False, "tensorboard": False},
    }


def ema_from_checkpoint(vq: torch.nn.Module, ckpt: Path) -> torch.nn.Module:
    """Load a run's EMA model weights (what the run evaluates and exports) into ``vq``."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    vq.load_state_dict({k[len("ema_vq."):]: v for k, v in state.items() if k.startswith("ema_vq.")}, strict=True)
    return vq


def run_arm(name: str, cfg: dict, vq: torch.nn.Module) -> dict:
    t0 = time.time()
    result = run_training(cfg, model=vq)
    return {"name": name, "seconds": time.time() - t0, **result.metrics}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage0-steps", type=int, default=400)
    p.add_argument("--steps", type=int, default=500, help="training batches per decoder arm")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32, help="crop side in pixels")
    p.add_argument("--resize", type=int, default=128, help="photographs' shorter side before cropping")
    p.add_argument("--val-crops", type=int, default=16, help="fixed crops per held-out photograph")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--lpips", type=float, default=0.0, help="LPIPS weight (needs the VGG16 weights file)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_quality"))
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    p.add_argument("--render", metavar="QUALITY_JSON", help="only re-render BENCHMARKS.md from a saved quality.json")
    args = p.parse_args()
    if args.render:
        body = render(json.loads(Path(args.render).read_text()))
        print(body)
        if not args.no_write:
            update_section(ROOT / "BENCHMARKS.md", "quality", body)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)

    import hit_decoder.adapters as adapters
    from taming.models.vqgan import VQModel
    from taming.modules.diffusionmodules.model import Decoder

    out = Path(args.out)
    t_start = time.time()
    # ---------------------------------------------------------------- stage 0: a small VQGAN
    with seeded(args.seed):
        vq0 = VQModel(ddconfig=DDCONFIG, lossconfig={"target": "torch.nn.Identity"}, n_embed=N_EMBED, embed_dim=EMBED_DIM)
    stage0 = run_arm("stage-0 VQGAN (CNN decoder trained jointly)",
                     base_config(out / "stage0", args, "from_scratch", args.stage0_steps), vq0)
    vq0 = ema_from_checkpoint(vq0, out / "stage0" / "checkpoints" / "last.ckpt")
    print(f"stage 0 done in {stage0['seconds']:.0f}s: PSNR {stage0['psnr']:.2f}", flush=True)

    # ---------------------------------------------------------------- decoders on the frozen encoder
    f = 2 ** (len(DDCONFIG["ch_mult"]) - 1)
    z_shape = (1, Z_CHANNELS, args.size // f, args.size // f)
    with seeded(args.seed + 100):
        cnn = Decoder(**DDCONFIG)
    with seeded(args.seed + 100):
        hit = HiTDecoder(HIT)
    flops = {"cnn": count_flops(cnn, z_shape), "hit": count_flops(hit, z_shape)}
    if flops["hit"] * 5 > flops["cnn"]:
        raise SystemExit(f"HiT decoder has {flops['hit'] / flops['cnn']:.3f} of the CNN's FLOPs; the protocol needs <= 0.2")

    vq_a = copy.deepcopy(vq0)
    vq_a.decoder = cnn
    arm_a = run_arm("(a) taming CNN decoder", base_config(out / "cnn", args, "decoder_swap", args.steps), vq_a)
    print(f"arm a done in {arm_a['seconds']:.0f}s: PSNR {arm_a['psnr']:.2f}", flush=True)
    vq_b = adapters.swap_decoder(copy.deepcopy(vq0), hit)
    arm_b = run_arm("(b) HiT decoder", base_config(out / "hit", args, "decoder_swap", args.steps), vq_b)
    print(f"arm b done in {arm_b['seconds']:.0f}s: PSNR {arm_b['psnr']:.2f}", flush=True)

    data = {
        "stage0": stage0, "cnn": arm_a, "hit": arm_b, "flops": flops,
        "params": {"cnn": count_parameters(cnn), "hit": count_parameters(hit)}, "args": vars(args),
        "minutes": (time.time() - t_start) / 60, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "command": " ".join(sys.argv[1:]),
    }
    (out / "quality.json").write_text(json.dumps(data, indent=2))
    body = render(data)
    print(body)
    if not args.no_write:
        update_section(ROOT / "BENCHMARKS.md", "quality", body)
        print(f"updated {ROOT / 'BENCHMARKS.md'}")
    return 0


def render(d: dict) -> str:
    """The BENCHMARKS.md section: results table, verdict and protocol, from a quality.json."""
    a, flops, params, st = argparse.Namespace(**d["args"]), d["flops"], d["params"], d["stage0"]
    arm_a, arm_b = d["cnn"], d["hit"]
    f = 2 ** (len(DDCONFIG["ch_mult"]) - 1)
    lines = [
        f"Decoders trained for {a.steps} batches of {a.batch} on a frozen stage-0 VQGAN encoder + codebook; "
        f"PSNR / SSIM of their EMA weights on {st['images']} held-out {a.size}x{a.size} crops.",
        "",
        f"| decoder | params (M) | GFLOPs / {a.size}² image | FLOPs vs CNN | PSNR (dB) | SSIM | train time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r, key in (("(a) taming CNN decoder", arm_a, "cnn"), ("(b) HiT decoder", arm_b, "hit")):
        lines.append(f"| {label} | {params[key] / 1e6:.3f} | {flops[key] / 1e9:.3f} | {flops[key] / flops['cnn']:.3f} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.0f} |")
    lines.append(f"| stage-0 VQGAN's own CNN decoder (reference: trained jointly with the encoder, {a.stage0_steps} "
                 f"batches) | {params['cnn'] / 1e6:.3f} | {flops['cnn'] / 1e9:.3f} | 1.000 | {st['psnr']:.2f} | "
                 f"{st['ssim']:.4f} | {st['seconds']:.0f} |")
    better_p, better_s = arm_b["psnr"] >= arm_a["psnr"], arm_b["ssim"] >= arm_a["ssim"]
    verdict = "at or above" if better_p and better_s else "below" if not (better_p or better_s) else "mixed against"
    lines += [
        "",
        f"Result: the HiT decoder is **{verdict}** the CNN decoder here "
        f"(ΔPSNR {arm_b['psnr'] - arm_a['psnr']:+.2f} dB, ΔSSIM {arm_b['ssim'] - arm_a['ssim']:+.4f}) "
        f"at {flops['hit'] / flops['cnn']:.3f}x its FLOPs. A small, short CPU experiment: it says nothing yet "
        "about 256² ImageNet-scale decoders trained for days.",
        "",
        "Protocol:",
        f"- data: scikit-image's bundled photographs, no downloads. Training: random {a.size}² crops (+ flips) of "
        f"{len(EMBEDDED_TRAIN)} photographs ({', '.join(EMBEDDED_TRAIN)}) after resizing their shorter side to "
        f"{a.resize} px. Evaluation: {a.val_crops} fixed crops from each of {', '.join(EMBEDDED_VAL)} "
        "(never used for training).",
        f"- stage 0: taming VQModel, encoder/decoder ch {DDCONFIG['ch']}, ch_mult {DDCONFIG['ch_mult']} (f{f}), "
        f"{DDCONFIG['num_res_blocks']} res block, z_channels {Z_CHANNELS}, codebook {N_EMBED} x {EMBED_DIM}; "
        f"L1 + VQ loss, dead-code restarts, {a.stage0_steps} batches; its EMA weights (decay 0.99) are the frozen base.",
        "- arms: encoder, quant_conv, codebook, post_quant_conv frozen (bit-identical); only the decoder trains. "
        f"(a) fresh taming Decoder with the stage-0 config; (b) fresh HiT decoder {json.dumps(HIT.to_dict())}.",
        f"- identical for both arms: loss L1 (weight 1){' + LPIPS (weight %g)' % a.lpips if a.lpips else ''}, "
        "no GAN (short CPU runs; LPIPS needs the VGG16 download and is off unless --lpips is given); "
        f"Adam lr {a.lr:g}, betas (0.5, 0.9), {min(50, a.steps)} warm-up batches, grad clip 1.0, EMA 0.99; "
        f"batch {a.batch}; {a.steps} batches; seed {a.seed} (same data order).",
        "- FLOPs: torch.utils.flop_counter on one latent grid of the crop size (matmuls + convolutions).",
        f"- machine: {d['machine']}, {d['threads']} torch thread(s), torch {d['torch']}, shared with other jobs; "
        f"whole benchmark {d['minutes']:.1f} min.",
        f"- command: `python benchmarks/quality.py {d['command']}`".rstrip(),
    ]
    return "## Reconstruction quality: CNN vs HiT decoder (issue 4)\n\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
