"""The Lightning 2 module of stage-1 training (manual optimization, two explicit steps).

Per training batch ``b`` (counted here, not with Lightning's ``global_step``):

1. generator step — encode, quantize, decode; ``nll`` (L1/L2 + LPIPS + distillation), the GAN
   term once ``b >= loss.disc_weight_start`` with the adaptive weight at the decoder's last
   layer, the VQ loss in ``from_scratch``; clip; Adam step;
2. discriminator step — once ``b >= loss.disc_train_start`` (may be earlier than the GAN term
   enters the generator loss, so the discriminator is not untrained when it does);
3. EMA of the trained weights, codebook bookkeeping (usage, perplexity, optional dead-code
   restart), logging.

The networks stay networks: this class only wires them to losses, optimizers and logs. LPIPS and
the distillation teacher are fixed, rebuilt from files at start-up, and kept out of checkpoints.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from ..common.data import DataSplits
from ..common.loaders import make_train_loader, make_val_loader
from ..common.metrics import codebook_perplexity, psnr, seam_periods, seam_ratio, ssim, to_unit_range
from ..common.seeding import seeded
from .config import TrainConfig, config_to_dict
from .ema import ema_decay_at, ema_update_, make_ema_copy
from .losses import (
    adaptive_weight,
    discriminator_loss,
    gate,
    generator_adv_loss,
    reconstruction_loss,
    vq_loss,
)
from .models import frozen_parts
from .perceptual import perceptual_loss
from .steps import DiscriminatorStep, Encoded, GeneratorStep, warmup_lr, weight_decay_groups

__all__ = ["StageOneModule"]

CHECKPOINT_KEY = "hit_decoder_training"

log = logging.getLogger(__name__)


def _build_discriminator(cfg: TrainConfig) -> nn.Module:
    from .. import adapters

    return adapters.build_discriminator(cfg.loss.disc_channels, cfg.loss.disc_layers, cfg.loss.disc_actnorm)


def _adam(groups: list[dict[str, Any]], fused: bool, **kwargs: Any) -> torch.optim.Adam:
    """Adam, fused (one kernel over all parameters) when ``fused`` and PyTorch has the fused kernel:
    floating parameters on the CPU or a CUDA device. The same update as the per-parameter loop up to
    float rounding; on the CPU the demo's models step in about a seventh of the time (12 ms -> 2 ms
    a batch for the CNN VQGAN on one thread), which is Python overhead, not arithmetic."""
    params = [p for g in groups for p in g["params"]]
    fused = fused and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(groups, fused=True if fused else None, **kwargs)


class StageOneModule(pl.LightningModule):
    def __init__(self, cfg: TrainConfig, vq: nn.Module, data: DataSplits, *, perceptual: nn.Module | None = None,
                 teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.vq = vq
        self.data = data
        self.swap = cfg.mode == "decoder_swap"
        self.discriminator = None
        if cfg.loss.disc_weight > 0:
            with seeded(cfg.seed + 1):
                self.discriminator = _build_discriminator(cfg)
        # EMA of everything that trains: the decoder in decoder_swap, the whole model from scratch (an
        # averaged decoder behind a live, still-moving encoder and codebook would decode drifted codes)
        self.ema_vq = make_ema_copy(vq) if cfg.optim.ema_decay > 0 else None
        from .. import adapters

        self.n_codes = adapters.codebook_size(vq.quantize)
        self.factor = adapters.downsample_factor(vq)
        self.register_buffer("code_counts", torch.zeros(self.n_codes), persistent=True)
        # fixed helpers: not registered (kept out of state_dict / DDP), moved to the device lazily
        self._fixed: dict[str, nn.Module | None] = {"perceptual": perceptual, "teacher": teacher}
        self.batches_done = 0
        self.unreadable: set[int] = set()  # training-set indices of files that did not decode
        self.rng = torch.Generator().manual_seed(cfg.seed + 7919)  # dead-code restarts
        if self.swap:
            for part in frozen_parts(vq):
                part.requires_grad_(False)

    # ------------------------------------------------------------------ helpers
    @property
    def perceptual(self) -> nn.Module | None:
        return self._fixed_on_device("perceptual")

    @property
    def teacher(self) -> nn.Module | None:
        return self._fixed_on_device("teacher")

    def _fixed_on_device(self, name: str) -> nn.Module | None:
        m = self._fixed[name]
        if m is not None:
            p = next(m.parameters(), None)
            if p is not None and p.device != self.device:
                m.to(self.device)
        return m

    def train(self, mode: bool = True) -> StageOneModule:
        super().train(mode)
        if self.swap:
            for part in frozen_parts(self.vq):
                part.eval()
        if self.ema_vq is not None:
            self.ema_vq.eval()
        return self

    def last_layer(self) -> torch.Tensor:
        """The decoder's final weight (taming's ``get_last_layer``; HiT models return the HiT one)."""
        return self.vq.get_last_layer()

    def trainable_vq_parameters(self) -> list[nn.Parameter]:
        if self.swap:
            return list(self.vq.decoder.parameters())
        return [p for name, p in self.vq.named_parameters() if not name.startswith("loss.")]

    # ------------------------------------------------------------------ model pieces
    def encode(self, x: torch.Tensor, vq: nn.Module | None = None) -> Encoded:
        """Encoder + quantizer of ``vq`` (default: the trained model). Frozen (no graph) in ``decoder_swap``."""
        vq = self.vq if vq is None else vq
        if self.swap:
            # the frozen tokens must be the VQGAN's own: no bf16 autocast in front of the codebook
            with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
                quant, _, info = vq.encode(x.float())  # (B, embed_dim, h, w)
            idx = info[2].reshape(quant.shape[0], quant.shape[2], quant.shape[3])  # (B, h, w)
            return Encoded(pre_quant=None, quant=quant, indices=idx, vq=quant.new_zeros(()))
        h = vq.quant_conv(vq.encoder(x))  # (B, embed_dim, h, w)
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = h.float()
            quant, _, info = vq.quantize(h)  # (B, embed_dim, h, w), straight-through
            idx = info[2].reshape(h.shape[0], h.shape[2], h.shape[3])  # (B, h, w)
            z_q = vq.quantize.embedding(idx).permute(0, 3, 1, 2)  # (B, embed_dim, h, w), grads to codebook
            loss = vq_loss(h, z_q, self.cfg.model.beta)
        return Encoded(pre_quant=h, quant=quant, indices=idx, vq=loss)

    def decode(self, quant: torch.Tensor, vq: nn.Module | None = None) -> torch.Tensor:
        vq = self.vq if vq is None else vq
        return vq.decode(quant)  # (B, 3, H, W): decoder(post_quant_conv(quant)) (a MoVQ decoder gets quant too)

    def eval_model(self) -> nn.Module:
        """The model used for validation, images and export: the EMA copy if the run keeps one."""
        return self.ema_vq if self.ema_vq is not None else self.vq

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> reconstructions by the EMA model (if any)."""
        vq = self.eval_model()
        return self.decode(self.encode(x, vq).quant, vq).float()

    # ------------------------------------------------------------------ losses of one batch
    def generator_step(self, x: torch.Tensor, xrec: torch.Tensor, enc: Encoded, batch: int) -> GeneratorStep:
        lc = self.cfg.loss
        zero = xrec.new_zeros((), dtype=torch.float32)
        rec = reconstruction_loss(x, xrec, lc.l1_weight, lc.l2_weight)
        perc = zero
        if self.perceptual is not None and lc.perceptual_weight > 0:
            perc = lc.perceptual_weight * perceptual_loss(self.perceptual, x, xrec)
        distill = zero
        if self.teacher is not None and lc.distill_weight > 0:
            with torch.no_grad():
                target = self.teacher(self.vq.post_quant_conv(enc.quant)).float()  # (B, 3, H, W)
            distill = lc.distill_weight * (xrec.float() - target).abs().mean()
        nll = rec + perc + distill
        g_adv, gan_weight = zero, zero
        if self.discriminator is not None and gate(batch, lc.disc_weight_start) > 0:
            g_adv = generator_adv_loss(lc.disc_loss, self.discriminator(xrec))
            gan_weight = lc.disc_weight * adaptive_weight(nll, g_adv, self.last_layer(), lc.adaptive_weight_max)
        vq_term = self.cfg.loss.codebook_weight * enc.vq
        total = nll + gan_weight * g_adv + vq_term
        return GeneratorStep(total, nll, rec, perc, distill, enc.vq, g_adv, gan_weight)

    def discriminator_step(self, x: torch.Tensor, xrec: torch.Tensor) -> DiscriminatorStep:
        real = self.discriminator(x.detach())  # (B, 1, h', w') patch logits
        fake = self.discriminator(xrec.detach())
        return DiscriminatorStep(discriminator_loss(self.cfg.loss.disc_loss, real, fake), real, fake)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        oc = self.cfg.optim
        betas = (float(oc.betas[0]), float(oc.betas[1]))
        groups = weight_decay_groups(self.trainable_vq_parameters(), self.vq.decoder, oc.weight_decay)
        # Lightning's mixed-precision plugins refuse to clip the gradients of a fused optimizer
        fused = "mixed" not in str(self.trainer.precision)
        opts = [_adam(groups, fused, lr=oc.lr, betas=betas)]
        if self.discriminator is not None:
            opts.append(_adam([{"params": list(self.discriminator.parameters())}], fused, lr=oc.disc_lr or oc.lr,
                              betas=betas))
        return opts

    def _set_lr(self, opts: list[Any], batch: int) -> None:
        oc = self.cfg.optim
        for i, opt in enumerate(opts):
            base = oc.lr if i == 0 else (oc.disc_lr or oc.lr)
            for group in opt.optimizer.param_groups if hasattr(opt, "optimizer") else opt.param_groups:
                group["lr"] = warmup_lr(base, batch, oc.warmup_batches)

    def _clip(self, opt: Any) -> None:
        if self.cfg.optim.grad_clip > 0:
            self.clip_gradients(opt, gradient_clip_val=self.cfg.optim.grad_clip, gradient_clip_algorithm="norm")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        b = self.batches_done
        self._set_lr(opts, b)
        x = batch["image"]  # (B, 3, S, S) in [-1, 1]

        enc = self.encode(x)
        xrec = self.decode(enc.quant)  # (B, 3, S, S)
        g = self.generator_step(x, xrec, enc, b)
        opts[0].zero_grad(set_to_none=True)
        self.manual_backward(g.total)
        self._clip(opts[0])
        opts[0].step()

        d = None
        if self.discriminator is not None and gate(b, self.cfg.loss.disc_train_start) > 0:
            d = self.discriminator_step(x, xrec)
            opts[1].zero_grad(set_to_none=True)
            self.manual_backward(d.loss)
            self._clip(opts[1])
            opts[1].step()

        if self.ema_vq is not None:
            ema_update_(self.ema_vq, self.vq, ema_decay_at(b, self.cfg.optim.ema_decay))
        restarted = self._codebook_bookkeeping(enc, b)
        self.batches_done = b + 1
        self.unreadable.update(int(i) for i in batch["unreadable"])
        self._log_train(g, d, enc, restarted)

    def _log_train(self, g: GeneratorStep, d: DiscriminatorStep | None, enc: Encoded, restarted: int) -> None:
        logs = {
            "train/total": g.total, "train/nll": g.nll, "train/rec": g.rec, "train/lpips": g.perceptual,
            "train/vq": g.vq, "train/g_adv": g.g_adv, "train/gan_weight": g.gan_weight,
            "train/perplexity": codebook_perplexity(enc.indices, self.n_codes),
            "train/codebook_usage": enc.indices.unique().numel() / self.n_codes,
            "train/batch": float(self.batches_done),
        }
        if self.teacher is not None:
            logs["train/distill"] = g.distill
        if d is not None:
            logs["train/d_loss"] = d.loss
            logs["train/logits_real"] = d.logits_real.mean()
            logs["train/logits_fake"] = d.logits_fake.mean()
        if self.cfg.optim.dead_code_restart and not self.swap:
            logs["train/dead_codes_restarted"] = float(restarted)
        self.log_dict({k: (v.detach().float() if torch.is_tensor(v) else v) for k, v in logs.items()},
                      on_step=True, on_epoch=False, batch_size=enc.indices.shape[0])
        self.log("loss", g.total.detach().float(), prog_bar=True, on_step=True, on_epoch=False, logger=False)
        # distinct unreadable files found so far (ranks read overlapping files: the largest count of any rank)
        self.log("data/skipped_images", float(self.skipped_images), on_step=True, on_epoch=False, reduce_fx="max",
                 sync_dist=True, batch_size=1)

    @property
    def skipped_images(self) -> int:
        """Distinct files that could not be read: validation images dropped at start-up, and training
        images passed over so far."""
        return self.data.unreadable_at_start + len(self.unreadable)

    # ------------------------------------------------------------------ codebook
    def _codebook_bookkeeping(self, enc: Encoded, batch: int) -> int:
        """Accumulate code counts; every ``dead_code_every`` batches restart unused codes."""
        oc = self.cfg.optim
        if self.swap or not oc.dead_code_restart:
            return 0
        self.code_counts += torch.bincount(enc.indices.flatten(), minlength=self.n_codes).to(self.code_counts)
        if (batch + 1) % oc.dead_code_every:
            return 0
        counts = self.trainer.strategy.reduce(self.code_counts.clone(), reduce_op="sum")
        dead = counts < oc.dead_code_min_usage
        n_dead = int(dead.sum())
        if n_dead:
            pool = enc.pre_quant.detach().permute(0, 2, 3, 1).reshape(-1, enc.pre_quant.shape[1])  # (B*h*w, embed_dim)
            pick = torch.randint(0, pool.shape[0], (n_dead,), generator=self.rng).to(pool.device)
            fresh = self.trainer.strategy.broadcast(pool[pick].contiguous(), src=0)  # rank 0's encodings everywhere
            weight = self.vq.quantize.embedding.weight
            with torch.no_grad():
                weight[dead] = fresh.to(weight)
            self._reset_adam_rows(weight, dead)
        self.code_counts.zero_()
        return n_dead

    def _reset_adam_rows(self, weight: torch.Tensor, rows: torch.Tensor) -> None:
        opt = self.optimizers()
        opt = opt[0] if isinstance(opt, list) else opt
        state = opt.optimizer.state.get(weight) if hasattr(opt, "optimizer") else opt.state.get(weight)
        for key in ("exp_avg", "exp_avg_sq"):
            if state and key in state:
                state[key][rows] = 0

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x = batch["image"]  # (B, 3, S, S)
        xrec = self.reconstruct(x)
        a, r = to_unit_range(x), to_unit_range(xrec)
        n = x.shape[0]
        self.log("val/psnr", psnr(a, r).mean(), sync_dist=True, batch_size=n, prog_bar=True)
        if min(x.shape[-2:]) >= 11:
            self.log("val/ssim", ssim(a, r).mean(), sync_dist=True, batch_size=n)
        self.log("val/l1", (x - xrec).abs().mean(), sync_dist=True, batch_size=n)
        for p in seam_periods(self.factor):  # 2, 4, ..., the factor
            seams = seam_ratio(r, p)
            seams = seams[torch.isfinite(seams)]
            if seams.numel():  # flat crops have no seam ratio
                self.log(f"val/seam_p{p}", seams.mean().float(), sync_dist=True, batch_size=seams.numel())
        lp = self.perceptual
        if lp is not None and not getattr(lp, "random_backbone", True):
            self.log("val/lpips", perceptual_loss(lp, x, xrec), sync_dist=True, batch_size=n)

    def setup(self, stage: str) -> None:
        """Several processes on one CPU machine: split the cores between them (unless
        ``OMP_NUM_THREADS`` says otherwise); oversubscribed OpenMP threads slow down badly."""
        t = self.trainer
        if (t.world_size > 1 and t.strategy.root_device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ
                and self.cfg.trainer.cpu_threads is None):
            per_process = max(1, (os.cpu_count() or 1) // max(1, t.world_size // t.num_nodes))
            if torch.get_num_threads() > per_process:
                torch.set_num_threads(per_process)
                log.info("CPU DDP: %d intra-op threads per process", per_process)

    # ------------------------------------------------------------------ data
    def train_dataloader(self):
        s = self.trainer
        return make_train_loader(self.data.train, self.cfg.data.batch_size, self.cfg.trainer.max_batches, self.cfg.seed,
                                 self.batches_done, s.global_rank, s.world_size, self.cfg.data.num_workers)

    def val_dataloader(self):
        s = self.trainer
        return make_val_loader(self.data.val, self.cfg.data.val_batch_size, s.global_rank, s.world_size,
                               self.cfg.data.num_workers)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "batches_done": self.batches_done,
            "skipped_images": self.skipped_images,
            "unreadable_images": sorted(self.unreadable),
            "rng_state": self.rng.get_state(),
            "world_size": self.trainer.world_size if self._trainer is not None else 1,
            "config": config_to_dict(self.cfg),
            "decoder_config": self.vq.decoder.config.to_dict() if hasattr(self.vq.decoder, "config") else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            raise ValueError("this checkpoint was not written by hit-decoder training (no training state in it)")
        self.batches_done = int(state["batches_done"])
        total = self.cfg.trainer.max_batches
        if self.batches_done > total:
            raise ValueError(f"the checkpoint is at batch {self.batches_done}, beyond trainer.max_batches={total}: "
                             "raise trainer.max_batches to continue this run")
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
        if progress is not None and self.batches_done < total:
            # a run that finished at a smaller max_batches continues: its last batch is no longer the last
            progress["is_last_batch"] = False
        self.unreadable = set(state.get("unreadable_images", []))  # older checkpoints kept only a count
        self.rng.set_state(state["rng_state"])
        saved_world = int(state.get("world_size", 1))
        if self._trainer is not None and saved_world != self.trainer.world_size:
            import warnings

            warnings.warn(
                f"resuming a run saved with {saved_world} processes on {self.trainer.world_size}: the remaining "
                "batches see a different data order than the uninterrupted run would have", stacklevel=2)

