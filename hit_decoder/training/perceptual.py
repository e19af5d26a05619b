"""LPIPS (VGG16 trunk, lpips v0.1 linear heads) that never touches the network.

The ``lpips`` package ships its v0.1 linear heads (``lpips/weights/v0.1/vgg.pth``) but gets the
VGG16 trunk from torchvision's download (``vgg16-397923af.pth``). Here the trunk is built with
random weights (``pnet_rand=True``: torchvision is never asked to download) and the ImageNet
weights are loaded from a local file: ``loss.lpips_vgg_path`` if set, else the torch hub cache
(``$TORCH_HOME/hub/checkpoints/``, see :func:`torch.hub.get_dir`). A missing file is an error
at start-up that says which file to put where. A random trunk only by explicit opt-in.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..common.seeding import seeded

__all__ = [
    "VGG16_FILENAME",
    "VGG16_URL",
    "LPIPSWeightsMissing",
    "default_vgg16_path",
    "find_vgg16_weights",
    "build_lpips",
    "perceptual_loss",
]

log = logging.getLogger(__name__)

VGG16_FILENAME = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILENAME}"


class LPIPSWeightsMissing(FileNotFoundError):
    """The VGG16 trunk weights LPIPS needs are not on this machine."""


def default_vgg16_path() -> Path:
    """Where torchvision would have cached the file: ``torch.hub.get_dir()/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME


def _missing_message(looked: list[Path]) -> str:
    where = default_vgg16_path()
    return (
        f"LPIPS needs the VGG16 ImageNet weights file {VGG16_FILENAME} (torchvision's, 528 MB), and it is "
        f"not on this machine (looked at: {', '.join(str(p) for p in looked)}).\n"
        f"  Fix: download {VGG16_URL} on a machine with internet and copy it to\n"
        f"       {where}\n"
        f"  (the torch hub cache: $TORCH_HOME/hub/checkpoints, TORCH_HOME defaults to ~/.cache/torch),\n"
        f"  or point loss.lpips_vgg_path=/path/to/{VGG16_FILENAME} at your copy.\n"
        "  Alternatives: loss.perceptual_weight=0 trains without LPIPS; loss.lpips_random_backbone=true uses an "
        "untrained VGG16 (for tests only: that is not a perceptual loss)."
    )


def find_vgg16_weights(configured: str | os.PathLike | None = None) -> Path:
    """The VGG16 weights file to use, or :class:`LPIPSWeightsMissing` naming where to put it.

    ``configured`` may be the file itself or a folder holding ``vgg16-397923af.pth``.
    """
    looked: list[Path] = []
    if configured is not None:
        p = Path(configured).expanduser()
        if p.is_dir():
            p = p / VGG16_FILENAME
        if p.is_file():
            return p
        looked.append(p)
        raise LPIPSWeightsMissing(_missing_message(looked))
    p = default_vgg16_path()
    if p.is_file():
        return p
    looked.append(p)
    raise LPIPSWeightsMissing(_missing_message(looked))


def _trunk_convs(lp: nn.Module) -> dict[str, nn.Conv2d]:
    """lpips keeps torchvision's layer indices inside its slices (``slice2.5`` = ``features.5``)."""
    out = {}
    for slice_module in lp.net.children():
        for name, m in slice_module.named_children():
            if isinstance(m, nn.Conv2d):
                out[f"features.{name}"] = m
    return out


def load_vgg16_trunk(lp: nn.Module, path: str | os.PathLike) -> None:
    """Copy torchvision VGG16 ``features.*`` weights from ``path`` into an lpips VGG trunk (strict)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{path} could not be read as a PyTorch weights file ({exc}); it may be truncated — "
            f"download {VGG16_URL} again"
        ) from exc
    convs = _trunk_convs(lp)
    problems = []
    with torch.no_grad():
        for prefix, conv in convs.items():
            for pname in ("weight", "bias"):
                key = f"{prefix}.{pname}"
                if key not in state:
                    problems.append(f"missing {key}")
                    continue
                target = getattr(conv, pname)
                if tuple(state[key].shape) != tuple(target.shape):
                    problems.append(f"{key} has shape {tuple(state[key].shape)}, expected {tuple(target.shape)}")
                    continue
                target.copy_(state[key])
    if problems:
        raise ValueError(
            f"{path} is not torchvision's VGG16 ({VGG16_FILENAME}): {'; '.join(problems[:5])}"
            + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        )


def build_lpips(vgg_path: str | os.PathLike | None = None, *, random_backbone: bool = False,
                seed: int = 0) -> nn.Module:
    """An ``lpips.LPIPS(net="vgg", version="0.1")`` in eval mode with frozen weights.

    Heads: the v0.1 file shipped inside the ``lpips`` wheel. Trunk: the local VGG16 file found
    by :func:`find_vgg16_weights`; with ``random_backbone=True`` a seeded random trunk instead
    (logged as a warning). Raises :class:`LPIPSWeightsMissing` when the file is absent.
    """
    path = None if random_backbone else find_vgg16_weights(vgg_path)
    import lpips

    with warnings.catch_warnings(), seeded(seed):
        # torchvision warns that lpips passes the deprecated ``pretrained`` flag; it is False here
        warnings.filterwarnings("ignore", message=".*pretrained.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*weight enum.*", category=UserWarning)
        lp = lpips.LPIPS(pretrained=True, net="vgg", version="0.1", pnet_rand=True, verbose=False)
    if path is None:
        log.warning(
            "LPIPS uses a RANDOM VGG16 trunk (loss.lpips_random_backbone=true): this is not a perceptual "
            "loss and its values mean nothing; use it for tests only"
        )
        lp.random_backbone = True
    else:
        load_vgg16_trunk(lp, path)
        log.info("LPIPS: VGG16 trunk from %s, v0.1 heads from the lpips package", path)
        lp.random_backbone = False
    lp.eval()
    for p in lp.parameters():
        p.requires_grad_(False)
    return lp


def perceptual_loss(lp: nn.Module, x: torch.Tensor, xrec: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS distance between image batches in [-1, 1] (a scalar)."""
    return lp(x.float().contiguous(), xrec.float().contiguous()).mean()
