"""``hit-decoder finetune-decoder``: train a HiT decoder for an existing taming VQGAN or diffusers
VQModel (decoder swap)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune-decoder",
        help="replace a taming VQGAN's CNN decoder by a HiT decoder and train only the decoder",
        description="Keeps the VQGAN's encoder, quant_conv, quantizer/codebook and post_quant_conv frozen "
        "(its tokens and priors stay valid) and trains a HiT decoder in place of its CNN decoder.",
    )
    p.add_argument("--vqgan-config", default=None, help="the VQGAN's taming YAML (model.target / model.params)")
    p.add_argument("--vqgan-ckpt", default=None, help="the VQGAN's checkpoint (.ckpt with a state_dict)")
    p.add_argument("--diffusers-model", default=None, metavar="DIR",
                   help="instead of --vqgan-config/--vqgan-ckpt: a local diffusers VQModel folder (config.json + "
                        "diffusion_pytorch_model.safetensors; needs pip install 'hit-decoder[diffusers]')")
    p.add_argument("--data", default=None, help="training image folder or file list (default: embedded photographs)")
    p.add_argument("--config", default="finetune_f16",
                   help="base training config: YAML path or shipped name (default: finetune_f16)")
    p.add_argument("--out-dir", default=None, help="output folder (default: the config's out_dir)")
    p.add_argument("--allow-unsafe-pickle", action="store_true",
                   help="allow full unpickling of the checkpoint if weights-only loading fails (trusted files only)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (OmegaConf dotlist)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hit_decoder.training import load_train_config, run_training
    from hit_decoder.training.config import validate

    from . import refuse_taming_flags, setup_logging
    from .train import report

    if (args.diffusers_model is None) == (args.vqgan_config is None and args.vqgan_ckpt is None):
        raise ValueError("give either --vqgan-config YAML with --vqgan-ckpt CKPT (taming), or --diffusers-model DIR")
    if args.diffusers_model is not None:
        refuse_taming_flags(args, "--diffusers-model")
    cfg = load_train_config(args.config, args.overrides, check=False)
    # set paths on the typed object (not via the dotlist, which would parse them as YAML)
    cfg.mode = "decoder_swap"
    cfg.model.vqgan_config, cfg.model.vqgan_ckpt = args.vqgan_config, args.vqgan_ckpt
    cfg.model.diffusers_model = args.diffusers_model
    if args.data is not None:
        cfg.data.train = args.data
    if args.out_dir is not None:
        cfg.out_dir = args.out_dir
    validate(cfg)
    setup_logging()
    report(run_training(cfg, allow_unsafe_pickle=args.allow_unsafe_pickle))
    return 0
