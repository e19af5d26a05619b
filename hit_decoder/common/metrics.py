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

__all__ = ["to_unit_range", "psnr", "ssim", "codebook_perplexity", "luminance", "seam_ratio", "seam_periods",
           "seam_ratios", "lab_chroma", "mean_chroma", "chroma_ratio", "GREY_CHROMA", "code_histogram_tv"]


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model space -> [0, 1], clamped."""
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"{name}: expected two (B, C, H, W) tensors of the same shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, shape ``(B,)``; identical images give ``inf``."""
    _check_pair(x, y, "psnr")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range ** 2 / mse)).float()


def _gaussian_taps(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()  # (size,)


def _gaussian_blur_valid(t: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """The 2-D Gaussian of ``taps`` (outer product) over valid windows, as two 1-D passes (rows,
    then columns): ``(N, 1, h, w) -> (N, 1, h - k + 1, w - k + 1)``; about 5x fewer operations than
    the 2-D kernel at 11 taps, equal up to float64 rounding."""
    k = taps.numel()
    t = F.conv2d(t, taps.view(1, 1, 1, k))  # (N, 1, h, w-k+1)
    return F.conv2d(t, taps.view(1, 1, k, 1))  # (N, 1, h-k+1, w-k+1)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image mean SSIM, shape ``(B,)``. Images must be at least ``window`` pixels on each side."""
    _check_pair(x, y, "ssim")
    b, c, h, w = x.shape
    if h < window or w < window:
        raise ValueError(f"ssim: images of {h}x{w} px are smaller than the {window}x{window} window")
    x, y = x.double(), y.double()
    taps = _gaussian_taps(window, sigma, x.device)
    # the five local statistics' inputs blurred in one call: (5, B*C, 1, h, w) as a batch of maps
    maps = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * b * c, 1, h, w)
    mu_x, mu_y, e_xx, e_yy, e_xy = _gaussian_blur_valid(maps, taps).view(5, b, c, h - window + 1, w - window + 1)
    var_x = e_xx - mu_x ** 2
    var_y = e_yy - mu_y ** 2
    cov = e_xy - mu_x * mu_y
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


def code_histogram_tv(a: torch.Tensor, b: torch.Tensor, n_codes: int) -> float:
    """Total-variation distance between the code histograms of two index tensors (any shapes):
    ``0.5 * sum_k |p_a(k) - p_b(k)|``, 0 for the same code frequencies, 1 for disjoint code sets."""
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError(f"code_histogram_tv: both index tensors need codes, got {a.numel()} and {b.numel()}")
    pa = torch.bincount(a.flatten().long(), minlength=n_codes).double() / a.numel()
    pb = torch.bincount(b.flatten().long(), minlength=n_codes).double() / b.numel()
    if pa.numel() != n_codes or pb.numel() != n_codes:
        raise ValueError(f"code_histogram_tv: codes must lie in [0, {n_codes}), got a largest code of "
                         f"{max(int(a.max()), int(b.max()))}")
    return float(0.5 * (pa - pb).abs().sum())


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of RGB images ``(B, 3, H, W)`` (or ``(3, H, W)``) -> ``(B, H, W)``; a
    single-channel input is returned as it is."""
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"luminance: expected (B, 3, H, W) or (B, 1, H, W) images, got shape {tuple(x.shape)}")
    x = x.double()
    if x.shape[1] == 1:
        return x[:, 0]
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def seam_ratio(image: torch.Tensor, period: int) -> torch.Tensor:
    """How strongly an image shows a grid of ``period`` pixels (anchored at pixel 0), per image.

    Mean absolute luminance difference between neighbouring pixels that straddle a line of the
    grid (columns ``x-1, x`` with ``x % period == 0``, rows alike), divided by the mean over all
    other neighbouring pairs; rows and columns are pooled. A natural photograph scores about 1; a
    decoder that paints its code cells or its depth-to-space pattern scores above 1 at that period.
    ``image``: ``(B, C, H, W)`` or ``(C, H, W)`` (C = 3: RGB, luminance by Rec. 601; C = 1: used as
    it is), any value range. Returns ``(B,)`` float64; ``nan`` where the image has no pair of one
    kind or no variation off the grid.
    """
    if not isinstance(period, int) or period < 2:
        raise ValueError(f"seam_ratio: period must be an int >= 2, got {period!r}")
    y = luminance(image)  # (B, H, W)
    B, H, W = y.shape
    dx = (y[:, :, 1:] - y[:, :, :-1]).abs()  # (B, H, W-1): pair (x-1, x) for x = 1..W-1
    dy = (y[:, 1:, :] - y[:, :-1, :]).abs()  # (B, H-1, W)
    on_x = (torch.arange(1, W) % period == 0).to(y.device)  # (W-1,)
    on_y = (torch.arange(1, H) % period == 0).to(y.device)  # (H-1,)
    on_sum = dx[:, :, on_x].sum((1, 2)) + dy[:, on_y, :].sum((1, 2))
    off_sum = dx[:, :, ~on_x].sum((1, 2)) + dy[:, ~on_y, :].sum((1, 2))
    n_on = int(on_x.sum()) * H + int(on_y.sum()) * W
    n_off = int((~on_x).sum()) * H + int((~on_y).sum()) * W
    if n_on == 0 or n_off == 0:
        return torch.full((B,), float("nan"), dtype=torch.float64)
    off = off_sum / n_off
    return torch.where(off > 0, (on_sum / n_on) / off, torch.full_like(off, float("nan")))


def seam_periods(factor: int) -> list[int]:
    """The periods worth checking for a decoder with upsampling ``factor``: 2, 4, ..., factor."""
    out, p = [], 2
    while p <= factor:
        out.append(p)
        p *= 2
    return out


def seam_ratios(image: torch.Tensor, factor: int) -> dict[int, torch.Tensor]:
    """:func:`seam_ratio` at every period of :func:`seam_periods` (``{period: (B,)}``)."""
    return {p: seam_ratio(image, p) for p in seam_periods(factor)}


# sRGB (IEC 61966-2-1) primaries to CIE XYZ, and the D65 white point (CIE 1931 2-degree observer)
_XYZ_FROM_SRGB = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_D65_WHITE = (0.95047, 1.0, 1.08883)
#: mean chroma below which an image counts as grey (rounding leaves ~1e-5 on exact greys; a just
#: visible colour difference is about 1 to 2)
GREY_CHROMA = 1e-2


def lab_chroma(x: torch.Tensor) -> torch.Tensor:
    """CIELAB chroma ``sqrt(a*^2 + b*^2)`` of sRGB images ``(B, 3, H, W)`` in [0, 1] -> ``(B, H, W)``
    float64 (0 for greys; about 0-130 for sRGB colours). sRGB is linearised, mapped to XYZ and to
    L*a*b* relative to D65 (CIE 15: f(t) = t^(1/3) above (6/29)^3, linear below)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"lab_chroma: expected RGB images (B, 3, H, W) in [0, 1], got shape {tuple(x.shape)}")
    c = x.double().clamp(0.0, 1.0)
    lin = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)  # (B, 3, H, W)
    m = torch.tensor(_XYZ_FROM_SRGB, dtype=torch.float64, device=x.device)
    xyz = torch.einsum("kc,bchw->bkhw", m, lin)  # (B, 3, H, W): X, Y, Z
    xyz = xyz / torch.tensor(_D65_WHITE, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    eps = (6.0 / 29.0) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1.0 / 3.0), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    a = 500.0 * (f[:, 0] - f[:, 1])  # (B, H, W)
    b = 200.0 * (f[:, 1] - f[:, 2])  # (B, H, W)
    return torch.sqrt(a * a + b * b)


def mean_chroma(x: torch.Tensor) -> torch.Tensor:
    """Mean CIELAB chroma per image (:func:`lab_chroma`), shape ``(B,)``."""
    return lab_chroma(x).flatten(1).mean(1)


def chroma_ratio(original: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """How much colour a reconstruction keeps, per image ``(B,)``: its mean CIELAB chroma over the
    original's (1.0 = as colourful, 0 = grey, above 1 = more colourful). Inputs ``(B, 3, H, W)``
    in [0, 1]; ``nan`` where the original is grey (mean chroma below :data:`GREY_CHROMA`: no colour
    to keep)."""
    _check_pair(original, reconstruction, "chroma_ratio")
    ref = mean_chroma(original)
    grey = ref < GREY_CHROMA
    return torch.where(grey, torch.full_like(ref, float("nan")), mean_chroma(reconstruction) / ref.clamp_min(GREY_CHROMA))
