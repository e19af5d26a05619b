"""Reconstruction metrics on image batches: PSNR and SSIM (per image, then averaged by the caller).

Inputs are ``(B, C, H, W)`` tensors with values in ``[0, data_range]``. SSIM follows Wang et al.
(2004): 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, population statistics, valid
(unpadded) windows, averaged over channels — the same definition as
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["to_unit_range", "psnr", "ssim", "codebook_perplexity"]


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model space -> [0, 1], clamped."""
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"{name}: expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, shape ``(B,)``; identical images give ``inf``."""
    _check_pair(x, y, "psnr")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range ** 2 / mse)).float()


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    w2 = torch.outer(g, g)  # (size, size)
    return w2.expand(channels, 1, size, size).contiguous()  # (C, 1, size, size) depthwise


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image mean SSIM, shape ``(B,)``. Images must be at least ``window`` pixels on each side."""
    _check_pair(x, y, "ssim")
    b, c, h, w = x.shape
    if h < window or w < window:
        raise ValueError(f"ssim: images of {h}x{w} px are smaller than the {window}x{window} window")
    x, y = x.double(), y.double()
    k = _gaussian_window(window, sigma, c, x.device)
    blur = lambda t: F.conv2d(t, k, groups=c)  # noqa: E731  (B, C, h-window+1, w-window+1)
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1).float()


def codebook_perplexity(indices: torch.Tensor, n_codes: int) -> torch.Tensor:
    """``exp(entropy)`` of the code histogram of ``indices``: 1 if one code is used, ``n_codes`` if all
    are used equally often."""
    counts = torch.bincount(indices.flatten().long(), minlength=n_codes).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum()
    return torch.exp(entropy).float()
