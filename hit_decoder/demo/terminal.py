"""The demo's terminal: a progress bar per running phase, one line per finished phase, and none of
the third-party noise (Lightning's tips and banners, dependencies' deprecation warnings).

Phases report to a :class:`Reporter`. In the main process that is a :class:`TerminalReporter`
(tqdm bars, lines printed with ``tqdm.write`` so that bars stay intact); a worker process gets a
:class:`QueueReporter` whose events the main process replays on its terminal (:func:`replay`).
The silencing is scoped to the demo (:func:`quiet_third_party`): library users keep every warning.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl

__all__ = ["Reporter", "TerminalReporter", "QueueReporter", "BatchProgress", "quiet_third_party", "replay"]

#: loggers whose INFO records are Lightning's banners ("GPU available", tips, "`Trainer.fit` stopped")
THIRD_PARTY_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning")
#: modules whose warnings the demo hides (deprecations and hints meant for their own developers)
THIRD_PARTY_MODULES = r"(pytorch_lightning|lightning_fabric|lightning|torch|torchvision|taming|lpips|omegaconf)(\..*)?$"
#: hit-decoder log lines the demo says in its own words (which losses ran)
SAID_BY_THE_DEMO = ("LPIPS is OFF",)


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(str(record.msg).startswith(text) for text in SAID_BY_THE_DEMO)


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Within the block: Lightning's INFO banners off, dependencies' warnings ignored, and the
    hit-decoder log lines that the demo reports itself dropped. Everything is restored after."""
    levels = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    dropper = _DropRecords()
    training_log = logging.getLogger("hit_decoder.training")
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    training_log.addFilter(dropper)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=THIRD_PARTY_MODULES)
            yield
    finally:
        training_log.removeFilter(dropper)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class Reporter:
    """Where phases report: ``start`` (with the number of batches, 0 for none), ``advance`` (batches done
    and a short status), ``finish`` (the phase's one-line result and its seconds)."""

    def start(self, key: str, title: str, total: int = 0) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def advance(self, key: str, done: int, status: str = "") -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, key: str, line: str, seconds: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class TerminalReporter(Reporter):
    """tqdm bars on stderr (only when ``bars``), result lines on stdout; safe to call from two threads."""

    def __init__(self, bars: bool = True, stream: Any = None) -> None:
        self.show_bars = bars
        self.stream = stream
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self, key: str, title: str, total: int = 0) -> None:
        from tqdm.auto import tqdm

        with self._lock:
            if self.show_bars and total:  # tqdm gives each live bar its own line; phases without a
                # count of steps (sampling, decoding) show the library's own bars
                self._bars[key] = tqdm(total=total, desc=title, leave=False, dynamic_ncols=True, unit="batch",
                                       file=sys.stderr)

    def advance(self, key: str, done: int, status: str = "") -> None:
        with self._lock:
            bar = self._bars.get(key)
            if bar is not None:
                bar.update(done - bar.n)
                if status:
                    bar.set_postfix_str(status, refresh=False)

    def finish(self, key: str, line: str, seconds: float) -> None:
        from tqdm.auto import tqdm

        with self._lock:
            bar = self._bars.pop(key, None)
            if bar is not None:
                bar.close()
            stream = self.stream or sys.stdout
            tqdm.write(f"{line} ({seconds:.0f} s)", file=stream)
            stream.flush()  # a line per phase as it ends, also when stdout is a file


class QueueReporter(Reporter):
    """Sends a worker process's phase events to the main process (see :func:`replay`)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self._last = 0.0

    def start(self, key: str, title: str, total: int = 0) -> None:
        self.queue.put(("start", key, title, total))

    def advance(self, key: str, done: int, status: str = "") -> None:
        now = time.monotonic()
        if now - self._last >= 0.2:  # a few updates a second are plenty
            self._last = now
            self.queue.put(("advance", key, done, status))

    def finish(self, key: str, line: str, seconds: float) -> None:
        self.queue.put(("finish", key, line, seconds))


def replay(event: tuple, reporter: Reporter) -> bool:
    """Apply a :class:`QueueReporter` event to ``reporter``; ``False`` if it is not a phase event."""
    kind, *args = event
    if kind in ("start", "advance", "finish"):
        getattr(reporter, kind)(*args)
        return True
    return False


class BatchProgress(pl.Callback):
    """Reports every training batch of a Lightning run to a :class:`Reporter` (with the loss the
    module shows in its progress bar, and the latest validation PSNR)."""

    def __init__(self, reporter: Reporter, key: str) -> None:
        self.reporter, self.key = reporter, key
        self.done = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.done += 1
        shown = trainer.progress_bar_metrics
        parts = [f"loss {float(shown[k]):.3f}" for k in ("loss", "train/loss") if k in shown][:1]
        if "val/psnr" in shown:
            parts.append(f"val PSNR {float(shown['val/psnr']):.2f}")
        self.reporter.advance(self.key, self.done, ", ".join(parts))
