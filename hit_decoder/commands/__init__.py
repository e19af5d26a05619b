"""CLI subcommands. Every module here defines ``register(subparsers)``; ``hit_decoder.cli``
discovers them, so adding a command means adding one module. What several commands share lives
here (this package module is not itself a command)."""

from __future__ import annotations

import argparse
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


def print_config(cfg: Any) -> None:
    """Print a config dataclass as the YAML it merges from."""
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


def setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
