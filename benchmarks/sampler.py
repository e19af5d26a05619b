"""Sliding-window sampler benchmark: taming's full-window loop against the fast path, same run.

    python benchmarks/sampler.py                     # 32x64 grid, 16x16 window; writes BENCHMARKS.md
    python benchmarks/sampler.py --grid 20 24 --no-write

A randomly initialised unconditional taming ``Net2NetTransformer`` (minGPT: 4 layers, 256-wide,
8 heads, vocabulary 1024, block size 256 = SOS + 16x16 window - 1; a tiny VQModel first stage that
the sampler never calls) samples the same grid with the same seed by both methods on this CPU.
Reported: wall seconds, tokens per second, the speed-up, and whether every token is equal.
Target (issue 5): fast >= 5x reference, same tokens.
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
from hit_decoder.benchmarking import update_section
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
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # taming prints its set-up
        model = Net2NetTransformer(gpt, first_stage, "__is_unconditional__", unconditional=True)
    torch.nn.init.normal_(model.transformer.pos_emb, std=0.02)  # taming starts it at zero
    return model.to(dtype).eval()


def run(model, grid, window, method, seed, top_k):
    t0 = time.perf_counter()
    idx = sample_sliding_window(model, grid, window=window, seed=seed, top_k=top_k, method=method, progress=False)
    return idx, time.perf_counter() - t0


def measure(model, grid, args, threads: int) -> dict:
    torch.set_num_threads(threads)
    run(model, (args.window, args.window), args.window, "fast", args.seed, args.top_k)  # warm-up
    fast, t_fast = run(model, grid, args.window, "fast", args.seed, args.top_k)
    print(f"{threads} thread(s): fast {t_fast:.1f} s", flush=True)
    ref, t_ref = run(model, grid, args.window, "reference", args.seed, args.top_k)
    print(f"{threads} thread(s): reference {t_ref:.1f} s", flush=True)
    return {"threads": threads, "fast": t_fast, "ref": t_ref, "equal": int((fast == ref).sum()), "n": fast.numel()}


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
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                    help="torch intra-op thread counts to measure, one pair of runs each (default: torch's default)")
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
        n, speedup = r["n"], r["ref"] / r["fast"]
        met = met and speedup >= 5 and r["equal"] == n
        rows += [
            f"| {r['threads']} | reference (taming: full window per token) | {r['ref']:.1f} | {n / r['ref']:.1f} | 1.0x | |",
            f"| {r['threads']} | fast (prefix + per-window KV cache + wavefront batching) | {r['fast']:.1f} | {n / r['fast']:.1f} | "
            f"**{speedup:.1f}x** | {r['equal']} / {n} |",
        ]
    body = "\n".join([
        "## Sliding-window sampler: taming's loop vs the fast path",
        "",
        f"Produced by `python benchmarks/sampler.py{' --threads ' + ' '.join(map(str, args.threads)) if len(args.threads) > 1 else ''}`. "
        f"{grid[0]}x{grid[1]} latent grid, {args.window}x{args.window} window, batch 1, unconditional (SOS), "
        f"top-k {args.top_k}, seed {args.seed}, {args.dtype}. Randomly initialised minGPT: {args.layers} layers, "
        f"n_embd {args.embd}, {args.heads} heads, vocabulary {args.vocab}, block size {args.window * args.window} "
        f"({n_params:.2f} M parameters). Both methods sample the same grid with the same seed in this one process, "
        "fast first (after a one-window warm-up); tokens equal counts positions where both paths drew the same code.",
        "",
        env,
        "",
        "| threads | method | seconds | tokens/s | speed-up | tokens equal |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Target (issue 5): fast >= 5x reference with the same tokens: {'met' if met else 'NOT met'}.",
    ])
    print(body)
    if not args.no_write:
        update_section(args.out, SECTION, body)
        print(f"wrote {args.out}")
    return 0 if all(r["equal"] == r["n"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
