"""``hit-decoder swap``: put a fresh HiT decoder into an existing taming VQGAN, ready for fine-tuning.

Writes into ``--out DIR`` (``--format`` picks which):

* ``DIR/model.safetensors`` — the whole swapped VQ model in the library's self-describing format
  (``hit_decoder.adapters.load_vqmodel``);
* ``DIR/taming/model.ckpt`` + ``DIR/taming/model.yaml`` — the same model as taming ships models
  (``target: hit_decoder.adapters.HiTVQModel`` or ``HiTGumbelVQ``), loadable with
  ``hit_decoder.adapters.load_vqgan`` or taming's own ``instantiate_from_config``.

From a diffusers VQModel folder (``--diffusers-model DIR``, the diffusers extra) it writes
``DIR/model.safetensors`` (the library's diffusers file) and ``DIR/diffusers/`` (a diffusers-style
folder: config.json + diffusion_pytorch_model.safetensors); ``--format diffusers`` picks the folder.

The encoder, quantizer, codebook and both 1x1 convs are copied from the checkpoint unchanged; the
decoder is freshly initialised from ``--seed``.
"""

from __future__ import annotations

import argparse

FORMATS = ("both", "library", "taming", "diffusers")
OUTPUTS = ("model.safetensors", "taming/model.ckpt", "taming/model.yaml", "diffusers/config.json",
           "diffusers/diffusion_pytorch_model.safetensors")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "swap", help="replace a taming VQGAN's CNN decoder with a HiT decoder (writes a model ready for fine-tuning)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--vqgan-config", default=None, help="taming model YAML (model: {target, params})")
    p.add_argument("--diffusers-model", default=None, metavar="DIR",
                   help="instead of --vqgan-config: a local diffusers VQModel folder (config.json + "
                        "diffusion_pytorch_model.safetensors; needs pip install 'hit-decoder[diffusers]')")
    p.add_argument("--vqgan-ckpt", default=None,
                   help="taming checkpoint (.ckpt / state dict / Net2NetTransformer .ckpt); default: the config's ckpt_path")
    p.add_argument("--decoder", required=True,
                   help="HiT decoder preset name (see `hit-decoder presets`) or a decoder YAML file")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="decoder config override, value parsed as YAML (e.g. --override 'depths=[1,1,1,1,1]'); repeatable")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier outputs in --out (default: refuse to touch them)")
    p.add_argument("--format", choices=FORMATS, default="both",
                   help="library (model.safetensors), taming (taming/model.ckpt + .yaml), diffusers (diffusers/, "
                        "for --diffusers-model) or both (default: library and the source's own format)")
    p.add_argument("--seed", type=int, default=0, help="seed for the new decoder's initial weights (default 0)")
    p.add_argument("--allow-unsafe-pickle", action="store_true",
                   help="allow full unpickling of the checkpoint if the safe loader cannot read it (can run code "
                        "from the file: trusted files only)")
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    """``["depths=[1,1]", "mlp_ratio=2"]`` -> ``{"depths": [1, 1], "mlp_ratio": 2}`` (values as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--override expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--override {item!r}: the value is not valid YAML ({exc}); "
                             "e.g. --override 'depths=[1,1]'") from None
    return out


def run(args: argparse.Namespace) -> int:
    from hit_decoder import adapters
    from hit_decoder.common.seeding import seeded
    from hit_decoder.fileio import staged_outputs
    from hit_decoder.flops import count_parameters
    from hit_decoder.registry import load_decoder_config

    from . import refuse_taming_flags

    overrides = parse_overrides(args.override)
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be a whole number in [0, 2**63), got {args.seed}")
    if (args.vqgan_config is None) == (args.diffusers_model is None):
        raise ValueError("give either --vqgan-config YAML (taming, with --vqgan-ckpt) or --diffusers-model DIR")
    if args.diffusers_model is not None:
        refuse_taming_flags(args, "--diffusers-model")
    wrong = "taming" if args.diffusers_model is not None else "diffusers"
    if args.format == wrong:
        raise ValueError(f"--format {wrong} does not fit a {'diffusers' if wrong == 'taming' else 'taming'} model; "
                         f"use library, {'diffusers' if wrong == 'taming' else 'taming'} or both")
    load_decoder_config(args.decoder)  # a preset name or a readable decoder YAML, before the VQGAN is loaded
    # every output of any --format: with --overwrite none of an earlier swap's files can stay behind;
    # the new files replace them only once all are written
    with staged_outputs(args.out, OUTPUTS, overwrite=args.overwrite, what="--out",
                        how="pass --overwrite to replace them, or choose another --out") as stage:
        if args.diffusers_model is not None:
            written = [stage.final(p) for p in _run_diffusers(args, overrides, stage.dir)]
            for path in written:
                print(f"wrote {path}")
            return 0
        if args.vqgan_ckpt is None and adapters.resolve_model_config(args.vqgan_config)["params"].get("ckpt_path") is None:
            raise ValueError("no weights to keep: pass --vqgan-ckpt (or give the config a ckpt_path)")
        model = adapters.load_vqgan(args.vqgan_config, args.vqgan_ckpt, allow_unsafe_pickle=args.allow_unsafe_pickle)
        old = type(model.decoder).__name__, count_parameters(model.decoder)
        with seeded(args.seed):
            adapters.swap_decoder(model, args.decoder, **overrides)
        out = stage.dir
        written = []
        if args.format in ("both", "library"):
            written.append(adapters.save_vqmodel(model, out / "model.safetensors"))
        if args.format in ("both", "taming"):
            written.extend(adapters.export_taming(model, out / "taming" / "model.ckpt", out / "taming" / "model.yaml"))
        written = [stage.final(p) for p in written]
    dec = model.decoder
    print(f"kept encoder + codebook ({adapters.codebook_size(model.quantize)} codes, f{adapters.downsample_factor(model)}) "
          f"from {args.vqgan_ckpt or 'the config ckpt_path'}")
    print(f"replaced {old[0]} ({old[1] / 1e6:.2f}M params) with HiT decoder {args.decoder!r} "
          f"({count_parameters(dec) / 1e6:.2f}M params, z_channels {dec.z_channels}, seed {args.seed})")
    for path in written:
        print(f"wrote {path}")
    return 0


def _run_diffusers(args: argparse.Namespace, overrides: dict, out) -> list:
    """Swap the decoder of a diffusers VQModel and write its outputs into ``out``; returns the paths."""
    from hit_decoder.adapters import codebook_size, diffusers_adapter
    from hit_decoder.common.seeding import seeded
    from hit_decoder.flops import count_parameters

    hd = diffusers_adapter()
    model = hd.load_vqmodel(args.diffusers_model)
    old = type(model.decoder).__name__, count_parameters(model.decoder)
    with seeded(args.seed):
        hd.swap_decoder(model, args.decoder, **overrides)
    written = []
    if args.format in ("both", "library"):
        written.append(hd.save_vqmodel(model, out / "model.safetensors"))
    if args.format in ("both", "diffusers"):
        written.append(hd.export_diffusers(model, out / "diffusers"))
    dec = model.decoder
    print(f"kept encoder + codebook ({codebook_size(model.quantize)} codes, f{hd.downsample_factor(model)}, "
          f"norm_type {model.config.norm_type}) from {args.diffusers_model}")
    print(f"replaced {old[0]} ({old[1] / 1e6:.2f}M params) with HiT decoder {args.decoder!r} "
          f"({count_parameters(dec) / 1e6:.2f}M params, z_channels {dec.z_channels}, seed {args.seed})")
    return written
