"""Decoder benchmark: taming's ImageNet-f16 CNN decoder against every HiT preset, side by side.

    python benchmarks/decoder.py                 # 256, 512, 1024 px; writes BENCHMARKS.md
    python benchmarks/decoder.py --sizes 256 --no-write

Measures parameters, GFLOPs (torch.utils.flop_counter), decode seconds / images per second on this
CPU (batch 1, torch.no_grad, median of repeats after a warm-up) and the rise of peak RSS during one
decode (fresh subprocess per case). Targets for hit-8m-f16 (issue 2): <= 1/8 of the CNN's FLOPs at
256², >= 5x its CPU throughput at every size, <= 1/2 its peak memory at 1024².
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from hit_decoder import list_decoders
from benchmarking import CNN_NAME, markdown_table, measure, update_section

ROOT = Path(__file__).resolve().parents[1]


def check_targets(results) -> list[str]:
    by = {(r.model, r.size): r for r in results}
    lines = []
    for size in sorted({r.size for r in results}):
        cnn, hit = by.get((CNN_NAME, size)), by.get(("hit-8m-f16", size))
        if not (cnn and hit):
            continue
        if size == 256:
            ratio = hit.gflops / cnn.gflops
            lines.append(f"- FLOPs at 256²: hit-8m-f16 / CNN = {ratio:.3f} (target <= 0.125): {'met' if ratio <= 0.125 else 'NOT met'}")
        speed = hit.images_per_s / cnn.images_per_s
        lines.append(f"- throughput at {size}²: hit-8m-f16 / CNN = {speed:.1f}x (target >= 5x): {'met' if speed >= 5 else 'NOT met'}")
        if size == 1024 and hit.peak_mem_mb and cnn.peak_mem_mb:
            m = hit.peak_mem_mb / cnn.peak_mem_mb
            lines.append(f"- peak memory at 1024²: hit-8m-f16 / CNN = {m:.3f} (target <= 0.5): {'met' if m <= 0.5 else 'NOT met'}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--models", nargs="+", default=[CNN_NAME, *list_decoders()])
    ap.add_argument("--repeats", type=int, default=2, help="timed decodes per model and size (interleaved)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()

    t0 = time.time()
    results = measure(args.models, args.sizes, repeats=args.repeats, memory=not args.no_memory)
    table = markdown_table(results)
    targets = check_targets(results)
    env = (f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
           f"torch {torch.__version__}, {torch.get_num_threads()} threads; python {platform.python_version()}; "
           f"run took {time.time() - t0:.0f} s on {time.strftime('%Y-%m-%d')}")
    body = "\n".join([
        "## Decoder: taming CNN (ImageNet f16) vs HiT presets",
        "",
        "Produced by `python benchmarks/decoder.py`. Random weights, batch 1, `torch.no_grad`, float32;",
        "seconds are the median of timed decodes, interleaved across models (one decode of each model",
        "in turn, per size and repeat) after one warm-up each, so load drifts hit all models alike;",
        "peak MB is the rise of the process's",
        "peak RSS during one decode in a fresh subprocess. f16 models decode a (256/16)²-per-256px grid,",
        "hit-2m-f8 a (256/8)² one.",
        "",
        env,
        "",
        table,
        "",
        "Targets (issue 2):",
        *targets,
    ])
    print(body)
    if not args.no_write:
        update_section(args.out, "decoder", body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
