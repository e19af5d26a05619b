"""Transformer priors over code grids: build, train (Lightning 2), save and load.

A prior is a taming ``Net2NetTransformer`` (minGPT over raster-ordered codes, unconditional with an
SOS token or class-conditional with taming's ``Labelator``) whose first stage is a taming VQ model
with a HiT (or any) decoder. Training follows taming: the transformer learns ``p(code_k | codes
before it, condition)`` on random ``crop x crop`` windows of latent code grids — here crops of the
grids of whole encoded images, which are encoded once before training (plus their mirror images).
The crop is the window the sliding-window sampler uses later.

Files:

* ``prior.safetensors`` (:func:`save_prior` / :func:`load_prior`): the GPT's weights plus, in the
  metadata, everything needed to rebuild the prior (GPT shape, conditioning, window, and the
  codebook size and downsampling factor of the first stage it was trained on). The first stage is
  not inside: give it when loading (the ``--model`` of ``hit-decoder sample``).
* Lightning checkpoints ``out_dir/checkpoints/last.ckpt`` while training (written atomically;
  ``resume=auto`` continues from it with the same data order).

Configs (:class:`PriorConfig`, YAML + ``key=value`` overrides, unknown keys rejected): see
``hit_decoder/configs/prior/*.yaml``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .fileio import atomic_path

__all__ = [
    "PriorConfig",
    "load_prior_config",
    "build_prior",
    "save_prior",
    "load_prior",
    "prior_info",
    "train_prior",
    "PriorResult",
    "FORMAT_PRIOR",
]

log = logging.getLogger("hit_decoder.prior")

FORMAT_PRIOR = "hit-decoder/prior"
_FORMAT_VERSION = "1"
CONDITIONING = ("unconditional", "class")


# ----------------------------------------------------------------------------- config
@dataclass
class FirstStageConfig:
    """Where the codes come from. Give exactly one of ``model``, ``taming_config`` (+ ``taming_ckpt``)
    or ``untrained``."""

    model: Optional[str] = None  # hit-decoder VQ model file (.safetensors; `hit-decoder train` exports one)
    taming_config: Optional[str] = None  # a taming VQGAN YAML ...
    taming_ckpt: Optional[str] = None  # ... and its checkpoint
    untrained: Optional[str] = None  # the *untrained* first stage of a training config (name or YAML): smoke tests only
    allow_unsafe_pickle: bool = False


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
    conditioning: str = "unconditional"  # "unconditional" (SOS token) | "class" (class label token)
    sos_token: int = 0
    pkeep: float = 1.0  # taming's token dropout: keep this share of input codes, replace the rest at random
    first_stage: FirstStageConfig = field(default_factory=FirstStageConfig)
    gpt: GPTShape = field(default_factory=GPTShape)
    data: PriorDataConfig = field(default_factory=PriorDataConfig)
    optim: PriorOptim = field(default_factory=PriorOptim)
    trainer: PriorTrainer = field(default_factory=PriorTrainer)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def validate_prior_config(cfg: PriorConfig) -> None:
    fs = cfg.first_stage
    given = [n for n in ("model", "taming_config", "untrained") if getattr(fs, n)]
    _check(len(given) == 1, "first_stage: give exactly one of first_stage.model (hit-decoder VQ model file), "
           f"first_stage.taming_config (+ taming_ckpt) or first_stage.untrained (a training config); got {given or 'none'}")
    _check(fs.taming_ckpt is None or fs.taming_config is not None, "first_stage.taming_ckpt needs first_stage.taming_config")
    _check(cfg.conditioning in CONDITIONING, f"conditioning must be one of {CONDITIONING}, got {cfg.conditioning!r}")
    _check(0.0 < cfg.pkeep <= 1.0, f"pkeep must be in (0, 1], got {cfg.pkeep}")
    g, d, t = cfg.gpt, cfg.data, cfg.trainer
    _check(g.n_layer >= 1 and g.n_head >= 1 and g.n_embd % g.n_head == 0,
           f"gpt: need n_layer >= 1 and n_embd ({g.n_embd}) divisible by n_head ({g.n_head})")
    _check(d.crop >= 2, f"data.crop must be >= 2 codes, got {d.crop}")
    for name in ("batch_size", "crops_per_grid"):
        _check(getattr(d, name) >= 1, f"data.{name} must be >= 1, got {getattr(d, name)}")
    _check(d.resize is None or d.resize >= 8, f"data.resize must be >= 8 pixels, got {d.resize}")
    _check(cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}")
    _check(t.max_batches >= 1 and t.log_every >= 1 and t.ckpt_every >= 1,
           "trainer.max_batches, trainer.log_every and trainer.ckpt_every must be >= 1")


def shipped_prior_configs() -> dict[str, Any]:
    """Shipped prior configs by name (``demo`` -> ``hit_decoder/configs/prior/demo.yaml``)."""
    root = resources.files("hit_decoder.configs") / "prior"
    return {f.name[: -len(".yaml")]: f for f in root.iterdir() if f.name.endswith(".yaml")}


def load_prior_config(source: str | os.PathLike | None = None, overrides: list[str] | None = None) -> PriorConfig:
    """A YAML file or shipped config name, plus ``key=value`` overrides, merged strictly onto
    :class:`PriorConfig` (a misspelt key raises ``ValueError`` naming it)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    layers: list[tuple[Any, str]] = []
    if source is not None:
        shipped = shipped_prior_configs()
        if str(source) in shipped:
            layers.append((shipped[str(source)].read_text(), f"shipped prior config {source!r}"))
        elif Path(source).is_file():
            layers.append((Path(source).read_text(), str(source)))
        else:
            raise FileNotFoundError(f"prior config {str(source)!r} is neither a file nor a shipped config "
                                    f"(shipped: {', '.join(sorted(shipped))})")
    bad = [o for o in overrides or [] if "=" not in o]
    if bad:
        raise ValueError(f"overrides must look like key=value (e.g. trainer.max_batches=100), got {bad}")
    conf = OmegaConf.structured(PriorConfig)
    OmegaConf.set_struct(conf, True)
    try:
        for text, _ in layers:
            conf = OmegaConf.merge(conf, OmegaConf.create(text))
        if overrides:
            conf = OmegaConf.merge(conf, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        where = layers[-1][1] if layers else "overrides"
        raise ValueError(f"{where} or overrides: invalid prior config key or value {getattr(exc, 'full_key', None)!r}: "
                         f"{getattr(exc, 'msg', exc)}. Valid keys are the fields of hit_decoder.prior.PriorConfig "
                         "(see hit_decoder/configs/prior/*.yaml)") from None
    cfg = OmegaConf.to_object(conf)
    validate_prior_config(cfg)
    return cfg


# ----------------------------------------------------------------------------- the model
def _quiet():
    return contextlib.redirect_stdout(io.StringIO())  # taming prints its set-up


def build_prior(first_stage: nn.Module, gpt: dict[str, Any], conditioning: dict[str, Any]) -> nn.Module:
    """A taming ``Net2NetTransformer`` over ``first_stage`` (a taming VQ model instance).

    ``gpt``: minGPT arguments (``vocab_size``, ``block_size``, ``n_layer``, ...).
    ``conditioning``: ``{"kind": "unconditional", "sos_token": t}`` or
    ``{"kind": "class", "n_classes": K}``. taming builds its first stage from a config; here it is
    built as a placeholder and replaced by ``first_stage``, which — as taming does with the stages
    it builds — is put in eval mode with ``train()`` disabled and its weights frozen.
    """
    from . import adapters  # noqa: F401  (taming import shims)
    from taming.models.cond_transformer import Net2NetTransformer, disabled_train

    kind = conditioning.get("kind")
    tcfg = {"target": "taming.modules.transformer.mingpt.GPT", "params": dict(gpt)}
    with _quiet():
        if kind == "unconditional":
            net = Net2NetTransformer(tcfg, {"target": "torch.nn.Identity"}, "__is_unconditional__",
                                     unconditional=True, sos_token=int(conditioning.get("sos_token", 0)))
        elif kind == "class":
            net = Net2NetTransformer(tcfg, {"target": "torch.nn.Identity"},
                                     {"target": "taming.modules.util.Labelator",
                                      "params": {"n_classes": int(conditioning["n_classes"])}},
                                     cond_stage_key="class_label")
        else:
            raise ValueError(f"conditioning kind must be one of {CONDITIONING}, got {kind!r}")
    first_stage.eval().requires_grad_(False)
    first_stage.train = disabled_train
    net.first_stage_model = first_stage
    return net


def save_prior(net: nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write the GPT weights of ``net`` and ``info`` (see :func:`prior_info`) atomically."""
    from safetensors.torch import save_file

    from .serialization import strip_wrapper_prefixes

    state = {k: v.detach().cpu().contiguous() for k, v in strip_wrapper_prefixes(net.transformer.state_dict()).items()
             if not k.endswith("attn.mask")}  # the causal masks are rebuilt from the config
    meta = {"format": FORMAT_PRIOR, "version": _FORMAT_VERSION, "info": json.dumps(info)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


_INFO_KEYS = {"gpt": {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "embd_pdrop", "resid_pdrop",
                       "attn_pdrop"},
              "first_stage": {"codebook_size", "downsample_factor", "source", "file", "codebook_sha256"}}
_CONDITIONING_KEYS = {"unconditional": {"kind", "sos_token"}, "class": {"kind", "n_classes", "class_names"}}
_REQUIRED = {"gpt": {"vocab_size", "block_size", "n_layer", "n_head", "n_embd"},
             "first_stage": {"codebook_size", "downsample_factor"}}


def _check_info(info: Any, path: Any) -> dict[str, Any]:
    """Prior metadata, checked key by key: edited or foreign metadata is an error naming the file and key."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: prior metadata 'info' {what}; the file was edited or not written by "
                          "hit_decoder.prior.save_prior — train or export the prior again")

    if not isinstance(info, dict):
        raise bad(f"is a {type(info).__name__}, expected a JSON object")
    expected = {"gpt", "conditioning", "window", "first_stage"}
    if set(info) != expected:
        raise bad(f"has keys {sorted(info)}, expected {sorted(expected)}")
    for section, allowed in _INFO_KEYS.items():
        part = info[section]
        if not isinstance(part, dict) or set(part) - allowed or _REQUIRED[section] - set(part):
            keys = sorted(part) if isinstance(part, dict) else type(part).__name__
            raise bad(f"section {section!r} has {keys}; allowed keys {sorted(allowed)}, required {sorted(_REQUIRED[section])}")
    for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        if not isinstance(info["gpt"][key], int) or isinstance(info["gpt"][key], bool) or info["gpt"][key] < 1:
            raise bad(f"gpt.{key} = {info['gpt'][key]!r} is not a positive integer")
    cond = info["conditioning"]
    kind = cond.get("kind") if isinstance(cond, dict) else None
    if kind not in _CONDITIONING_KEYS or set(cond) - _CONDITIONING_KEYS[kind]:
        raise bad(f"section 'conditioning' is {cond!r}; expected kind 'unconditional' (sos_token) or 'class' "
                  "(n_classes, class_names)")
    window = info["window"]
    if not (isinstance(window, list) and len(window) == 2 and all(isinstance(v, int) and v >= 1 for v in window)):
        raise bad(f"window = {window!r} is not two positive integers")
    return info


def prior_info(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a prior file: ``gpt``, ``conditioning``, ``window``, ``first_stage`` (checked)."""
    from safetensors import safe_open

    from .serialization import read_safetensors

    read_safetensors(path, FORMAT_PRIOR)  # existence / format checks with clear errors
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    try:
        info = json.loads(meta["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: prior metadata 'info' is missing or not valid JSON ({exc}); the file was edited "
                         "or not written by hit_decoder.prior.save_prior — train or export the prior again") from None
    return _check_info(info, path)


def load_prior(path: str | os.PathLike, first_stage: nn.Module, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a prior saved by :func:`save_prior` over ``first_stage`` (strict weight loading; the
    first stage must have the codebook the prior was trained on: same size, factor and code vectors)."""
    import warnings

    from .serialization import read_safetensors

    state, _ = read_safetensors(path, FORMAT_PRIOR)
    info = prior_info(path)
    expected, got = info["first_stage"], _first_stage_summary(first_stage)
    for key in ("codebook_size", "downsample_factor"):
        if expected[key] != got[key]:
            raise ValueError(
                f"{path} was trained on codes of a first stage with {key}={expected[key]}, but the given model "
                f"has {key}={got[key]}; sample with the VQ model the prior was trained on"
            )
    if "codebook_sha256" not in expected:
        warnings.warn(f"{path} records no codebook fingerprint (written before it was recorded): cannot check that "
                      "the given VQ model has the codebook the prior was trained on", stacklevel=2)
    elif expected["codebook_sha256"] != got["codebook_sha256"]:
        raise ValueError(
            f"{path} was trained on the codes of another codebook (sha256 {expected['codebook_sha256'][:12]}..., the "
            f"given model's is {got['codebook_sha256'][:12]}...): same size, different code vectors, so its tokens "
            f"would decode to other images; sample with the VQ model the prior was trained on ({expected.get('source')})"
        )
    net = build_prior(first_stage, info["gpt"], info["conditioning"])
    missing, unexpected = net.transformer.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("attn.mask")]
    if missing or unexpected:
        raise ValueError(f"{path}: GPT weights do not match its config; missing {missing}, unexpected {unexpected}")
    return net.to(map_location).eval()


def _first_stage_summary(vq: nn.Module) -> dict[str, Any]:
    from . import adapters

    return {"codebook_size": adapters.codebook_size(vq.quantize), "downsample_factor": adapters.downsample_factor(vq),
            "codebook_sha256": adapters.codebook_fingerprint(vq.quantize)}


# ----------------------------------------------------------------------------- first stage + data
def load_first_stage(cfg: FirstStageConfig, seed: int = 0) -> tuple[nn.Module, str]:
    """The VQ model whose codes the prior learns, and a description of where it came from."""
    from . import adapters

    if cfg.model:
        return adapters.load_vqmodel(cfg.model), f"VQ model {cfg.model}"
    if cfg.taming_config:
        vq = adapters.load_vqgan(cfg.taming_config, cfg.taming_ckpt, allow_unsafe_pickle=cfg.allow_unsafe_pickle)
        return vq, f"taming VQGAN {cfg.taming_config}" + (f" + {cfg.taming_ckpt}" if cfg.taming_ckpt else " (random weights)")
    from .training import load_train_config
    from .training.models import build_models

    train_cfg = load_train_config(cfg.untrained, [f"seed={seed}"])
    log.warning("first_stage.untrained=%s: the prior learns the codes of an UNTRAINED VQ model (smoke test). "
                "Train one with `hit-decoder train --config %s` and set first_stage.model=<out_dir>/export/model.safetensors",
                cfg.untrained, cfg.untrained)
    return build_models(train_cfg).vq.eval(), f"untrained first stage of training config {cfg.untrained!r}"


def _images(cfg: PriorDataConfig) -> list[tuple[str, Any, str]]:
    """``(name, PIL image, class name)`` for every source image."""
    from .training.data import EMBEDDED_TRAIN, embedded_photographs, load_rgb, resolve_images

    if cfg.images is None:
        return [(n, img, n) for n, img in embedded_photographs(EMBEDDED_TRAIN)]
    root = Path(cfg.images).expanduser()
    out = []
    for p in resolve_images(cfg.images, cfg.root):
        try:
            img = load_rgb(p)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            log.warning("skipping unreadable image %s (%s)", p, exc)
            continue
        parent = p.parent.relative_to(root).as_posix() if p.parent != root and root in p.parents else ""
        out.append((str(p), img, parent))
    if not out:
        raise ValueError(f"no readable images under {cfg.images}")
    return out


def _fit(img, resize: int | None, factor: int):
    """Optionally resize (shorter side), then centre-crop to multiples of ``factor``: RGB ``(3, H, W)`` in [-1, 1]."""
    import numpy as np
    from PIL import Image

    if resize is not None:
        w, h = img.size
        s = resize / min(w, h)
        img = img.resize((max(resize, round(w * s)), max(resize, round(h * s))), Image.BICUBIC)
    w, h = img.size
    W, H = w // factor * factor, h // factor * factor
    left, top = (w - W) // 2, (h - H) // 2
    arr = np.asarray(img.crop((left, top, left + W, top + H)), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)  # (3, H, W)


@torch.no_grad()
def encode_grids(vq: nn.Module, cfg: PriorDataConfig, class_ids: bool) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """Encode every source image (and its mirror) once: code grids ``(h, w)``, class ids, class names."""
    from . import adapters

    factor = adapters.downsample_factor(vq)
    images = _images(cfg)
    names = sorted({c for _, _, c in images})
    if class_ids and names == [""]:
        raise ValueError(f"conditioning=class needs one subfolder per class under {cfg.images}; all images are in the top folder")
    grids, labels = [], []
    for name, img, cls in images:
        x = _fit(img, cfg.resize, factor)
        if min(x.shape[1:]) < cfg.crop * factor:
            raise ValueError(
                f"image {name} is {x.shape[2]}x{x.shape[1]} px after resizing, below one {cfg.crop}x{cfg.crop}-code crop "
                f"({cfg.crop * factor} px at f{factor}); raise data.resize or lower data.crop"
            )
        for view in ([x, x.flip(-1)] if cfg.flip else [x]):
            grids.append(adapters.encode_indices(vq, view[None].to(vq.post_quant_conv.weight))[0].cpu())  # (h, w)
            labels.append(names.index(cls))
    return grids, labels, names


class CodeCropDataset(torch.utils.data.Dataset):
    """Random ``crop x crop`` windows of code grids; the crop of stream position ``p`` is a pure
    function of ``(seed, p)`` (keys come from :class:`~hit_decoder.training.data.StepBatchSampler`)."""

    def __init__(self, grids: list[torch.Tensor], labels: list[int], crop: int, seed: int, crops_per_grid: int) -> None:
        self.grids, self.labels, self.crop, self.seed = grids, labels, crop, seed
        self.crops_per_grid = crops_per_grid

    def __len__(self) -> int:
        return len(self.grids) * self.crops_per_grid

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        from .training.data import sample_generator

        index, position = key if isinstance(key, tuple) else (int(key), int(key))
        k = index % len(self.grids)
        grid, gen = self.grids[k], sample_generator(self.seed, position)
        top = int(torch.randint(0, grid.shape[0] - self.crop + 1, (1,), generator=gen))
        left = int(torch.randint(0, grid.shape[1] - self.crop + 1, (1,), generator=gen))
        return {"codes": grid[top : top + self.crop, left : left + self.crop], "label": torch.tensor(self.labels[k])}


# ----------------------------------------------------------------------------- Lightning
def _lightning_module():
    import pytorch_lightning as pl

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
            B = codes.shape[0]
            z = self.net.permuter(codes.reshape(B, -1))  # (B, crop*crop)
            _, c = self.net.encode_to_c(labels if self.cfg.conditioning == "class" else codes)  # (B, 1)
            inputs = z
            if self.cfg.pkeep < 1.0:  # taming's token dropout, from a generator seeded by the batch
                g = torch.Generator(device="cpu").manual_seed(self.cfg.seed * 7919 + self.batches_done)
                keep = (torch.rand(z.shape, generator=g) < self.cfg.pkeep).to(z.device)
                noise = torch.randint(0, self.net.transformer.config.vocab_size, z.shape, generator=g).to(z.device)
                inputs = torch.where(keep, z, noise)
            logits, _ = self.net.transformer(torch.cat([c, inputs], dim=1)[:, :-1])  # (B, L + n - 1, V)
            logits = logits[:, c.shape[1] - 1 :]  # (B, n, V): output i predicts code i
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), z.reshape(-1))

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            loss = self.loss(batch["codes"], batch["label"])
            self.batches_done += 1
            self.losses.append(float(loss.detach()))
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self):
            self.net.learning_rate = self.cfg.optim.lr
            return self.net.configure_optimizers()

        def train_dataloader(self):
            from .training.data import ResumableDataLoader, StepBatchSampler

            d = self.cfg.data
            sampler = StepBatchSampler(len(self.dataset), d.batch_size, self.cfg.trainer.max_batches, self.cfg.seed,
                                       start_batch=self.batches_done)
            return ResumableDataLoader(self.dataset, batch_sampler=sampler, num_workers=d.num_workers,
                                       collate_fn=_collate)

        def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            checkpoint["hit_decoder_batches_done"] = self.batches_done

        def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            self.batches_done = int(checkpoint.get("hit_decoder_batches_done", 0))

    return PriorModule


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {"codes": torch.stack([it["codes"] for it in items]), "label": torch.stack([it["label"] for it in items])}


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
                callbacks: Sequence[Any] = ()) -> PriorResult:
    """Train a prior as ``config`` says; writes ``out_dir/prior.safetensors``, ``checkpoints/last.ckpt``,
    ``logs/`` (CSV) and ``result.json``. ``resume`` continues an interrupted run from its batch (same
    data order and optimiser state), or a finished one up to a larger ``trainer.max_batches``."""
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    from .training.callbacks import AtomicCheckpoint
    from .training.models import seeded

    cfg = config if isinstance(config, PriorConfig) else load_prior_config(config, overrides)
    if isinstance(config, PriorConfig):
        validate_prior_config(cfg)
    from .training.run import prepare_out_dir

    resume = prepare_out_dir(cfg, PRIOR_OUTPUTS)
    out = Path(cfg.out_dir)

    vq, source = load_first_stage(cfg.first_stage, cfg.seed)
    class_ids = cfg.conditioning == "class"
    grids, labels, names = encode_grids(vq, cfg.data, class_ids)
    vocab = _first_stage_summary(vq)["codebook_size"]
    n_codes = sum(g.numel() for g in grids)
    used = len(torch.cat([g.reshape(-1) for g in grids]).unique())
    log.info("first stage: %s; %d code grids (%d codes, %d of %d codebook entries used)", source, len(grids), n_codes, used, vocab)
    if class_ids and len(names) > vocab:
        raise ValueError(f"{len(names)} classes but the codebook has {vocab} entries: taming's Labelator feeds class ids "
                         "through the code embedding, so a class-conditional prior needs n_classes <= codebook size")
    conditioning = ({"kind": "class", "n_classes": len(names), "class_names": names} if class_ids
                    else {"kind": "unconditional", "sos_token": cfg.sos_token})
    _check(class_ids or 0 <= cfg.sos_token < vocab, f"sos_token must be in [0, {vocab}) (the codebook), got {cfg.sos_token}")
    crop = cfg.data.crop
    gpt = {"vocab_size": vocab, "block_size": crop * crop, **vars(cfg.gpt)}  # 1 cond token + crop^2 - 1 inputs
    with seeded(cfg.seed):
        net = build_prior(vq, gpt, conditioning)
        net.pkeep = cfg.pkeep
    info = {"gpt": gpt, "conditioning": conditioning, "window": [crop, crop],
            "first_stage": {**_first_stage_summary(vq), "source": source}}
    if cfg.first_stage.untrained:  # the random first stage exists nowhere else: keep it for sampling
        from . import adapters

        info["first_stage"]["file"] = str(adapters.save_vqmodel(vq, out / "first_stage.safetensors"))

    module = _lightning_module()(net, cfg, CodeCropDataset(grids, labels, crop, cfg.seed, cfg.data.crops_per_grid))
    t = cfg.trainer
    ckpt_cb = AtomicCheckpoint(out / "checkpoints", t.ckpt_every, t.max_batches)
    trainer = pl.Trainer(
        # one optimiser step per batch: max_steps counts batches, across resumptions
        accelerator=t.accelerator, devices=t.devices, precision=t.precision, max_epochs=-1, max_steps=t.max_batches,
        log_every_n_steps=t.log_every, enable_progress_bar=t.progress_bar, enable_model_summary=False,
        enable_checkpointing=False, logger=CSVLogger(save_dir=str(out), name="logs"), callbacks=[ckpt_cb, *callbacks],
        use_distributed_sampler=False, default_root_dir=str(out), num_sanity_val_steps=0,
    )
    trainer.fit(module, ckpt_path=str(resume) if resume else None, weights_only=True)

    prior_path = save_prior(net, out / "prior.safetensors", info)
    result = PriorResult(out, prior_path, module.batches_done, module.losses, ckpt_cb.last_path)
    with atomic_path(out / "result.json") as tmp:
        tmp.write_text(json.dumps({"prior": str(prior_path), "batches_done": result.batches_done,
                                   "losses": result.losses, "info": info}, indent=2))
    return result
