"""A run's output folder, for every job that trains (stage-1 training, the prior): an earlier
run there is continued (``resume=auto`` or a checkpoint path), replaced (``overwrite=true``) or an
error — never overwritten silently."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checkpoints import check_weights_only
from .fileio import claim_outputs, output_folder

__all__ = ["LAST_CHECKPOINT", "resolve_resume", "prepare_out_dir"]

#: the checkpoint file name under ``out_dir/checkpoints``
LAST_CHECKPOINT = "last.ckpt"


def resolve_resume(cfg: Any) -> Path | None:
    """``resume: auto`` -> ``out_dir/checkpoints/last.ckpt`` if it exists; a path must exist. The
    checkpoint must load with ``weights_only=True`` (checked now, not when Lightning opens it)."""
    if cfg.resume is None:
        return None
    if cfg.resume == "auto":
        p = Path(cfg.out_dir) / "checkpoints" / LAST_CHECKPOINT
        return check_weights_only(p, "resume=auto") if p.is_file() else None
    p = Path(cfg.resume).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"resume checkpoint {p} does not exist (use resume=auto to resume only if one exists)")
    return check_weights_only(p, "resume")


def prepare_out_dir(cfg: Any, outputs: Sequence[str]) -> Path | None:
    """Check ``out_dir`` before a run starts: a folder, not a file; an earlier run's ``outputs`` there
    are continued (``resume``), replaced (``overwrite=true``: removed now) or an error. Returns the
    checkpoint to resume from."""
    out = output_folder(cfg.out_dir, "out_dir")
    if cfg.resume is not None and cfg.overwrite:
        raise ValueError("resume and overwrite=true contradict each other: resume continues the run in out_dir, "
                         "overwrite replaces it; give one")
    ckpt = resolve_resume(cfg)
    if cfg.resume is None:
        claim_outputs(out, outputs, overwrite=cfg.overwrite, what="out_dir",
                      how="continue that run with resume=auto, replace it with overwrite=true, or choose another out_dir")
    return ckpt
