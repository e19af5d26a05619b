"""``hit-decoder train``: stage-1 training of a VQGAN with a HiT decoder from a YAML config."""

from __future__ import annotations

import argparse

from . import add_config_arguments, add_unsafe_pickle_flag, run_config_job


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VQGAN with a HiT decoder (from scratch, or decoder swap) from a config",
        description="Train from a YAML config (a path, or a shipped name: demo, scratch_small, scratch_f16, "
        "finetune_small, finetune_f16), with key=value overrides, e.g. "
        "`hit-decoder train --config demo trainer.max_batches=100 out_dir=runs/x`.",
    )
    add_config_arguments(p, "training")
    add_unsafe_pickle_flag(p, "model.vqgan_ckpt (mode=decoder_swap)")
    p.set_defaults(func=run)


def report(result) -> None:  # result: TrainResult (kept import-free)
    m = result.metrics
    print(f"trained {result.batches_done} batches; outputs in {result.out_dir}")
    if m:
        extra = f", LPIPS {m['lpips']:.4f}" if "lpips" in m else ""
        print(f"validation ({m['images']} images, EMA model): PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}{extra}")
    if result.skipped_images:
        print(f"skipped {result.skipped_images} unreadable image file(s) (see warnings)")
    for name, path in result.exports.items():
        print(f"  {name}: {path}")
    if result.checkpoint is not None:
        print(f"  checkpoint: {result.checkpoint}")


def run(args: argparse.Namespace) -> int:
    from hit_decoder.training import load_train_config, run_training

    result = run_config_job(args, load_train_config, run_training)
    if result is not None:
        report(result)
    return 0
