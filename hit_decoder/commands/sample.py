"""``hit-decoder sample``: sample high-resolution images with a transformer prior and a VQ model."""

from __future__ import annotations

import argparse

from hit_decoder.memory import available_memory

from . import add_model_source_arguments, check_model_source, load_model_source


def parse_size(text: str) -> tuple[int, int]:
    """``"512x1024"`` -> ``(512, 1024)`` (height x width); ``"512"`` -> ``(512, 512)``."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"--size must be HEIGHTxWIDTH in pixels (e.g. 512x1024) or one number, got {text!r}")
    return size  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="sample images larger than the prior's window (sliding-window sampling + decoding)",
        description="Sample code grids with a prior from `hit-decoder train-prior` (a taming GPT prior slides "
        "its window as taming's scripts do; a windowed prior streams over any size) and decode them with the "
        "VQ model the prior was trained on. Writes "
        "s<seed>_<k>.png and s<seed>_<k>.npy (the code grid, int64 HxW) per sample and samples.json.",
    )
    add_model_source_arguments(p)
    p.add_argument("--prior", required=True, help="prior file (prior.safetensors from `hit-decoder train-prior`)")
    p.add_argument("--size", required=True, type=parse_size, help="image size HEIGHTxWIDTH in pixels, e.g. 512x1024")
    p.add_argument("--class", dest="class_label", default=None, help="class id or name (class-conditional priors)")
    p.add_argument("--batch", type=int, default=1, help="number of samples (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely codes")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    p.add_argument("--method", choices=["fast", "reference"], default="fast",
                   help="sampler path, same tokens: fast (cached / streaming) or reference (plain loop)")
    p.add_argument("--tile", type=int, default=None,
                   help="decode in tiles of this many pixels (a multiple of the model's factor): bounded memory")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="decoding precision (bf16: fast only with bf16 matrix units; default fp32)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier outputs in --out (default: refuse to touch them)")
    p.set_defaults(func=run)


def _class_id(label: str | None, conditioning: dict) -> int | None:
    if conditioning["kind"] != "class":
        if label is not None:
            raise ValueError("--class given, but this prior is unconditional; leave --class out")
        return None
    names = conditioning.get("class_names") or []
    if label is None:
        raise ValueError(f"this prior is class-conditional ({conditioning['n_classes']} classes): give --class ID"
                         + (f" or one of {names}" if names else ""))
    if label in names:
        return names.index(label)
    try:
        k = int(label)
    except ValueError:
        raise ValueError(f"--class {label!r} is neither a class id nor a class name of this prior ({names})") from None
    if not 0 <= k < conditioning["n_classes"]:
        raise ValueError(f"--class {k} is out of range: this prior has classes 0..{conditioning['n_classes'] - 1}")
    return k


def check_memory(size: tuple[int, int], batch: int, tile_px: int | None, channels: int) -> None:
    """Refuse up front (before sampling) a size whose decode cannot fit in memory: the float image
    canvas and blend weights (B x H x W x 24 bytes) always, plus, without --tile, the decoder's
    per-pixel activations at full resolution (about 3 x its last-stage channels floats per pixel)."""
    h, w = size
    canvas = batch * h * w * 24
    whole = 0 if tile_px else batch * h * w * channels * 4 * 3
    free = available_memory()
    if free is None or canvas + whole <= free:
        return
    gb = 1024**3
    if canvas > free:
        raise MemoryError(f"--size {h}x{w} x --batch {batch} needs about {canvas / gb:.1f} GB for the image alone, "
                          f"but {free / gb:.1f} GB of memory is available: choose a smaller --size or --batch")
    raise MemoryError(f"--size {h}x{w} x --batch {batch} needs about {(canvas + whole) / gb:.1f} GB to decode in one "
                      f"piece, but {free / gb:.1f} GB of memory is available: decode in tiles with --tile "
                      "(e.g. --tile 512), or choose a smaller --size")


def run(args: argparse.Namespace) -> int:
    check_model_source(args, "the model the prior was trained on")
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be a whole number in [0, 2**63), got {args.seed}")

    from hit_decoder.fileio import staged_outputs

    same_seed = ["samples.json", f"s{args.seed}_*.png", f"s{args.seed}_*.npy"] if args.seed is not None else ["samples.json"]
    # checked and set up before sampling; the samples replace an earlier run's (only files it wrote) once all are written
    with staged_outputs(args.out, same_seed, overwrite=args.overwrite, what="--out",
                        how="pass --overwrite to replace them, or choose another --out") as stage:
        return _sample(args, stage)


def _grid_and_tile(args: argparse.Namespace, info: dict, f: int) -> tuple[tuple[int, int], int | None]:
    """The code grid of ``--size`` at factor ``f`` (checked against a GPT prior's window) and ``--tile``
    in codes (``None``: decode whole)."""
    from hit_decoder.sampling import grid_shape_for

    grid = grid_shape_for(args.size, f)
    wh, ww = info["window"]
    if "architecture" not in info and (grid[0] < wh or grid[1] < ww):  # a windowed prior samples any grid
        raise ValueError(f"--size {args.size[0]}x{args.size[1]} is below the prior's {wh}x{ww}-code window "
                         f"({wh * f}x{ww * f} px at f{f}); sample at least that size")
    if args.tile is None:
        return grid, None
    if args.tile < f or args.tile % f:
        raise ValueError(f"--tile {args.tile} must be a positive multiple of the model's factor {f} (pixels)")
    return grid, args.tile // f


def _write_samples(out, seed: int, idx, images) -> list[str]:
    """``s<seed>_<k>.png`` and the code grid ``s<seed>_<k>.npy`` (int64) per sample; their stems."""
    import numpy as np

    from hit_decoder.images import save_png, tensor_to_pil

    files = []
    for k in range(idx.shape[0]):
        stem = out / f"s{seed}_{k:03d}"
        save_png(tensor_to_pil(images[k]), stem.with_suffix(".png"))
        with open(stem.with_suffix(".npy"), "wb") as fh:
            np.save(fh, idx[k].cpu().numpy().astype(np.int64))
        files.append(stem.name)
    return files


def _sample(args: argparse.Namespace, stage) -> int:
    import json
    import secrets

    import torch

    from hit_decoder import adapters
    from hit_decoder.precision import decode_precision
    from hit_decoder.prior import load_prior, read_prior
    from hit_decoder.sampling import sample_sliding_window

    if args.vqgan_config is not None:
        adapters.resolve_model_config(args.vqgan_config)  # allowlist check before anything else is read
    prior_file = read_prior(args.prior)  # read once; format and metadata checked before the models are loaded
    info = prior_file.info
    label = _class_id(args.class_label, info["conditioning"])
    vq = load_model_source(args, map_location=args.device)
    f = adapters.downsample_factor(vq)
    grid, tile = _grid_and_tile(args, info, f)
    windowed = "architecture" in info  # a windowed prior samples any grid; a GPT prior needs its window
    dec = vq.decoder
    check_memory(args.size, args.batch, args.tile,
                 dec.config.channels[-1] if hasattr(dec, "config") else int(dec.conv_out.in_channels))
    prior = load_prior(prior_file, vq, map_location=args.device)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    idx = sample_sliding_window(prior, grid, cond=label, batch_size=args.batch, temperature=args.temperature,
                                top_k=args.top_k, top_p=args.top_p, seed=seed, method=args.method,
                                window=None if windowed else tuple(info["window"]))  # (B, h, w)
    with torch.no_grad():
        with decode_precision(args.precision, args.device):
            images = adapters.decode_codes(vq, idx, tile=tile, progress=tile is not None).float().cpu()  # (B, 3, H, W)
    files = _write_samples(stage.dir, seed, idx, images)
    context = {"neighbourhood": info["architecture"]} if windowed else {"window": list(info["window"])}
    summary = {"seed": seed, "size": list(args.size), "grid": list(grid), **context, "class": label,
               "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "method": args.method,
               "tile_px": args.tile, "prior": str(args.prior), "model": args.model or args.vqgan_ckpt, "samples": files}
    (stage.dir / "samples.json").write_text(json.dumps(summary, indent=2))
    print(f"seed {seed}: {len(files)} sample(s) of {args.size[0]}x{args.size[1]} px ({grid[0]}x{grid[1]} codes) "
          f"in {stage.folder}")
    return 0
