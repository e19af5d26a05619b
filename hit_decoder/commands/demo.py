"""``hit-decoder demo``: the main job on the embedded default, no arguments, no downloads."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default (no downloads)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hit_decoder.benchmarking import CNN_NAME, markdown_table, measure

    print("Decoding a 16x16 latent grid to a 256x256 image: taming's CNN decoder vs HiT presets "
          "(random weights, this CPU)")
    results = measure([CNN_NAME, "hit-b-f16", "hit-s-f16"], [256], min_repeats=2, min_seconds=1.0,
                      memory=False, log=lambda s: None)
    print(markdown_table(results))
    return 0
