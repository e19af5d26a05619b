"""Running a training job: start-up checks, models, Lightning trainer, fit, result.

``run_training(config)`` is the one entry point (the CLI commands and the demo call it). Every
check that can fail on bad input (config, data, LPIPS weights, VQGAN files) runs before any
network is built, so mistakes surface in seconds, not after model construction.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs import guarded_run, prepare_out_dir, resolve_resume  # re-exported
from .config import TrainConfig, load_train_config, train_config_from_dict, validate_swap_source

__all__ = ["TrainResult", "run_training", "build_trainer", "resolve_resume", "prepare_out_dir", "startup_checks",
           "RUN_OUTPUTS"]

log = logging.getLogger("hit_decoder.training")


@dataclass
class TrainResult:
    out_dir: Path
    batches_done: int
    checkpoint: Path | None
    exports: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # final validation of the EMA model
    skipped_images: int = 0


#: what a training run writes under out_dir; an earlier run's files are replaced only when asked
RUN_OUTPUTS = ("checkpoints/last.ckpt", "result.json", "export/*.safetensors", "export/taming/model.*",
               "export/diffusers/*", "images/batch_*.png")


def startup_checks(cfg: TrainConfig, prebuilt: bool = False) -> None:
    """Fail fast on missing files, before data or models are built."""
    from .perceptual import find_vgg16_weights

    if cfg.loss.perceptual_weight > 0 and not cfg.loss.lpips_random_backbone:
        find_vgg16_weights(cfg.loss.lpips_vgg_path)  # raises LPIPSWeightsMissing with the fix
    if cfg.mode == "decoder_swap" and not prebuilt:
        validate_swap_source(cfg)
        if cfg.model.diffusers_model:
            from .models import check_diffusers_source

            factor = check_diffusers_source(cfg)  # the folder, its config and weights file, before data or models
        else:
            for name in ("vqgan_config", "vqgan_ckpt"):
                p = Path(getattr(cfg.model, name)).expanduser()
                if not p.is_file():
                    raise FileNotFoundError(f"model.{name}: {p} does not exist")
            from .. import adapters

            resolved = adapters.resolve_model_config(cfg.model.vqgan_config)  # target allowlist, before data or models
            factor = adapters.downsample_factor(resolved["params"]["ddconfig"])
    elif cfg.mode == "from_scratch" and not prebuilt:
        from .. import adapters

        factor = adapters.downsample_factor(len(cfg.model.encoder.ch_mult))
    else:  # a prebuilt model is the caller's to check
        factor = 1
    if cfg.data.size % factor:
        raise ValueError(f"data.size={cfg.data.size} is not a multiple of the model's downsampling factor {factor} "
                         f"(crops must tile the code grid); use e.g. data.size={max(1, round(cfg.data.size / factor)) * factor}")


def _strategy(cfg: TrainConfig) -> Any:
    name = cfg.trainer.strategy
    if name in ("ddp", "ddp_spawn", "ddp_fork"):
        from pytorch_lightning.strategies import DDPStrategy

        start = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork"}[name]
        # the discriminator's backward leaves the VQ parameters without gradients (and vice versa)
        return DDPStrategy(start_method=start, find_unused_parameters=True)
    return name


def build_trainer(cfg: TrainConfig, callbacks: Sequence[Any] = ()) -> Any:
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    from .callbacks import AtomicCheckpoint, FinalExport, ReconstructionImages

    t, out = cfg.trainer, Path(cfg.out_dir)
    loggers: list[Any] = [CSVLogger(save_dir=str(out), name="logs")]
    if t.tensorboard and importlib.util.find_spec("tensorboard") is not None:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard"))
    cbs = [
        AtomicCheckpoint(out / "checkpoints", t.ckpt_every, t.max_batches),
        ReconstructionImages(out, t.image_every, t.max_batches),
        FinalExport(out, export=cfg.export),
        *callbacks,
    ]
    return pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=_strategy(cfg),
        precision=t.precision, max_epochs=1, max_steps=-1,  # one pass over max_batches deterministic batches
        val_check_interval=min(t.val_every, t.max_batches), check_val_every_n_epoch=1,
        limit_val_batches=t.val_batches if t.val_batches is not None else 1.0,
        num_sanity_val_steps=0, log_every_n_steps=t.log_every, enable_progress_bar=t.progress_bar,
        enable_model_summary=False, enable_checkpointing=False, logger=loggers, callbacks=cbs,
        use_distributed_sampler=False, default_root_dir=str(out),
    )


def _as_config(config: TrainConfig | Mapping[str, Any] | str | os.PathLike, overrides: Sequence[str] | None) -> TrainConfig:
    if isinstance(config, (TrainConfig, Mapping)):
        return train_config_from_dict(config, list(overrides or []))
    return load_train_config(config, list(overrides or []))


def run_training(config: TrainConfig | Mapping[str, Any] | str | os.PathLike,
                 overrides: Sequence[str] | None = None, *, callbacks: Sequence[Any] = (),
                 model: Any = None, allow_unsafe_pickle: bool = False) -> TrainResult:
    """Train (or resume) a run described by ``config`` and return its result.

    ``config`` is a :class:`TrainConfig`, a mapping, a YAML path or a shipped config name
    (``"demo"``); ``overrides`` are ``key=value`` strings. Writes under ``cfg.out_dir``:
    ``checkpoints/last.ckpt``, ``logs/version_*/metrics.csv``, ``images/*.png``,
    ``export/`` (library format + taming ckpt/YAML) and ``result.json``.

    ``model``: a taming VQ model built by the caller instead of ``cfg.model`` (benchmarks use it
    for CNN-decoder baselines; their export needs ``export: false`` since the library formats
    hold HiT decoders). Extra Lightning ``callbacks`` run after the built-in ones.
    ``allow_unsafe_pickle``: fully unpickle ``model.vqgan_ckpt`` if the safe loader cannot read it
    (can run code from the file: trusted files only; a config cannot set this).

    ``out_dir`` is locked while the run lasts; ``overwrite=true`` replaces an earlier run only once
    data and models are built, and puts it back if this run fails. SIGTERM stops the run after the
    current batch with a resumable checkpoint and raises :class:`~hit_decoder.runs.RunTerminated`.
    """
    cfg = _as_config(config, overrides)
    with guarded_run(cfg, RUN_OUTPUTS) as run:
        return _train(cfg, run, callbacks, model, allow_unsafe_pickle)


def _train(cfg: TrainConfig, run: Any, callbacks: Sequence[Any], model: Any, allow_unsafe_pickle: bool) -> TrainResult:
    ckpt = run.resume
    startup_checks(cfg, prebuilt=model is not None)
    import torch

    threads = torch.get_num_threads()
    if cfg.trainer.cpu_threads is not None:
        torch.set_num_threads(cfg.trainer.cpu_threads)  # asked for explicitly by this run's config; restored below
    try:
        return _fit(cfg, run, ckpt, callbacks, model, allow_unsafe_pickle)
    finally:
        torch.set_num_threads(threads)


def _fit(cfg: TrainConfig, run: Any, ckpt: Path | None, callbacks: Sequence[Any], model: Any,
         allow_unsafe_pickle: bool) -> TrainResult:
    """:func:`run_training` after its checks: data, models, Lightning's fit, the result."""
    from ..common.data import build_data

    data = build_data(cfg.data, cfg.seed)  # missing / empty folders fail here, before any model
    log.info("data: %s", data.description)

    from .models import build_models, wrap_prebuilt
    from .module import StageOneModule
    from .perceptual import build_lpips

    perceptual = None
    if cfg.loss.perceptual_weight > 0:
        perceptual = build_lpips(cfg.loss.lpips_vgg_path, random_backbone=cfg.loss.lpips_random_backbone,
                                 seed=cfg.seed)
    else:
        log.warning("LPIPS is OFF (loss.perceptual_weight=0): the generator trains on L1/L2 + GAN (+ VQ) only")
    built = build_models(cfg, allow_unsafe_pickle=allow_unsafe_pickle) if model is None else wrap_prebuilt(cfg, model)
    log.info("model: %s", built.description)
    module = StageOneModule(cfg, built.vq, data, perceptual=perceptual, teacher=built.teacher)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run.replace_earlier()  # overwrite=true: everything is validated, the earlier run goes aside now
    trainer = build_trainer(cfg, [run.callback, *callbacks])
    if ckpt is not None:
        log.info("resuming from %s", ckpt)
    with warnings.catch_warnings():
        # frozen parts and the EMA model are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        run.fit(trainer, module, ckpt)

    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    last = out / "checkpoints" / "last.ckpt"
    return TrainResult(
        out_dir=out, batches_done=int(result.get("batches_done", module.batches_done)),
        checkpoint=last if last.is_file() else None, exports=result.get("exports", {}),
        metrics=result.get("val", {}), skipped_images=int(result.get("skipped_images", 0)),
    )
