"""Typed, validated configuration of a :class:`~hit_decoder.decoder.HiTDecoder`.

One dataclass, normalised once in ``__post_init__`` (lists become tuples, per-stage tables are
checked against each other). ``from_dict`` is strict: an unknown key raises, naming the key.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["HiTDecoderConfig", "int_pair"]


def int_pair(name: str, value: int | Sequence[int], minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int, or a pair ``(rows, cols)``) as a pair of ints ``>= minimum``; the one check
    of a 2-D size or step argument (tile, overlap, window, shape, ...)."""
    try:  # integers only (operator.index): 16.5 must not silently become 16, nor True become 1
        items = (value, value) if not isinstance(value, Sequence) else tuple(value)
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        pair = tuple(operator.index(v) for v in items)
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < minimum:
        what = " (a positive int)" if minimum == 1 else ""
        raise ValueError(f"{name} must be an int >= {minimum}{what} or a pair (rows, cols) of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _as_int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    try:
        out = tuple(int(v) for v in value)
    except TypeError as exc:
        raise ValueError(f"HiTDecoderConfig.{name} must be a sequence of ints, got {value!r}") from exc
    return out


_CHOICES = {
    "cross_attention": ("pixel", "cell"),
    "upsample": ("bilinear", "pixel_shuffle", "bilinear_all"),
    "rgb_upsample": ("bilinear", "nearest"),
}


#: keys that decoder files and YAMLs of hit-decoder <= 0.2 carried in the architecture but that are
#: runtime settings now (``HiTDecoder(config, inference_chunk_tokens=...)``): ignored when read
RETIRED_KEYS = ("inference_chunk_tokens",)


@dataclass(frozen=True)
class HiTDecoderConfig:
    """Architecture of a HiT decoder.

    Stage ``i`` runs at ``2**i`` times the latent resolution; the decoder has
    ``len(channels)`` stages, so its upsampling factor is ``2 ** (len(channels) - 1)``.
    The first ``num_attention_stages`` stages use multi-axis blocked self-attention
    (regional blocks of ``block_size[i]`` squared tokens, dilated groups of
    ``dilation_grid[i]`` squared tokens at stride ``block_size[i]``); the rest are MLP-only.
    Every stage starts with a cross-attention block whose keys/values are the latent code
    tokens around each pixel.

    Seam-free parts (each measured in BENCHMARKS.md, "Decoder ablation"; the defaults):

    * ``cross_attention="pixel"``: pixel-centred code lookup, codes weighted by a tent of radius
      ``cross_window / 2`` codes around the pixel's centre, so weights vary continuously across
      cell borders. ``"cell"`` (v1): the pixels of a code's cell read the ``cross_window``-wide
      square around that code, switching key sets at every cell border.
    * ``upsample="bilinear"``: linear layer, then bilinear x2 into every MLP-only stage.
      ``"pixel_shuffle"`` (v1): depth-to-space x2 (C -> C/4), then linear — children of one token
      differ by their channel slice, a 2-pixel checkerboard source. Attention stages always
      upsample by depth-to-space (see :meth:`upsample_into`).
    * ``mlp_conv``: depthwise 3x3 convolution inside the MLPs of the MLP-only stages (Mix-FFN).
    * ``rgb_upsample="bilinear"``: the running RGB image of the skip outputs is upsampled
      bilinearly (StyleGAN2's [1, 3, 3, 1] filter) instead of ``"nearest"``.
    * ``out_conv``: the last to-RGB layer is a 3x3 convolution instead of a per-pixel linear.
    """

    z_channels: int = 256
    channels: tuple[int, ...] = (512, 256, 128, 64, 64)
    depths: tuple[int, ...] = (2, 2, 2, 1, 1)
    heads: tuple[int, ...] = (8, 4, 4, 4, 4)
    num_attention_stages: int = 3
    block_size: tuple[int, ...] = (4, 8, 8)
    dilation_grid: tuple[int, ...] = (4, 4, 4)
    cross_window: int = 3
    cross_attention: str = "pixel"
    upsample: str = "bilinear"
    mlp_conv: bool = True
    rgb_upsample: str = "bilinear"
    out_conv: bool = True
    latent_dim: int | None = None
    mlp_ratio: float = 4.0
    out_channels: int = 3
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # frozen dataclass
        for name in ("channels", "depths", "heads", "block_size", "dilation_grid"):
            set_(name, _as_int_tuple(name, getattr(self, name)))
        n = len(self.channels)
        if n < 1:
            raise ValueError("HiTDecoderConfig.channels must name at least one stage")
        for name in ("depths", "heads"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"HiTDecoderConfig.{name} has {len(getattr(self, name))} entries but channels has "
                    f"{n}: give one value per stage"
                )
        if not 0 <= self.num_attention_stages <= n:
            raise ValueError(
                f"HiTDecoderConfig.num_attention_stages={self.num_attention_stages} must be between 0 "
                f"and the number of stages ({n})"
            )
        for name in ("block_size", "dilation_grid"):
            if len(getattr(self, name)) != self.num_attention_stages:
                raise ValueError(
                    f"HiTDecoderConfig.{name} has {len(getattr(self, name))} entries, expected one per "
                    f"attention stage ({self.num_attention_stages})"
                )
            if any(v < 1 for v in getattr(self, name)):
                raise ValueError(f"HiTDecoderConfig.{name} entries must be >= 1, got {getattr(self, name)}")
        for i, (c, h) in enumerate(zip(self.channels, self.heads)):
            if self.depths[i] < 1:
                raise ValueError(f"stage {i}: depths must be >= 1 (got {self.depths[i]})")
            if c < 1 or h < 1 or c % h:
                raise ValueError(
                    f"stage {i}: channels {c} must be a positive multiple of heads {h}"
                )
            if i < self.num_attention_stages and h % 2:
                raise ValueError(
                    f"stage {i}: attention stages split heads into regional and dilated halves, "
                    f"so heads must be even (got {h})"
                )
            if i > 0 and self.channels[i - 1] % 4:
                raise ValueError(
                    f"stage {i - 1}: channels {self.channels[i - 1]} must be divisible by 4 "
                    "(depth-to-space x2 upsampling maps C to C/4)"
                )
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"HiTDecoderConfig.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("mlp_conv", "out_conv"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"HiTDecoderConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.cross_window < 1 or self.cross_window % 2 == 0:
            raise ValueError(f"cross_window must be a positive odd number, got {self.cross_window}")
        if self.z_channels < 1 or self.out_channels < 1:
            raise ValueError("z_channels and out_channels must be positive")
        if self.latent_dim is None:
            set_("latent_dim", self.channels[0])

    # ------------------------------------------------------------------ derived
    @property
    def num_stages(self) -> int:
        return len(self.channels)

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent code along each axis (taming's ``f``)."""
        return 2 ** (self.num_stages - 1)

    def is_attention_stage(self, i: int) -> bool:
        return i < self.num_attention_stages

    def upsample_into(self, i: int) -> str:
        """How stage ``i > 0`` upsamples its input: ``upsample`` into MLP-only stages;
        depth-to-space into attention stages, whose block attention mixes the four children at
        once (bilinear there widens the exact-tiling margin by whole super-windows), unless
        ``upsample="bilinear_all"``."""
        if self.upsample == "bilinear_all":
            return "bilinear"
        return self.upsample if not self.is_attention_stage(i) else "pixel_shuffle"

    def has_rgb_head(self, i: int) -> bool:
        """To-RGB heads sit in every MLP-only stage and always in the last stage."""
        return not self.is_attention_stage(i) or i == self.num_stages - 1

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> HiTDecoderConfig:
        """Build from a mapping (YAML / JSON / OmegaConf). Unknown keys raise ``ValueError``;
        :data:`RETIRED_KEYS` (runtime settings that older files saved with the architecture) are
        ignored."""
        merged = {k: v for k, v in {**dict(data), **overrides}.items() if k not in RETIRED_KEYS}
        known = set(cls.field_names())
        unknown = sorted(k for k in merged if k not in known)
        if unknown:
            raise ValueError(
                f"unknown decoder config key(s) {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**merged)

    def replace(self, **overrides: Any) -> HiTDecoderConfig:
        return self.from_dict(self.to_dict(), **overrides)
