"""Stage-1 losses as small pure functions (no state, no logging).

Images are in taming's range [-1, 1]. The generator objective of a VQGAN is

    nll   = l1 * |x - x̂| + l2 * (x - x̂)² + perceptual * LPIPS(x, x̂)   (+ distillation)
    total = nll + gan_gate * λ * g_loss(D(x̂)) + codebook * vq_loss

with λ = disc_weight * ||∇_w nll|| / (||∇_w g_loss|| + 1e-4) at the decoder's last layer w
(:func:`adaptive_weight`). Starts are counted in *training batches* (:func:`gate`), never in
Lightning's ``global_step``, which advances once per optimizer step (twice per batch here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "reconstruction_loss",
    "vq_loss",
    "hinge_d_loss",
    "non_saturating_d_loss",
    "hinge_g_loss",
    "non_saturating_g_loss",
    "discriminator_loss",
    "generator_adv_loss",
    "gate",
    "adaptive_weight",
]


def reconstruction_loss(x: torch.Tensor, xrec: torch.Tensor, l1_weight: float = 1.0, l2_weight: float = 0.0) -> torch.Tensor:
    """``l1_weight * mean|x - x̂| + l2_weight * mean (x - x̂)²`` (a scalar)."""
    if x.shape != xrec.shape:
        raise ValueError(f"reconstruction_loss: image shapes differ, {tuple(x.shape)} vs {tuple(xrec.shape)}")
    diff = (x.float() - xrec.float())
    loss = diff.new_zeros(())
    if l1_weight:
        loss = loss + l1_weight * diff.abs().mean()
    if l2_weight:
        loss = loss + l2_weight * diff.pow(2).mean()
    return loss


def vq_loss(z: torch.Tensor, z_q: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """VQ-VAE codebook + commitment loss: ``mean(z_q - sg z)² + beta * mean(sg z_q - z)²``.

    ``z`` is the encoder output, ``z_q`` the selected codebook vectors *with* gradient to the
    codebook (not the straight-through tensor). The first term moves codes toward encodings,
    the second keeps the encoder committed to its codes. (taming's ``VectorQuantizer2`` with
    ``legacy=False`` computes the same; its default ``legacy=True`` swaps the two weights.)
    """
    if z.shape != z_q.shape:
        raise ValueError(f"vq_loss: z {tuple(z.shape)} and z_q {tuple(z_q.shape)} must have the same shape")
    codebook = (z_q - z.detach()).pow(2).mean()
    commitment = (z_q.detach() - z).pow(2).mean()
    return codebook + beta * commitment


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """``½ [mean relu(1 - D(x)) + mean relu(1 + D(x̂))]``."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def non_saturating_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """``½ [mean softplus(-D(x)) + mean softplus(D(x̂))]`` (binary cross-entropy on logits)."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """``-mean D(x̂)``."""
    return -logits_fake.mean()


def non_saturating_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """``mean softplus(-D(x̂))`` = ``-mean log sigmoid(D(x̂))``."""
    return F.softplus(-logits_fake).mean()


_D_LOSSES = {"hinge": hinge_d_loss, "non_saturating": non_saturating_d_loss}
_G_LOSSES = {"hinge": hinge_g_loss, "non_saturating": non_saturating_g_loss}


def discriminator_loss(kind: str, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    if kind not in _D_LOSSES:
        raise ValueError(f"unknown discriminator loss {kind!r}; choose one of {sorted(_D_LOSSES)}")
    return _D_LOSSES[kind](logits_real.float(), logits_fake.float())


def generator_adv_loss(kind: str, logits_fake: torch.Tensor) -> torch.Tensor:
    if kind not in _G_LOSSES:
        raise ValueError(f"unknown generator adversarial loss {kind!r}; choose one of {sorted(_G_LOSSES)}")
    return _G_LOSSES[kind](logits_fake.float())


def gate(batch: int, start: int) -> float:
    """1.0 once ``batch`` (0-based count of training batches) has reached ``start``, else 0.0."""
    return 1.0 if batch >= start else 0.0


def adaptive_weight(
    nll: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer: torch.Tensor,
    max_weight: float = 1.0e4,
    eps: float = 1.0e-4,
) -> torch.Tensor:
    """``clamp(||∇_w nll|| / (||∇_w g_loss|| + eps), 0, max_weight)``, detached.

    ``w`` is the decoder's last layer (``get_last_layer()``). Both graphs are kept
    (``retain_graph``) so the caller can still back-propagate the total loss. If either loss
    does not depend on ``w`` the weight is 0.
    """
    g_nll = torch.autograd.grad(nll, last_layer, retain_graph=True, allow_unused=True)[0]
    g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True, allow_unused=True)[0]
    if g_nll is None or g_adv is None:
        return last_layer.new_zeros((), dtype=torch.float32)
    weight = g_nll.float().norm() / (g_adv.float().norm() + eps)
    return weight.clamp(0.0, max_weight).detach()
