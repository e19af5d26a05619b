"""Sliding-window sampler benchmark: taming's full-window loop against the fast path, same run.

    python benchmarks/sampler.py                          # 32x64 grid, 16x16 window, 1 thread; writes BENCHMARKS.md
    python benchmarks/sampler.py --threads 1 2 --repeats 2
    python benchmarks/sampler.py --grid 20 24 --no-write

A randomly initialised unconditional taming ``Net2NetTransformer`` (minGPT: 4 layers, 256-wide,
8 heads, vocabulary 1024, block size 256 = SOS + 16x16 window - 1; a tiny VQModel first stage that
the sampler never calls) samples the same grid with the same seed by both methods on this CPU.
Reported: wall and CPU seconds (best of ``--repeats`` alternating runs), tokens per second, the
speed-up, and whether every token is equal. Single-threaded by default: on a shared 2-core machine
multi-threaded runs of small ops stall whenever another process holds a core, which distorts the
comparison far more than it does a single thread. Target (issue 5): fast >= 5x reference, same tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
from pathlib import Path

import torch

import hit_decoder.adapters  # noqa: F401  (taming import shims)
from benchmarking import update_section
from hit_decoder.sampling import sample_sliding_window

ROOT = Path(__file__).resolve().parents[1]
SECTION = "sampler"


def build_prior(vocab: int, n_layer: int, n_embd: int, n_head: int, window: int, dtype: torch.dtype):
    from taming.models.cond_transformer import Net2NetTransformer

    first_stage = {
        "target": "taming.models.vqgan.VQModel",
        "params": {
            "n_embed": vocab, "embed_dim": 4, "lossconfig": {"target": "torch.nn.Identity"},
            "ddconfig": dict(double_z=False, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32,
                             ch_mult=[1, 1], num_res_blocks=1, attn_resolutions=[], dropout=0.0),
        },
    }
    gpt = {
        "target": "taming.modules.transformer.mingpt.GPT",
        "params": dict(vocab_size=vocab, block_size=window * window, n_layer=n_layer, n_head=n_head, n_embd=n_embd),
    }
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):  # taming prints its set-up
        torch.manual_seed(0)  # in a fork: the caller's random state is left as it was
        model = Net2NetTransformer(gpt, first_stage, "__is_unconditional__", unconditional=True)
        torch.nn.init.normal_(model.transformer.pos_emb, std=0.02)  # taming starts it at zero
    return model.to(dtype).eval()


def run(model, grid, window, method, seed, top_k):
    wall, cpu = time.perf_counter(), time.process_time()
    idx = sample_sliding_window(model, grid, window=window, seed=seed, top_k=top_k, method=method, progress=False)
    return idx, time.perf_counter() - wall, time.process_time() - cpu


def measure(model, grid, args, threads: int) -> dict:
    """Best (minimum) wall and CPU seconds of each method over ``args.repeats`` alternating runs."""
    torch.set_num_threads(threads)
    run(model, (args.window, args.window), args.window, "fast", args.seed, args.top_k)  # warm-up
    best = {"fast": (float("inf"), float("inf")), "reference": (float("inf"), float("inf"))}
    equal, out = True, {}
    for rep in range(args.repeats):
        for method in ("fast", "reference"):
            idx, wall, cpu = run(model, grid, args.window, method, args.seed, args.top_k)
            print(f"{threads} thread(s), run {rep + 1}: {method} {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
            best[method] = (min(best[method][0], wall), min(best[method][1], cpu))
            out.setdefault(method, idx)
            equal = equal and torch.equal(idx, out[method])  # every run of a method gives the same tokens
    return {"threads": threads, "fast": best["fast"], "ref": best["reference"], "n": out["fast"].numel(),
            "equal": int((out["fast"] == out["reference"]).sum()) if equal else -1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, nargs=2, default=[32, 64], metavar=("H", "W"))
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="torch intra-op thread counts to measure (default 1: on a shared machine a single-threaded "
                    "run is the least disturbed by other processes)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs per method; the best time is reported")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()

    grid = tuple(args.grid)
    model = build_prior(args.vocab, args.layers, args.embd, args.heads, args.window, getattr(torch, args.dtype))
    n_params = sum(p.numel() for p in model.transformer.parameters()) / 1e6
    t0 = time.time()
    results = [measure(model, grid, args, t) for t in args.threads]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    env = (f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
           f"run took {time.time() - t0:.0f} s on {time.strftime('%Y-%m-%d')}, load average at the end {load:.1f}")
    rows, met = [], True
    for r in results:
        n, (ref_wall, ref_cpu), (fast_wall, fast_cpu) = r["n"], r["ref"], r["fast"]
        speedup = ref_wall / fast_wall
        met = met and speedup >= 5 and r["equal"] == n
        rows += [
            f"| {r['threads']} | reference (taming: full window per token) | {ref_wall:.1f} | {ref_cpu:.1f} | "
            f"{n / ref_wall:.1f} | 1.0x | |",
            f"| {r['threads']} | fast (prefix + per-window KV cache + wavefront batching) | {fast_wall:.1f} | {fast_cpu:.1f} | "
            f"{n / fast_wall:.1f} | **{speedup:.1f}x** ({ref_cpu / fast_cpu:.1f}x CPU time) | {r['equal']} / {n} |",
        ]
    body = "\n".join([
        "## Sliding-window sampler: taming's loop vs the fast path",
        "",
        f"Produced by `python benchmarks/sampler.py --threads {' '.join(map(str, args.threads))} --repeats {args.repeats}`. "
        f"{grid[0]}x{grid[1]} latent grid, {args.window}x{args.window} window, batch 1, unconditional (SOS), "
        f"top-k {args.top_k}, seed {args.seed}, {args.dtype}. Randomly initialised minGPT: {args.layers} layers, "
        f"n_embd {args.embd}, {args.heads} heads, vocabulary {args.vocab}, block size {args.window * args.window} "
        f"({n_params:.2f} M parameters). Both methods sample the same grid with the same seed in this one process, "
        "alternating fast / reference runs after a one-window warm-up, best of the runs per method (wall clock and this "
        "process's CPU time); tokens equal counts positions where both paths drew the same code.",
        "",
        env,
        "",
        "| threads | method | wall s | CPU s | tokens/s | speed-up (wall) | tokens equal |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Target (issue 5): fast >= 5x reference with the same tokens: {'met' if met else 'NOT met'}.",
    ])
    print(body)
    if not args.no_write:
        update_section(args.out, SECTION, body)
        print(f"wrote {args.out}")
    return 0 if all(r["equal"] == r["n"] for r in results) else 1  # -1: a method disagreed with itself


if __name__ == "__main__":
    sys.exit(main())
