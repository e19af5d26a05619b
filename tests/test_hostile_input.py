"""Hostile and careless input (issue 9): configs that would run code, runs and outputs that would be
overwritten, images that would come out wrong, sizes that would exhaust memory, and mistakes that
would end in a traceback. Every crafted file is built here, in tmp_path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import hit_decoder.adapters as A
from hit_decoder.cli import main
from support import TINY_HIT, TINY_TAMING_DD, write_tiny_prior, write_yaml

from taming.main import instantiate_from_config

SCHEDULER = {"target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
             "params": {"warm_up_steps": 0, "max_decay_steps": 1000, "lr_start": 0.9, "lr_max": 0.9, "lr_min": 1e-6}}


def payload(marker: Path) -> dict:
    """What a stranger's config would hide in a taming YAML: a command that leaves ``marker`` behind."""
    return {"target": "subprocess.call", "params": {"args": ["touch", str(marker)]}}


def gumbel_cfg(scheduler=SCHEDULER, loss=None, target="taming.models.vqgan.GumbelVQ", **extra) -> dict:
    params = {"embed_dim": 8, "n_embed": 16, "kl_weight": 1e-8, "ddconfig": copy.deepcopy(TINY_TAMING_DD),
              "temperature_scheduler_config": scheduler, "lossconfig": loss or {"target": "torch.nn.Identity"}, **extra}
    return {"model": {"target": target, "params": params}}


@pytest.fixture
def evil(tmp_path):
    """A GumbelVQ YAML whose temperature schedule runs a command, and the file that command creates."""
    marker = tmp_path / "pwned"
    return write_yaml(gumbel_cfg(payload(marker)), tmp_path / "evil.yaml"), marker


# ----------------------------------------------------------------------------- 1. no code from configs
KEY = "model.params.temperature_scheduler_config.target"


def test_load_vqgan_refuses_targets_outside_the_allowlist_before_importing(evil, tmp_path):
    yaml, marker = evil
    with pytest.raises(A.UnsupportedTargetError, match=KEY.replace(".", r"\.")) as err:
        A.load_vqgan(yaml)
    assert "subprocess.call" in str(err.value) and not marker.exists()
    # the loss config (built under with_loss=True), nested targets at any depth, lists
    deep = {"target": SCHEDULER["target"], "params": {**SCHEDULER["params"], "extra": [{"x": payload(marker)}]}}
    cases = [
        (gumbel_cfg(loss=payload(marker)), "model.params.lossconfig.target"),
        (gumbel_cfg(deep), "model.params.temperature_scheduler_config.params.extra[0].x.target"),
        ({"target": "taming.models.cond_transformer.Net2NetTransformer",
          "params": {"first_stage_config": gumbel_cfg(payload(marker))["model"]}},
         "params.first_stage_config.params.temperature_scheduler_config.target"),
    ]
    for cfg, key in cases:
        with pytest.raises(A.UnsupportedTargetError) as err:
            A.load_vqgan(cfg, with_loss=True)
        assert key in str(err.value), str(err.value)
    assert not marker.exists()
    A.load_vqgan(gumbel_cfg())  # taming's own scheduler is allowed


def test_hit_classes_refuse_foreign_targets_when_taming_builds_them(tmp_path):
    """taming's instantiate_from_config (e.g. a Net2NetTransformer's first stage) builds our classes
    directly: they check their own sub-configs."""
    marker = tmp_path / "pwned"
    for sched, loss in ((payload(marker), None), (SCHEDULER, payload(marker))):
        cfg = gumbel_cfg(sched, loss, target="hit_decoder.adapters.HiTGumbelVQ", decoder_config=TINY_HIT)
        with pytest.raises(A.UnsupportedTargetError, match="subprocess.call"):
            instantiate_from_config(cfg["model"])
    assert not marker.exists()


