"""Running the demo: claim the output folder, run the phases, measure, and write the report.

With ``plan.workers == 2`` a second process trains the CNN VQGAN and the fresh CNN decoder on its
frozen codes while the main process trains stage 1 and the priors, samples and measures stage 1;
the main process then trains the HiT decoder on the same frozen codes (the CNN VQGAN is done by
then), so both processes carry about the same work (docs/demo.md, "How long")."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import queue as queue_module
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from .phases import (
    Job,
    clock,
    evaluate_stage1,
    evaluate_swap,
    lpips_state,
    run_cnn_decoder_phase,
    run_cnn_phase,
    run_hit_swap_phase,
    run_prior_phases,
    run_stage1_phase,
    run_swap_phases,
    sample_phase,
)
from .plan import PHASE_DIRS, PRIOR_KEYS, REPORT_FILES, DemoPlan
from .terminal import QueueReporter, Reporter, TerminalReporter, quiet_third_party, replay

__all__ = ["run_demo", "claim_demo_outputs"]


def claim_demo_outputs(out: Path, overwrite: bool) -> None:
    """Before anything runs: --out must not hold an earlier demo (report or any phase's run)
    unless ``overwrite``; then the earlier report files go now, and each phase replaces its run."""
    from ..fileio import claim_outputs, output_folder
    from ..prior import PRIOR_OUTPUTS
    from ..training.run import RUN_OUTPUTS

    how = "pass --overwrite to replace that demo, or choose another --out"
    output_folder(out, "--out")
    if not overwrite:
        for key, sub in PHASE_DIRS.items():
            claim_outputs(out / sub, PRIOR_OUTPUTS if key in PRIOR_KEYS else RUN_OUTPUTS, overwrite=False,
                          what="--out", how=how)
    claim_outputs(out, REPORT_FILES, overwrite=overwrite, what="--out", how=how)


_EVENTS: Any = None  # the worker process's end of the event queue (set by _start_worker)
_PARENT: int | None = None  # the main process's pid (set by _start_worker)


def _start_worker(events: Any, parent: int) -> None:
    """Initialiser of the decoder-swap process: keep the queue its phase events go back through;
    end with the main process (``parent``)."""
    global _EVENTS, _PARENT
    _EVENTS, _PARENT = events, parent
    torch.set_num_threads(1)
    _end_with_parent(parent)


def _end_with_parent(parent: int) -> None:
    """On Linux, have the kernel send this process SIGTERM when the main process ends, however it
    ends (``prctl(PR_SET_PDEATHSIG)``): a killed demo must not leave its second process training.
    A training run answers SIGTERM by saving a checkpoint and ending. Elsewhere nothing is set."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the main process ended before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def _swap_worker(job: Job) -> dict[str, Any]:
    """The second process's task: the CNN VQGAN (its result also sent at once as a ``cnn`` event: the
    main process trains the HiT decoder on its codes), then the fresh CNN decoder; phase events go
    to the main process. Errors come back as one picklable line (some library exceptions do not
    pickle)."""
    _EVENTS.put(("pid", os.getpid()))
    try:
        with quiet_third_party():
            reporter = QueueReporter(_EVENTS)
            cnn = run_cnn_phase(job, reporter)
            _EVENTS.put(("cnn", cnn))
            return {"cnn": cnn, "cnn_decoder": run_cnn_decoder_phase(job, reporter, cnn)}
    except BaseException as exc:
        if os.getppid() != _PARENT:  # the main process is gone (the phase stopped on its SIGTERM): no one to tell
            os._exit(1)
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def _start_method() -> str:
    """``fork`` on Linux while CUDA is not initialised here, ``spawn`` otherwise. A spawned process
    imports torch and Lightning again (about 9 CPU seconds, 10 to 15 s before its first batch on 2
    cores); a forked one starts with them. The forked worker sets one OpenMP thread before any work
    (as PyTorch's DataLoader workers do), and CPU autograd starts no engine threads that a fork would
    break; CUDA state does not survive a fork, and macOS and Windows fork unsafely or not at all."""
    return "fork" if sys.platform.startswith("linux") and not torch.cuda.is_initialized() else "spawn"


class _Worker:
    """The decoder-swap phases in a second process (a one-process ``ProcessPoolExecutor``); a relay
    thread (a one-thread ``ThreadPoolExecutor``) replays its phase events on this terminal until
    its task is done. :meth:`result` gives the phases' result or raises their error."""

    def __init__(self, job: Job, reporter: Reporter) -> None:
        ctx = multiprocessing.get_context(_start_method())
        self.events = ctx.Queue()
        self.pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_start_worker,
                                        initargs=(self.events, os.getpid()))
        self.relay = ThreadPoolExecutor(1, thread_name_prefix="hit-decoder-demo-relay")
        self.job, self.reporter = job, reporter
        self.pid: int | None = None
        self._cnn: dict[str, Any] | None = None
        self._cnn_ready = threading.Event()

    def start(self) -> None:
        self.task = self.pool.submit(_swap_worker, self.job)
        self.relayed = self.relay.submit(self._relay)

    def _relay(self) -> None:
        """Replay events until the task is done and its last events are read."""
        while True:
            done = self.task.done()  # before reading: what a finished task sent is in the pipe by now
            try:
                event = self.events.get(timeout=0.2 if not done else 1)
            except queue_module.Empty:
                if done:
                    return
                continue
            if event[0] == "pid":
                self.pid = event[1]
            elif event[0] == "cnn":
                self._cnn = event[1]
                self._cnn_ready.set()
            else:
                replay(event, self.reporter)

    def cnn_result(self) -> dict[str, Any]:
        """The CNN VQGAN phase's result, as soon as the worker has it (or the worker's error)."""
        while not self._cnn_ready.wait(0.5) and not self.task.done():
            pass
        if not self._cnn_ready.is_set():
            self.relayed.result()  # the task is done: every event read, the cnn result too if it was sent
        if self._cnn is None:
            self.result()  # raises the worker's error
            raise RuntimeError("decoder-swap phases failed: the worker ended without training the CNN VQGAN")
        return self._cnn

    def result(self) -> dict[str, Any]:
        try:
            value = self.task.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(f"decoder-swap phases failed: the decoder-swap process ended without a result ({exc})") from None
        except RuntimeError as exc:
            raise RuntimeError(f"decoder-swap phases failed: {exc}") from None
        finally:
            self.relayed.result()
            self.pool.shutdown()
            self.relay.shutdown()
        return value

    def stop(self) -> None:
        """Stop a task still running (the main process failed): SIGTERM, which a training run in it
        answers by saving a checkpoint and ending; then nothing more is replayed."""
        deadline = time.monotonic() + 5
        while self.pid is None and not self.task.done() and time.monotonic() < deadline:
            time.sleep(0.1)  # the task's first event names its process
        if not self.task.done() and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.relay.shutdown(wait=True)


