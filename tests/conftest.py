"""Fixtures shared by several test files (test files never import each other)."""

import copy
from pathlib import Path

import pytest
import torch

from support import TINY_TAMING_DD, write_yaml

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the `tomli` backport, in the dev extra for 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pyproject() -> dict:
    """The checkout's parsed ``pyproject.toml``."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture
def one_thread():
    """Tiny models run as fast on one thread, and two OpenMP threads slow down badly (10x and
    more) when other processes share the two cores. Test files opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def vq_files(tmp_path):
    """A tiny taming VQModel as taming ships one (YAML + .ckpt) and a folder with one photograph."""
    from PIL import Image

    import hit_decoder.adapters as A

    cfg = {"model": {"target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 8, "n_embed": 16, "ddconfig": copy.deepcopy(TINY_TAMING_DD),
        "lossconfig": {"target": "torch.nn.Identity"}}}}
    yaml = write_yaml(cfg, tmp_path / "vq.yaml")
    ckpt = tmp_path / "vq.ckpt"
    torch.save({"state_dict": A.load_vqgan(yaml).state_dict()}, ckpt)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(images / "a.png")
    return yaml, ckpt, images
