"""Helpers shared by several test files: real image files and tiny training configurations.
(Fixtures live in conftest.py; test files import this module, never each other.)"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from PIL import Image


def photo(seed: int, w: int = 40, h: int = 30, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / w), (yy * 255 / h), np.full_like(xx, 40 * seed % 255)], -1)
    arr = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    return img.convert(mode) if mode != "RGB" else img


def write_image_folder(root: Path, corrupt: bool = True) -> list[Path]:
    """A nested folder of real images in several formats and modes (+ a corrupt and a truncated file)."""
    (root / "a" / "b").mkdir(parents=True)
    files = [root / "one.png", root / "a" / "two.jpg", root / "a" / "b" / "three.webp", root / "four.BMP",
             root / "a" / "gray.png", root / "a" / "b" / "alpha.png"]
    photo(1).save(files[0])
    photo(2).save(files[1], quality=95)
    photo(3).save(files[2])
    photo(4).save(files[3])
    photo(5, mode="L").save(files[4])
    photo(6, mode="RGBA").save(files[5])
    (root / "notes.txt").write_text("not an image")
    if corrupt:
        (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        good = (root / "one.png").read_bytes()
        (root / "truncated.png").write_bytes(good[: len(good) // 3])
    return files


TINY_DECODER = {"channels": [32, 16, 16], "depths": [1, 1, 1], "heads": [2, 2, 2], "num_attention_stages": 2,
                "block_size": [2, 2], "dilation_grid": [2, 2]}
TINY_ENCODER = {"ch": 32, "ch_mult": [1, 1, 2], "num_res_blocks": 1, "attn_resolutions": [], "z_channels": 8,
                "resolution": 16}


def deep_update(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_config(out_dir: Path, **sections) -> dict:
    """A from-scratch run on 16 px crops of the embedded photographs, LPIPS off, few batches."""
    base = {
        "out_dir": str(out_dir), "seed": 0,
        "model": {"encoder": TINY_ENCODER, "n_embed": 32, "embed_dim": 8, "decoder": TINY_DECODER},
        "data": {"size": 16, "resize": 64, "batch_size": 4, "val_batch_size": 4, "num_workers": 0,
                 "val_crops_per_image": 2},
        "loss": {"perceptual_weight": 0.0, "disc_weight": 0.5, "disc_channels": 8, "disc_layers": 2,
                 "disc_train_start": 0, "disc_weight_start": 0},
        "optim": {"lr": 2e-3, "ema_decay": 0.9},
        "trainer": {"max_batches": 8, "log_every": 1, "val_every": 1000, "image_every": 1000, "ckpt_every": 1000,
                    "progress_bar": False, "tensorboard": False},
    }
    return deep_update(base, sections)


def read_metrics(out_dir: Path) -> list[dict[str, float]]:
    rows = []
    for f in sorted((out_dir / "logs").glob("version_*/metrics.csv")):
        with open(f) as fh:
            rows += [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]
    return [r for r in rows if "train/batch" in r]


def write_tiny_images(folder: Path, n: int = 4) -> Path:
    """``n`` real 16 x 16 PNG photographs-to-be (smooth gradients + noise)."""
    folder.mkdir(parents=True)
    for i in range(n):
        photo(i + 1, w=16, h=16).save(folder / f"img{i}.png")
    return folder


class CrashAfter(pl.Callback):
    """Simulates a crash (after the checkpoint of that batch has been written)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.batches_done == self.batch:
            raise RuntimeError("simulated crash")


def final_state(out_dir):
    return torch.load(out_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- tiny taming models and priors
#: the ddconfig of a tiny taming VQGAN (f2, z_channels 8): built in milliseconds
TINY_TAMING_DD = {"double_z": False, "z_channels": 8, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                  "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
#: a HiT decoder config for that VQGAN
TINY_HIT = {"channels": [32, 16], "depths": [1, 1], "heads": [2, 2], "num_attention_stages": 1,
            "block_size": [2], "dilation_grid": [2]}
#: ``train-prior --config demo`` overrides for a prior that trains in seconds
TINY_PRIOR_RUN = [
    "gpt.n_layer=1", "gpt.n_head=2", "gpt.n_embd=32", "data.resize=40", "data.crop=6", "data.batch_size=8",
    "trainer.log_every=1", "trainer.progress_bar=false", "optim.lr=3e-3",
]


def write_yaml(cfg: dict, path: Path) -> Path:
    OmegaConf.save(OmegaConf.create(cfg), path)
    return path


def write_tiny_prior(make_vq, folder: Path, **edit) -> Path:
    """An untrained one-layer taming GPT prior for ``make_vq()``'s codes, saved as ``folder/prior.safetensors``;
    ``edit`` replaces (or, given a function, transforms) sections of the file's metadata."""
    from hit_decoder.prior import build_prior, first_stage_summary, save_prior

    vq = make_vq()
    gpt = {"vocab_size": 16, "block_size": 16, "n_layer": 1, "n_head": 1, "n_embd": 8}
    info = {"gpt": gpt, "conditioning": {"kind": "unconditional", "sos_token": 0}, "window": [4, 4],
            "first_stage": {**first_stage_summary(vq), "source": "test"}}
    for key, value in edit.items():
        info[key] = value(info[key]) if callable(value) else value
    return save_prior(build_prior(vq, gpt, info["conditioning"]), folder / "prior.safetensors", info)


def benchmark_script(name: str):
    """``benchmarks/<name>.py`` as a module (named ``benchmark_<name>``: ``profile.py`` would shadow
    the standard library's ``profile``), with ``benchmarks/`` on the path while it imports its sibling
    ``benchmarking``."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))