@pytest.mark.parametrize("command", ["swap", "reconstruct", "finetune-decoder", "sample", "train-prior"])
def test_cli_commands_refuse_the_config_payload(command, evil, tmp_path, capsys):
    yaml, marker = evil
    ckpt = tmp_path / "vq.ckpt"
    ckpt.write_bytes(b"not read: the config is refused first")
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32)).save(images / "a.png")
    argv = {
        "swap": ["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--decoder", "hit-1m-f16",
                 "--out", str(tmp_path / "out")],
        "reconstruct": ["reconstruct", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--images",
                        str(images), "--out", str(tmp_path / "out")],
        "finetune-decoder": ["finetune-decoder", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt),
                             "--out-dir", str(tmp_path / "out"), "loss.perceptual_weight=0"],
        "sample": ["sample", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--prior",
                   str(tmp_path / "prior.safetensors"), "--size", "64", "--out", str(tmp_path / "out")],
        "train-prior": ["train-prior", "--config", "demo", "first_stage.untrained=null",
                        f"first_stage.taming_config={yaml}", f"out_dir={tmp_path / 'out'}"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert KEY in err and "subprocess.call" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()
    assert not (tmp_path / "out" / "taming").exists()


def test_exports_and_library_files_carry_only_allowed_targets(tmp_path):
    marker = tmp_path / "pwned"
    vq = A.load_vqgan(gumbel_cfg())
    A.swap_decoder(vq, TINY_HIT)
    vq.temperature_scheduler_config = payload(marker)  # e.g. copied from a config loaded elsewhere
    with pytest.raises(A.UnsupportedTargetError, match="temperature_scheduler_config"):
        A.export_taming(vq, tmp_path / "m.ckpt", tmp_path / "m.yaml")
    with pytest.raises(A.UnsupportedTargetError):
        A.save_vqmodel(vq, tmp_path / "m.safetensors")
    assert not list(tmp_path.glob("m.*"))
    vq.temperature_scheduler_config = SCHEDULER
    with pytest.raises(A.UnsupportedTargetError, match="lossconfig"):
        A.export_taming(vq, tmp_path / "m.ckpt", tmp_path / "m.yaml", lossconfig=payload(marker))
    # a library file whose metadata was edited to carry the payload
    from safetensors.torch import load_file, save_file

    good = A.save_vqmodel(vq, tmp_path / "good.safetensors")
    config = A.taming_config(vq)
    config["params"]["temperature_scheduler_config"] = payload(marker)
    save_file(load_file(str(good)), str(tmp_path / "edited.safetensors"),
              metadata={"format": A.FORMAT_VQMODEL, "version": "2", "config": json.dumps(config)})
    with pytest.raises(A.UnsupportedTargetError, match=r"edited\.safetensors.*params\.temperature_scheduler_config"):
        A.load_vqmodel(tmp_path / "edited.safetensors")
    assert not marker.exists()


# ----------------------------------------------------------------------------- 3. 16-bit images
def test_16_bit_png_is_scaled_by_bit_depth_not_by_its_own_range(tmp_path):
    import numpy as np
    from PIL import Image

    from hit_decoder.images import load_rgb

    for value, expected in ((65535, 255), (0, 0), (32896, 128)):
        path = tmp_path / f"v{value}.png"
        Image.fromarray(np.full((4, 5), value, dtype=np.uint16)).save(path)
        with Image.open(path) as check:
            assert check.mode.startswith("I")  # a real 16-bit PNG
        arr = np.asarray(load_rgb(path))
        assert arr.shape == (4, 5, 3) and (arr == expected).all(), (value, arr.min(), arr.max())
    ramp = tmp_path / "ramp.png"
    Image.fromarray(np.array([[1000, 2000]], dtype=np.uint16)).save(ramp)  # dark: must stay dark
    assert np.asarray(load_rgb(ramp)).max() == round(2000 / 65535 * 255)


# ----------------------------------------------------------------------------- 7. symlinks, file modes
def test_symlinked_images_and_folder_loops_count_each_image_once(tmp_path):
    import os

    from PIL import Image

    from hit_decoder.common.data import list_images

    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "sub" / "a.png")
    Image.new("RGB", (8, 8)).save(root / "b.png")
    os.symlink(root, root / "sub" / "loop")  # a loop back to the top
    os.symlink(root / "sub", root / "again")  # a second name for a folder
    os.symlink(root / "b.png", root / "sub" / "b_link.png")  # a second name for a file
    found = list_images(root)
    assert sorted(os.path.realpath(p) for p in found) == sorted(
        os.path.realpath(p) for p in (root / "sub" / "a.png", root / "b.png"))
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "c.png")
    os.symlink(outside, root / "linked")  # links into other folders are still followed
    assert len(list_images(root)) == 3


def test_atomic_files_respect_the_umask(tmp_path):
    import os

    from hit_decoder.fileio import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        os.umask(0o077)
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600


def test_non_integer_grid_shapes_are_rejected():
    from hit_decoder.sampling import grid_shape_for

    with pytest.raises(ValueError, match="16.5"):
        grid_shape_for((16.5, 16), 1)
    with pytest.raises(ValueError, match="positive int"):
        grid_shape_for((True, 16), 1)
    assert grid_shape_for((32, 64), 4) == (8, 16)


