"""The chroma ratio (colour kept by a reconstruction) and the code-histogram distance on inputs
with known answers, and CIELAB chroma against scikit-image's independent conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from hit_decoder.common.metrics import chroma_ratio, code_histogram_tv, lab_chroma, mean_chroma


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # (1, 3, H, W)


def _lab_image(seed: int, size: int = 24) -> np.ndarray:
    """An sRGB image (H, W, 3) in [0, 1] made in CIELAB, with colours well inside the sRGB gamut."""
    rng = np.random.default_rng(seed)
    lab = np.stack([rng.uniform(35, 75, (size, size)), rng.uniform(-18, 18, (size, size)),
                    rng.uniform(-18, 18, (size, size))], -1)
    return lab


def test_lab_chroma_matches_skimage():
    rgb = np.random.default_rng(0).uniform(0, 1, (16, 20, 3))
    lab = rgb2lab(rgb)
    expected = np.hypot(lab[..., 1], lab[..., 2])
    ours = lab_chroma(_nchw(rgb))[0].numpy()
    # skimage rounds the sRGB -> XYZ matrix to 6 digits; chroma runs 0 .. ~130
    np.testing.assert_allclose(ours, expected, atol=0.02)


def test_grey_images_have_no_chroma_and_pure_colours_their_known_chroma():
    grey = torch.linspace(0, 1, 3 * 8 * 8).reshape(1, 3, 8, 8)[:, :1].expand(1, 3, 8, 8)
    assert float(lab_chroma(grey).abs().max()) < 1e-4
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert float(mean_chroma(red)[0]) == pytest.approx(104.55, abs=0.05)  # sRGB red: a* 80.11, b* 67.22


@pytest.mark.parametrize("scale", [0.0, 0.5, 0.8, 1.0, 1.3])
def test_chroma_ratio_of_a_copy_with_scaled_chroma(scale):
    lab = _lab_image(1)  # chroma <= 26 before scaling: x 1.3 stays inside sRGB at these lightnesses
    original = lab2rgb(lab)
    copy = lab2rgb(lab * np.array([1.0, scale, scale]))  # same lightness and hue, chroma x scale
    ratio = chroma_ratio(_nchw(original), _nchw(copy))
    assert ratio.shape == (1,)
    assert float(ratio[0]) == pytest.approx(scale, abs=2e-3)


def test_chroma_ratio_is_per_image_and_nan_for_grey_originals():
    lab = _lab_image(2)
    a, b = _nchw(lab2rgb(lab)), _nchw(lab2rgb(lab * np.array([1.0, 0.25, 0.25])))
    grey = torch.full_like(a, 0.5)
    r = chroma_ratio(torch.cat([a, a, grey]), torch.cat([a, b, a]))
    assert r[0].item() == pytest.approx(1.0) and r[1].item() == pytest.approx(0.25, abs=2e-3)
    assert torch.isnan(r[2])
    with pytest.raises(ValueError, match="same shape"):
        chroma_ratio(a, a[..., :4])
    with pytest.raises(ValueError, match="RGB images"):
        lab_chroma(a[:, :1])


def test_code_histogram_tv_known_answers():
    a = torch.tensor([[0, 0, 1, 1]])
    assert code_histogram_tv(a, torch.tensor([1, 0, 1, 0, 0, 1]), 4) == 0.0  # same frequencies, other sizes
    assert code_histogram_tv(a, torch.tensor([2, 3]), 4) == 1.0  # disjoint
    assert code_histogram_tv(a, torch.tensor([0, 0, 0, 2]), 4) == pytest.approx(0.5)  # |.5-.75|+|.5-0|+|0-.25| = 1
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        code_histogram_tv(a, torch.tensor([4]), 4)


def test_reconstruct_table_has_the_chroma_ratio(tmp_path):
    """`reconstruct_folder` (what `hit-decoder reconstruct` runs) reports each image's chroma ratio,
    equal to the metric on the written PNG (up to 8-bit rounding), and none for a grey image."""
    from PIL import Image

    from hit_decoder.images import fit_to_factor
    from hit_decoder.reconstruct import reconstruct_folder
    from hit_decoder.training import load_train_config
    from hit_decoder.training.models import build_models

    images = tmp_path / "images"
    images.mkdir()
    colour = (lab2rgb(_lab_image(3, 32)) * 255).round().astype(np.uint8)
    Image.fromarray(colour).save(images / "colour.png")
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(images / "grey.png")
    vq = build_models(load_train_config("demo", ["seed=0"])).vq.eval()
    report = reconstruct_folder(vq, images, tmp_path / "out")
    rows = {r["image"]: r for r in report.rows}
    assert rows["grey.png"]["chroma_ratio"] == ""
    with Image.open(tmp_path / "out" / "colour.png") as img:
        recon = fit_to_factor(img.convert("RGB"), 4)[None]
    expected = chroma_ratio(_nchw(colour / 255.0), (recon + 1) / 2)
    assert rows["colour.png"]["chroma_ratio"] == pytest.approx(float(expected[0]), abs=0.02)
    assert report.mean_chroma_ratio == rows["colour.png"]["chroma_ratio"]
    table = (tmp_path / "out" / "metrics.md").read_text()
    assert "| chroma ratio |" in table and "Chroma ratio: mean CIELAB chroma" in table
