"""``hit-decoder presets``: list the shipped decoder presets with their size and cost."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list decoder presets with parameters and GFLOPs")
    p.add_argument("--size", type=int, default=256, help="output image side for the GFLOPs column (default 256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hit_decoder import create_decoder, list_decoders
    from hit_decoder.flops import count_flops, count_parameters

    if args.size < 1:
        raise ValueError(f"--size must be a positive number of pixels, got {args.size}")
    from hit_decoder.memory import GB, fits

    ok, free = fits(args.size * args.size * 24)  # the float image and blend weights of one decode (as sample)
    if not ok:
        raise MemoryError(f"--size {args.size}: one {args.size}x{args.size} px image alone needs about "
                          f"{args.size**2 * 24 / GB:.1f} GB, but {free / GB:.1f} GB of memory is available; the GFLOPs "
                          "column is for sizes a decoder can run at: choose a smaller --size")
    rows = [("preset", "f", "z_channels", "params (M)", f"GFLOPs @ {args.size}px")]
    for name in list_decoders():
        dec = create_decoder(name)
        f = dec.downsample_factor
        if args.size % f:
            raise ValueError(f"--size {args.size} is not a multiple of {name}'s downsampling factor {f}")
        side = args.size // f
        gflops = count_flops(dec, (1, dec.z_channels, side, side)) / 1e9
        rows.append((name, str(f), str(dec.z_channels), f"{count_parameters(dec) / 1e6:.2f}", f"{gflops:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0
