"""Decoder benchmark: the CNN decoders against the HiT decoders, fp32 eager / fp32 compiled / bf16.

    python benchmarks/decoder.py                                   # writes its section of BENCHMARKS.md
    python benchmarks/decoder.py --quality-out runs/quality        # the quality benchmark's trained f8 arms
    python benchmarks/decoder.py --sizes 256 --no-compile --no-write

Models: taming's ImageNet f16 CNN decoder, every HiT preset, and the quality benchmark's f8 arms
(``hit-m``, its speed variants ``hit-m-16`` and ``hit-m-16-16``, and its CNN arm ``cnn-f8``; trained
weights from ``--quality-out DIR``, looked up as ``DIR/seed0/<arm>/model.safetensors`` or
``DIR/<arm>/model.safetensors``, else random weights of the same architecture, and the table says
which). Modes, each in the same run: ``fp32`` (eager),
``fp32-compiled`` (HiT decoders: ``hit_decoder.compiling.compile_decoder``, which is
``torch.compile(model, fullgraph=True, dynamic=True)`` traced size-obliviously; CNNs:
``torch.compile(model, dynamic=True)``; the first call's seconds are reported as compile time;
``--compile-models`` limits the compiled mode to some models) and ``bf16`` (the model cast with
``.to(torch.bfloat16)``) where the CPU has bf16 matrix units (AMX-BF16 / AVX512-BF16; ``--bf16``
forces it). Batch 1, ``torch.inference_mode``;
seconds are medians of decodes interleaved over every model and mode (per size and repeat), after
warm-ups. A speed ratio is paired: each round (one decode of every model and mode) gives one ratio
of a CNN's seconds to a HiT decoder's, and the table reports the median of those per-round ratios
with their range, so that the VM's slow drifts between rounds (the HiT decoders are more
memory-bound than the CNNs, and other tenants' load moves them more) do not enter the ratio.
GFLOP/s is the decode's FLOPs (:mod:`torch.utils.flop_counter`) over its time, and its fraction
of the matmul peak measured in the same run (a 2048² matmul in the same precision, same threads).
Peak memory: the rise of the process's peak RSS during one fp32 eager decode in a fresh
subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarking import (
    CNN_NAME,
    F8_VARIANTS,
    QUALITY_ARMS,
    build_decoder,
    cpu_flags,
    decode_flops,
    has_bf16_units,
    latent_for,
    peak_memory_mb,
    trained_arm,
    update_section,
)

import torch

from hit_decoder import HiTDecoder, list_decoders
from hit_decoder.compiling import compile_decoder

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        a @ b
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def load_models(names: list[str], quality_out: Path | None) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    models, weights = {}, {}
    for name in names:
        models[name], weights[name] = build_decoder(name), "random"
        path = trained_arm(name, quality_out)
        if path is not None:
            from hit_decoder import adapters

            models[name], weights[name] = adapters.load_vqmodel(path).decoder.eval(), f"trained ({path})"
        elif name in QUALITY_ARMS and quality_out is not None:
            print(f"{name}: no trained arm under {quality_out}; random weights of the same architecture")
    return models, weights


def run(args) -> dict:
    bf16 = args.bf16 or has_bf16_units()
    modes = ["fp32"] + ([] if args.no_compile else ["fp32-compiled"]) + (["bf16"] if bf16 else [])
    peak = {"fp32": matmul_peak_gflops(torch.float32)}
    if bf16:
        peak["bf16"] = matmul_peak_gflops(torch.bfloat16)
    models, weights = load_models(args.models, args.quality_out)
    runners, compile_s = {}, {}
    for name, m in models.items():
        runners[(name, "fp32")] = m
        if "fp32-compiled" in modes and (args.compile_models is None or name in args.compile_models):
            runners[(name, "fp32-compiled")] = compile_decoder(m) if isinstance(m, HiTDecoder) else torch.compile(m, dynamic=True)
        if "bf16" in modes:
            import copy

            runners[(name, "bf16")] = copy.deepcopy(m).to(torch.bfloat16)
    rows = []
    for size in args.sizes:
        zs = {name: latent_for(m, size) for name, m in models.items()}
        inputs = {k: zs[k[0]].to(torch.bfloat16) if k[1] == "bf16" else zs[k[0]] for k in runners}
        flops = {name: decode_flops(m, zs[name]) for name, m in models.items()}  # per model and size, not per mode
        times = {k: [] for k in runners}
        with torch.inference_mode():
            for k, r in runners.items():  # warm-up (and, for compiled models, the compile)
                t0 = time.perf_counter()
                r(inputs[k])
                if k[1] == "fp32-compiled":
                    compile_s.setdefault(k[0], time.perf_counter() - t0)
            # a round runs every model in one mode before the next mode: a HiT decoder's fp32 eager
            # decode sits among the CNNs' fp32 eager decodes it is compared with
            order = sorted(runners, key=lambda k: modes.index(k[1]))
            for _ in range(args.repeats):
                for k in order:
                    r = runners[k]
                    t0 = time.perf_counter()
                    r(inputs[k])
                    times[k].append(time.perf_counter() - t0)
        for (name, mode), ts in times.items():
            secs = statistics.median(ts)
            # peak memory depends on the architecture only: measured on random weights of it
            mem = peak_memory_mb(name, size) if (mode == "fp32" and size == 1024 and not args.no_memory) else None
            row = dict(model=name, mode=mode, size=size, params_m=sum(p.numel() for p in models[name].parameters()) / 1e6,
                       gflops=flops[name] / 1e9, seconds=secs, gflops_per_s=flops[name] / 1e9 / secs,
                       peak_fraction=flops[name] / 1e9 / secs / peak["bf16" if mode == "bf16" else "fp32"],
                       peak_mem_mb=mem, weights=weights[name], times=ts)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"rows": rows, "peak": peak, "modes": modes, "compile_s": compile_s, "bf16_units": has_bf16_units()}


def paired(cnn: dict, hit: dict) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-round ratios ``cnn seconds / hit seconds`` (round ``i``
    of one row against round ``i`` of the other: decodes of the same round ran minutes apart at most)."""
    ratios = [c / h for c, h in zip(cnn["times"], hit["times"], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def markdown(res: dict) -> list[str]:
    rows = res["rows"]
    by = {(r["model"], r["mode"], r["size"]): r for r in rows}
    ref = lambda r: "cnn-f8" if r["model"] in QUALITY_ARMS else CNN_NAME
    lines = ["| decoder | mode | output | params (M) | GFLOPs | s / image | speed vs its CNN, same mode [range] | GFLOP/s | "
             "of matmul peak | peak MB | weights |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        c = by.get((ref(r), r["mode"], r["size"]))
        speed = "–"
        if c and c is not r:
            x, lo, hi = paired(c, r)
            speed = f"{x:.2f}× [{lo:.2f}, {hi:.2f}]"
        elif c:
            speed = "1.00×"
        mem = f"{r['peak_mem_mb']:.0f}" if r["peak_mem_mb"] is not None else "–"
        lines.append(f"| {r['model']} | {r['mode']} | {r['size']}² | {r['params_m']:.2f} | {r['gflops']:.1f} | "
                     f"{r['seconds']:.3f} | {speed} | {r['gflops_per_s']:.1f} | {100 * r['peak_fraction']:.0f}% | {mem} | "
                     f"{r['weights'].split(' ')[0]} |")
    return lines


#: the f8 arms held to the >= 3x target against the CNN arm: the quality benchmark's hit-m and its
#: narrower speed variants (whose quality against hit-m the quality table judges)
F8_TARGET_ARMS = ("hit-m", *F8_VARIANTS)
#: the f16 presets held to the >= 10x target against taming's f16 CNN decoder: hit-8m-f16 and its
#: slimmer MLP-only stages (whose change the quality benchmark's f16 family judges)
F16_TARGET_ARMS = ("hit-8m-f16", "hit-8m-f16-slim")


def targets(res: dict) -> list[str]:
    by = {(r["model"], r["mode"], r["size"]): r for r in res["rows"]}
    out = []
    for size in sorted({r["size"] for r in res["rows"]}):
        c = by.get((CNN_NAME, "fp32", size))
        for arm in F16_TARGET_ARMS:
            h = by.get((arm, "fp32", size))
            if h and c:
                x, lo, hi = paired(c, h)
                out.append(f"- {arm} vs taming CNN f16, fp32 eager, {size}²: {x:.1f}× (target >= 10×; "
                           f"rounds {lo:.1f}× to {hi:.1f}×): {'met' if x >= 10 else 'NOT met'}")
        h = by.get(("hit-8m-f16", "fp32", size))
        if h and c:
            if size == 256:
                f = h["gflops"] / c["gflops"]
                out.append(f"- FLOPs at 256²: {f:.3f} of the CNN's (target <= 0.125): {'met' if f <= 0.125 else 'NOT met'}")
            if h["peak_mem_mb"] and c["peak_mem_mb"]:
                m = h["peak_mem_mb"] / c["peak_mem_mb"]
                out.append(f"- peak memory at {size}²: {m:.3f} of the CNN's (target <= 0.25): "
                           f"{'met' if m <= 0.25 else 'NOT met'}")
        for arm in F8_TARGET_ARMS:  # hit-m, then its speed variants
            h, c = by.get((arm, "fp32", size)), by.get(("cnn-f8", "fp32", size))
            if h and c and size in (256, 512):
                x, lo, hi = paired(c, h)
                out.append(f"- {arm} vs its CNN arm (f8, {h['weights'].split(' ')[0]} weights), fp32 eager, {size}²: "
                           f"{x:.1f}× (target >= 3×; rounds {lo:.1f}× to {hi:.1f}×): {'met' if x >= 3 else 'NOT met'}")
        h, hb = by.get(("hit-8m-f16", "fp32", size)), by.get(("hit-8m-f16", "bf16", size))
        cb = by.get((CNN_NAME, "bf16", size))
        if h and hb:
            out.append(f"- hit-8m-f16 bf16 vs fp32, {size}²: {paired(h, hb)[0]:.2f}× (target >= 1.8×)")
        if hb and cb:
            out.append(f"- hit-8m-f16 bf16 vs CNN bf16, {size}²: {paired(cb, hb)[0]:.1f}× (target >= 10×)")
        for hit, cnn in (("hit-8m-f16", CNN_NAME), ("hit-m", "cnn-f8")):
            hc, cc = by.get((hit, "fp32-compiled", size)), by.get((cnn, "fp32-compiled", size))
            he = by.get((hit, "fp32", size))
            if he and hc:
                out.append(f"- {hit} compiled vs eager, {size}²: {paired(he, hc)[0]:.2f}×")
            bh, bc = (min((r for r in res["rows"] if r["model"] == name and r["size"] == size),
                          key=lambda r: r["seconds"], default=None) for name in (hit, cnn))
            if hc and cc and bh and bc:  # best with best: each decoder in its fastest mode of this run
                out.append(f"- {hit} in its fastest mode ({bh['mode']}) vs {cnn} in its fastest ({bc['mode']}), {size}²: "
                           f"{paired(bc, bh)[0]:.1f}×")
    if not res["bf16_units"]:
        out.append("- bf16 rows: not measured — this CPU has no bf16 matrix units (no amx_bf16 / avx512_bf16 in its "
                   "flags); bf16 here would only emulate and says nothing about bf16 hardware")
    return out


#: environment variables that change how fast every decoder runs on a CPU (docs/performance.md, "Ninth
#: session": page faults cost 8% to 20% of a decode with glibc's defaults)
ALLOCATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "THP_MEM_ALLOC_ENABLE",
                       "LD_PRELOAD")


def allocator_settings() -> str:
    """The allocator variables this run saw, or "defaults" (glibc malloc, no transparent huge pages asked for)."""
    seen = [f"{k}={os.environ[k]}" for k in ALLOCATOR_VARIABLES if os.environ.get(k)]
    return ", ".join(seen) or "defaults"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--models", nargs="+", default=[CNN_NAME, *list_decoders(), "cnn-f8", *F8_TARGET_ARMS])
    ap.add_argument("--quality-out", type=Path, default=None, help="output folder of benchmarks/quality.py (trained arms)")
    ap.add_argument("--repeats", type=int, default=2, help="timed decodes per model, mode and size (interleaved)")
    ap.add_argument("--no-compile", action="store_true", help="skip the fp32-compiled mode")
    ap.add_argument("--compile-models", nargs="+", default=None, help="models measured compiled (default: all)")
    ap.add_argument("--bf16", action="store_true", help="measure bf16 even without bf16 matrix units")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.time()
    res = run(args)
    peak = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in res["peak"].items())
    compile_s = ", ".join(f"{k} {v:.0f} s" for k, v in res["compile_s"].items())
    env = (f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; flags seen: "
           f"{', '.join(cpu_flags()) or 'n/a'}; torch {torch.__version__}; python {platform.python_version()}; "
           f"measured 2048² matmul peak: {peak}; allocator settings: {allocator_settings()}; "
           f"run took {time.time() - t0:.0f} s on {time.strftime('%Y-%m-%d')}")
    body = "\n".join([
        "## Decoder: CNN decoders vs HiT decoders (fp32 eager, fp32 compiled, bf16)",
        "",
        f"Produced by `python benchmarks/decoder.py{''.join(' ' + a for a in sys.argv[1:])}` (see its docstring for the "
        "protocol). Batch 1, inference mode;",
        "seconds are medians of decodes interleaved across every model and mode. Speed is against a CNN in the same",
        "mode at the same output size: for the quality benchmark's HiT arms its CNN arm `cnn-f8`, for every other",
        "decoder taming's ImageNet f16 decoder; it is the median of per-round ratios (one decode of every model and",
        "mode per round), with the lowest and highest round in brackets.",
        f"Compile time (first compiled call, smallest size): {compile_s or 'not measured'}.",
        "This table is the CPU's; GPU timings are in the GPU section (`benchmarks/gpu.py`).",
        "",
        env,
        "",
        *markdown(res),
        "",
        "Targets (issue 17):",
        *targets(res),
    ])
    print(body)
    if not args.no_write:
        update_section(args.out, "decoder", body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
