"""Hostile and careless input, round 2 (issue 18): files that opt themselves into running code,
``--overwrite`` that deletes what the user meant to keep, runs that hang, allocate or die without a
checkpoint, and mistakes that end in a traceback. Every crafted file is built here, in tmp_path;
the commands run in-process (``main``) or, where signals and locks matter, as real processes."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import hit_decoder.adapters as A
from hit_decoder.cli import main

DD = {"double_z": False, "z_channels": 8, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
      "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
TINY_HIT = {"channels": [32, 16], "depths": [1, 1], "heads": [2, 2], "num_attention_stages": 1,
            "block_size": [2], "dilation_grid": [2]}
ROOT = Path(__file__).resolve().parents[1]


def write_yaml(cfg: dict, path: Path) -> Path:
    OmegaConf.save(OmegaConf.create(cfg), path)
    return path


@pytest.fixture
def vq_files(tmp_path):
    """A tiny taming VQModel as taming ships one (YAML + .ckpt) and a folder with one photograph."""
    from PIL import Image

    cfg = {"model": {"target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 8, "n_embed": 16, "ddconfig": copy.deepcopy(DD), "lossconfig": {"target": "torch.nn.Identity"}}}}
    yaml = write_yaml(cfg, tmp_path / "vq.yaml")
    ckpt = tmp_path / "vq.ckpt"
    torch.save({"state_dict": A.load_vqgan(yaml).state_dict()}, ckpt)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(images / "a.png")
    return yaml, ckpt, images


class Payload:
    """What a stranger's checkpoint hides: unpickling it runs a command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (subprocess.call, (["touch", self.marker],))


def cli(*argv: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """``hit-decoder ARGV`` as a real process of this checkout, on one thread."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "hit_decoder.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def popen(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hit_decoder.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


# ----------------------------------------------------------------------------- 1. no file opts into unpickling
def test_a_config_cannot_opt_itself_into_unpickling(vq_files, tmp_path, capsys):
    yaml, _, _ = vq_files
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"x": Payload(marker)}, evil)
    prior = write_yaml({"first_stage": {"taming_config": str(yaml), "taming_ckpt": str(evil), "allow_unsafe_pickle": True},
                        "trainer": {"max_batches": 1}}, tmp_path / "prior.yaml")
    train = write_yaml({"mode": "decoder_swap", "model": {"vqgan_config": str(yaml), "vqgan_ckpt": str(evil),
                                                          "allow_unsafe_pickle": True, "decoder": TINY_HIT},
                        "loss": {"perceptual_weight": 0}, "trainer": {"max_batches": 1}}, tmp_path / "train.yaml")
    runs = [["train-prior", "--config", str(prior), f"out_dir={tmp_path / 'p'}"],
            ["train", "--config", str(train), f"out_dir={tmp_path / 't'}"],
            ["finetune-decoder", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(evil), "--config", str(train),
             "--out-dir", str(tmp_path / 'f')],
            ["train-prior", "--config", "demo", f"first_stage.taming_config={yaml}", f"first_stage.taming_ckpt={evil}",
             "first_stage.allow_unsafe_pickle=true", f"out_dir={tmp_path / 'o'}"]]
    for argv in runs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "allow_unsafe_pickle is not read from configs" in err and "--allow-unsafe-pickle" in err, err
        assert not marker.exists(), argv
    # a false value asks for nothing and is accepted; the refusal of the checkpoint names a flag that exists
    prior_safe = write_yaml({"first_stage": {"taming_config": str(yaml), "taming_ckpt": str(evil),
                                             "allow_unsafe_pickle": False}}, tmp_path / "prior_safe.yaml")
    assert main(["train-prior", "--config", str(prior_safe), f"out_dir={tmp_path / 'p2'}"]) == 2
    err = capsys.readouterr().err
    assert "full unpickling" in err and "--allow-unsafe-pickle" in err and not marker.exists(), err
    # the person running the command can opt in, on the command line (here the file then fails: no weights)
    assert main(["train-prior", "--config", str(prior_safe), f"out_dir={tmp_path / 'p3'}", "--allow-unsafe-pickle"]) == 2
    assert marker.exists()
    marker.unlink()
    train_safe = OmegaConf.load(train)
    del train_safe.model["allow_unsafe_pickle"]
    OmegaConf.save(train_safe, tmp_path / "train_safe.yaml")
    assert main(["train", "--config", str(tmp_path / "train_safe.yaml"), f"out_dir={tmp_path / 't2'}"]) == 2
    assert "--allow-unsafe-pickle" in capsys.readouterr().err and not marker.exists()
    assert main(["train", "--config", str(tmp_path / "train_safe.yaml"), "--allow-unsafe-pickle",
                 f"out_dir={tmp_path / 't3'}"]) == 2
    assert marker.exists()
