"""``hit-decoder reconstruct``: reconstruct a folder of images and write a PSNR / SSIM table."""

from __future__ import annotations

import argparse

from . import add_model_source_arguments, check_model_source, load_model_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct a folder of images with a VQ model; writes PNGs and a PSNR/SSIM table",
        description="The model is a library-format file (export/model.safetensors of a training run) given "
        "with --model, or a taming VQGAN given with --vqgan-config and --vqgan-ckpt.",
    )
    add_model_source_arguments(p)
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="output folder for reconstructions, metrics.csv and metrics.md")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier outputs in --out (default: refuse to touch them)")
    p.add_argument("--resize", type=int, default=None, help="resize the shorter side to this many pixels first")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="decoding precision (bf16: fast only with bf16 matrix units; default fp32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_model_source(args, "the weights to reconstruct with")
    if args.resize is not None and args.resize < 1:
        raise ValueError(f"--resize must be a positive number of pixels, got {args.resize}")
    from hit_decoder.fileio import staged_outputs
    from hit_decoder.reconstruct import check_reconstruction_memory, reconstruct_folder, reconstruction_outputs

    # the new outputs replace earlier ones (only files an earlier run wrote) once all are written
    with staged_outputs(args.out, reconstruction_outputs(args.images, args.out), overwrite=args.overwrite,
                        what="--out", how="pass --overwrite to replace them, or choose another --out") as stage:
        vq = load_model_source(args)
        check_reconstruction_memory(vq, args.images, args.resize)
        report = reconstruct_folder(vq, args.images, stage.dir, resize=args.resize, device=args.device,
                                    precision=args.precision)
    print(report.markdown())
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable image(s): {', '.join(report.skipped)}")
    print(f"reconstructions, metrics.csv and metrics.md in {args.out}")
    return 0
