"""Transformer priors over code grids: config, model + file, data, training.

A prior is a taming ``Net2NetTransformer`` (minGPT over raster-ordered codes, unconditional with an
SOS token or class-conditional with taming's ``Labelator``) whose first stage is a taming VQ model
with a HiT (or any) decoder, or a :class:`WindowedPrior` over the same codes (``architecture:
windowed``). Training follows taming: the transformer learns ``p(code_k | codes
before it, condition)`` on random ``crop x crop`` windows of latent code grids — here crops of the
grids of whole encoded images, which are encoded once before training (plus their mirror images).
The crop is the window the sliding-window sampler uses later.

Modules:

* :mod:`.config` — :class:`PriorConfig` (YAML + ``key=value`` overrides, unknown keys rejected;
  ``hit_decoder/configs/prior/*.yaml``);
* :mod:`.model` — :func:`build_prior`, :func:`save_prior`, :func:`read_prior` (a file read once),
  :func:`prior_info`, :func:`load_prior`. ``prior.safetensors`` holds the GPT's weights plus
  everything needed to rebuild the prior (GPT shape, conditioning, window, and the codebook size,
  factor and fingerprint of the first stage it was trained on). The first stage is not inside:
  give it when loading (the ``--model`` of ``hit-decoder sample``);
* :mod:`.data` — the first stage, encoded code grids, :class:`CodeCropDataset`;
* :mod:`.train` — :class:`PriorModule` (Lightning) and :func:`train_prior`; imported on first use,
  so that loading a prior for sampling does not import Lightning.

* :mod:`.windowed` — :class:`WindowedPrior` (``architecture: windowed``): a prior whose context is a
  causal 2-D neighbourhood with relative positions, trained on the same crops and sampled by
  streaming over a canvas of any size (one token forward per code). Files, data and training are
  shared with the taming GPT.
"""

from __future__ import annotations

from typing import Any

from .config import CONDITIONING, PriorConfig, load_prior_config, shipped_prior_configs, validate_prior_config
from .model import FORMAT_PRIOR, PriorFile, build_prior, first_stage_summary, load_prior, prior_info, read_prior, save_prior
from .windowed import WindowedPrior

__all__ = [
    "PriorConfig",
    "WindowedPrior",
    "load_prior_config",
    "validate_prior_config",
    "shipped_prior_configs",
    "CONDITIONING",
    "build_prior",
    "save_prior",
    "read_prior",
    "PriorFile",
    "load_prior",
    "prior_info",
    "first_stage_summary",
    "train_prior",
    "PriorResult",
    "PRIOR_OUTPUTS",
    "FORMAT_PRIOR",
]

_TRAIN = ("train_prior", "PriorResult", "PriorModule", "PRIOR_OUTPUTS")


def __getattr__(name: str) -> Any:
    if name in _TRAIN:  # Lightning is imported only when training
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
