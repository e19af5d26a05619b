"""CLI subcommands. Every module here defines ``register(subparsers)``; ``hit_decoder.cli``
discovers them, so adding a command means adding one module. What several commands share lives
here (this package module is not itself a command)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_config_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--config NAME|YAML``, ``--print-config`` and ``key=value`` overrides of a config-driven job."""
    p.add_argument("--config", required=True, help=f"{what} YAML file or shipped config name")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (OmegaConf dotlist)")


def add_unsafe_pickle_flag(p: argparse.ArgumentParser, what: str = "the checkpoint") -> None:
    """``--allow-unsafe-pickle``: the only way (with the Python keyword) to opt into full unpickling;
    configs cannot (``hit_decoder.configfile.UNPICKLE_OPT_INS``)."""
    p.add_argument("--allow-unsafe-pickle", action="store_true",
                   help=f"allow full unpickling of {what} if the safe loader cannot read it (can run code from the "
                        "file: trusted files only; a config cannot ask for this)")


def add_model_source_arguments(p: argparse.ArgumentParser) -> None:
    """The VQ model a command decodes with: ``--model`` (a library file or a diffusers folder), or a
    taming VQGAN as ``--vqgan-config`` + ``--vqgan-ckpt`` (with ``--allow-unsafe-pickle``)."""
    p.add_argument("--model", default=None, help="library-format VQ model file (a training run's "
                   "export/model.safetensors), or a diffusers VQModel folder (needs the diffusers extra)")
    p.add_argument("--vqgan-config", default=None, help="taming YAML (instead of --model)")
    p.add_argument("--vqgan-ckpt", default=None, help="taming checkpoint (with --vqgan-config)")
    add_unsafe_pickle_flag(p, "--vqgan-ckpt")


def refuse_taming_flags(args: argparse.Namespace, source: str) -> None:
    """``--vqgan-ckpt`` and ``--allow-unsafe-pickle`` concern taming checkpoints only: beside another
    model ``source`` (``--model``, ``--diffusers-model``) they would be ignored, so they are refused."""
    given = [flag for flag, on in (("--vqgan-ckpt", getattr(args, "vqgan_ckpt", None) is not None),
                                   ("--allow-unsafe-pickle", getattr(args, "allow_unsafe_pickle", False))) if on]
    if given:
        raise ValueError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for a taming checkpoint "
                         f"(with --vqgan-config); {source} is read without them (safetensors, nothing unpickled): "
                         f"drop {' and '.join(given)}")


def check_model_source(args: argparse.Namespace, ckpt_is: str) -> None:
    """Exactly one model source; ``ckpt_is`` says what ``--vqgan-ckpt`` is for, in the error."""
    if (args.model is None) == (args.vqgan_config is None):
        raise ValueError("give either --model FILE, or --vqgan-config YAML with --vqgan-ckpt CKPT")
    if args.model is not None:
        refuse_taming_flags(args, "--model")
    if args.vqgan_config is not None and args.vqgan_ckpt is None:
        raise ValueError(f"--vqgan-config needs --vqgan-ckpt ({ckpt_is})")


def load_model_source(args: argparse.Namespace, map_location: str = "cpu") -> Any:
    """The VQ model of :func:`add_model_source_arguments` (checked by :func:`check_model_source`)."""
    from hit_decoder import adapters

    if args.model is not None:
        return adapters.load_model(args.model, map_location=map_location)  # a library file, or a diffusers folder / file
    return adapters.load_vqgan(args.vqgan_config, args.vqgan_ckpt, allow_unsafe_pickle=args.allow_unsafe_pickle)


def run_config_job(args: argparse.Namespace, load: Callable[..., Any], run: Callable[..., Any]) -> Any:
    """A config-driven job (:func:`add_config_arguments`): ``load(config, overrides)``, then either
    print the merged config (``--print-config``; returns ``None``) or ``run`` it with logging set up
    and return its result."""
    cfg = load(args.config, args.overrides)
    if args.print_config:
        print_config(cfg)
        return None
    setup_logging()
    return run(cfg, allow_unsafe_pickle=args.allow_unsafe_pickle)


def print_config(cfg: Any) -> None:
    """Print a config dataclass as the YAML it merges from."""
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


def setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
