"""Training a prior (Lightning 2): :class:`PriorModule` wraps a taming ``Net2NetTransformer`` or a
:class:`~hit_decoder.prior.windowed.WindowedPrior`;
:func:`train_prior` runs a :class:`~hit_decoder.prior.config.PriorConfig` end to end and writes
``out_dir/prior.safetensors``, ``checkpoints/last.ckpt``, ``logs/`` and ``result.json``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import CSVLogger
from torch import nn

from .. import adapters
from ..common.checkpointing import AtomicCheckpoint
from ..common.loaders import ResumableDataLoader, StepBatchSampler
from ..common.seeding import seeded
from ..fileio import atomic_path
from ..runs import guarded_run
from .config import PriorConfig, load_prior_config, validate_prior_config
from .data import CodeCropDataset, collate_crops, encode_grids, load_first_stage
from .model import build_prior, first_stage_summary, save_prior
from .windowed import WindowedPrior

__all__ = ["PriorModule", "PriorResult", "PRIOR_OUTPUTS", "train_prior"]

log = logging.getLogger("hit_decoder.prior")


class PriorModule(pl.LightningModule):
    """Wraps a taming ``Net2NetTransformer`` for Lightning 2: one AdamW (taming's
    ``configure_optimizers``), cross-entropy of the GPT on pre-encoded code crops (what taming's
    ``forward`` computes after encoding images), and a batch counter for exact resumption."""

    def __init__(self, net: nn.Module, cfg: PriorConfig, dataset: CodeCropDataset) -> None:
        super().__init__()
        self.net, self.cfg, self.dataset = net, cfg, dataset
        self.batches_done = 0
        self.losses: list[float] = []

    def loss(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, WindowedPrior):
            cond = labels if self.cfg.conditioning == "class" else None
            return self.net.nll(codes, cond, self.token_dropout(codes))
        B = codes.shape[0]
        z = self.net.permuter(codes.reshape(B, -1))  # (B, crop*crop)
        _, c = self.net.encode_to_c(labels if self.cfg.conditioning == "class" else codes)  # (B, 1)
        inputs = self.token_dropout(z)
        logits, _ = self.net.transformer(torch.cat([c, inputs], dim=1)[:, :-1])  # (B, L + n - 1, V)
        logits = logits[:, c.shape[1] - 1 :]  # (B, n, V): output i predicts code i
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), z.reshape(-1))

    def token_dropout(self, z: torch.Tensor) -> torch.Tensor:
        """taming's ``pkeep``: keep each input code with probability pkeep, else a random code
        (from a generator seeded by the batch, so resumed runs repeat it)."""
        if self.cfg.pkeep >= 1.0:
            return z
        g = torch.Generator(device="cpu").manual_seed(self.cfg.seed * 7919 + self.batches_done)
        keep = (torch.rand(z.shape, generator=g) < self.cfg.pkeep).to(z.device)
        vocab = self.net.vocab_size if isinstance(self.net, WindowedPrior) else self.net.transformer.config.vocab_size
        noise = torch.randint(0, vocab, z.shape, generator=g).to(z.device)
        return torch.where(keep, z, noise)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch["codes"], batch["label"])
        self.batches_done += 1
        self.losses.append(float(loss.detach()))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        if isinstance(self.net, WindowedPrior):  # taming's optimiser and parameter grouping
            return torch.optim.AdamW(self.net.optimizer_groups(0.01), lr=self.cfg.optim.lr, betas=(0.9, 0.95))
        self.net.learning_rate = self.cfg.optim.lr
        return self.net.configure_optimizers()

    def train_dataloader(self):
        d = self.cfg.data
        sampler = StepBatchSampler(len(self.dataset), d.batch_size, self.cfg.trainer.max_batches, self.cfg.seed,
                                   start_batch=self.batches_done)
        return ResumableDataLoader(self.dataset, batch_sampler=sampler, num_workers=d.num_workers,
                                   collate_fn=collate_crops)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hit_decoder_batches_done"] = self.batches_done

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.batches_done = int(checkpoint.get("hit_decoder_batches_done", 0))


@dataclass
class PriorResult:
    out_dir: Path
    prior: Path
    batches_done: int
    losses: list[float]
    checkpoint: Path | None


#: what train_prior writes under out_dir; an earlier run's files are replaced only when asked
PRIOR_OUTPUTS = ("checkpoints/last.ckpt", "result.json", "prior.safetensors", "first_stage.safetensors")


def train_prior(config: PriorConfig | str | os.PathLike, overrides: list[str] | None = None, *,
                callbacks: Sequence[Any] = (), allow_unsafe_pickle: bool = False) -> PriorResult:
    """Train a prior as ``config`` says; writes ``out_dir/prior.safetensors``, ``checkpoints/last.ckpt``,
    ``logs/`` (CSV) and ``result.json``. ``resume`` continues an interrupted run from its batch (same
    data order and optimiser state), or a finished one up to a larger ``trainer.max_batches``.
    ``allow_unsafe_pickle``: fully unpickle ``first_stage.taming_ckpt`` if the safe loader cannot read
    it (trusted files only; a config cannot set this). The folder lock, ``overwrite`` and SIGTERM
    behave as in :func:`hit_decoder.training.run_training`."""
    cfg = config if isinstance(config, PriorConfig) else load_prior_config(config, overrides)
    if isinstance(config, PriorConfig):
        validate_prior_config(cfg)
    with guarded_run(cfg, PRIOR_OUTPUTS) as run:
        return _train_prior(cfg, run, callbacks, allow_unsafe_pickle)


def _train_prior(cfg: PriorConfig, run: Any, callbacks: Sequence[Any], allow_unsafe_pickle: bool) -> PriorResult:
    resume = run.resume
    out = Path(cfg.out_dir)

    vq, source = load_first_stage(cfg.first_stage, cfg.seed, allow_unsafe_pickle=allow_unsafe_pickle)
    class_ids = cfg.conditioning == "class"
    grids, labels, names = encode_grids(vq, cfg.data, class_ids)
    vocab = first_stage_summary(vq)["codebook_size"]
    n_codes = sum(g.numel() for g in grids)
    used = len(torch.cat([g.reshape(-1) for g in grids]).unique())
    log.info("first stage: %s; %d code grids (%d codes, %d of %d codebook entries used)",
             source, len(grids), n_codes, used, vocab)
    windowed = cfg.architecture == "windowed"
    if class_ids and len(names) > vocab and not windowed:
        raise ValueError(f"{len(names)} classes but the codebook has {vocab} entries: taming's Labelator feeds class ids "
                         "through the code embedding, so a class-conditional prior needs n_classes <= codebook size")
    conditioning = ({"kind": "class", "n_classes": len(names), "class_names": names} if class_ids
                    else {"kind": "unconditional", "sos_token": cfg.sos_token})
    if not (class_ids or 0 <= cfg.sos_token < vocab):
        raise ValueError(f"sos_token must be in [0, {vocab}) (the codebook), got {cfg.sos_token}")
    crop = cfg.data.crop
    gpt = {"vocab_size": vocab, "block_size": crop * crop, **vars(cfg.gpt)}  # 1 cond token + crop^2 - 1 inputs
    architecture = {"kind": "windowed", **vars(cfg.windowed)} if windowed else None
    with seeded(cfg.seed):
        net = build_prior(vq, gpt, conditioning, architecture)
        net.pkeep = cfg.pkeep
    info = {"gpt": gpt, "conditioning": conditioning, "window": [crop, crop],
            "first_stage": {**first_stage_summary(vq), "source": source}}
    if windowed:  # "window" is then the training crop; the context is the neighbourhood
        info["architecture"] = architecture
    run.replace_earlier()  # overwrite=true: everything is validated, the earlier run goes aside now
    if cfg.first_stage.untrained:  # the random first stage exists nowhere else: keep it for sampling
        info["first_stage"]["file"] = str(adapters.save_vqmodel(vq, out / "first_stage.safetensors"))

    module = PriorModule(net, cfg, CodeCropDataset(grids, labels, crop, cfg.seed, cfg.data.crops_per_grid))
    t = cfg.trainer
    ckpt_cb = AtomicCheckpoint(out / "checkpoints", t.ckpt_every, t.max_batches)
    trainer = pl.Trainer(
        # one optimiser step per batch: max_steps counts batches, across resumptions
        accelerator=t.accelerator, devices=t.devices, precision=t.precision, max_epochs=-1, max_steps=t.max_batches,
        log_every_n_steps=t.log_every, enable_progress_bar=t.progress_bar, enable_model_summary=False,
        enable_checkpointing=False, logger=CSVLogger(save_dir=str(out), name="logs"),
        callbacks=[ckpt_cb, run.callback, *callbacks],
        use_distributed_sampler=False, default_root_dir=str(out), num_sanity_val_steps=0,
    )
    run.fit(trainer, module, resume)

    prior_path = save_prior(net, out / "prior.safetensors", info)
    result = PriorResult(out, prior_path, module.batches_done, module.losses, ckpt_cb.last_path)
    with atomic_path(out / "result.json") as tmp:
        tmp.write_text(json.dumps({"prior": str(prior_path), "batches_done": result.batches_done,
                                   "losses": result.losses, "info": info}, indent=2))
    return result
