"""Typed, strict configuration of a training run.

A run is described by one :class:`TrainConfig` (nested dataclasses). YAML files and
``key=value`` command-line overrides are merged onto the dataclass schema with OmegaConf, so
a misspelt key raises a ``ValueError`` naming it, and every value is type-checked. Values that
OmegaConf cannot type (choices, ranges, cross-field rules) are checked in :func:`validate`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf

from ..configfile import check_devices, read_config_source, require, shipped_configs, strict_config

__all__ = [
    "TrainConfig",
    "ModelConfig",
    "EncoderConfig",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainerConfig",
    "load_train_config",
    "train_config_from_dict",
    "shipped_train_configs",
    "validate",
    "MODES",
    "CNN_DECODER",
]

MODES = ("from_scratch", "decoder_swap")
#: ``model.decoder`` value that builds taming's CNN decoder (``from_scratch`` only)
CNN_DECODER = "cnn"


@dataclass
class EncoderConfig:
    """taming's ``ddconfig`` for the CNN encoder (``from_scratch`` mode)."""

    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    num_res_blocks: int = 2
    attn_resolutions: list[int] = field(default_factory=lambda: [16])
    dropout: float = 0.0
    z_channels: int = 256
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    double_z: bool = False


@dataclass
class ModelConfig:
    # from_scratch: encoder + quantizer built here; decoder from ``decoder`` (preset / YAML / mapping)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    n_embed: int = 1024
    embed_dim: int = 256
    beta: float = 0.25  # commitment weight of the VQ loss
    # preset name ("hit-8m-f16"), path to a decoder YAML, or a mapping of HiTDecoderConfig fields;
    # z_channels is always taken from the encoder / VQGAN, the rest can be overridden below.
    # "cnn": from_scratch trains a plain taming VQGAN (its CNN decoder mirrors the encoder), a baseline
    # or a VQGAN whose decoder is swapped later; decoder_swap trains a fresh CNN decoder of the VQGAN's
    # own shape on its frozen codes (a baseline trained exactly like a swapped-in HiT decoder)
    decoder: Any = "hit-8m-f16"
    decoder_overrides: dict[str, Any] = field(default_factory=dict)
    # decoder_swap: the taming VQGAN whose encoder, quantizer and codebook are kept frozen
    vqgan_config: Optional[str] = None
    vqgan_ckpt: Optional[str] = None
    # full unpickling of vqgan_ckpt is never a config key: run_training(allow_unsafe_pickle=True) /
    # --allow-unsafe-pickle (configfile.UNPICKLE_OPT_INS)
    # decoder_swap, instead of vqgan_config + vqgan_ckpt: a local diffusers VQModel folder (or a
    # hit-decoder diffusers file); needs the diffusers extra
    diffusers_model: Optional[str] = None


@dataclass
class DataConfig:
    # image folder (recursive) or taming-style file list (.txt, one path per line);
    # null = the embedded scikit-image photographs
    train: Optional[str] = None
    val: Optional[str] = None  # null = held out from ``train`` (or the embedded val photographs)
    root: Optional[str] = None  # base for relative paths in file lists (default: the list's folder)
    size: int = 256  # training crop side in pixels
    resize: Optional[int] = None  # resize the shorter side to this before cropping (null: only if smaller)
    flip: bool = True
    batch_size: int = 8
    val_batch_size: int = 8
    num_workers: int = 2
    val_fraction: float = 0.02  # share of a training folder held out when ``val`` is null
    val_max_images: int = 256
    val_crops_per_image: int = 8  # embedded default only: fixed crops per held-out photograph
    epoch_crops_per_image: int = 64  # embedded default only: crops per photograph per data epoch
    # embedded default only: which scikit-image photographs to train on (null: all of EMBEDDED_TRAIN);
    # ignored when data.train names a folder
    embedded_train: Optional[list[str]] = None


