"""``hit-decoder demo``: the main job end to end on the embedded default, no arguments, no downloads.

1. train a tiny VQGAN whose decoder is a HiT decoder on scikit-image's bundled photographs
   (``hit_decoder/configs/train/demo.yaml``); reconstruction PNGs, metrics and exports land in ``OUT/stage1``;
2. train a tiny transformer prior on its code grids (``hit_decoder/configs/prior/demo.yaml``) in ``OUT/prior``;
3. sample a code grid larger than the prior's window with the sliding-window sampler and decode it
   patch-wise; PNG + index grid in ``OUT/samples``.

The models are deliberately tiny (minutes on 2 CPU cores): the point is the pipeline, not the
pictures. Scale up with the configs in ``hit_decoder/configs/train`` and ``hit_decoder/configs/prior``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, sample and decode end to end on the embedded photographs (no downloads)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--stage1-batches", type=int, default=None, help="override the stage-1 demo's batch count")
    p.add_argument("--prior-batches", type=int, default=None, help="override the prior demo's batch count")
    p.add_argument("--size", default="128x256", help="sample size HEIGHTxWIDTH in pixels (default 128x256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from hit_decoder import adapters
    from hit_decoder.fileio import atomic_path
    from hit_decoder.prior import load_prior, train_prior
    from hit_decoder.sampling import grid_shape_for, sample_sliding_window
    from hit_decoder.adapters import decode_codes
    from hit_decoder.training import run_training

    out = Path(args.out)
    if not args.overwrite and any((out / part).exists() for part in ("stage1", "prior", "samples")):
        raise ValueError(f"--out {out} already holds an earlier demo run; pass --overwrite to replace it, "
                         "or choose another --out")
    print(f"[1/3] stage 1: tiny VQGAN with a HiT decoder on the embedded photographs -> {out / 'stage1'}")
    again = ["overwrite=true"] if args.overwrite else []
    overrides = [f"out_dir={out / 'stage1'}", "trainer.progress_bar=false", *again]
    if args.stage1_batches is not None:
        overrides.append(f"trainer.max_batches={args.stage1_batches}")
    stage1 = run_training("demo", overrides)
    model_file = stage1.exports.get("model")
    if not model_file:
        raise RuntimeError(f"stage-1 training wrote no library export (exports: {stage1.exports})")
    print(f"      validation (EMA decoder, held-out photographs): {json.dumps(stage1.metrics)}")

    print(f"[2/3] prior: tiny GPT on the code grids -> {out / 'prior'}")
    prior_overrides = [f"out_dir={out / 'prior'}", "first_stage.untrained=null",
                       f"first_stage.model={model_file}", "trainer.progress_bar=false", *again]
    if args.prior_batches is not None:
        prior_overrides.append(f"trainer.max_batches={args.prior_batches}")
    prior_run = train_prior("demo", prior_overrides)
    print(f"      prior loss: first {prior_run.losses[0]:.3f} -> last {prior_run.losses[-1]:.3f}")

    print("[3/3] sampling beyond the prior's window and decoding patch-wise")
    vq = adapters.load_vqmodel(model_file).eval()
    prior = load_prior(prior_run.prior, vq).eval()
    h_px, w_px = (int(v) for v in args.size.lower().split("x"))
    shape = grid_shape_for((h_px, w_px), adapters.downsample_factor(vq))
    with torch.no_grad():
        idx = sample_sliding_window(prior, shape, seed=args.seed, top_k=100, progress=False)  # (1, h, w)
        img = decode_codes(vq, idx, tile=16)  # (1, 3, H, W) in [-1, 1]
        whole = decode_codes(vq, idx)
    samples = out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    pixels = ((img[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    with atomic_path(samples / f"sample_s{args.seed}.png") as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    with atomic_path(samples / f"sample_s{args.seed}.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, idx[0].numpy())
    print(f"      {shape[0]}x{shape[1]} codes (window {prior_run_window(prior_run)}) -> "
          f"{img.shape[-2]}x{img.shape[-1]} px; tiled vs whole decode max |diff| = "
          f"{(img - whole).abs().max().item():.2e}")
    print(f"done: {out}/stage1/images (reconstructions), {samples} (sample PNG + code grid)")
    return 0


def prior_run_window(prior_run) -> str:
    from hit_decoder.prior import prior_info

    w = prior_info(prior_run.prior).get("window", ["?", "?"])
    return f"{w[0]}x{w[1]}"
