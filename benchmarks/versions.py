"""Decode speed of older versions of the library against this one, interleaved in one process.

    git worktree add --detach /tmp/v1 420182e
    python benchmarks/versions.py /tmp/v1 --presets hit-8m-f16 hit-m --size 256 --threads 2

Each ``CHECKOUT`` is a folder holding an older ``hit_decoder`` package; its package is copied under
a new name (``hit_decoder_v1`` ...) so that every version can be imported side by side (the package
uses relative imports). Every version decodes the same latent with the same weights (this version's
random initialisation, loaded by parameter name: every version since 420182e saves the same
names); decodes are interleaved across versions, ``--repeats`` rounds, and the median is reported
with each version's speed relative to the first and the largest output difference from this version.
Interleaving matters on shared machines, whose speed drifts by 10-20% over minutes.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchmarking  # noqa: F401  (puts the repository root on the path)
from benchmarking import build_decoder, latent_for

import torch

import hit_decoder


def load_versions(checkouts: list[Path]) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="hit_versions_"))
    sys.path.insert(0, str(tmp))
    modules = {}
    for i, root in enumerate(checkouts, 1):
        name = f"hit_decoder_v{i}"
        shutil.copytree(root / "hit_decoder", tmp / name)
        modules[f"{root} (v{i})"] = importlib.import_module(name)
    modules["this checkout"] = hit_decoder
    return modules


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkouts", type=Path, nargs="+", help="folders holding an older hit_decoder package")
    ap.add_argument("--presets", nargs="+", default=["hit-8m-f16", "hit-m"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    versions = load_versions(args.checkouts)
    for preset in args.presets:
        current = build_decoder(preset).eval()
        models = {}
        for label, module in versions.items():
            m = module.HiTDecoder(module.HiTDecoderConfig(**current.config.to_dict())).eval()
            m.load_state_dict(current.state_dict())
            models[label] = m
        z = latent_for(current, args.size)
        times = {k: [] for k in models}
        with torch.inference_mode():
            ref = current(z)
            diffs = {k: float((m(z) - ref).abs().max()) for k, m in models.items()}  # also the warm-up
            for _ in range(args.repeats):
                for k, m in models.items():
                    t0 = time.perf_counter()
                    m(z)
                    times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        first = next(iter(med.values()))
        print(f"{preset} at {args.size}², batch 1, fp32, {args.threads} thread(s), median of {args.repeats} interleaved:")
        for k, v in med.items():
            print(f"  {k}: {v:.4f} s, {first / v:.2f}x the first, max |diff| vs this checkout {diffs[k]:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
