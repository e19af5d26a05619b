"""``hit-decoder demo``: the library's three uses on the embedded photographs, measured, no
arguments, no downloads; writes ``OUT/report.html`` (one self-contained page) and ``OUT/report.json``.

1. decoder swap: a small taming VQGAN (CNN decoder) trained from scratch; a fresh CNN decoder and a
   HiT decoder each trained on its frozen encoder + codebook, with the same batches and loss; both
   decode the same codes of the held-out photographs (whole): PSNR, SSIM, chroma, seams, decode time;
2. stage 1: a VQGAN with a HiT decoder trained from scratch (L1 + codebook + adversarial, + LPIPS
   when its VGG16 weights are on the machine);
3. high-resolution sampling: two priors (a taming GPT and a windowed prior) on the stage-1 codes of
   one texture photograph, each sampling a canvas 4x the photograph's code grid (the GPT with the
   sliding window, the windowed prior by streaming), decoded tile by tile and whole.

The phases use the shipped configs ``train/demo_cnn``, ``train/demo_swap``, ``train/demo`` and
``prior/demo`` (see :mod:`hit_decoder.demo`). A second process trains the CNN VQGAN and the fresh
CNN decoder beside stage 1 and the priors; the main process then trains the HiT decoder on the same
frozen codes (``--workers 1`` runs everything in one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PHASE_FLAGS = {"cnn": "--cnn-batches", "swap": "--swap-batches", "stage1": "--stage1-batches", "prior": "--prior-batches"}
#: the phases each flag sets: --swap-batches both decoders trained on the frozen codes, --prior-batches
#: both priors (each pair gets the same budget)
FLAG_PHASES = {"cnn": ("cnn",), "swap": ("cnn_decoder", "swap"), "stage1": ("stage1",), "prior": ("prior", "windowed")}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, sample and decode end to end on the embedded photographs; "
                                    "writes a measured HTML report (no downloads)",
                       description="The three uses of the library (decoder swap, stage-1 training, "
                                   "high-resolution sampling) trained and measured on scikit-image's bundled photographs; "
                                   "writes OUT/report.html and OUT/report.json.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of every phase (same seed, same machine: same numbers)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out")
    p.add_argument("--budget", choices=("full", "tiny"), default="full",
                   help="full: the shipped configs' batch counts (default); tiny: a few batches per phase, "
                        "the same code path in seconds (for tests)")
    for key, flag in PHASE_FLAGS.items():
        p.add_argument(flag, type=_positive, default=None, metavar="N",
                       help=f"batches of the {' and '.join(FLAG_PHASES[key])} phase{'s' if len(FLAG_PHASES[key]) > 1 else ''} "
                            "(default: its config's)")
    p.add_argument("--workers", type=int, choices=(1, 2), default=2,
                   help="processes: 2 trains the CNN VQGAN and the fresh CNN decoder in a second process beside the "
                        "rest (default), 1 runs all in one")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (phase lines only)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="precision of the sampling phase's decodes (bf16: fast only with bf16 matrix units)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hit_decoder.demo import BUDGETS, run_demo

    plan = replace(BUDGETS[args.budget], seed=args.seed, workers=args.workers, precision=args.precision)
    plan = plan.with_batches(**{phase: getattr(args, flag[2:].replace("-", "_"))
                                for key, flag in PHASE_FLAGS.items() for phase in FLAG_PHASES[key]})
    run_demo(plan, args.out, overwrite=args.overwrite, bars=False if args.no_progress else None,
             command=["hit-decoder", *getattr(args, "argv", sys.argv[1:])])
    return 0
