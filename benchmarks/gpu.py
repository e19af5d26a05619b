"""GPU decoder benchmark: the CNN decoders against the HiT decoders on a CUDA device.

    python benchmarks/gpu.py --quality-out runs/quality --jsonl gpu.jsonl   # measure (needs CUDA)
    python benchmarks/gpu.py --render gpu.jsonl                             # its section of BENCHMARKS.md
    python benchmarks/gpu.py --render benchmarks/results/gpu-h200-run1.jsonl benchmarks/results/gpu-h200-run2.jsonl
    python benchmarks/gpu.py --device cpu --sizes 64 --batches 1 2 --jsonl /tmp/g.jsonl   # check the script

Models: taming's ImageNet f16 CNN decoder, every HiT preset, and the quality benchmark's f8 arms
(``hit-m`` and its CNN arm ``cnn-f8``; trained weights from ``--quality-out DIR`` as in
``benchmarks/decoder.py``, else random weights of the same architecture). Modes, all in one run:

- ``fp32``, ``bf16``, ``fp16``: eager, the model cast with ``.to(dtype)``, a latent of that dtype.
  fp32 runs with PyTorch's defaults, recorded in the output (matmuls in full fp32; cuDNN
  convolutions may use TF32);
- HiT decoders twice in each dtype: in the CPU's 8192-token row bands (``inference_chunk_tokens``
  set to ``HiTDecoder.DEFAULT_CHUNK_TOKENS``) and ``whole`` (one band: the whole grid at once);
- ``bf16-compiled`` for ``--compile-models``: HiT through ``hit_decoder.compiling.compile_decoder``,
  CNNs through ``torch.compile(dynamic=True)``; the first call at each new shape is reported (the
  compile), and the output's relative error against the eager bf16 output.

Timing: CUDA events around ``n`` back-to-back decodes (``n`` from a warm-up call, so that one
measurement lasts at least 50 ms), the median of ``--repeats`` measurements interleaved over every
runner of one size and batch. Peak memory: ``torch.cuda.max_memory_allocated`` during one decode,
minus what was allocated before it. GFLOP/s: FLOPs (:mod:`torch.utils.flop_counter`, one fp32 decode
of the whole batch) over seconds, and its fraction of the matmul peak measured in the same run (8192³ in the
same dtype). Fidelity: the trained f8 arms encode held-out photographs (scikit-image's, at their
whole size) in fp32; the codes are decoded in fp32, bf16 and fp16, and each output is compared with
the fp32 output (PSNR) and with the photograph.

Every measurement is appended to ``--jsonl`` as it is taken, so a run cut off by its time limit
keeps what it measured; ``--budget-s`` stops starting new compiles past that many seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarking import CNN_NAME, QUALITY_ARMS, _factor, build_decoder, decode_flops, latent_for, trained_arm, update_section

import torch

from hit_decoder import HiTDecoder, list_decoders
from hit_decoder.compiling import compile_decoder

ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
WHOLE = 1 << 40  # inference_chunk_tokens for one band
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")  # held out by benchmarks/quality.py


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self.path, self.t0 = path, time.time()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def __call__(self, kind: str, **row) -> None:
        row = {"kind": kind, "t": round(time.time() - self.t0, 1), **row}
        print(json.dumps(row), flush=True)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, n: int) -> float:
    """Seconds per call of ``n`` back-to-back calls."""
    if device.type == "cuda":
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(n):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1e3 / n
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int) -> float:
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    with torch.inference_mode():
        timed(lambda: a @ b, device, 2)
        s = min(timed(lambda: a @ b, device, 5) for _ in range(3))
    return 2 * n**3 / s / 1e9


def peak_mb(fn, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    del out
    return peak / 2**20


def load_models(names, quality_out: Path | None) -> tuple[dict, dict, dict]:
    """Decoders by name, where their weights came from, and the trained arms' whole models."""
    models, weights, whole = {}, {}, {}
    for name in names:
        models[name], weights[name] = build_decoder(name), "random"
        path = trained_arm(name, quality_out)
        if path is not None:
            from hit_decoder import adapters

            whole[name] = adapters.load_vqmodel(path).eval()
            models[name], weights[name] = whole[name].decoder, "trained"
    return models, weights, whole


