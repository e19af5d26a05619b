"""``hit-decoder reconstruct``: reconstruct a folder of images and write a PSNR / SSIM table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct a folder of images with a VQ model; writes PNGs and a PSNR/SSIM table",
        description="The model is a library-format file (export/model.safetensors of a training run) given "
        "with --model, or a taming VQGAN given with --vqgan-config and --vqgan-ckpt.",
    )
    p.add_argument("--model", default=None, help="library-format VQ model file (from training's export/), or a "
                   "diffusers VQModel folder (needs the diffusers extra)")
    p.add_argument("--vqgan-config", default=None, help="taming YAML (instead of --model)")
    p.add_argument("--vqgan-ckpt", default=None, help="taming checkpoint (with --vqgan-config)")
    p.add_argument("--allow-unsafe-pickle", action="store_true", help="allow full unpickling (trusted files only)")
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
    if (args.model is None) == (args.vqgan_config is None):
        raise ValueError("give either --model FILE, or --vqgan-config YAML with --vqgan-ckpt CKPT")
    if args.vqgan_config is not None and args.vqgan_ckpt is None:
        raise ValueError("--vqgan-config needs --vqgan-ckpt (the weights to reconstruct with)")
    if args.resize is not None and args.resize < 1:
        raise ValueError(f"--resize must be a positive number of pixels, got {args.resize}")
    from hit_decoder import adapters
    from hit_decoder.fileio import staged_outputs
    from hit_decoder.reconstruct import check_reconstruction_memory, reconstruct_folder, reconstruction_outputs

    # the new outputs replace earlier ones (only files an earlier run wrote) once all are written
    with staged_outputs(args.out, reconstruction_outputs(args.images, args.out), overwrite=args.overwrite,
                        what="--out", how="pass --overwrite to replace them, or choose another --out") as stage:
        if args.model is not None:
            vq = adapters.load_model(args.model)  # a library file, or a diffusers folder / file
        else:
            vq = adapters.load_vqgan(args.vqgan_config, args.vqgan_ckpt, allow_unsafe_pickle=args.allow_unsafe_pickle)
        check_reconstruction_memory(vq, args.images, args.resize)
        report = reconstruct_folder(vq, args.images, stage.dir, resize=args.resize, device=args.device,
                                    precision=args.precision)
    print(report.markdown())
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable image(s): {', '.join(report.skipped)}")
    print(f"reconstructions, metrics.csv and metrics.md in {args.out}")
    return 0