def _train_photos(run: dict[str, Any]) -> tuple[tuple[str, ...], int]:
    """The embedded photographs a phase trained on and the shorter side they were resized to (its
    codebook usage is measured on them at that size)."""
    from ..common.data import EMBEDDED_TRAIN

    data = run["config"]["data"]
    return tuple(data.get("embedded_train") or EMBEDDED_TRAIN), int(data["resize"] or data["size"])


def _versions() -> dict[str, str]:
    from importlib import metadata

    from .. import __version__

    out = {"hit-decoder": __version__, "python": platform.python_version(), "torch": torch.__version__}
    for dist in ("pytorch-lightning", "taming-transformers-rom1504", "numpy", "matplotlib", "lpips"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def run_demo(plan: DemoPlan, out: str | Path, *, overwrite: bool = False, bars: bool | None = None,
             command: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the demo into ``out`` and write ``out/report.html`` and ``out/report.json``; returns the
    report's data. ``bars``: progress bars (default: when stderr is a terminal)."""
    from .report import write_report

    out = Path(out)
    claim_demo_outputs(out, overwrite)
    bars = sys.stderr.isatty() if bars is None else bars
    reporter = TerminalReporter(bars=bars)
    threads = torch.get_num_threads()
    t0 = time.time()
    lpips, lpips_line = lpips_state()
    print(f"hit-decoder demo -> {out} (seed {plan.seed}; {lpips_line})", flush=True)
    job = Job(plan, out, overwrite, lpips, t0)
    worker = _Worker(Job(plan, out, overwrite, lpips, t0, process="worker"), reporter) if plan.workers == 2 else None
    try:
        with quiet_third_party():
            torch.set_num_threads(1)  # tiny models: one thread per process is fastest and reproducible
            if worker is not None:
                worker.start()
            stage1 = run_stage1_phase(job, reporter)
            priors = run_prior_phases(job, reporter, stage1["exports"]["model"])
            sample = sample_phase(job, reporter, stage1["exports"]["model"], priors, bars)
            # stage 1's measurements, while the second process still trains the fresh CNN decoder
            start = clock()
            reporter.start("evaluate_stage1", "measuring the stage-1 VQGAN on the held-out photographs")
            stage1_eval = evaluate_stage1(plan, stage1["exports"]["model"], _train_photos(stage1))
            stage1_timing = job.timing("evaluate_stage1", "measurements of the stage-1 VQGAN on the held-out photographs",
                                       start)
            reporter.finish("evaluate_stage1", f"[evaluation] stage-1 VQGAN on the held-out photographs, whole: PSNR "
                            f"{stage1_eval['mean']['psnr']:.2f} dB, chroma ratio {stage1_eval['mean']['chroma_ratio']:.2f}",
                            stage1_timing["seconds"])
            if worker is not None:
                hit = run_hit_swap_phase(job, reporter, worker.cnn_result())  # the same frozen codes
                swap = {**worker.result(), "swap": hit}
            else:
                swap = run_swap_phases(job, reporter)

            start = clock()
            reporter.start("evaluate", "measuring the decoders on the held-out photographs")
            swap_eval = evaluate_swap(plan, swap["cnn_decoder"]["exports"]["model"], swap["swap"]["exports"]["model"],
                                      _train_photos(swap["cnn"]))
            evaluation = job.timing("evaluate", "measurements of the swapped decoders on the held-out photographs", start)
            d = swap_eval["decoders"]
            reporter.finish("evaluate", "held-out photographs (whole), same codes: "
                            f"CNN decoder PSNR {d['cnn']['mean']['psnr']:.2f} dB, SSIM {d['cnn']['mean']['ssim']:.3f}; "
                            f"HiT decoder PSNR {d['hit']['mean']['psnr']:.2f} dB, SSIM {d['hit']['mean']['ssim']:.3f}; "
                            f"stage-1 VQGAN PSNR {stage1_eval['mean']['psnr']:.2f} dB; chroma ratio CNN "
                            f"{d['cnn']['mean']['chroma_ratio']:.2f}, HiT {d['hit']['mean']['chroma_ratio']:.2f}, "
                            f"stage 1 {stage1_eval['mean']['chroma_ratio']:.2f}", evaluation["seconds"])
    except BaseException:
        if worker is not None:
            worker.stop()
        raise
    finally:
        torch.set_num_threads(threads)
    timings = [*(swap[k]["timing"] for k in ("cnn", "cnn_decoder", "swap")), stage1["timing"],
               *(priors[k]["timing"] for k in PRIOR_KEYS),
               *sample["timings"], stage1_timing, evaluation]
    context = {"command": list(command) if command is not None else list(sys.argv), "plan": plan.to_dict(),
               "lpips": lpips, "lpips_line": lpips_line, "versions": _versions(), "t0": t0,
               "machine": {"system": platform.platform(), "processor": platform.processor() or platform.machine(),
                           "cpu_count": multiprocessing.cpu_count(), "torch_threads_per_process": 1,
                           "processes": plan.workers}}
    report = write_report(out, context, swap=swap, swap_eval=swap_eval, stage1=stage1, stage1_eval=stage1_eval,
                          priors=priors, sample=sample, timings=timings)
    print(f"report: {out / 'report.html'} (total {report['total_seconds']:.0f} s)", flush=True)
    return report
