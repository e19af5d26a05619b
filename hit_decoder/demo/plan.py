"""What the demo runs: the shipped configs of its phases, their budgets, and the output layout."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["DemoPlan", "BUDGETS", "PHASE_CONFIGS", "PHASE_DIRS", "REPORT_FILES"]

#: shipped config of each training phase (``hit_decoder/configs/train|prior/<name>.yaml``)
PHASE_CONFIGS = {"cnn": "demo_cnn", "swap": "demo_swap", "stage1": "demo", "prior": "demo"}
#: each training phase's run folder under the demo's --out
PHASE_DIRS = {"cnn": "swap/cnn", "swap": "swap/hit", "stage1": "stage1", "prior": "prior"}
#: what the demo itself writes under --out (globs), besides the phases' run folders
REPORT_FILES = ("report.html", "report.json", "images/*.png", "images/*.npy")


@dataclass(frozen=True)
class DemoPlan:
    """Budgets and choices of one demo run. ``batches`` per training phase (``None``: the shipped
    config's ``trainer.max_batches``); ``canvas_windows``: the sample canvas in prior windows per
    side (at least 2); ``eval_side``: the held-out photographs' shorter side in pixels."""

    seed: int = 0
    batches: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(PHASE_CONFIGS))
    val_every: int | None = None  # None: the configs' trainer.val_every
    canvas_windows: tuple[int, int] = (2, 4)
    eval_side: int = 256
    timing_repeats: int = 2
    top_k: int = 100
    workers: int = 2  # 2: the decoder-swap phases run in a second process, beside stage 1 and the prior
    precision: str = "fp32"  # decoding precision of the sampling phase's decodes (hit_decoder.precision)
    small_validation: bool = False  # one validation crop per held-out photograph (reduced runs)

    def __post_init__(self) -> None:
        unknown = set(self.batches) - set(PHASE_CONFIGS)
        if unknown:
            raise ValueError(f"unknown demo phase(s) {sorted(unknown)}; phases: {', '.join(PHASE_CONFIGS)}")
        for key, n in self.batches.items():
            if n is not None and n < 1:
                raise ValueError(f"the {key} phase needs at least 1 batch, got {n}")
        if min(self.canvas_windows) < 2:
            raise ValueError(f"the sample canvas must be at least 2 prior windows per side, got {self.canvas_windows}")
        if self.eval_side < 16:
            raise ValueError(f"the held-out photographs' shorter side must be at least 16 px, got {self.eval_side}")
        if self.workers not in (1, 2):
            raise ValueError(f"workers must be 1 or 2, got {self.workers}")

    def with_batches(self, **batches: int | None) -> DemoPlan:
        return replace(self, batches={**self.batches, **{k: v for k, v in batches.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["canvas_windows"] = list(self.canvas_windows)
        return d

    def run_dir(self, out: Path, key: str) -> Path:
        return Path(out) / PHASE_DIRS[key]


#: named budgets: ``full`` is the shipped configs; ``tiny`` runs every phase through the same code
#: in seconds (tests)
BUDGETS = {
    "full": DemoPlan(),
    "tiny": DemoPlan(batches={"cnn": 3, "swap": 3, "stage1": 3, "prior": 3}, val_every=2, eval_side=64,
                     timing_repeats=1, small_validation=True),
}
