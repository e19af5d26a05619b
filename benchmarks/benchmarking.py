"""Side-by-side decoder measurements: taming's CNN decoder against the HiT presets.

Used by ``benchmarks/decoder.py`` (which writes BENCHMARKS.md).
Every number is measured in the run that reports it: parameters by counting, FLOPs with
:mod:`torch.utils.flop_counter` on the real input, throughput by timing ``decoder(z)`` under
``torch.no_grad`` on this machine's CPU, and peak memory as the rise of the process's peak
resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) during one decode,
each in a fresh subprocess so that one measurement cannot inherit another's allocations.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from hit_decoder.fileio import atomic_path

__all__ = ["TAMING_F16_DDCONFIG", "DecodeResult", "build_decoder", "measure", "markdown_table", "update_section"]

#: taming's ImageNet f16 VQGAN decoder (vqgan_imagenet_f16_1024 / _16384 ddconfig).
TAMING_F16_DDCONFIG = dict(
    double_z=False, z_channels=256, resolution=256, in_channels=3, out_ch=3, ch=128,
    ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2, attn_resolutions=[16], dropout=0.0,
)
CNN_NAME = "taming-cnn-f16"


@dataclass
class DecodeResult:
    model: str
    size: int
    params_m: float
    gflops: float
    seconds: float
    images_per_s: float
    peak_mem_mb: float | None


def build_decoder(name: str, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised decoder: ``taming-cnn-f16`` or a HiT preset name. Seeded in a fork of
    the global RNG: the caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == CNN_NAME:
            import hit_decoder.adapters  # noqa: F401  (taming import shims)
            from taming.modules.diffusionmodules.model import Decoder

            with contextlib.redirect_stdout(io.StringIO()):  # taming prints the z shape
                return Decoder(**TAMING_F16_DDCONFIG).eval()
        from hit_decoder import create_decoder

        return create_decoder(name).eval()


def _factor(model: torch.nn.Module) -> int:
    from hit_decoder import adapters

    return getattr(model, "downsample_factor", None) or adapters.downsample_factor(TAMING_F16_DDCONFIG)


def _latent(model: torch.nn.Module, size: int) -> torch.Tensor:
    f = _factor(model)
    return torch.randn(1, 256, size // f, size // f, generator=torch.Generator().manual_seed(1))


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_mb(name: str, size: int) -> float | None:
    """Rise of the peak RSS during one ``no_grad`` decode, measured in a fresh subprocess."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    code = (
        f"import sys, json; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r});"
        "from benchmarking import _peak_in_this_process as f;"
        f"print(json.dumps(f({name!r}, {size})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_in_this_process(name: str, size: int) -> float:
    import gc

    model = build_decoder(name)
    with torch.no_grad():  # warm-up at the smallest size: lazy library/thread-pool set-up is not counted
        model(_latent(model, _factor(model)))
    z = _latent(model, size)
    gc.collect()
    base = _vm_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    with torch.no_grad():
        out = model(z)
    del out
    return (_vm_kb("VmHWM") - base) / 1024


def measure(names: list[str], sizes: list[int], *, repeats: int = 2, memory: bool = True,
            log=print) -> list[DecodeResult]:
    """Measure every model at every size. Timings are interleaved (for each size and repeat, one
    decode of each model in turn), so slow drifts in machine load hit all models alike and the
    ratios stay fair; each model is warmed up once at its smallest size first."""
    models = {name: build_decoder(name) for name in names}
    with torch.no_grad():
        for model in models.values():
            model(_latent(model, min(sizes)))  # warm-up: lazy library / thread-pool set-up
    results = []
    for size in sizes:
        latents = {name: _latent(m, size) for name, m in models.items()}
        times: dict[str, list[float]] = {name: [] for name in names}
        with torch.no_grad():
            for _ in range(repeats):
                for name, model in models.items():
                    t0 = time.perf_counter()
                    model(latents[name])
                    times[name].append(time.perf_counter() - t0)
        for name, model in models.items():
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(latents[name])
            secs = statistics.median(times[name])
            mem = peak_memory_mb(name, size) if memory else None
            params = sum(p.numel() for p in model.parameters()) / 1e6
            r = DecodeResult(name, size, params, counter.get_total_flops() / 1e9, secs, 1.0 / secs, mem)
            log(json.dumps(asdict(r)))
            results.append(r)
    order = {n: i for i, n in enumerate(names)}
    return sorted(results, key=lambda r: (order[r.model], r.size))


def markdown_table(results: list[DecodeResult]) -> str:
    base = {r.size: r for r in results if r.model == CNN_NAME}
    lines = [
        "| decoder | output | params (M) | GFLOPs | FLOPs vs CNN | s / image | images/s | speed vs CNN | peak MB | memory vs CNN |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b = base.get(r.size)
        ratio = lambda a, c: f"{a / c:.3f}" if (a is not None and c) else "–"  # noqa: E731
        mem = f"{r.peak_mem_mb:.0f}" if r.peak_mem_mb is not None else "–"
        lines.append(
            f"| {r.model} | {r.size}² | {r.params_m:.2f} | {r.gflops:.1f} | {ratio(r.gflops, b and b.gflops)} | "
            f"{r.seconds:.3f} | {r.images_per_s:.2f} | {ratio(r.images_per_s, b and b.images_per_s)}× | {mem} | "
            f"{ratio(r.peak_mem_mb, b and b.peak_mem_mb)} |"
        )
    return "\n".join(lines)


def update_section(path: str | os.PathLike, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``
    (appending the section if absent), atomically; other sections are left as they are."""
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
