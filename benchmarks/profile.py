"""Where a decoder's time goes: self CPU time by op class, and the achieved GFLOP/s.

    python benchmarks/profile.py hit-8m-f16                 # 256², batch 1, fp32, 1 thread
    python benchmarks/profile.py hit-m --size 512 --threads 2
    python benchmarks/profile.py taming-cnn-f16 --precision bf16
    python benchmarks/profile.py hit-8m-f16 --top 25        # also the 25 most expensive aten ops

PRESET is a HiT preset name, a quality-benchmark arm (``hit-m``, ``hit-m-16``, ``hit-l``, ``hit-s``, ``cnn-f8``:
random weights of that architecture) or ``taming-cnn-f16``. The decode runs under
``torch.inference_mode`` after warm-up decodes; :mod:`torch.profiler` records ``--repeats``
decodes and every aten op's *self* time is put into one class (matmul, attention, normalisation,
elementwise, layout copies, convolution, upsampling, other; see ``OP_CLASSES``). GFLOP/s is the
decode's FLOPs (:mod:`torch.utils.flop_counter`: matmuls, attention, convolutions) over the
median wall time of the unprofiled decodes.

To profile an older version of the library, run this script with that version first on the path
(``PYTHONPATH=/path/to/old/checkout python benchmarks/profile.py ...``): it only uses the public
``create_decoder`` / ``HiTDecoder`` API.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import defaultdict

# benchmarking before torch: it imports the standard library's `profile`, which this file shadows
from benchmarking import CNN_NAME, build_decoder, cpu_flags, decode_flops, latent_for

import torch
from torch.profiler import ProfilerActivity, profile

#: op class -> regular expression over aten op names (self time); first match wins
OP_CLASSES = [
    ("attention", r"scaled_dot_product|_flash_attention|_efficient_attention|softmax"),
    ("matmul", r"^aten::(addmm|mm|bmm|baddbmm|matmul|linear|addbmm|_addmm_activation|mkldnn_linear|_mkl_linear)$"),
    ("normalisation", r"layer_norm|group_norm|batch_norm|native_norm"),
    ("convolution", r"conv|im2col|col2im"),
    ("upsampling", r"upsample|interpolate|pixel_shuffle"),
    ("layout copies", r"^aten::(copy_|clone|contiguous|cat|constant_pad_nd|_unsafe_view|reshape|unfold|index|"
                      r"index_select|gather|as_strided_|_to_copy|to|fill_|zero_|zeros|new_zeros|new_ones|new_full|pad|"
                      r"empty_like|repeat|expand_as|"
                      r"narrow_copy|stack|split_with_sizes_copy|unsafe_split)$"),
    ("elementwise", r"^aten::(add_?|mul_?|sub_?|div_?|gelu_?|where|masked_fill_?|exp|log|clamp.*|neg|rsub|pow|sqrt|"
                    r"rsqrt|tanh|sigmoid|silu|abs|maximum|minimum|bitwise.*|logical.*|__and__|__or__|__invert__|eq|ne|lt|"
                    r"gt|le|ge|sum|mean|amax|amin)$"),
]
CLASS_ORDER = ["matmul", "attention", "normalisation", "elementwise", "layout copies", "convolution", "upsampling",
               "other"]


def op_class(name: str) -> str:
    for cls, pattern in OP_CLASSES:
        if re.search(pattern, name):
            return cls
    return "other"


def profile_decoder(model: torch.nn.Module, z: torch.Tensor, *, repeats: int = 3, warmup: int = 2) -> dict:
    """Self time by op class (seconds per decode), op table and wall time of ``model(z)``."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(z)
        wall = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(z)
            wall.append(time.perf_counter() - t0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                model(z)
    by_class: dict[str, float] = defaultdict(float)
    ops = []
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue
        self_s = evt.self_cpu_time_total / 1e6 / repeats
        by_class[op_class(evt.key)] += self_s
        ops.append((evt.key, self_s, evt.count // repeats))
    ops.sort(key=lambda o: -o[1])
    return {"by_class": dict(by_class), "ops": ops, "wall_s": statistics.median(wall)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", help=f"a HiT preset, a quality arm (hit-m, cnn-f8, ...) or {CNN_NAME}")
    ap.add_argument("--size", type=int, default=256, help="output side in pixels (default 256)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: the decoder cast to bfloat16 (decoder.to(torch.bfloat16))")
    ap.add_argument("--compile", action="store_true", help="profile torch.compile(model, dynamic=True)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=12, help="also list this many most expensive aten ops")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = build_decoder(args.preset)
    z = latent_for(model, args.size, batch=args.batch)
    flops = decode_flops(model, z)
    if args.precision == "bf16":
        model, z = model.to(torch.bfloat16), z.to(torch.bfloat16)
    if args.compile:
        model = torch.compile(model, dynamic=True)
    r = profile_decoder(model, z, repeats=args.repeats)
    total = sum(r["by_class"].values())
    print(f"{args.preset} at {args.size}², batch {args.batch}, {args.precision}{', compiled' if args.compile else ''}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; CPU flags: {', '.join(cpu_flags()) or 'n/a'}")
    print(f"wall {r['wall_s']:.4f} s / decode (median of {args.repeats}, unprofiled); profiled self time "
          f"{total:.4f} s; {flops / 1e9:.2f} GFLOPs -> {flops / 1e9 / r['wall_s']:.1f} GFLOP/s achieved")
    print("\n| op class | s / decode | share |\n|---|---:|---:|")
    for cls in CLASS_ORDER:
        s = r["by_class"].get(cls, 0.0)
        print(f"| {cls} | {s:.4f} | {100 * s / total:.1f}% |")
    copies = sum(s for name, s, _ in r["ops"] if name in ("aten::copy_", "aten::clone"))
    print(f"\naten::copy_ + aten::clone: {100 * copies / total:.1f}% of self time")
    if args.top:
        print(f"\n| aten op (top {args.top}) | class | calls / decode | s / decode | share |\n|---|---|---:|---:|---:|")
        for name, s, n in r["ops"][: args.top]:
            print(f"| {name} | {op_class(name)} | {n} | {s:.4f} | {100 * s / total:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
