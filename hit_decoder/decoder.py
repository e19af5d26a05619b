"""The HiT decoder: quantized latent grid ``(B, z_channels, h, w)`` -> image ``(B, 3, h f, w f)``.

Architecture after HiT (Zhao et al., "Improved Transformer for High-Resolution GANs", NeurIPS
2021), adapted to VQGAN latents (docs/design.md, "Decoder design"); the v2 decoder (the default
config) is seam-free:

* stage ``i`` runs at ``2**i`` x the latent resolution; stage 0 embeds the code vectors themselves;
* every stage opens with a cross-attention self-modulation block whose keys/values are the latent
  code tokens around each pixel, tent-weighted by the distance to the pixel's centre
  (pixel-centred lookup: no key set switches at cell borders; HiT used 16 noise tokens);
* low-resolution stages use multi-axis blocked self-attention (regional + dilated heads,
  multi-query K/V); high-resolution stages are MLP-only, with a depthwise 3x3 in their MLPs;
* into attention stages: depth-to-space x2 (C -> C/4) then a linear layer; into MLP-only stages:
  a linear layer then bilinear x2;
* MLP-only stages (and always the last) emit RGB through LayerNorm + linear (the last: a 3x3
  convolution); the RGB maps are summed with bilinear x2 upsampling. No tanh. LayerNorm, GELU,
  pre-norm residuals.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .bands import WHOLE, RowBands
from .config import HiTDecoderConfig
from .layers import LatentCrossAttention, Mlp, MultiAxisAttention, crop

__all__ = ["HiTDecoder", "depth_to_space"]


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """Channels-last pixel shuffle x2: ``(B, H, W, C) -> (B, 2H, 2W, C/4)`` (same channel order as
    :func:`torch.nn.functional.pixel_shuffle`)."""
    B, H, W, C = x.shape
    x = x.view(B, H, W, C // 4, 2, 2).permute(0, 1, 4, 2, 5, 3)  # (B, H, 2, W, 2, C/4)
    return x.reshape(B, 2 * H, 2 * W, C // 4)



#: largest latent magnitude a decoder accepts: beyond about 1e20 the layer norms' variance overflows
#: float32 and the whole image is NaN, so far larger values are refused with an error instead
MAX_LATENT = 1e15


class _AttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, block: int, dilation_grid: int, cfg: HiTDecoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = MultiAxisAttention(dim, heads, block, dilation_grid)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, cfg.mlp_ratio)

    def attn_delta(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        return self.attn(self.norm1(x), valid)  # (B, H, W, C)

    def mlp_delta(self, x: torch.Tensor, crop: tuple[int, int] = (0, 0)) -> torch.Tensor:
        return self.mlp(self.norm2(x), crop)  # (B, H - crop, W, C)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn_delta(x, valid)  # (B, H, W, C)
        return x + self.mlp_delta(x)  # (B, H, W, C)


class _MlpBlock(nn.Module):
    def __init__(self, dim: int, cfg: HiTDecoderConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, cfg.mlp_ratio, conv=cfg.mlp_conv)

    attn_delta = None  # MLP-only

    def mlp_delta(self, x: torch.Tensor, crop: tuple[int, int] = (0, 0)) -> torch.Tensor:
        return self.mlp(self.norm(x), crop)  # (B, H - crop, W, C)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.mlp_delta(x)  # (B, H, W, C)


class _CrossBlock(nn.Module):
    """Cross-attention self-modulation block (queries: image tokens; keys/values: latent codes).

    Attention only: the MLP that follows it is the first block of the stage (every stage has at
    least one), which saves one per-pixel MLP per stage — most of the cost at high resolution.
    """

    def __init__(self, dim: int, heads: int, scale: int, cfg: HiTDecoderConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = LatentCrossAttention(dim, cfg.latent_dim, heads, scale, cfg.cross_window,
                                         centred=cfg.cross_attention == "pixel")

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x), latent)  # (B, H, W, C)


class _Stage(nn.Module):
    def __init__(self, cfg: HiTDecoderConfig, i: int) -> None:
        super().__init__()
        dim, heads = cfg.channels[i], cfg.heads[i]
        self.upsample = None if i == 0 else cfg.upsample_into(i)
        if i == 0:
            in_dim = cfg.z_channels
        else:  # bilinear: a linear layer at the previous resolution, then x2; pixel_shuffle: x2 (C -> C/4), then linear
            in_dim = cfg.channels[i - 1] if self.upsample == "bilinear" else cfg.channels[i - 1] // 4
        self.scale = 2**i
        self.embed = nn.Linear(in_dim, dim)
        self.cross = _CrossBlock(dim, heads, self.scale, cfg)
        if cfg.is_attention_stage(i):
            b, d = cfg.block_size[i], cfg.dilation_grid[i]
            self.multiple = b * d
            self.blocks = nn.ModuleList(_AttentionBlock(dim, heads, b, d, cfg) for _ in range(cfg.depths[i]))
        else:
            self.multiple = 1
            self.blocks = nn.ModuleList(_MlpBlock(dim, cfg) for _ in range(cfg.depths[i]))
        self.to_rgb = None
        if cfg.has_rgb_head(i):
            out_conv = cfg.out_conv and i == cfg.num_stages - 1
            self.to_rgb = _RgbHead(dim, cfg.out_channels, cfg.norm_eps, conv=out_conv)

    def forward(self, x: torch.Tensor, latent: torch.Tensor, bands: RowBands = WHOLE) -> torch.Tensor:
        if self.upsample == "bilinear":
            x = bands.upsampled(self.embed, x, self.embed.out_features)  # (B, H, W, C)
        else:
            if self.upsample == "pixel_shuffle":
                x = depth_to_space(x)  # (B, H, W, C_prev/4)
            x = bands.map(self.embed, x, self.embed.out_features)  # (B, H, W, C)
        x = bands.cross(self.cross, x, latent)  # (B, H, W, C)
        B, H, W, C = x.shape
        m = self.multiple
        Hp, Wp = -(-H // m) * m, -(-W // m) * m
        valid = None
        # compiled, the padded path is taken whatever the grid (padding by 0 where none is needed), so
        # that whether a grid needs padding is not a guard of the graph (docs/performance.md)
        if m > 1 and (torch.compiler.is_compiling() or Hp != H or Wp != W):
            x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))  # (B, Hp, Wp, C)
            rows, cols = torch.arange(Hp, device=x.device), torch.arange(Wp, device=x.device)
            valid = (rows < H)[:, None] & (cols < W)[None, :]  # (Hp, Wp): the real tokens
        for blk in self.blocks:  # blk(x, valid), with both residuals under the memory policy
            if blk.attn_delta is not None:  # super-windows are m rows high: bands of whole ones
                x = bands.attention(blk.attn_delta, x, valid, m)  # (B, Hp, Wp, C)
            x = bands.residual(blk.mlp_delta, x, blk.mlp.halo, blk.mlp.fc1.out_features)  # (B, Hp, Wp, C)
        return x if valid is None else crop(x, 0, H, 0, W)  # (B, H, W, C)


class _RgbHead(nn.Module):
    """LayerNorm then a linear layer (``conv=False``) or a 3x3 convolution (``conv=True``) to RGB."""

    def __init__(self, dim: int, out_channels: int, eps: float, conv: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.proj = nn.Conv2d(dim, out_channels, 3, padding=1) if conv else nn.Linear(dim, out_channels)

    @property
    def halo(self) -> int:
        return 1 if isinstance(self.proj, nn.Conv2d) else 0

    def forward(self, x: torch.Tensor, crop: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """``x (B, H, W, C) -> (B, H - top - bottom, W, out_channels)``."""
        x = self.norm(x)
        if isinstance(self.proj, nn.Linear):
            return self.proj(x)  # (B, H, W, 3)
        y = self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H, W, 3)
        top, bottom = crop
        return y[:, top : y.shape[1] - bottom]


class HiTDecoder(nn.Module):
    """HiT decoder for VQGAN latents. See the module docstring and :class:`HiTDecoderConfig`."""

    #: default row band on a CPU (tokens): an MLP band's hidden layer (4 MiB at 128 hidden channels;
    #: wider MLPs run in fewer rows, :attr:`RowBands.HIDDEN_CHANNELS`) stays in cache, which ran a
    #: 256² MLP stage about 1.6x faster than whole-image tensors on one CPU thread, with
    #: bit-identical output (see docs/performance.md)
    DEFAULT_CHUNK_TOKENS = 8192
    #: default row band on other devices (GPUs), where bands only bound memory: a 1024² image at
    #: batch 1 decodes whole (hit-8m-f16's peak there: 1.3 GB in bf16, about the CNN's 1.3 GB) and
    #: larger batches or images in bands of that size. 8192-token bands ran hit-8m-f16 1.4 to 6.2x
    #: slower than whole grids on an H200 (each band launches every kernel; BENCHMARKS.md, GPU)
    DEFAULT_CHUNK_TOKENS_ACCELERATOR = 1 << 20

    def __init__(self, config: HiTDecoderConfig, *, inference_chunk_tokens: int | None = None,
                 check_finite: bool = False) -> None:
        super().__init__()
        if not isinstance(config, HiTDecoderConfig):
            raise TypeError(
                f"HiTDecoder expects a HiTDecoderConfig, got {type(config).__name__}; "
                "use hit_decoder.create_decoder(name_or_dict) to build from a preset or a dict"
            )
        self.config = config
        #: runtime setting, not architecture (not saved): without autograd, per-pixel work in large
        #: stages runs in row bands of about this many tokens (for speed and memory); any value gives
        #: the same image. ``None``: by the latent's device (:meth:`chunk_tokens_for`)
        self.inference_chunk_tokens = None if inference_chunk_tokens is None else int(inference_chunk_tokens)
        #: runtime setting: raise on NaN / inf in ``z`` (one host synchronisation per call; off by
        #: default so that ``forward`` never waits on the device and compiles as one graph)
        self.check_finite = bool(check_finite)
        self.latent_embed = nn.Linear(config.z_channels, config.latent_dim)
        self.latent_norm = nn.LayerNorm(config.latent_dim, eps=config.norm_eps)
        self.stages = nn.ModuleList(_Stage(config, i) for i in range(config.num_stages))
        self.init_weights()

    # ------------------------------------------------------------------ properties
    @property
    def z_channels(self) -> int:
        return self.config.z_channels

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    def get_last_layer(self) -> torch.Tensor:
        """Weight of the final to-RGB layer (taming's adaptive GAN weight uses it)."""
        return self.stages[-1].to_rgb.proj.weight

    def no_weight_decay(self) -> set[str]:
        """Parameter names that should be excluded from weight decay (relative-position biases)."""
        return {n for n, _ in self.named_parameters() if n.endswith("_bias") or n.endswith("attn.bias")}

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Every special case of initialisation lives here: truncated normal (std ``init_std``)
        for linear weights, the to-RGB convolution and relative-position tables; depthwise
        convolutions N(0, 2 / fan_out) as in SegFormer's Mix-FFN; zero biases, unit LayerNorms."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):  # depthwise
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                nn.init.normal_(module.weight, std=(2.0 / fan_out) ** 0.5)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (MultiAxisAttention, LatentCrossAttention)):
                for p in (module.regional_bias, module.dilated_bias) if isinstance(
                    module, MultiAxisAttention
                ) else (module.bias,):
                    nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)

    # ------------------------------------------------------------------ forward
    def _check_input(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"HiTDecoder expects a torch.Tensor, got {type(z).__name__}")
        if z.ndim != 4:
            raise ValueError(
                f"HiTDecoder expects z of shape (B, {self.z_channels}, h, w) (rank 4), got rank "
                f"{z.ndim} with shape {tuple(z.shape)}"
            )
        if z.shape[1] != self.z_channels:
            raise ValueError(
                f"HiTDecoder expects {self.z_channels} latent channels (z_channels), got {z.shape[1]} "
                f"in shape {tuple(z.shape)}; pass the output of post_quant_conv, or build the decoder "
                f"with z_channels={z.shape[1]}"
            )
        if min(z.shape[2:]) < 1 or z.shape[0] < 1:
            raise ValueError(f"HiTDecoder got an empty latent grid of shape {tuple(z.shape)}")
        # the range check reads a value back: on the CPU that is free (no device to wait for); on an
        # accelerator it would synchronise every call, so there it runs only with check_finite=True;
        # never inside a compiled graph
        range_checked = not torch.compiler.is_compiling() and (z.device.type == "cpu" or self.check_finite) and not z.is_meta
        if range_checked:
            peak = float(z.detach().abs().amax())
            if not math.isfinite(peak):
                raise ValueError("HiTDecoder got non-finite values (NaN or inf) in z; expected finite latents")
            if not peak <= MAX_LATENT:
                raise ValueError(f"HiTDecoder got latent values up to {peak:g}; beyond {MAX_LATENT:g} its layer norms "
                                 "overflow float32 and every pixel would be NaN. z should be the output of "
                                 "post_quant_conv (values of order 1 to 100)")
        if not z.is_floating_point():
            raise ValueError(f"HiTDecoder expects a floating point latent, got dtype {z.dtype}")
        w = self.latent_embed.weight
        if z.dtype != w.dtype and not torch.is_autocast_enabled(z.device.type):
            raise ValueError(f"HiTDecoder holds {w.dtype} weights but got a {z.dtype} latent; cast the latent "
                             f"(z.to({w.dtype})) or the decoder (decoder.to({z.dtype})), or run under torch.autocast")
        # the range check above already refuses NaN / inf; this covers check_finite where it did not run
        if self.check_finite and not range_checked and not z.is_meta and not torch.isfinite(z).all():
            raise ValueError("HiTDecoder got non-finite values (NaN or inf) in z; expected finite latents")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, z_channels, h, w) -> (B, out_channels, h f, w f)``. Without autograd, a decode of
        more than :meth:`chunk_tokens_for` its device output pixels goes through :meth:`decode_large`
        (not while being compiled: see :mod:`hit_decoder.compiling`)."""
        self._check_input(z)
        B, _, h, w = z.shape
        f = self.config.downsample_factor
        # compiled, the whole grid is one graph: the bands' loop counts would make every grid size a
        # graph of its own (so a compiled decode holds whole-image intermediates; docs/performance.md)
        if not torch.is_grad_enabled() and not torch.compiler.is_compiling():  # (no size guard when compiling)
            if B * h * w * f * f > self.chunk_tokens_for(z.device):
                return self.decode_large(z)
        return self._decode(z, WHOLE)

    def chunk_tokens_for(self, device: torch.device | str) -> int:
        """The row band in tokens: ``inference_chunk_tokens`` where set, else
        :attr:`DEFAULT_CHUNK_TOKENS` on a CPU (cache-sized) and :attr:`DEFAULT_CHUNK_TOKENS_ACCELERATOR`
        on any other device (memory-sized)."""
        if self.inference_chunk_tokens is not None:
            return self.inference_chunk_tokens
        cpu = torch.device(device).type == "cpu"
        return self.DEFAULT_CHUNK_TOKENS if cpu else self.DEFAULT_CHUNK_TOKENS_ACCELERATOR

    @torch.no_grad()
    def decode_large(self, z: torch.Tensor, chunk_tokens: int | None = None) -> torch.Tensor:
        """The memory policy, in one place: decode ``z`` without autograd with bounded
        intermediates. Per-token work runs in row bands of about ``chunk_tokens`` tokens (default
        :meth:`chunk_tokens_for` the latent's device; on a CPU, MLPs wider than 128 hidden channels
        in proportionally fewer tokens); a grid wider than high whose rows alone exceed 32 bands is
        decoded in exact column tiles of about 8 bands (the row bands cannot split a grid only a
        few codes high),
        so a 1 x 100000 grid costs what a square grid of the same area costs. The image equals the
        whole decode up to matmul rounding (bit-identical across column tiles in float32; tests)."""
        from .tiling import decode_tiled, hit_tile_geometry

        chunk = int(chunk_tokens or self.chunk_tokens_for(z.device))
        bands = RowBands(chunk, cap_hidden=z.device.type == "cpu")
        B, _, h, w = z.shape
        f = self.config.downsample_factor
        tile_tokens = 8 * chunk  # column tiles: wide enough that the tiles' shared margins cost little
        if w > h and B * w * f * f > 4 * tile_tokens:
            g = hit_tile_geometry(self.config)
            cols = max(g.align, (tile_tokens // max(1, B * h * f * f)) // g.align * g.align)
            if cols < w:
                return decode_tiled(lambda t: self._decode(t, bands), z, tile=(h, cols), margin=g.margin, align=g.align)
        return self._decode(z, bands)

    def _decode(self, z: torch.Tensor, bands: RowBands) -> torch.Tensor:
        z = z.permute(0, 2, 3, 1)  # (B, h, w, z_channels)
        latent = self.latent_norm(self.latent_embed(z))  # (B, h, w, latent_dim)
        x, rgb = z, None
        for stage in self.stages:
            x = stage(x, latent, bands)  # (B, H, W, C_i)
            if rgb is not None:
                rgb = F.interpolate(rgb, scale_factor=2, mode=self.config.rgb_upsample,
                                    **({"align_corners": False} if self.config.rgb_upsample == "bilinear" else {}))
            if stage.to_rgb is not None:
                out = bands.map(stage.to_rgb, x, self.config.out_channels, halo=stage.to_rgb.halo)  # (B, H, W, 3)
                out = out.permute(0, 3, 1, 2)  # (B, 3, H, W)
                rgb = out if rgb is None else rgb + out
        return rgb.contiguous()  # (B, 3, h f, w f)