@dataclass
class LossConfig:
    l1_weight: float = 1.0
    l2_weight: float = 0.0
    perceptual_weight: float = 1.0  # LPIPS (VGG16, lpips v0.1 heads); 0 disables it
    lpips_vgg_path: Optional[str] = None  # vgg16-397923af.pth; default: torch hub checkpoints dir
    lpips_random_backbone: bool = False  # explicit opt-in for tests: random VGG16 (not a perceptual loss)
    codebook_weight: float = 1.0
    disc_weight: float = 0.75  # scale of the adaptive GAN weight
    disc_loss: str = "hinge"  # "hinge" | "non_saturating"
    disc_train_start: int = 0  # batch at which the discriminator starts learning
    disc_weight_start: int = 0  # batch at which its term enters the generator loss (>= disc_train_start)
    disc_layers: int = 3
    disc_channels: int = 64
    disc_actnorm: bool = False
    adaptive_weight_max: float = 1.0e4
    distill_weight: float = 0.0  # decoder_swap: L1 toward the frozen CNN decoder's output


@dataclass
class OptimConfig:
    lr: float = 1.0e-4
    disc_lr: Optional[float] = None  # null = lr
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 0.0
    warmup_batches: int = 0  # linear learning-rate warm-up of both optimizers
    grad_clip: float = 1.0  # max global grad norm per optimizer; 0 disables
    ema_decay: float = 0.999  # EMA of the decoder weights (evaluation and export); 0 disables
    dead_code_restart: bool = False
    dead_code_every: int = 200  # batches between checks
    dead_code_min_usage: float = 1.0  # codes used fewer times than this in the window are restarted


@dataclass
class TrainerConfig:
    max_batches: int = 100_000
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"  # "auto" | "ddp" | "ddp_spawn" | any Lightning strategy name
    precision: str = "32-true"  # "bf16-mixed" for bf16 autocast
    log_every: int = 50
    val_every: int = 5000
    image_every: int = 5000
    ckpt_every: int = 5000
    val_batches: Optional[int] = None  # limit validation batches (null = whole val split)
    cpu_threads: Optional[int] = None  # torch intra-op threads for this process (null = torch's default)
    progress_bar: bool = True
    tensorboard: bool = True  # used when the tensorboard package is installed


@dataclass
class TrainConfig:
    mode: str = "from_scratch"
    seed: int = 0
    out_dir: str = "runs/hit-vqgan"
    resume: Optional[str] = None  # checkpoint path, or "auto" = out_dir/checkpoints/last.ckpt if present
    overwrite: bool = False  # replace an earlier run's checkpoint and exports in out_dir (else: an error)
    export: bool = True  # library-format and taming-format export at the end
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def shipped_train_configs() -> dict[str, Any]:
    """Shipped training configs by name (``demo`` -> ``hit_decoder/configs/train/demo.yaml``)."""
    return shipped_configs("train")


def load_train_config(source: str | os.PathLike | None = None, overrides: list[str] | None = None, *,
                      check: bool = True) -> TrainConfig:
    """Merge a YAML file (or shipped config name) and ``key=value`` overrides onto the schema.

    ``check=False`` skips :func:`validate` (for callers that fill in more fields first).
    """
    layers = [read_config_source(source, "train", "training config")] if source is not None else []
    cfg = strict_config(TrainConfig, layers, overrides, what="training config")
    if check:
        validate(cfg)
    return cfg


def train_config_from_dict(data: Any, overrides: list[str] | None = None) -> TrainConfig:
    """A validated :class:`TrainConfig` from a (nested) mapping or a config, plus ``key=value``
    overrides; unknown keys raise."""
    if isinstance(data, TrainConfig):
        data = config_to_dict(data)
    cfg = strict_config(TrainConfig, [(data, "config mapping")], overrides, what="training config")
    validate(cfg)
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def validate_swap_source(cfg: TrainConfig) -> None:
    m = cfg.model
    if m.diffusers_model:
        require(not m.vqgan_config and not m.vqgan_ckpt, "give either model.diffusers_model (a diffusers VQModel "
               "folder) or model.vqgan_config + model.vqgan_ckpt (a taming VQGAN), not both")
        return
    require(
        bool(m.vqgan_config) and bool(m.vqgan_ckpt),
        "mode=decoder_swap needs model.vqgan_config (taming YAML) and model.vqgan_ckpt (its .ckpt), or "
        "model.diffusers_model (a diffusers VQModel folder)",
    )


