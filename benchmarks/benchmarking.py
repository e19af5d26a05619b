"""Helpers of the decoder benchmarks (decoder.py, profile.py): building decoders by name, latents, CPU flags.

Used by ``benchmarks/decoder.py`` (which writes BENCHMARKS.md).
Every number is measured in the run that reports it: parameters by counting, FLOPs with
:mod:`torch.utils.flop_counter` on the real input, throughput by timing ``decoder(z)`` under
``torch.no_grad`` on this machine's CPU, and peak memory as the rise of the process's peak
resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) during one decode,
each in a fresh subprocess so that one measurement cannot inherit another's allocations.
"""

from __future__ import annotations

import os
import sys


def _import_stdlib_profile() -> None:
    """benchmarks/profile.py would shadow the standard library's ``profile`` for scripts run from
    this folder, and cProfile (imported by ``torch.compile``) needs the real one: import it first,
    with this folder off the path."""
    here = os.path.dirname(os.path.abspath(__file__))
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        sys.modules.pop("profile", None)
        import cProfile  # noqa: F401  (imported for sys.modules, with this folder off the path)
        import profile  # noqa: F401  (the standard library's, which cProfile needs)
    finally:
        sys.path[:] = saved


_import_stdlib_profile()

import contextlib
import io
import json
import subprocess
from pathlib import Path

import torch

from hit_decoder.common.seeding import seeded
from hit_decoder.fileio import atomic_path

__all__ = ["TAMING_F16_DDCONFIG", "build_decoder", "trained_arm", "latent_for", "cpu_flags", "has_bf16_units", "decode_flops",
           "peak_memory_mb", "update_section", "vm_kb"]

#: taming's ImageNet f16 VQGAN decoder (vqgan_imagenet_f16_1024 / _16384 ddconfig).
TAMING_F16_DDCONFIG = dict(
    double_z=False, z_channels=256, resolution=256, in_channels=3, out_ch=3, ch=128,
    ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2, attn_resolutions=[16], dropout=0.0,
)
CNN_NAME = "taming-cnn-f16"


#: the speed variants in the quality benchmark (issue 17), each with the arm it slims down (``hit-m`` in the
#: f8 family, ``hit-m-f16`` in the f16 family); benchmarks/quality.py holds their configurations and
#: judges their quality against that arm
SPEED_VARIANTS = {"hit-m-16": "hit-m", "hit-m-16-16": "hit-m", "hit-m-f16-16-16": "hit-m-f16"}
#: the speed variants of the f8 family (the rest belong to the f16 family, ``quality.py --factor 16``)
F8_VARIANTS = tuple(v for v, base in SPEED_VARIANTS.items() if base == "hit-m")
#: the quality benchmark's f8 arms (benchmarks/quality.py), by the names the decoder tables use
QUALITY_ARMS = {"hit-m": "hit-m", **{v: v for v in F8_VARIANTS}, "hit-l": "hit-l", "hit-s": "hit-s", "cnn-f8": "cnn"}


def trained_arm(name: str, quality_out: Path | None) -> Path | None:
    """The quality benchmark's trained model file of arm ``name`` under its output folder
    (``DIR/seed0/<arm>/model.safetensors`` or ``DIR/<arm>/model.safetensors``), or ``None``."""
    if name not in QUALITY_ARMS or quality_out is None:
        return None
    for path in (quality_out / "seed0" / QUALITY_ARMS[name] / "model.safetensors",
                 quality_out / QUALITY_ARMS[name] / "model.safetensors"):
        if path.is_file():
            return path
    return None


def build_decoder(name: str, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised decoder: ``taming-cnn-f16``, a HiT preset name or a quality-benchmark
    arm (:data:`QUALITY_ARMS`). Seeded in a fork of the global RNG: the caller's random state is
    left as it was."""
    with seeded(seed):
        if name == CNN_NAME or name == "cnn-f8":
            import hit_decoder.adapters  # noqa: F401  (taming import shims)

            from taming.modules.diffusionmodules.model import Decoder

            cfg = TAMING_F16_DDCONFIG if name == CNN_NAME else _quality().DDCONFIG
            with contextlib.redirect_stdout(io.StringIO()):  # taming prints the z shape
                return Decoder(**cfg).eval()
        if name in QUALITY_ARMS:
            from hit_decoder import HiTDecoder

            return HiTDecoder(_quality().HIT[QUALITY_ARMS[name]]).eval()
        from hit_decoder import create_decoder

        return create_decoder(name).eval()


def _quality():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import quality

    return quality


def _factor(model: torch.nn.Module) -> int:
    f = getattr(model, "downsample_factor", None)
    if f:
        return f
    from hit_decoder.adapters import downsample_factor

    return downsample_factor(int(model.num_resolutions))  # taming Decoder


def _z_channels(model: torch.nn.Module) -> int:
    return getattr(model, "z_channels", None) or model.conv_in.in_channels  # HiT / taming Decoder


def latent_for(model: torch.nn.Module, size: int, batch: int = 1) -> torch.Tensor:
    """A fixed random latent that ``model`` decodes to ``batch`` images of ``size``² pixels."""
    f = _factor(model)
    return torch.randn(batch, _z_channels(model), size // f, size // f, generator=torch.Generator().manual_seed(1))



def cpu_flags(wanted=("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_fp16")) -> list[str]:
    """The CPU flags among ``wanted`` that ``/proc/cpuinfo`` lists (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [f for f in wanted if f in flags]


def has_bf16_units() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def decode_flops(model: torch.nn.Module, z: torch.Tensor) -> float:
    """FLOPs of one real decode of ``z`` (:mod:`torch.utils.flop_counter`)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(z)
    return float(counter.get_total_flops())


def vm_kb(field: str) -> int:
    """A ``/proc/self/status`` field of this process in kB (``VmRSS``, ``VmHWM``, ...)."""
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
        model(latent_for(model, _factor(model)))
    z = latent_for(model, size)
    gc.collect()
    base = vm_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    with torch.no_grad():
        out = model(z)
    del out
    return (vm_kb("VmHWM") - base) / 1024


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
