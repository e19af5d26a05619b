"""Loss functions, metrics, EMA and schedules against hand-computed values and independent
references (taming's own loss functions and quantizer, scikit-image's metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hit_decoder.common.metrics import codebook_perplexity, psnr, ssim
from hit_decoder.training.ema import ema_decay_at, ema_update_
from hit_decoder.training.losses import (
    adaptive_weight,
    discriminator_loss,
    gate,
    generator_adv_loss,
    hinge_d_loss,
    hinge_g_loss,
    non_saturating_d_loss,
    non_saturating_g_loss,
    reconstruction_loss,
    vq_loss,
)
from hit_decoder.training.steps import warmup_lr


def test_reconstruction_loss_hand_values():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 2, 2)
    y = torch.tensor([1.0, 1.0, 0.0, 3.0]).view(1, 1, 2, 2)
    # |diff| = 1, 0, 2, 0 -> L1 0.75; diff^2 = 1, 0, 4, 0 -> L2 1.25
    assert reconstruction_loss(x, y).item() == pytest.approx(0.75)
    assert reconstruction_loss(x, y, 0.0, 1.0).item() == pytest.approx(1.25)
    assert reconstruction_loss(x, y, 0.5, 2.0).item() == pytest.approx(0.5 * 0.75 + 2 * 1.25)
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_loss(x, y[..., :1])


def test_vq_loss_hand_values_and_gradients():
    z = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).requires_grad_()
    zq = torch.zeros(1, 2, 1, 1, requires_grad=True)
    loss = vq_loss(z, zq, beta=0.25)
    # mean (zq - z)^2 = (1 + 4) / 2 = 2.5 for both terms -> 2.5 + 0.25 * 2.5
    assert loss.item() == pytest.approx(3.125)
    loss.backward()
    # codebook term moves zq: d/dzq mean (zq - sg z)^2 = 2 (zq - z) / 2
    assert zq.grad.flatten().tolist() == pytest.approx([-1.0, -2.0])
    # commitment term moves z: beta * 2 (z - sg zq) / 2
    assert z.grad.flatten().tolist() == pytest.approx([0.25, 0.5])


def test_vq_loss_matches_taming_quantizer():
    import hit_decoder.adapters  # noqa: F401  (taming import shims)

    from taming.modules.vqvae.quantize import VectorQuantizer2

    g = torch.Generator().manual_seed(0)
    q = VectorQuantizer2(16, 4, beta=0.3, legacy=False)
    z = torch.randn(2, 4, 3, 3, generator=g)
    _, ref, (_, _, idx) = q(z)
    zq = q.embedding(idx).view(2, 3, 3, 4).permute(0, 3, 1, 2)
    assert vq_loss(z, zq, beta=0.3).item() == pytest.approx(ref.item(), rel=1e-6)


def test_gan_losses_hand_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: relu(1 - real) = 0, 0.5 -> 0.25; relu(1 + fake) = 0, 1 -> 0.5; half the sum
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.375)
    assert non_saturating_d_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))
    assert hinge_g_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)
    assert non_saturating_g_loss(torch.zeros(4)).item() == pytest.approx(math.log(2))
    # softplus(-x) for x = 2: log(1 + e^-2)
    assert non_saturating_g_loss(torch.tensor([2.0])).item() == pytest.approx(math.log1p(math.exp(-2)))
    with pytest.raises(ValueError, match="unknown discriminator loss"):
        discriminator_loss("wasserstein", real, fake)
    with pytest.raises(ValueError, match="unknown generator"):
        generator_adv_loss("wasserstein", fake)


def test_discriminator_losses_match_taming():
    import hit_decoder.adapters  # noqa: F401  (taming import shims)

    from taming.modules.losses.vqperceptual import hinge_d_loss as t_hinge
    from taming.modules.losses.vqperceptual import vanilla_d_loss as t_vanilla

    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(t_hinge(real, fake).item(), rel=1e-6)
    assert discriminator_loss("non_saturating", real, fake).item() == pytest.approx(t_vanilla(real, fake).item(), rel=1e-6)


def test_gate_counts_batches():
    assert gate(0, 0) == 1.0
    assert gate(4, 5) == 0.0
    assert gate(5, 5) == 1.0


def test_adaptive_weight_hand_values():
    w = torch.ones(2, 2, requires_grad=True)
    nll = 3.0 * w.sum()  # grad 3 everywhere: norm 6
    g = -2.0 * w.sum()  # grad -2 everywhere: norm 4
    weight = adaptive_weight(nll, g, w)
    assert weight.item() == pytest.approx(6.0 / (4.0 + 1e-4), rel=1e-6)
    assert not weight.requires_grad
    # the graphs survive for the caller's backward
    (nll + weight * g).backward()
    assert w.grad is not None
    # clamped when the GAN gradient vanishes; zero when the GAN loss ignores the layer
    w2 = torch.ones(3, requires_grad=True)
    assert adaptive_weight(w2.sum(), 1e-12 * w2.sum(), w2, max_weight=50.0).item() == 50.0
    other = torch.ones(1, requires_grad=True)
    assert adaptive_weight(w2.sum(), other.sum(), w2).item() == 0.0


def test_warmup_and_ema_schedules():
    assert warmup_lr(1e-3, 0, 0) == 1e-3
    assert warmup_lr(1e-3, 0, 4) == pytest.approx(2.5e-4)
    assert warmup_lr(1e-3, 3, 4) == pytest.approx(1e-3)
    assert warmup_lr(1e-3, 100, 4) == pytest.approx(1e-3)
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(8, 0.999) == pytest.approx(0.5)
    assert ema_decay_at(10**7, 0.999) == 0.999


def test_ema_update_hand_values():
    ema, live = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        live.weight.fill_(3.0)
        live.running_mean.fill_(7.0)
    ema_update_(ema, live, decay=0.75)
    assert ema.weight.tolist() == pytest.approx([1.5, 1.5])  # 0.75 * 1 + 0.25 * 3
    assert ema.running_mean.tolist() == [7.0, 7.0]  # buffers are copied


def test_psnr_ssim_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 20, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 24, 20, generator=g)).clamp(0, 1)
    ours_p, ours_s = psnr(x, y), ssim(x, y)
    for i in range(2):
        a, b = x[i].permute(1, 2, 0).double().numpy(), y[i].permute(1, 2, 0).double().numpy()
        assert ours_p[i].item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-5)
        ref = structural_similarity(a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        assert ours_s[i].item() == pytest.approx(ref, abs=1e-5)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="smaller than"):
        ssim(x[..., :8, :8], y[..., :8, :8])


def test_codebook_perplexity_hand_values():
    assert codebook_perplexity(torch.tensor([0, 0, 1, 1]), 4).item() == pytest.approx(2.0)
    assert codebook_perplexity(torch.tensor([3, 3, 3]), 4).item() == pytest.approx(1.0)
    assert codebook_perplexity(torch.arange(8), 8).item() == pytest.approx(8.0)
    p = np.array([0.75, 0.25])
    assert codebook_perplexity(torch.tensor([0, 0, 0, 1]), 2).item() == pytest.approx(np.exp(-(p * np.log(p)).sum()))
