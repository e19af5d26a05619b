"""A run's output folder, for every job that trains (stage-1 training, the prior): an earlier
run there is continued (``resume=auto`` or a checkpoint path), replaced (``overwrite=true``) or an
error — never overwritten silently.

:func:`guarded_run` wraps a run: it holds a lock on the folder (a second run into it is refused,
naming the first one's process), sets an earlier run aside only once everything has been
validated and puts it back if the new run fails, and turns SIGTERM into a stop at the end of the
current batch with a resumable checkpoint (:class:`RunTerminated`, exit code 143 on the command line).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .checkpoints import check_weights_only
from .fileio import claim_outputs, folder_lock, output_folder

__all__ = ["LAST_CHECKPOINT", "SET_ASIDE", "RunTerminated", "resolve_resume", "prepare_out_dir", "guarded_run"]

log = logging.getLogger("hit_decoder.runs")

#: the checkpoint file name under ``out_dir/checkpoints``
LAST_CHECKPOINT = "last.ckpt"
#: where ``overwrite=true`` keeps the earlier run's files until the new run has succeeded
SET_ASIDE = ".replaced-run"
#: seconds a SIGTERM'd run gets to reach the end of its batch and save before it exits anyway
SIGTERM_GRACE_S = 30.0


class RunTerminated(Exception):
    """A run stopped by SIGTERM: the message says what was saved and how to continue."""

    exit_code = 143  # 128 + SIGTERM, the shell's convention


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
    are continued (``resume``), replaced (``overwrite=true``: by :func:`guarded_run`, once the new run
    is validated) or an error. Returns the checkpoint to resume from."""
    out = output_folder(cfg.out_dir, "out_dir")
    if cfg.resume is not None and cfg.overwrite:
        raise ValueError("resume and overwrite=true contradict each other: resume continues the run in out_dir, "
                         "overwrite replaces it; give one")
    aside = out / SET_ASIDE
    if aside.exists():
        raise FileExistsError(f"out_dir: {aside} holds the files of a run that an interrupted overwrite=true set "
                              f"aside; move them back into {out} (or delete {aside} if you do not need them), then "
                              "run again")
    ckpt = resolve_resume(cfg)
    if cfg.resume is None and not cfg.overwrite:
        claim_outputs(out, outputs, overwrite=False, what="out_dir",
                      how="continue that run with resume=auto, replace it with overwrite=true, or choose another out_dir")
    return ckpt