# ----------------------------------------------------------------------------- 2. no lost runs or outputs
def test_train_and_train_prior_refuse_to_replace_a_finished_run(tmp_path, capsys):
    from hit_decoder.training import run_training

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run")
    with pytest.raises(FileExistsError, match="resume=auto.*overwrite=true"):
        run_training("demo", [f"out_dir={run}", "trainer.max_batches=1"])
    assert main(["train-prior", "--config", "demo", f"out_dir={run}", "trainer.max_batches=1"]) == 2
    assert "checkpoints/last.ckpt" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"the earlier run"
    with pytest.raises(ValueError, match="contradict"):
        run_training("demo", [f"out_dir={run}", "resume=auto", "overwrite=true"])


def test_swap_reconstruct_refuse_earlier_outputs_and_overwrite_leaves_nothing_stale(vq_files, tmp_path, capsys):
    yaml, ckpt, images = vq_files
    out = tmp_path / "swapped"
    decoder = write_yaml(TINY_HIT, tmp_path / "tiny_hit.yaml")
    swap = ["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--decoder", str(decoder), "--out", str(out)]
    assert main(swap) == 0
    first = (out / "model.safetensors").read_bytes()
    assert main(swap + ["--seed", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "model.safetensors").read_bytes() == first
    assert main(swap + ["--seed", "1", "--format", "library", "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() != first
    assert not (out / "taming" / "model.ckpt").exists()  # the earlier taming export would look current
    recon = ["reconstruct", "--model", str(out / "model.safetensors"), "--images", str(images), "--out", str(tmp_path / "r")]
    assert main(recon) == 0
    (images / "a.png").rename(images / "b.png")
    assert main(recon) == 2 and "metrics.csv" in capsys.readouterr().err
    assert main(recon + ["--overwrite"]) == 0
    listed = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert listed == [".hit-decoder-outputs.json", "b.png", "metrics.csv", "metrics.md"]  # + the manifest (issue 18)


# ----------------------------------------------------------------------------- 4. memory
def test_metadata_is_checked_against_the_weights_before_anything_is_built(vq_files, tmp_path):
    from safetensors.torch import load_file, save_file

    from hit_decoder import create_decoder, load_decoder, save_decoder

    yaml, ckpt, _ = vq_files
    lib = A.save_vqmodel(A.swap_decoder(A.load_vqgan(yaml, ckpt), TINY_HIT), tmp_path / "m.safetensors")
    config = A.taming_config(A.load_vqmodel(lib))
    config["params"]["n_embed"] = 20_000_000  # would allocate 640 MB of codebook before any check
    save_file(load_file(str(lib)), str(tmp_path / "big.safetensors"),
              metadata={"format": A.FORMAT_VQMODEL, "version": "2", "config": json.dumps(config)})
    with pytest.raises(ValueError, match=r"big\.safetensors.*do not fit.*quantize\.embedding\.weight"):
        A.load_vqmodel(tmp_path / "big.safetensors")
    dec = save_decoder(create_decoder("hit-1m-f16", z_channels=4), tmp_path / "d.safetensors")
    cfg = create_decoder("hit-1m-f16", z_channels=4).config.to_dict()
    for meta, msg in (({"config": json.dumps({**cfg, "channels": [100_000] * len(cfg["channels"])})}, "do not fit"),
                      ({"config": "{not json"}, r"d2\.safetensors.*'config'.*not valid JSON"),
                      ({}, r"d2\.safetensors.*'config'.*missing")):
        save_file(load_file(str(dec)), str(tmp_path / "d2.safetensors"),
                  metadata={"format": "hit-decoder/decoder", "version": "2", **meta})
        with pytest.raises(ValueError, match=msg):
            load_decoder(tmp_path / "d2.safetensors")


def test_sample_refuses_a_size_that_cannot_fit_in_memory():
    from hit_decoder.commands.sample import available_memory, check_memory

    if available_memory() is None:
        pytest.skip("psutil cannot tell the available memory here")
    with pytest.raises(MemoryError, match="smaller --size"):
        check_memory((400_000, 400_000), 1, None, 64)
    with pytest.raises(MemoryError, match="--tile"):
        side = int((available_memory() / 24 / 2) ** 0.5)  # the canvas fits, the whole decode does not
        check_memory((side, side), 1, None, 64)
    check_memory((side, side), 1, 512, 64)


# ----------------------------------------------------------------------------- 5./6. errors, not tracebacks
def test_cli_mistakes_are_one_line_errors_with_exit_code_2(vq_files, tmp_path, capsys):
    import argparse

    yaml, ckpt, images = vq_files
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--decoder", "hit-1m-f16",
          "--override", "z_channels=4", "--out", str(tmp_path / "o")], "z_channels"),
        (["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--decoder", "hit-1m-f16", "--out", str(a_file)],
         "--out"),
        (["sample", "--model", str(tmp_path / "m.safetensors"), "--prior", str(tmp_path / "p.safetensors"),
          "--size", "64", "--out", str(a_file)], "--out"),
        (["train", "--config", "demo", f"out_dir={a_file}"], "out_dir"),
    ]
    (tmp_path / "zero.ckpt").write_bytes(b"")
    torch.save({"state_dict": {}, "x": argparse.Namespace()}, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False)
    for resume, msg in (("zero.ckpt", "empty"), ("legacy.ckpt", "weights_only")):
        cases.append((["train", "--config", "demo", f"out_dir={tmp_path / 'run'}", f"resume={tmp_path / resume}"], msg))
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError):  # --debug re-raises
        main(["--debug", "train", "--config", "demo", f"out_dir={a_file}"])


