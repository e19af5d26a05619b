"""Lightning callbacks of a run: atomic checkpoints, reconstruction grids, final export."""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from ..common.checkpointing import AtomicCheckpoint, save_checkpoint_atomic
from ..fileio import atomic_path
from ..images import save_png
from ..runs import LAST_CHECKPOINT
from ..serialization import save_decoder
from .evaluate import evaluate_reconstructions, image_grid

__all__ = ["AtomicCheckpoint", "ReconstructionImages", "FinalExport", "save_checkpoint_atomic",
           "model_with_ema", "export_model", "LAST_CHECKPOINT"]

log = logging.getLogger(__name__)


class ReconstructionImages(pl.Callback):
    """Every ``every`` batches (and after the last), save originals over (EMA) reconstructions of
    the first ``count`` validation images as ``out_dir/images/batch_XXXXXXX.png`` (rank 0)."""

    def __init__(self, out_dir: str | os.PathLike, every: int, total: int, count: int = 8) -> None:
        self.dir, self.every, self.total, self.count = Path(out_dir) / "images", every, total, count
        self._fixed: torch.Tensor | None = None

    def _images(self, pl_module: Any) -> torch.Tensor:
        if self._fixed is None:
            val = pl_module.data.val
            self._fixed = torch.stack([val[i]["image"] for i in range(min(self.count, len(val)))])
        return self._fixed

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        b = pl_module.batches_done
        if not trainer.is_global_zero or not (b % self.every == 0 or b == self.total):
            return
        x = self._images(pl_module).to(pl_module.device)
        xrec = pl_module.reconstruct(x)
        save_png(image_grid([x.cpu(), xrec.cpu()]), self.dir / f"batch_{b:07d}.png")


def model_with_ema(pl_module: Any) -> nn.Module:
    """A CPU copy of the model to export: the EMA model if the run keeps one."""
    return copy.deepcopy(pl_module.eval_model()).cpu().eval()


def export_model(vq: nn.Module, out_dir: str | os.PathLike) -> dict[str, str]:
    """Library-format files (the decoder, if it is a HiT decoder; the whole VQ model) and a taming
    checkpoint + YAML; a model that knows its own exports (the taming view of a diffusers model:
    library file + diffusers folder) writes those."""
    if hasattr(vq, "export_files"):
        return vq.export_files(out_dir)
    from .. import adapters
    from ..decoder import HiTDecoder

    out = Path(out_dir)
    paths = {"decoder": str(save_decoder(vq.decoder, out / "decoder.safetensors"))} if isinstance(vq.decoder, HiTDecoder) else {}
    paths["model"] = str(adapters.save_vqmodel(vq, out / "model.safetensors"))
    ckpt, yaml = out / "taming" / "model.ckpt", out / "taming" / "model.yaml"
    adapters.export_taming(vq, ckpt, yaml)
    paths["taming_ckpt"], paths["taming_yaml"] = str(ckpt), str(yaml)
    return paths


class FinalExport(pl.Callback):
    """After training (rank 0): evaluate the EMA model on the validation split, export it, and
    write ``out_dir/result.json`` (metrics + exported paths)."""

    def __init__(self, out_dir: str | os.PathLike, export: bool = True) -> None:
        self.out_dir, self.export = Path(out_dir), export

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        from ..common.loaders import make_val_loader

        loader = make_val_loader(pl_module.data.val, pl_module.cfg.data.val_batch_size, 0, 1, 0)
        metrics = evaluate_reconstructions(pl_module.reconstruct, (b["image"] for b in loader),
                                           perceptual=pl_module.perceptual, device=pl_module.device)
        paths: dict[str, str] = {}
        if self.export:
            paths = export_model(model_with_ema(pl_module), self.out_dir / "export")
        result = {"batches_done": pl_module.batches_done, "skipped_images": pl_module.skipped_images,
                  "val": metrics, "exports": paths, "data": pl_module.data.description}
        with atomic_path(self.out_dir / "result.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        log.info("final validation (EMA model, %d images): PSNR %.2f dB, SSIM %.4f%s", metrics["images"],
                 metrics["psnr"], metrics["ssim"], f", LPIPS {metrics['lpips']:.4f}" if "lpips" in metrics else "")
