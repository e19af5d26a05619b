"""The ``hit-decoder`` command line. Subcommands live in :mod:`hit_decoder.commands`."""

from __future__ import annotations

import argparse
import importlib
import pickle
import pkgutil
import sys

from . import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hit-decoder",
        description="HiT transformer decoders for VQGAN / VQ-VAE models (taming-transformers).",
    )
    parser.add_argument("--version", action="version", version=f"hit-decoder {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    for command in sub.choices.values():  # --debug also after the command name
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error")
    return parser


#: failures that bad input (files, options, configs) causes: one line and exit code 2, no traceback
EXPECTED_ERRORS = (ValueError, OSError, KeyError, RuntimeError, MemoryError, pickle.UnpicklingError)
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (multi-line details joined with ' | ')."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    parts = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if isinstance(exc, MemoryError) and not parts:  # a bare allocation failure says nothing a user can act on
        return ("out of memory (MemoryError): the job does not fit in this machine's memory; choose a smaller size, "
                "batch, --resize or decode in tiles (--tile)")
    return " | ".join(parts) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the exact command, for reports
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .runs import RunTerminated

    try:
        return int(args.func(args) or 0)
    except RunTerminated as exc:  # SIGTERM: what was saved and how to continue
        print(f"hit-decoder {args.command}: {one_line(exc)}", file=sys.stderr)
        return RunTerminated.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"hit-decoder {args.command}: interrupted (Ctrl-C); outputs are written only when complete, "
              "so nothing half-written was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EXPECTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"hit-decoder {args.command}: error: {one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
