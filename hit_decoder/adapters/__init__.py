"""taming-transformers integration for hit-decoder (the only code that imports ``taming``).

Importing this package makes ``taming`` usable on today's torch / Lightning without the
``transformers`` package (see ``_compat``), then provides:

* :func:`load_vqgan` — a taming VQ model from its YAML/dict config and checkpoint, loaded safely
  (``weights_only``) and strictly, without building the training loss;
* :func:`swap_decoder` — replace its CNN decoder with a HiT decoder;
* :class:`HiTVQModel` / :class:`HiTGumbelVQ` — taming model classes with a HiT decoder, for
  taming-format YAMLs (``hit_decoder/configs/taming/``) and Net2NetTransformer ``first_stage_config``;
* :func:`decode_indices` / :func:`encode_indices` — between images and code grids;
  :func:`decode_codes` — code grids to images, whole or in (exact, for HiT decoders) tiles;
* :func:`save_vqmodel` / :func:`load_vqmodel` (self-describing safetensors) and
  :func:`export_taming` (``.ckpt`` + YAML that taming's own code loads);
* :func:`load_checkpoint_state` / :func:`read_checkpoint` — safe checkpoint reading (defined in
  :mod:`hit_decoder.checkpoints`, taming-free; the target allowlist in :mod:`hit_decoder.targets`);
  :func:`describe_checkpoint` — what a checkpoint holds;
* :func:`build_discriminator` / :func:`build_net2net` — taming's PatchGAN and transformer prior;
* :func:`load_model` — a library file or a diffusers folder / file (``hit_decoder.adapters.diffusers``,
  the diffusers extra, imported only for those) for the taming-interface code.
"""

from ..checkpoints import (
    UnsafeCheckpointError,
    check_weights_only,
    extract_state_dict,
    first_stage_state,
    load_checkpoint_state,
    load_state_strict,
    read_checkpoint,
)
from ..targets import ALLOWED_TARGETS, UnsupportedTargetError, check_targets
from ._compat import ensure_taming, top_k_top_p_filtering

ensure_taming()  # before the modules below, which import taming

from ..sampling import register_prior_adapter
from .codes import (
    codebook_fingerprint,
    codebook_size,
    decode_codes,
    decode_indices,
    downsample_factor,
    encode_indices,
)
from .export import FORMAT_VQMODEL, export_taming, load_vqmodel, save_vqmodel
from .gpt_sampler import TamingGPTPrior
from .inspection import describe_checkpoint, format_description
from .loading import TARGETS, build_vqmodel, load_vqgan, resolve_model_config, taming_config
from .models import HiTGumbelVQ, HiTVQModel, resolve_decoder_config
from .sources import diffusers_adapter, is_diffusers_source, load_model
from .stages import build_discriminator, build_net2net
from .swap import swap_decoder

register_prior_adapter(TamingGPTPrior.wrap)  # sample_sliding_window accepts a Net2NetTransformer

__all__ = [
    "ensure_taming",
    "top_k_top_p_filtering",
    "load_vqgan",
    "load_checkpoint_state",
    "read_checkpoint",
    "extract_state_dict",
    "first_stage_state",
    "load_state_strict",
    "UnsafeCheckpointError",
    "check_weights_only",
    "swap_decoder",
    "downsample_factor",
    "resolve_decoder_config",
    "decode_indices",
    "decode_codes",
    "encode_indices",
    "codebook_size",
    "codebook_fingerprint",
    "HiTVQModel",
    "HiTGumbelVQ",
    "save_vqmodel",
    "load_vqmodel",
    "export_taming",
    "FORMAT_VQMODEL",
    "taming_config",
    "resolve_model_config",
    "build_vqmodel",
    "TARGETS",
    "ALLOWED_TARGETS",
    "UnsupportedTargetError",
    "check_targets",
    "describe_checkpoint",
    "build_discriminator",
    "build_net2net",
    "format_description",
    "load_model",
    "is_diffusers_source",
    "diffusers_adapter",
    "TamingGPTPrior",
]