def _is_secondary_rank() -> bool:
    """A process that Lightning started for another rank of a multi-process run (it re-runs the command)."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK"))


class GuardedRun:
    """What :func:`guarded_run` yields: the checkpoint to resume from, :meth:`replace_earlier`,
    :meth:`fit`, and the Lightning :attr:`callback` that saves a checkpoint on SIGTERM."""

    def __init__(self, cfg: Any, outputs: Sequence[str], resume: Path | None) -> None:
        self.cfg, self.outputs, self.resume = cfg, tuple(outputs), resume
        self.out = Path(cfg.out_dir)
        self.moved: list[str] = []  # earlier outputs set aside (relative paths)
        self.in_loop = False
        self.terminated = False
        self.callback = _save_on_sigterm(self)

    def replace_earlier(self) -> None:
        """``overwrite=true``: move the earlier run's outputs to ``out_dir/.replaced-run`` (call it once
        everything is validated); they are deleted when the run succeeds and put back when it fails."""
        if not self.cfg.overwrite or _is_secondary_rank():
            return
        found = sorted({str(p.relative_to(self.out)) for pat in self.outputs for p in self.out.glob(pat)
                        if p.is_file() or p.is_symlink()})
        aside = self.out / SET_ASIDE
        for rel in found:
            (aside / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.out / rel, aside / rel)
            self.moved.append(rel)
        if found:
            log.info("overwrite=true: the earlier run's %d file(s) are set aside in %s until this run succeeds",
                     len(found), aside)

    def _restore(self) -> None:
        aside = self.out / SET_ASIDE
        for rel in self.moved:
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(aside / rel, self.out / rel)
        shutil.rmtree(aside, ignore_errors=True)
        log.warning("the run failed: the earlier run's files are back in %s", self.out)

    def _discard(self) -> None:
        shutil.rmtree(self.out / SET_ASIDE, ignore_errors=True)

    def fit(self, trainer: Any, module: Any, ckpt_path: Path | None) -> None:
        """``trainer.fit`` (weights-only resume); a SIGTERM during it ends in :class:`RunTerminated`."""
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        try:
            trainer.fit(module, ckpt_path=str(ckpt_path) if ckpt_path is not None else None, weights_only=True)
        except SIGTERMException:
            self.terminated = True
            done = getattr(module, "batches_done", "?")
            saved = self.callback.saved
            aside = (f"; the earlier run that overwrite=true was replacing is kept in {self.out / SET_ASIDE}"
                     if self.moved else "")
            if saved is None:
                raise RunTerminated(f"stopped by SIGTERM after {done} batches, before a checkpoint could be saved; "
                                    f"nothing to resume{aside}") from None
            how = "resume=auto instead of overwrite=true" if self.cfg.overwrite else "resume=auto"
            raise RunTerminated(f"stopped by SIGTERM after {done} of {self.cfg.trainer.max_batches} batches; "
                                f"checkpoint saved to {saved}; to continue, run the same command with {how}{aside}") from None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if not self.in_loop:  # before training (data, models): stop here, nothing to save
            raise RunTerminated("stopped by SIGTERM before training started; nothing was trained"
                                + ("" if not self.moved else f"; the earlier run is kept in {self.out / SET_ASIDE}"))
        if self.terminated:  # a second SIGTERM: exit now
            os._exit(RunTerminated.exit_code)
        self.terminated = True
        log.warning("SIGTERM: stopping after the current batch and saving a checkpoint (send SIGTERM again to exit at once)")

        def _give_up() -> None:
            print(f"hit-decoder: the run did not stop within {SIGTERM_GRACE_S:.0f} s of SIGTERM; exiting without a new "
                  f"checkpoint (the last periodic one in {self.out / 'checkpoints'} can be resumed)", flush=True)
            os._exit(RunTerminated.exit_code)

        timer = threading.Timer(SIGTERM_GRACE_S, _give_up)
        timer.daemon = True
        timer.start()


def _save_on_sigterm(run: GuardedRun) -> Any:
    """The Lightning callback of ``run``: marks the start of the training loop and, when Lightning
    stops the loop for SIGTERM (at the end of a batch), saves ``out_dir/checkpoints/last.ckpt``."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from .common.checkpointing import save_checkpoint_atomic

    class SaveOnSigterm(pl.Callback):
        saved: Path | None = None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            run.in_loop = True

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if isinstance(exception, SIGTERMException) and run.in_loop:
                self.saved = save_checkpoint_atomic(trainer, run.out / "checkpoints" / LAST_CHECKPOINT)

    return SaveOnSigterm()


@contextlib.contextmanager
def guarded_run(cfg: Any, outputs: Sequence[str]) -> Iterator[GuardedRun]:
    """Check ``out_dir`` (:func:`prepare_out_dir`) under a lock on it, and run the body with SIGTERM
    handled (see the module docstring). An earlier run that :meth:`GuardedRun.replace_earlier` set
    aside is deleted on success, put back on an error, and kept (named in the message) on SIGTERM."""
    out = output_folder(cfg.out_dir, "out_dir")
    existed = out.exists()
    lock = contextlib.nullcontext() if _is_secondary_rank() else folder_lock(out, "out_dir")
    try:
        with lock:
            run = GuardedRun(cfg, outputs, prepare_out_dir(cfg, outputs))
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGTERM, run._on_sigterm) if main else None
            try:
                yield run
            except RunTerminated:
                if run.moved and not run.in_loop:  # stopped before training: nothing replaces the earlier run
                    run._restore()
                raise
            except BaseException:
                if run.moved:
                    run._restore()
                raise
            else:
                run._discard()
            finally:
                if main:
                    signal.signal(signal.SIGTERM, previous)
    finally:
        if not existed:
            with contextlib.suppress(OSError):
                out.rmdir()  # a run that failed before writing anything leaves no empty folder
