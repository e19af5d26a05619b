"""``hit-decoder train-prior``: train a taming transformer prior on the codes of a VQ model."""

from __future__ import annotations

import argparse

from . import add_config_arguments, add_unsafe_pickle_flag, run_config_job


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-prior",
        help="train a transformer prior (taming Net2NetTransformer, or a windowed prior) on the code grids of a VQ model",
        description="Train from a YAML config (a path, or a shipped name: demo, demo_class, windowed) with key=value "
        "overrides, e.g. `hit-decoder train-prior --config demo trainer.max_batches=100 out_dir=runs/p`. "
        "Writes out_dir/prior.safetensors (for `hit-decoder sample --prior`), checkpoints/last.ckpt, "
        "logs/ and result.json.",
    )
    add_config_arguments(p, "prior")
    add_unsafe_pickle_flag(p, "first_stage.taming_ckpt")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hit_decoder.prior import load_prior_config, train_prior

    result = run_config_job(args, load_prior_config, train_prior)
    if result is None:
        return 0
    first, last = result.losses[: 10], result.losses[-10:]
    if first and last:
        print(f"trained {result.batches_done} batches; loss {sum(first) / len(first):.3f} (first {len(first)}) -> "
              f"{sum(last) / len(last):.3f} (last {len(last)})")
    print(f"prior: {result.prior}")
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint}")
    return 0