class Graphed:
    """``module`` replayed from a CUDA graph captured once per input shape: the decode's kernels
    without Python's launch overhead (the input is copied into the captured buffer; the output
    buffer is reused, so callers must copy it before the next call)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.graphs = module, {}

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        key = (tuple(z.shape), z.dtype)
        if key not in self.graphs:
            static = z.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.module(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.module(static)
            self.graphs[key] = (graph, static, out)
        graph, static, out = self.graphs[key]
        static.copy_(z)
        graph.replay()
        return out


def eager_runners(models: dict, device: torch.device, bands: bool = True) -> dict:
    runners = {}
    for name, m in models.items():
        for mode, dtype in DTYPES.items():
            r = copy.deepcopy(m).to(device=device, dtype=dtype).eval()
            if isinstance(r, HiTDecoder):
                if bands:
                    b = copy.deepcopy(r)
                    b.inference_chunk_tokens = HiTDecoder.DEFAULT_CHUNK_TOKENS  # the CPU's bands, on every device
                    runners[(name, mode)] = b
                r.inference_chunk_tokens = WHOLE
                runners[(name, mode + "-whole")] = r
            else:
                runners[(name, mode)] = r
    return runners


_FLOPS: dict = {}


def _flops(name: str, model: torch.nn.Module, z: torch.Tensor, device: torch.device) -> float:
    """FLOPs of decoding the whole batch ``z`` in fp32, counted once per model and shape (the eager
    and the compiled phases time the same decodes)."""
    key = (name, tuple(z.shape))
    if key not in _FLOPS:
        _FLOPS[key] = decode_flops(model.to(device), z)
        model.cpu()
    return _FLOPS[key]


def measure(runners: dict, models: dict, weights: dict, size: int, batch: int, device: torch.device,
            repeats: int, rec: Recorder, phase: str, first_calls: dict | None = None, reference: dict | None = None):
    """Times every runner at one size and batch, interleaved; records one row per runner."""
    zs = {name: latent_for(m, size, batch).to(device) for name, m in models.items()}
    flops = {name: _flops(name, m, zs[name], device) for name, m in models.items()}
    calls, n, secs, mem, err = {}, {}, {}, {}, {}
    with torch.inference_mode():
        for key, r in runners.items():
            z = zs[key[0]].to(DTYPES[key[1].split("-")[0]])
            calls[key] = lambda r=r, z=z: r(z)
            try:
                sync(device)
                t0 = time.perf_counter()
                out = calls[key]()
                sync(device)
                first = time.perf_counter() - t0
            except Exception as e:  # recorded and skipped: one failing runner must not lose the others
                rec("error", phase=phase, model=key[0], mode=key[1], size=size, batch=batch,
                    error=f"{type(e).__name__}: {e}"[:400])
                calls.pop(key)
                continue
            if first_calls is not None:
                first_calls[key] = first
            if reference is not None and key[1].endswith(("compiled", "cudagraph")):
                ref = reference[(key[0], "bf16-whole" if (key[0], "bf16-whole") in reference else "bf16")](z)
                err[key] = float((out.float() - ref.float()).norm() / ref.float().norm())
            del out
            t = timed(calls[key], device, 1)
            n[key] = max(1, min(50, int(0.05 / max(t, 1e-6))))
            mem[key] = peak_mb(calls[key], device)
            secs[key] = []
        for _ in range(repeats):
            for key in calls:
                secs[key].append(timed(calls[key], device, n[key]))
    for key in calls:
        s = statistics.median(secs[key])
        rec("time", phase=phase, model=key[0], mode=key[1], size=size, batch=batch, seconds=s, calls=n[key],
            gflops=flops[key[0]] / 1e9, peak_mb=mem[key], weights=weights[key[0]],
            first_call_s=None if first_calls is None else first_calls.get(key), rel_err_vs_eager=err.get(key))


def fidelity(whole: dict, photos: list[str], device: torch.device, rec: Recorder) -> None:
    from hit_decoder.common.data import embedded_photographs
    from hit_decoder.common.metrics import psnr, to_unit_range
    from hit_decoder.images import fit_to_factor

    for name, vq in whole.items():
        vq = vq.to(device)
        f = _factor(vq.decoder)
        for photo, img in embedded_photographs(photos):
            x = fit_to_factor(img, f)[None].to(device)
            with torch.inference_mode():
                quant, _, _ = vq.encode(x)
                quant = vq.post_quant_conv(quant)  # what the decoder takes (taming's VQModel.decode)
                outs = {}
                for mode, dtype in DTYPES.items():
                    dec = copy.deepcopy(vq.decoder).to(dtype)
                    outs[mode] = to_unit_range(dec(quant.to(dtype)).float())
                    del dec
            ref = to_unit_range(x)
            for mode, o in outs.items():
                rec("fidelity", model=name, photo=photo, size=f"{x.shape[-1]}x{x.shape[-2]}", mode=mode,
                    psnr_vs_fp32=None if mode == "fp32" else float(psnr(o, outs["fp32"])[0]),
                    psnr_vs_photo=float(psnr(o, ref)[0]), finite=bool(torch.isfinite(o).all()))
        vq.cpu()


def run(args) -> None:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py: no CUDA device is visible to PyTorch; run it on a GPU machine, "
                         "or pass --device cpu to check the script on small sizes")
    rec = Recorder(args.jsonl)
    t_start = time.time()
    env = dict(torch=torch.__version__, python=platform.python_version(), argv=sys.argv[1:],
               matmul_tf32=torch.backends.cuda.matmul.allow_tf32, cudnn_tf32=torch.backends.cudnn.allow_tf32,
               float32_matmul_precision=torch.get_float32_matmul_precision(), date=time.strftime("%Y-%m-%d"))
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_mem_gb=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    rec("env", **env)
    n = 8192 if device.type == "cuda" else 512
    rec("peak", **{k: matmul_peak(d, device, n) for k, d in DTYPES.items()}, n=n)
    models, weights, whole = load_models(args.models, args.quality_out)
    runners = eager_runners(models, device, bands=not args.no_bands)
    if not args.only_compiled:
        for batch in args.batches:
            for size in args.sizes:
                measure(runners, models, weights, size, batch, device, args.repeats, rec, "eager")
        fidelity(whole, args.photos, device, rec)
    # compiled (bf16), each model beside its own eager bf16 runners so that the ratio is side by side
    for name in args.compile_models:
        if name not in models:
            continue
        if time.time() - t_start > args.budget_s:
            rec("skipped", model=name, mode="bf16-compiled", why=f"past --budget-s {args.budget_s}")
            continue
        m = runners[(name, "bf16")] if (name, "bf16") in runners else runners[(name, "bf16-whole")]
        kw = {} if args.compile_backend == "inductor" else {"backend": args.compile_backend}
        compiled = compile_decoder(m, **kw) if isinstance(m, HiTDecoder) else torch.compile(m, dynamic=True, **kw)
        group = {k: v for k, v in runners.items() if k[0] == name and k[1].startswith("bf16")}
        group[(name, "bf16-compiled")] = compiled
        if device.type == "cuda":
            group[(name, "bf16-cudagraph")] = Graphed(runners[(name, "bf16-whole" if isinstance(m, HiTDecoder) else "bf16")])
        first: dict = {}
        for batch in args.batches:
            for size in args.sizes:
                if time.time() - t_start > args.budget_s:
                    rec("skipped", model=name, mode="bf16-compiled", size=size, batch=batch, why="past --budget-s")
                    continue
                measure(group, {name: models[name]}, weights, size, batch, device, args.repeats, rec, "compiled",
                        first_calls=first, reference=runners)
    rec("done", seconds=round(time.time() - t_start, 1))


# ----------------------------------------------------------------------------- rendering
SIZES = (256, 512, 1024)


def _ratios(pairs: list) -> str | None:
    """CNN seconds over HiT seconds per size of :data:`SIZES`, from its ``(hit row, cnn row)`` pairs."""
    got = [f"{c['seconds'] / h['seconds']:.2f}×" if h and c else "–" for h, c in pairs]
    return None if set(got) == {"–"} else " / ".join(got)


def _best(rows: list[dict], model: str, size: int, batch: int) -> dict | None:
    return min((r for r in rows if (r["model"], r["size"], r["batch"]) == (model, size, batch)),
               key=lambda r: r["seconds"], default=None)


def headline(runs: list[list[dict]]) -> list[str]:
    """The section's machine line and its ``Result`` line (what the README summary shows)."""
    envs = [next((r for r in rows if r["kind"] == "env"), {}) for rows in runs]
    gpus = sorted({e.get("gpu", "no GPU") for e in envs})
    torches = sorted({f"torch {e.get('torch')}, CUDA {e.get('cuda')}" for e in envs})
    dates = sorted({e.get("date") for e in envs if e.get("date")})
    out = [f"machine: {', '.join(gpus)}; {'; '.join(torches)}; {len(runs)} run(s) on {', '.join(dates)}", ""]
    times = [r for rows in runs for r in rows if r["kind"] == "time"]
    eager = {(r["model"], r["mode"], r["size"], r["batch"]): r for r in times if r["phase"] == "eager"}
    comp = [r for r in times if r["phase"] == "compiled"]
    parts = []
    for hit in ("hit-8m-f16", "hit-m"):
        cnn = "cnn-f8" if hit in QUALITY_ARMS else CNN_NAME
        e = _ratios([(eager.get((hit, "bf16-whole", s, 1)), eager.get((cnn, "bf16", s, 1))) for s in SIZES])
        if e:
            parts.append(f"{hit} vs {cnn}, eager bf16 (HiT whole), batch 1: {e}")
        for batch in (1, 16):
            best = _ratios([(_best(comp, hit, s, batch), _best(comp, cnn, s, batch)) for s in SIZES])
            if best:
                parts.append(f"{hit} vs {cnn}, best bf16 runner with best, batch {batch}: {best}")
    if parts:
        out.append("Result (at 256² / 512² / 1024²; above 1× the HiT decoder is faster): " + "; ".join(parts) + ".")
    return out


