"""What the demo runs: the shipped configs of its phases, their budgets, and the output layout."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["DemoPlan", "BUDGETS", "PHASE_CONFIGS", "PHASE_DIRS", "PRIOR_KEYS", "REPORT_FILES", "TEXTURE"]

#: shipped config of each training phase (``hit_decoder/configs/train|prior/<name>.yaml``); both
#: decoders on the frozen codes use the same config (the CNN one with ``model.decoder=cnn``), both
#: priors the same prior config (the windowed one with ``architecture=windowed``)
PHASE_CONFIGS = {"cnn": "demo_cnn", "cnn_decoder": "demo_swap", "swap": "demo_swap", "stage1": "demo", "prior": "demo",
                 "windowed": "demo"}
#: the prior phases (taming GPT, windowed prior): trained on the same codes, crops and budget
PRIOR_KEYS = ("prior", "windowed")
#: each training phase's run folder under the demo's --out
PHASE_DIRS = {"cnn": "swap/cnn", "cnn_decoder": "swap/cnn_decoder", "swap": "swap/hit", "stage1": "stage1", "prior": "prior/gpt",
              "windowed": "prior/windowed"}
#: what the demo itself writes under --out (globs), besides the phases' run folders; ``texture/``
#: holds the photograph both priors learn (written as a file so that ``train-prior`` can read it)
REPORT_FILES = ("report.html", "report.json", "images/*.png", "images/*.npy", "texture/*.png")
#: the scikit-image photograph whose codes the priors learn (chosen by measurement: docs/demo.md)
TEXTURE = "hubble_deep_field"


@dataclass(frozen=True)
class DemoPlan:
    """Budgets and choices of one demo run. ``batches`` per training phase (``None``: the shipped
    config's ``trainer.max_batches``); ``texture``: the scikit-image photograph the priors learn,
    cut to a square of ``texture_side`` pixels; ``canvas_scale``: the sample canvas's side over the
    photograph's code grid's (at least 2: the canvas is at least 4x its area); ``eval_side``: the
    held-out photographs' shorter side in pixels."""

    seed: int = 0
    batches: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(PHASE_CONFIGS))
    val_every: int | None = None  # None: the configs' trainer.val_every
    texture: str = TEXTURE
    texture_side: int = 128
    canvas_scale: int = 2
    eval_side: int = 256
    timing_repeats: int = 2
    top_k: int = 100
    workers: int = 2  # 2: the CNN VQGAN and the fresh CNN decoder train in a second process (hit_decoder.demo.run)
    precision: str = "fp32"  # decoding precision of the sampling phase's decodes (hit_decoder.precision)
    small_validation: bool = False  # one validation crop per held-out photograph (reduced runs)

    def __post_init__(self) -> None:
        unknown = set(self.batches) - set(PHASE_CONFIGS)
        if unknown:
            raise ValueError(f"unknown demo phase(s) {sorted(unknown)}; phases: {', '.join(PHASE_CONFIGS)}")
        for key, n in self.batches.items():
            if n is not None and n < 1:
                raise ValueError(f"the {key} phase needs at least 1 batch, got {n}")
        if self.canvas_scale < 2:
            raise ValueError("the sample canvas must be at least twice the photograph's code grid per side, "
                             f"got {self.canvas_scale}")
        if self.texture_side < 16:
            raise ValueError(f"the texture photograph's side must be at least 16 px, got {self.texture_side}")
        if self.eval_side < 16:
            raise ValueError(f"the held-out photographs' shorter side must be at least 16 px, got {self.eval_side}")
        if self.workers not in (1, 2):
            raise ValueError(f"workers must be 1 or 2, got {self.workers}")

    def with_batches(self, **batches: int | None) -> DemoPlan:
        return replace(self, batches={**self.batches, **{k: v for k, v in batches.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_dir(self, out: Path, key: str) -> Path:
        return Path(out) / PHASE_DIRS[key]


#: named budgets: ``full`` is the shipped configs; ``tiny`` runs every phase through the same code
#: in seconds (tests)
BUDGETS = {
    "full": DemoPlan(),
    "tiny": DemoPlan(batches={"cnn": 3, "cnn_decoder": 3, "swap": 3, "stage1": 3, "prior": 3, "windowed": 3},
                     val_every=2, eval_side=64,
                     texture_side=64, timing_repeats=1, small_validation=True),
}
