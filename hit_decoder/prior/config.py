"""The schema of a prior training run (:class:`PriorConfig`): YAML + ``key=value`` overrides,
merged strictly (unknown keys rejected); shipped configs in ``hit_decoder/configs/prior/``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from ..configfile import check_devices, read_config_source, require, shipped_configs, strict_config
from ..sampling import CONDITIONING  # conditioning kinds a prior can have (one table for the prior and the adapters)

__all__ = ["PriorConfig", "FirstStageConfig", "GPTShape", "WindowedShape", "ARCHITECTURES", "PriorDataConfig", "PriorOptim",
           "PriorTrainer", "CONDITIONING", "validate_prior_config", "shipped_prior_configs", "load_prior_config"]

#: prior architectures: taming's minGPT over crop windows, or the windowed prior (:mod:`.windowed`)
ARCHITECTURES = ("gpt", "windowed")


@dataclass
class FirstStageConfig:
    """Where the codes come from. Give exactly one of ``model``, ``taming_config`` (+ ``taming_ckpt``)
    or ``untrained``."""

    model: Optional[str] = None  # hit-decoder VQ model file (.safetensors; `hit-decoder train` exports one)
    taming_config: Optional[str] = None  # a taming VQGAN YAML ...
    taming_ckpt: Optional[str] = None  # ... and its checkpoint
    untrained: Optional[str] = None  # the *untrained* first stage of a training config (name or YAML): smoke tests only
    # full unpickling of taming_ckpt is never a config key: train_prior(allow_unsafe_pickle=True) /
    # --allow-unsafe-pickle (configfile.UNPICKLE_OPT_INS)


@dataclass
class GPTShape:
    """taming's minGPT; ``vocab_size`` (codebook) and ``block_size`` (crop + conditioning) are derived."""

    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 512
    embd_pdrop: float = 0.0
    resid_pdrop: float = 0.0
    attn_pdrop: float = 0.0


@dataclass
class WindowedShape:
    """The context of a windowed prior (``architecture: windowed``): the codes before ``(i, j)`` in
    raster order within rows ``i - rows_above .. i`` and columns ``j - cols_each_side .. j + cols_each_side``.
    Depth and width come from the ``gpt`` section."""

    rows_above: int = 7
    cols_each_side: int = 7


@dataclass
class PriorDataConfig:
    images: Optional[str] = None  # image folder (recursive) or file list; null = embedded photographs
    root: Optional[str] = None  # base for relative paths in file lists
    resize: Optional[int] = None  # shorter image side before encoding (null: as is)
    flip: bool = True  # also encode the mirror image of every photograph
    crop: int = 16  # crop side in codes = the sampling window
    batch_size: int = 8
    crops_per_grid: int = 64  # crops per code grid per data epoch
    num_workers: int = 0


@dataclass
class PriorOptim:
    lr: float = 4.5e-4  # AdamW, betas (0.9, 0.95), weight decay 0.01 on linear weights (taming's grouping)


@dataclass
class PriorTrainer:
    max_batches: int = 10_000
    accelerator: str = "auto"
    devices: Any = 1
    precision: str = "32-true"
    log_every: int = 50
    ckpt_every: int = 1000
    progress_bar: bool = True


@dataclass
class PriorConfig:
    seed: int = 0
    out_dir: str = "runs/prior"
    resume: Optional[str] = None  # checkpoint path, or "auto" = out_dir/checkpoints/last.ckpt if present
    overwrite: bool = False  # replace an earlier run's prior and checkpoint in out_dir (else: an error)
    architecture: str = "gpt"  # "gpt" (taming's minGPT, sliding-window sampling) | "windowed" (local 2-D context, streams)
    conditioning: str = "unconditional"  # "unconditional" (SOS token) | "class" (class label token)
    sos_token: int = 0
    pkeep: float = 1.0  # taming's token dropout: keep this share of input codes, replace the rest at random
    first_stage: FirstStageConfig = field(default_factory=FirstStageConfig)
    gpt: GPTShape = field(default_factory=GPTShape)
    windowed: WindowedShape = field(default_factory=WindowedShape)
    data: PriorDataConfig = field(default_factory=PriorDataConfig)
    optim: PriorOptim = field(default_factory=PriorOptim)
    trainer: PriorTrainer = field(default_factory=PriorTrainer)


def validate_prior_config(cfg: PriorConfig) -> None:
    require(0 <= cfg.seed < 2**32, f"seed must be a whole number in [0, 2**32), got {cfg.seed}")
    fs = cfg.first_stage
    given = [n for n in ("model", "taming_config", "untrained") if getattr(fs, n)]
    require(len(given) == 1, "first_stage: give exactly one of first_stage.model (hit-decoder VQ model file), "
           f"first_stage.taming_config (+ taming_ckpt) or first_stage.untrained (a training config); got {given or 'none'}")
    require(fs.taming_ckpt is None or fs.taming_config is not None, "first_stage.taming_ckpt needs first_stage.taming_config")
    require(cfg.architecture in ARCHITECTURES, f"architecture must be one of {ARCHITECTURES}, got {cfg.architecture!r}")
    w = cfg.windowed
    require(w.rows_above >= 0 and w.cols_each_side >= 0 and w.rows_above + w.cols_each_side >= 1,
           f"windowed: need rows_above >= 0 and cols_each_side >= 0, not both 0; got {w.rows_above}, {w.cols_each_side}")
    require(cfg.conditioning in CONDITIONING, f"conditioning must be one of {CONDITIONING}, got {cfg.conditioning!r}")
    require(0.0 < cfg.pkeep <= 1.0, f"pkeep must be in (0, 1], got {cfg.pkeep}")
    g, d, t = cfg.gpt, cfg.data, cfg.trainer
    require(g.n_layer >= 1 and g.n_head >= 1 and g.n_embd % g.n_head == 0,
           f"gpt: need n_layer >= 1 and n_embd ({g.n_embd}) divisible by n_head ({g.n_head})")
    require(d.crop >= 2, f"data.crop must be >= 2 codes, got {d.crop}")
    for name in ("batch_size", "crops_per_grid"):
        require(getattr(d, name) >= 1, f"data.{name} must be >= 1, got {getattr(d, name)}")
    require(d.resize is None or d.resize >= 8, f"data.resize must be >= 8 pixels, got {d.resize}")
    require(cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}")
    require(t.max_batches >= 1 and t.log_every >= 1 and t.ckpt_every >= 1,
           "trainer.max_batches, trainer.log_every and trainer.ckpt_every must be >= 1")
    check_devices(t.devices, "trainer.devices")


def shipped_prior_configs() -> dict[str, Any]:
    """Shipped prior configs by name (``demo`` -> ``hit_decoder/configs/prior/demo.yaml``)."""
    return shipped_configs("prior")


def load_prior_config(source: str | os.PathLike | None = None, overrides: list[str] | None = None) -> PriorConfig:
    """A YAML file or shipped config name, plus ``key=value`` overrides, merged strictly onto
    :class:`PriorConfig` (a misspelt key raises ``ValueError`` naming it)."""
    layers = [read_config_source(source, "prior", "prior config")] if source is not None else []
    cfg = strict_config(PriorConfig, layers, overrides, what="prior config")
    validate_prior_config(cfg)
    return cfg