def render(runs: list[list[dict]], names: list[str] | None = None) -> str:
    """The BENCHMARKS.md section of one or more ``--jsonl`` files (runs on separate machine starts:
    ratios are only taken within one run)."""

    def cnn_of(model: str) -> str:
        return "cnn-f8" if model in QUALITY_ARMS else CNN_NAME

    def fmt_s(s: float) -> str:
        return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"

    def label(model: str, mode: str) -> str:  # HiT rows say which band policy they ran
        if model == CNN_NAME or model == "cnn-f8" or mode.endswith(("compiled", "cudagraph")):
            return mode
        return mode.replace("-whole", ", whole") if mode.endswith("-whole") else f"{mode}, 8192-token bands"

    lines = ["## Decoder on a GPU: CNN decoders vs HiT decoders (fp32, bf16, fp16, compiled, CUDA graphs; batch 1 and 16)",
             ""]
    for i, rows in enumerate(runs, 1):
        env = next((r for r in rows if r["kind"] == "env"), {})
        peak = next((r for r in rows if r["kind"] == "peak"), {})
        done = next((r for r in rows if r["kind"] == "done"), None)
        lines += [
            f"Run {i}: `python benchmarks/gpu.py{''.join(' ' + a for a in env.get('argv', []))}` on "
            f"{env.get('gpu', 'no GPU')} ({env.get('sms', '?')} SMs, {env.get('gpu_mem_gb', '?')} GiB), torch "
            f"{env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, python {env.get('python')}, "
            f"{env.get('date')}. fp32 with PyTorch's defaults: matmul TF32 {env.get('matmul_tf32')}, cuDNN TF32 "
            f"{env.get('cudnn_tf32')} (so the CNNs' fp32 convolutions run on TF32 tensor cores and exceed the fp32 "
            f"matmul peak). Measured {peak.get('n')}³ matmul peak: fp32 {peak.get('fp32', 0) / 1e3:.1f}, bf16 "
            f"{peak.get('bf16', 0) / 1e3:.1f}, fp16 {peak.get('fp16', 0) / 1e3:.1f} TFLOP/s. "
            + (f"The run took {done['seconds']:.0f} s." if done else
               "The run was cut off before its end: its rows are what it measured."),
            "",
        ]
    files = " ".join(names or ["FILE ..."])
    lines += [*headline(runs), "", f"Rendered by `python benchmarks/gpu.py --render {files}` from the runs' "
        "measurement files. Seconds per "
        "batch are medians of CUDA-event timings interleaved over the runners of one size and batch (see the "
        "script's docstring). HiT rows: `whole` decodes the grid in one band, `8192-token bands` in the CPU's row "
        "bands (the default on every device when these runs were made; the default on GPUs is now 2²⁰-token "
        "bands, which is `whole` for batch 1 up to 1024² and for batch 16 at 256²). Speed is against the CNN in "
        "the same dtype; for the quality "
        "benchmark's arms, their CNN arm `cnn-f8`.",
    ]
    for i, rows in enumerate(runs, 1):
        times = [r for r in rows if r["kind"] == "time"]
        peak = next((r for r in rows if r["kind"] == "peak"), {})
        eager = {(r["model"], r["mode"], r["size"], r["batch"]): r for r in times if r["phase"] == "eager"}
        comp = {(r["model"], r["mode"], r["size"], r["batch"]): r for r in times if r["phase"] == "compiled"}
        if eager:
            lines += ["", f"Eager (run {i}):", "",
                      "| decoder | mode | batch × output | s / batch | images / s | speed vs its CNN, same dtype | GFLOP/s | "
                      "of matmul peak | peak MB | weights |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
            for (model, mode, size, batch), r in eager.items():
                c = eager.get((cnn_of(model), mode.split("-")[0], size, batch))
                speed = f"{c['seconds'] / r['seconds']:.2f}×" if c else "–"
                gf = r["gflops"] / r["seconds"]
                pk = peak.get(mode.split("-")[0])
                mem = "–" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
                lines.append(f"| {model} | {label(model, mode)} | {batch} × {size}² | {fmt_s(r['seconds'])} | "
                             f"{batch / r['seconds']:.1f} | {speed} | {gf:.0f} | {100 * gf / pk:.1f}% | {mem} | {r['weights']} |")
        if comp:
            lines += ["", f"bf16: eager, compiled and replayed from CUDA graphs, each model's runners timed side by side "
                      f"(run {i}); `cudagraph` replays the eager decode (whole for HiT) captured once per shape, "
                      "`compiled` is `compile_decoder` for HiT and `torch.compile(dynamic=True)` for the CNNs:", "",
                      "| decoder | batch × output | eager, bands | eager, whole | compiled | cudagraph | best vs eager "
                      "(HiT: bands) | first compiled call (s) | rel. error vs eager |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
            keys = sorted({(m, sz, b) for (m, _, sz, b) in comp}, key=lambda k: (k[0] not in (CNN_NAME, "cnn-f8"), k))
            for model, size, batch in keys:
                got = {mode: comp.get((model, mode, size, batch)) for mode in ("bf16", "bf16-whole", "bf16-compiled",
                                                                               "bf16-cudagraph")}
                best = min((r["seconds"] for r in got.values() if r), default=None)
                base = got["bf16"]
                cell = {k: fmt_s(r["seconds"]) if r else "–" for k, r in got.items()}
                c = got["bf16-compiled"]
                err = c and c.get("rel_err_vs_eager")
                gain = f"{base['seconds'] / best:.1f}×" if base and best else "–"
                first = f"{c['first_call_s']:.1f}" if c else "failed"
                lines.append(f"| {model} | {batch} × {size}² | {cell['bf16']} | {cell['bf16-whole']} | "
                             f"{cell['bf16-compiled']} | {cell['bf16-cudagraph']} | {gain} | {first} | "
                             f"{f'{err:.1e}' if err is not None else '–'} |")
            lines += ["", f"Best with best (run {i}): each decoder in its fastest bf16 runner above.", ""]
            for hit in ("hit-8m-f16", "hit-m"):
                for size, batch in sorted({(sz, b) for (m, sz, b) in keys if m == hit}, key=lambda k: (k[1], k[0])):
                    bh = min(((mode, r) for (m, mode, sz, b), r in comp.items() if (m, sz, b) == (hit, size, batch)),
                             key=lambda x: x[1]["seconds"])
                    cc = [(mode, r) for (m, mode, sz, b), r in comp.items() if (m, sz, b) == (cnn_of(hit), size, batch)]
                    if cc:
                        bc = min(cc, key=lambda x: x[1]["seconds"])
                        lines.append(f"- {hit} ({bh[0]}) vs {cnn_of(hit)} ({bc[0]}), {batch} × {size}²: "
                                     f"{bc[1]['seconds'] / bh[1]['seconds']:.2f}×")
        fid = [r for r in rows if r["kind"] == "fidelity"]
        if fid:
            lines += ["", f"Fidelity on trained weights (run {i}; held-out photographs at their whole size, codes from "
                      "the fp32 encoder):", "",
                      "| decoder | photograph | size | mode | PSNR vs fp32 output (dB) | PSNR vs photograph (dB) |",
                      "|---|---|---|---|---:|---:|"]
            for r in fid:
                vs = "–" if r["psnr_vs_fp32"] is None else f"{r['psnr_vs_fp32']:.1f}"
                lines.append(f"| {r['model']} | {r['photo']} | {r['size']} | {r['mode']} | {vs} | {r['psnr_vs_photo']:.2f} |")
        other = [r for r in rows if r["kind"] in ("error", "skipped")]
        if other:
            lines += ["", f"Not measured in run {i}:", ""]
            seen = set()
            for r in other:
                why = (r.get("error") or r.get("why") or "").split("\n")[0]
                key = (r["kind"], r.get("model"), r.get("mode"), why[:60])
                if key not in seen:  # one line per model, mode and reason
                    seen.add(key)
                    lines.append(f"- {r['kind']}: {r.get('model')} {r.get('mode')}: {why}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--models", nargs="+", default=[CNN_NAME, *list_decoders(), "cnn-f8", "hit-m"])
    ap.add_argument("--compile-models", nargs="+", default=["hit-8m-f16", CNN_NAME, "hit-m", "cnn-f8"])
    ap.add_argument("--quality-out", type=Path, default=None, help="output folder of benchmarks/quality.py (trained arms)")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: checks the script fast)")
    ap.add_argument("--no-bands", action="store_true",
                    help="HiT decoders whole only, without the CPU's 8192-token bands (about half the eager time)")
    ap.add_argument("--only-compiled", action="store_true", help="skip the eager table and the fidelity check")
    ap.add_argument("--photos", nargs="+", default=list(PHOTOS), help="held-out photographs of the fidelity check")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=400, help="start no compile past this many seconds")
    ap.add_argument("--jsonl", type=Path, default=None, help="append every measurement to this file")
    ap.add_argument("--render", type=Path, nargs="+", default=None,
                    help="render --jsonl files (one per run) into BENCHMARKS.md and stop")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    if args.render is not None:
        body = render([[json.loads(line) for line in f.read_text().splitlines() if line.strip()] for f in args.render],
                      [f.resolve().relative_to(ROOT).as_posix() if f.resolve().is_relative_to(ROOT) else str(f)
                       for f in args.render])
        print(body)
        update_section(args.out, "decoder_gpu", body)
        print(f"wrote {args.out}")
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
