"""CLI subcommands. Every module here defines ``register(subparsers)``; ``hit_decoder.cli``
discovers them, so adding a command means adding one module."""
