"""``hit-decoder inspect CKPT``: what a checkpoint holds — components, shapes, codebook size,
downsampling factor — read with the safe loader (nothing stored in the file is executed)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show what a checkpoint holds (safe: runs no code from the file)",
                       description=__doc__)
    p.add_argument("checkpoint", help="taming .ckpt, plain state dict, Net2NetTransformer .ckpt, .safetensors, or a "
                   "diffusers VQModel folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--allow-unsafe-pickle", action="store_true",
                   help="allow full unpickling if the safe loader cannot read the file (can run code from it: "
                        "trusted files only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from hit_decoder.adapters import describe_checkpoint, diffusers_adapter, format_description, is_diffusers_source

    if is_diffusers_source(args.checkpoint):  # a diffusers folder, or a library file of one
        info = diffusers_adapter().describe(args.checkpoint)
    else:
        info = describe_checkpoint(args.checkpoint, allow_unsafe_pickle=args.allow_unsafe_pickle)
    print(json.dumps(info, indent=2, default=str) if args.json else format_description(info))
    return 0