def test_legacy_pickle_needing_full_unpickling_is_not_called_corrupt(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Payload()}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(A.UnsafeCheckpointError, match="needs full unpickling") as err:
        A.read_checkpoint(path)
    assert "corrupt" not in str(err.value)


def test_data_size_and_validation_images_are_checked_at_start_up(tmp_path):
    from PIL import Image

    from hit_decoder.training import run_training

    with pytest.raises(ValueError, match=r"data\.size=90 is not a multiple of the model's downsampling factor"):
        run_training("demo", [f"out_dir={tmp_path / 'a'}", "data.size=90", "trainer.max_batches=1"])
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir(), val.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 64)).save(train / f"{i}.png")
    (val / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"data\.val.*none of the 1 validation images"):
        run_training("demo", [f"out_dir={tmp_path / 'b'}", f"data.train={train}", f"data.val={val}",
                              "trainer.max_batches=1"])
    assert not (tmp_path / "b" / "checkpoints").exists()


# ----------------------------------------------------------------------------- prior metadata and codebook
def test_prior_metadata_and_codebook_fingerprint(vq_files, tmp_path):
    from hit_decoder.prior import load_prior

    yaml, ckpt, _ = vq_files
    trained, other = (lambda: A.load_vqgan(yaml, ckpt)), (lambda: A.load_vqgan(yaml))  # other: same size, other codes
    load_prior(write_tiny_prior(trained, tmp_path), trained())
    with pytest.raises(ValueError, match=r"prior\.safetensors.*another codebook"):
        load_prior(write_tiny_prior(trained, tmp_path), other())
    old = write_tiny_prior(trained, tmp_path, first_stage=lambda fs: {k: v for k, v in fs.items() if k != "codebook_sha256"})
    with pytest.warns(UserWarning, match="no codebook fingerprint"):
        load_prior(old, other())
    for edit, msg in (({"gpt": lambda g: {**g, "bias": True}}, "section 'gpt'"),
                      ({"first_stage": {"codebook_size": 16}}, "section 'first_stage'"),
                      ({"window": [4.5, 4]}, "window")):
        with pytest.raises(ValueError, match=rf"prior\.safetensors.*{msg}"):
            load_prior(write_tiny_prior(trained, tmp_path, **edit), trained())


# ----------------------------------------------------------------------------- 7. source layout = package layout
def test_checkout_root_imports_the_same_package_as_an_install(pyproject):
    """Python started in the checkout root imports ``hit_decoder`` from the source folder, which must
    therefore hold everything the installed package holds (adapters, shipped configs)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    setup = pyproject["tool"]["setuptools"]
    assert all(src == name.replace(".", "/") for name, src in setup.get("package-dir", {}).items())
    assert all((root / name.replace(".", "/")).is_dir() for name in setup["packages"])
    code = ("import hit_decoder, hit_decoder.adapters\nfrom hit_decoder import list_decoders\n"
            "from hit_decoder.training.config import shipped_train_configs\n"
            "print(hit_decoder.__file__); print(list_decoders()); print(sorted(shipped_train_configs()))")
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith(str(root / "hit_decoder")) and "hit-8m-f16" in lines[1] and "demo" in lines[2]


def test_demo_refuses_an_earlier_run_without_overwrite(tmp_path, capsys):
    (tmp_path / "stage1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "stage1" / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and str(tmp_path) in err
    assert (tmp_path / "stage1" / "checkpoints" / "last.ckpt").read_bytes() == b"an earlier run"
