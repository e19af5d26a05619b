"""Lightning checkpoints written atomically (a temporary name, then a rename), for every trainer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from ..runs import LAST_CHECKPOINT

__all__ = ["AtomicCheckpoint", "save_checkpoint_atomic"]


def save_checkpoint_atomic(trainer: pl.Trainer, path: str | os.PathLike) -> Path:
    """``trainer.save_checkpoint`` to a temporary name, then rename (all ranks must call it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if trainer.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(tmp, weights_only=False)  # collective; global rank 0 writes
    if trainer.is_global_zero:
        os.replace(tmp, path)
    trainer.strategy.barrier("hit_decoder.save_checkpoint_atomic")
    return path


class AtomicCheckpoint(pl.Callback):
    """Write ``dirpath/last.ckpt`` every ``every`` training batches and after the last one."""

    def __init__(self, dirpath: str | os.PathLike, every: int, total: int) -> None:
        self.dirpath, self.every, self.total = Path(dirpath), every, total
        self.last_path: Path | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        b = pl_module.batches_done
        if b % self.every == 0 or b == self.total:
            self.last_path = save_checkpoint_atomic(trainer, self.dirpath / LAST_CHECKPOINT)
