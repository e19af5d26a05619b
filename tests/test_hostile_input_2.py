"""Hostile and careless input, round 2 (issue 18): files that opt themselves into running code,
``--overwrite`` that deletes what the user meant to keep, runs that hang, allocate or die without a
checkpoint, and mistakes that end in a traceback. Every crafted file is built here, in tmp_path;
the commands run in-process (``main``) or, where signals and locks matter, as real processes."""

from __future__ import annotations

import contextlib
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
from support import TINY_HIT, TINY_PRIOR_RUN, write_tiny_prior, write_yaml

ROOT = Path(__file__).resolve().parents[1]


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


# ----------------------------------------------------------------------------- 2.-4. --overwrite keeps what it did not write
def test_reconstruct_into_the_image_folder_is_refused_and_keeps_the_photographs(vq_files, tmp_path, capsys):
    yaml, ckpt, images = vq_files
    photo = (images / "a.png").read_bytes()
    base = ["reconstruct", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--images", str(images)]
    for out in (images, images / "sub"):
        assert main([*base, "--out", str(out), "--overwrite"]) == 2
        assert "inside it" in capsys.readouterr().err
        assert (images / "a.png").read_bytes() == photo and not (images / "sub").exists()
    # a file in --out that an earlier run did not write is never replaced, --overwrite or not
    out = tmp_path / "r"
    out.mkdir()
    (out / "a.png").write_bytes(b"my own picture")
    for extra in ([], ["--overwrite"]):
        assert main([*base, "--out", str(out), *extra]) == 2
        assert "did not write" in capsys.readouterr().err and (out / "a.png").read_bytes() == b"my own picture"


def _sample_setup(vq_files, tmp_path):
    yaml, ckpt, _ = vq_files
    prior = write_tiny_prior(lambda: A.load_vqgan(yaml, ckpt), tmp_path)
    return ["sample", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--prior", str(prior), "--size", "8"]


def test_sample_overwrite_deletes_nothing_outside_out_or_unlisted(vq_files, tmp_path, capsys):
    base = _sample_setup(vq_files, tmp_path)
    out, victim = tmp_path / "a" / "out", tmp_path / "victim"
    victim.mkdir()
    for name in ("precious.png", "precious.npy", "other.png"):
        (victim / name).write_bytes(b"keep me")
    listing = lambda: sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert main([*base, "--out", str(out), "--seed", "1"]) == 0
    assert listing() == ["s1_000.npy", "s1_000.png", "samples.json"]
    summary = json.loads((out / "samples.json").read_text())
    (out / "samples.json").write_text(json.dumps({**summary, "samples": [*summary["samples"], "../../victim/precious"]}))
    manifest = out / ".hit-decoder-outputs.json"  # the list of files sample wrote: names outside out are ignored
    files = json.loads(manifest.read_text())["files"] if manifest.exists() else []
    manifest.write_text(json.dumps({"files": [*files, "../../victim/other.png", str(victim / "other.png")]}))
    assert main([*base, "--out", str(out), "--seed", "2", "--overwrite"]) == 0
    assert all((victim / n).read_bytes() == b"keep me" for n in ("precious.png", "precious.npy", "other.png"))
    assert listing() == ["s2_000.npy", "s2_000.png", "samples.json"]


def test_overwrite_with_a_mistake_elsewhere_keeps_the_earlier_outputs(vq_files, tmp_path, capsys):
    yaml, ckpt, images = vq_files
    decoder = write_yaml(TINY_HIT, tmp_path / "tiny_hit.yaml")
    swap = ["swap", "--vqgan-config", str(yaml), "--decoder", str(decoder), "--out", str(tmp_path / "s")]
    assert main([*swap, "--vqgan-ckpt", str(ckpt)]) == 0
    model = tmp_path / "s" / "model.safetensors"
    recon = ["reconstruct", "--images", str(images), "--out", str(tmp_path / "r")]
    assert main([*recon, "--model", str(model)]) == 0
    sample = _sample_setup(vq_files, tmp_path)
    assert main([*sample, "--out", str(tmp_path / "p"), "--seed", "1"]) == 0
    before = {p: p.read_bytes() for d in ("s", "r", "p") for p in (tmp_path / d).rglob("*") if p.is_file()}
    missing = str(tmp_path / "missing")
    for argv in ([*swap, "--vqgan-ckpt", missing, "--overwrite"], [*recon, "--model", missing, "--overwrite"],
                 [*sample[:-2], "--size", "8", "--out", str(tmp_path / "p"), "--seed", "2", "--overwrite",
                  "--prior", missing]):
        assert main(argv) == 2, argv
        capsys.readouterr()
    after = {p: p.read_bytes() for d in ("s", "r", "p") for p in (tmp_path / d).rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if ".new-" in p.name]  # no staging folder left behind


def test_training_overwrite_replaces_the_earlier_run_only_when_the_new_one_succeeds(tmp_path, capsys):
    import pytorch_lightning as pl

    from hit_decoder.training import run_training
    from support import tiny_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run")
    (run / "result.json").write_text("{}")
    # a missing data path (train) or first stage (train-prior): nothing replaced
    assert main(["train", "--config", "demo", f"out_dir={run}", "overwrite=true", f"data.train={tmp_path / 'no'}"]) == 2
    assert main(["train-prior", "--config", "demo", f"out_dir={run}", "overwrite=true",
                 "first_stage.untrained=null", f"first_stage.model={tmp_path / 'no.safetensors'}"]) == 2
    capsys.readouterr()
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"the earlier run"

    class Boom(pl.Callback):
        def on_train_batch_end(self, *args):
            raise RuntimeError("boom")

    cfg = tiny_config(run, overwrite=True, trainer={"max_batches": 2, "ckpt_every": 1})
    with pytest.raises(RuntimeError, match="boom"):
        run_training(cfg, callbacks=[Boom()])  # failed after training started: the earlier run is put back
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"the earlier run"
    assert (run / "result.json").read_text() == "{}" and not (run / ".replaced-run").exists()
    result = run_training(cfg)
    assert result.batches_done == 2 and (run / "checkpoints" / "last.ckpt").read_bytes() != b"the earlier run"
    assert not (run / ".replaced-run").exists() and not (run / ".hit-decoder.lock").exists()


# ----------------------------------------------------------------------------- 5./9. a locked folder, SIGTERM
def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def _terminate(proc: subprocess.Popen) -> tuple[int, str, float]:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not stop within 60 s of SIGTERM")
    return proc.returncode, err, time.monotonic() - start


def test_a_running_train_locks_its_folder_and_sigterm_stops_it_with_a_resumable_checkpoint(tmp_path):
    from support import tiny_config

    out = tmp_path / "run"
    cfg = tiny_config(out, trainer={"max_batches": 100_000, "ckpt_every": 2})
    yaml = write_yaml(cfg, tmp_path / "tiny.yaml")
    first = popen("train", "--config", str(yaml))
    try:
        _wait_for(out / "checkpoints" / "last.ckpt", first)  # training: batch 2 done
        second = cli("train", "--config", str(yaml), "resume=auto")
        assert second.returncode == 2 and f"process {first.pid}" in second.stderr, second.stderr
        code, err, took = _terminate(first)
    finally:
        first.kill()
    assert code == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "resume=auto" in err and "Traceback" not in err, err[-2000:]
    assert took < 90 and not (out / ".hit-decoder.lock").exists()
    done = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["hit_decoder_training"]["batches_done"]
    assert done >= 2
    assert main(["train", "--config", str(yaml), "resume=auto", f"trainer.max_batches={done + 1}"]) == 0
    assert json.loads((out / "result.json").read_text())["batches_done"] == done + 1


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "p"
    out.mkdir()
    (out / ".hit-decoder.lock").write_text(f"{gone.pid}\n")
    assert main(["train-prior", "--config", "demo", f"out_dir={out}", *TINY_PRIOR_RUN, "trainer.max_batches=1"]) == 0
    assert f"taking over the lock {out / '.hit-decoder.lock'} of process {gone.pid}" in caplog.text
    assert (out / "prior.safetensors").is_file() and not (out / ".hit-decoder.lock").exists()


def test_sigterm_stops_train_prior_with_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "prior"
    argv = ["train-prior", "--config", "demo", f"out_dir={out}", *TINY_PRIOR_RUN, "trainer.max_batches=100000",
            "trainer.ckpt_every=2"]
    proc = popen(*argv)
    try:
        _wait_for(out / "checkpoints" / "last.ckpt", proc)
        code, err, took = _terminate(proc)
    finally:
        proc.kill()
    assert code == 143 and "resume=auto" in err and took < 90, err[-2000:]
    done = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["hit_decoder_batches_done"]
    assert done >= 2 and not (out / "prior.safetensors").exists()
    assert main([*argv[:-2], "resume=auto", f"trainer.max_batches={done + 1}"]) == 0
    assert json.loads((out / "result.json").read_text())["batches_done"] == done + 1


# ----------------------------------------------------------------------------- 7. prior sizes checked before building
@pytest.mark.parametrize("architecture", [None, {"kind": "windowed", "rows_above": 1, "cols_each_side": 1}])
def test_an_edited_prior_size_is_refused_before_the_model_is_built(vq_files, tmp_path, architecture):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from hit_decoder.prior import build_prior, first_stage_summary, load_prior, save_prior

    yaml, ckpt, _ = vq_files
    vq = A.load_vqgan(yaml, ckpt)
    gpt = {"vocab_size": 16, "block_size": 16, "n_layer": 1, "n_head": 1, "n_embd": 8}
    info = {"gpt": gpt, "conditioning": {"kind": "unconditional", "sos_token": 0}, "window": [4, 4],
            "first_stage": {**first_stage_summary(vq), "source": "test"}}
    if architecture:
        info["architecture"] = architecture
    path = save_prior(build_prior(vq, gpt, info["conditioning"], architecture), tmp_path / "prior.safetensors", info)
    load_prior(path, vq)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    edited = json.loads(meta["info"])
    edited["gpt"]["n_embd"] = 2048  # 50 M parameters built before any check until now (65536: a 17 GB allocation)
    save_file(load_file(str(path)), str(tmp_path / "edited.safetensors"), metadata={**meta, "info": json.dumps(edited)})
    with pytest.raises(ValueError, match=r"edited\.safetensors: its weights do not fit .*nothing was built"):
        load_prior(tmp_path / "edited.safetensors", vq)


# ----------------------------------------------------------------------------- 8. memory estimated before allocating
def bomb_png(path: Path, side: int = 12000) -> Path:
    """A PNG whose header claims ``side`` x ``side`` pixels (a few hundred bytes: a decompression bomb's header)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", side, side)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_reconstruct_and_presets_estimate_memory_and_read_image_sizes_from_the_header(vq_files, tmp_path, capsys, caplog):
    yaml, ckpt, images = vq_files
    base = ["reconstruct", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--images", str(images)]
    assert main([*base, "--out", str(tmp_path / "r"), "--resize", "60000"]) == 2
    err = capsys.readouterr().err
    assert "60000x60000 px after --resize 60000" in err and "GB of memory is available" in err, err
    assert not (tmp_path / "r").exists()
    bomb_png(images / "bomb.png")
    assert main([*base, "--out", str(tmp_path / "r")]) == 0
    assert "12000x12000 px" in caplog.text and "read from its header" in caplog.text
    assert "skipped 1 unreadable image" in capsys.readouterr().out
    assert main(["presets", "--size", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "--size 1000000000" in err and "GB of memory is available" in err, err


# ----------------------------------------------------------------------------- 6. only regular files are read
def test_a_named_pipe_called_b_png_is_not_read(vq_files, tmp_path, capsys):
    import threading

    from hit_decoder.common.data import build_data
    from hit_decoder.training import train_config_from_dict
    from support import tiny_config, write_tiny_images

    yaml, ckpt, images = vq_files
    train = write_tiny_images(tmp_path / "train")
    for folder in (images, train):
        os.mkfifo(folder / "b.png")  # opening it for reading blocks until someone writes
    results = {}

    def work():
        results["reconstruct"] = main(["reconstruct", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt),
                                       "--images", str(images), "--out", str(tmp_path / "r")])
        cfg = train_config_from_dict(tiny_config(tmp_path / "run", data={"train": str(train), "val": str(images)}))
        results["train"] = [p.name for p in build_data(cfg.data, cfg.seed).train.paths]

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(120)
    if worker.is_alive():  # blocked on a pipe: release it (a writer that closes at once), then fail
        for folder in (images, train):
            with contextlib.suppress(OSError):
                os.close(os.open(folder / "b.png", os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
        pytest.fail("reading the folder blocked on the named pipe b.png")
    assert results["reconstruct"] == 0 and (tmp_path / "r" / "a.png").is_file() and not (tmp_path / "r" / "b.png").exists()
    assert "b.png" not in results["train"] and len(results["train"]) == 4


# ----------------------------------------------------------------------------- 10. sample: --out first, Ctrl-C
def test_sample_checks_out_before_sampling_and_ctrl_c_is_one_line(vq_files, tmp_path, capsys, monkeypatch):
    import hit_decoder.sampling as S

    base = _sample_setup(vq_files, tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    calls = []
    real = S.sample_sliding_window
    monkeypatch.setattr(S, "sample_sliding_window", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main([*base, "--out", str(a_file / "out")]) == 2  # cannot be created: said before any sampling
    assert "--out" in capsys.readouterr().err and calls == []

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "sample_sliding_window", interrupted)
    try:
        code = main([*base, "--out", str(tmp_path / "o")])
    except KeyboardInterrupt:
        code = "a traceback"
    err = capsys.readouterr().err
    assert code == 130 and "interrupted" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists() and not [p for p in tmp_path.iterdir() if ".new-" in p.name]


# ----------------------------------------------------------------------------- 11. one-line errors
def test_more_cli_mistakes_are_one_line_errors(vq_files, tmp_path, capsys):
    from hit_decoder.cli import one_line

    yaml, ckpt, images = vq_files
    broken = tmp_path / "broken.yaml"
    broken.write_text("channels: [1,\n")
    swap = ["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--out", str(tmp_path / "s")]
    cases = [(["train", "--config", "demo", "trainer.devices=-5", f"out_dir={tmp_path / 'a'}"], "trainer.devices"),
             (["train", "--config", "demo", "data=[1,2", f"out_dir={tmp_path / 'a'}"], "cannot parse overrides"),
             (["train-prior", "--config", "demo", "trainer.devices=abc", f"out_dir={tmp_path / 'a'}"], "trainer.devices"),
             (["train", "--config", "demo", "seed=99999999999999999999", f"out_dir={tmp_path / 'a'}"], "seed must be"),
             ([*swap, "--decoder", "hit-1m-f16", "--override", "depths=[1,"], "not valid YAML"),
             ([*swap, "--decoder", str(broken)], "broken.yaml is not valid YAML"),
             ([*swap, "--decoder", "hit-1m-f16", "--seed", "99999999999999999999"], "--seed must be"),
             # a missing relative file looks like owner/name: it must be reported missing, not as a Hub id
             (["inspect", "no-such-run/model.safetensors"], "no-such-run/model.safetensors does not exist"),
             # taming-only flags beside a library file would be silently ignored
             (["reconstruct", "--model", str(ckpt), "--vqgan-ckpt", str(ckpt), "--allow-unsafe-pickle", "--images",
               str(images), "--out", str(tmp_path / "a")], "drop --vqgan-ckpt and --allow-unsafe-pickle"),
             (["sample", "--model", str(ckpt), "--allow-unsafe-pickle", "--prior", str(ckpt), "--size", "64x64", "--out",
               str(tmp_path / "a")],
              "drop --allow-unsafe-pickle")]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "s").exists()
    assert "out of memory" in one_line(MemoryError())


# ----------------------------------------------------------------------------- 12. smaller
def test_smaller_careless_inputs(vq_files, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from hit_decoder import create_decoder, save_decoder
    from hit_decoder.images import load_rgb

    yaml, ckpt, images = vq_files
    Image.new("RGB", (16, 16), (10, 200, 30)).save(images / "a.jpg")  # a.png is there already
    out = tmp_path / "r"
    assert main(["reconstruct", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--images", str(images),
                 "--out", str(out)]) == 0
    assert (out / "a.png.png").is_file() and (out / "a.jpg.png").is_file()  # neither replaces the other
    capsys.readouterr()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; show rotated by 90 degrees
    Image.new("RGB", (8, 4), (255, 0, 0)).save(tmp_path / "turned.jpg", exif=exif)
    assert load_rgb(tmp_path / "turned.jpg").size == (4, 8)
    Image.fromarray(np.full((4, 4), 2.5, dtype=np.float32), mode="F").save(tmp_path / "bright.tif")
    with pytest.raises(ValueError, match=r"float pixels outside \[0, 1\]"):
        load_rgb(tmp_path / "bright.tif")
    old = os.umask(0o022)
    try:
        dec = create_decoder("hit-1m-f16", z_channels=4)
        path = save_decoder(dec, tmp_path / "d.safetensors")
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    with pytest.raises(ValueError, match="latent values up to 1e\\+30"):
        dec(torch.full((1, 4, 2, 2), 1e30))
