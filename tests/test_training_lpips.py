"""LPIPS weights offline: the documented error when the VGG16 file is missing, loading a local
file into the real ``lpips.LPIPS`` trunk, and the explicit random-trunk opt-in."""

from __future__ import annotations

import logging

import pytest
import torch

from hit_decoder.training import run_training
from hit_decoder.training.perceptual import (
    VGG16_FILENAME,
    VGG16_URL,
    LPIPSWeightsMissing,
    _trunk_convs,
    build_lpips,
    find_vgg16_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def vgg16_feature_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's VGG16 ``features`` conv layers (configuration "D"), written out independently."""
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    shapes, cin, idx = {}, 3, 0
    for v in plan:
        if v == "M":
            idx += 1
            continue
        shapes[f"features.{idx}.weight"] = (v, cin, 3, 3)
        shapes[f"features.{idx}.bias"] = (v,)
        cin, idx = v, idx + 2  # conv + ReLU
    return shapes


def test_missing_vgg_weights_error_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(LPIPSWeightsMissing) as info:
        find_vgg16_weights()
    msg = str(info.value)
    assert VGG16_FILENAME in msg and VGG16_URL in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / VGG16_FILENAME) in msg
    assert "loss.lpips_vgg_path" in msg and "loss.perceptual_weight=0" in msg
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(LPIPSWeightsMissing, match="elsewhere"):
        find_vgg16_weights(tmp_path / "elsewhere")


def test_training_fails_at_start_up_without_vgg_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "run"
    with pytest.raises(LPIPSWeightsMissing, match=VGG16_FILENAME):
        run_training({"out_dir": str(out), "loss": {"perceptual_weight": 1.0}})
    assert not out.exists()  # nothing was built or written


def test_local_vgg_file_is_loaded_into_the_lpips_trunk(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(123)
    fake = {k: 0.01 * torch.randn(shape, generator=g) for k, shape in vgg16_feature_shapes().items()}
    assert len(fake) == 26  # VGG16 has 13 conv layers
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(fake, hub / VGG16_FILENAME)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    lp = build_lpips()
    assert lp.random_backbone is False
    for name, conv in _trunk_convs(lp).items():
        assert torch.equal(conv.weight, fake[f"{name}.weight"])
        assert torch.equal(conv.bias, fake[f"{name}.bias"])
    # v0.1 heads come from the file shipped in the lpips wheel
    import os

    import lpips

    heads = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth"), map_location="cpu",
                       weights_only=True)
    assert torch.equal(lp.lin0.model[1].weight, heads["lin0.model.1.weight"])
    assert not any(p.requires_grad for p in lp.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert lp(x, x).item() == pytest.approx(0.0, abs=1e-6)

    bad = dict(fake)
    bad.pop("features.28.bias")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="features.28.bias"):
        build_lpips(tmp_path / "bad.pth")


def test_random_backbone_is_opt_in_and_logged(caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights anywhere: no error with the opt-in
    with caplog.at_level(logging.WARNING):
        lp = build_lpips(random_backbone=True, seed=1)
    assert lp.random_backbone is True
    assert "RANDOM VGG16" in caplog.text
    assert set(vgg16_feature_shapes()) == {f"{k}.{p}" for k in _trunk_convs(lp) for p in ("weight", "bias")}