def validate(cfg: TrainConfig) -> None:
    """Cross-field and range checks OmegaConf's typing cannot express."""
    require(cfg.mode in MODES, f"mode must be one of {MODES}, got {cfg.mode!r}")
    require(0 <= cfg.seed < 2**32, f"seed must be a whole number in [0, 2**32), got {cfg.seed}")
    d, ls, o, t = cfg.data, cfg.loss, cfg.optim, cfg.trainer
    require(d.size >= 8, f"data.size must be >= 8 pixels, got {d.size}")
    require(d.resize is None or d.resize >= d.size, f"data.resize ({d.resize}) must be >= data.size ({d.size})")
    for name in ("batch_size", "val_batch_size", "val_max_images", "val_crops_per_image", "epoch_crops_per_image"):
        require(getattr(d, name) >= 1, f"data.{name} must be >= 1, got {getattr(d, name)}")
    require(d.num_workers >= 0, f"data.num_workers must be >= 0, got {d.num_workers}")
    if d.embedded_train is not None:
        from ..common.data import EMBEDDED_TRAIN

        unknown = [n for n in d.embedded_train if n not in EMBEDDED_TRAIN]
        require(bool(d.embedded_train) and not unknown, f"data.embedded_train must name one or more of the embedded "
               f"training photographs ({', '.join(EMBEDDED_TRAIN)}); got {list(d.embedded_train)}")
    require(0.0 < d.val_fraction < 1.0, f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
    require(ls.disc_loss in ("hinge", "non_saturating"),
           f"loss.disc_loss must be 'hinge' or 'non_saturating', got {ls.disc_loss!r}")
    for name in ("l1_weight", "l2_weight", "perceptual_weight", "codebook_weight", "disc_weight", "distill_weight"):
        require(getattr(ls, name) >= 0, f"loss.{name} must be >= 0, got {getattr(ls, name)}")
    require(ls.disc_train_start >= 0 and ls.disc_weight_start >= 0, "loss.disc_*_start must be >= 0 (batches)")
    require(ls.disc_weight_start >= ls.disc_train_start,
           f"loss.disc_weight_start ({ls.disc_weight_start}) must be >= loss.disc_train_start "
           f"({ls.disc_train_start}): the GAN term must not enter before the discriminator trains")
    require(cfg.model.diffusers_model is None or cfg.mode == "decoder_swap",
           "model.diffusers_model needs mode=decoder_swap (the diffusers model's encoder and codebook stay frozen)")
    require(ls.distill_weight == 0 or cfg.mode == "decoder_swap",
           "loss.distill_weight > 0 needs mode=decoder_swap (there is no CNN decoder to distil from)")
    require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), f"optim.betas must be two values in [0, 1), got {o.betas}")
    require(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    require(0 <= o.ema_decay < 1, f"optim.ema_decay must be in [0, 1), got {o.ema_decay}")
    require(o.grad_clip >= 0, f"optim.grad_clip must be >= 0, got {o.grad_clip}")
    require(o.dead_code_every >= 1, f"optim.dead_code_every must be >= 1, got {o.dead_code_every}")
    require(t.cpu_threads is None or t.cpu_threads >= 1, f"trainer.cpu_threads must be >= 1 or null, got {t.cpu_threads}")
    require(t.max_batches >= 1, f"trainer.max_batches must be >= 1, got {t.max_batches}")
    check_devices(t.devices, "trainer.devices")
    require(t.num_nodes >= 1, f"trainer.num_nodes must be >= 1, got {t.num_nodes}")
    for name in ("log_every", "val_every", "image_every", "ckpt_every"):
        require(getattr(t, name) >= 1, f"trainer.{name} must be >= 1 (batches), got {getattr(t, name)}")
    require(t.precision in ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"),
           f"trainer.precision must be '32-true' or 'bf16-mixed' (or '16-mixed'), got {t.precision!r}")
    if cfg.model.decoder == CNN_DECODER:
        require(cfg.model.diffusers_model is None, f"model.decoder={CNN_DECODER!r} is not available with "
               "model.diffusers_model (a fresh CNN decoder is built from a taming VQGAN's config)")
        require(not cfg.model.decoder_overrides, f"model.decoder_overrides apply to HiT decoders, not to "
               f"model.decoder={CNN_DECODER!r} (its CNN decoder mirrors model.encoder)")
    enc = cfg.model.encoder
    require(all(enc.ch * m % 32 == 0 for m in enc.ch_mult),
           f"model.encoder.ch ({enc.ch}) times every ch_mult entry ({list(enc.ch_mult)}) must be a multiple of 32 "
           "(taming's encoder uses GroupNorm with 32 groups)")
    require(cfg.model.n_embed >= 2 and cfg.model.embed_dim >= 1, "model.n_embed must be >= 2 and model.embed_dim >= 1")
