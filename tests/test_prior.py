"""Prior training (taming Net2NetTransformer under Lightning 2) and the train-prior / sample CLIs,
end to end on the embedded photographs with tiny models written to temporary files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hit_decoder import adapters
from hit_decoder.cli import main
from hit_decoder.prior import build_prior, load_prior, load_prior_config, prior_info, save_prior
from hit_decoder.sampling import sample_sliding_window
from support import TINY_PRIOR_RUN


def train(tmp: Path, *extra: str) -> Path:
    out = tmp / "prior"
    assert main(["train-prior", "--config", "demo", f"out_dir={out}", *TINY_PRIOR_RUN, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Two classes (subfolders) of two small real photographs each."""
    import skimage.data

    root = tmp_path_factory.mktemp("photos")
    for cls, name in (("cat", "chelsea"), ("cup", "coffee")):
        arr = getattr(skimage.data, name)()
        (root / cls).mkdir()
        for k, (top, left) in enumerate(((40, 60), (120, 200))):
            Image.fromarray(arr[top : top + 48, left : left + 64]).save(root / cls / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("uncond"), "trainer.max_batches=25", "trainer.ckpt_every=10")


def test_training_lowers_the_loss_and_writes_files_atomically(trained):
    result = json.loads((trained / "result.json").read_text())
    losses = result["losses"]
    assert result["batches_done"] == 25 and len(losses) == 25
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 0.3, (first, last)
    assert (trained / "checkpoints" / "last.ckpt").is_file() and (trained / "prior.safetensors").is_file()
    assert not list(trained.rglob("*.tmp")) and not list(trained.rglob(".*.tmp"))
    info = prior_info(trained / "prior.safetensors")
    assert info["window"] == [6, 6] and info["conditioning"] == {"kind": "unconditional", "sos_token": 0}
    assert info["gpt"]["block_size"] == 36 and info["first_stage"]["downsample_factor"] == 4


def test_saved_prior_holds_the_trained_weights(trained):
    vq = adapters.load_vqmodel(trained / "first_stage.safetensors")
    prior = load_prior(trained / "prior.safetensors", vq)
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    for name, p in prior.transformer.state_dict().items():
        if not name.endswith("attn.mask"):
            assert torch.equal(p, ckpt["state_dict"][f"net.transformer.{name}"]), name
    assert prior.first_stage_model is vq
    assert "train" not in vars(vq)  # the caller's first stage keeps its own methods ...
    prior.train()
    assert prior.transformer.training and not vq.training  # ... and the prior's train() leaves it in eval
    vq.train()
    assert vq.training  # a plain module again for its owner


def test_a_prior_file_is_read_once(trained, monkeypatch):
    import hit_decoder.serialization as S
    from hit_decoder.prior import read_prior

    vq = adapters.load_vqmodel(trained / "first_stage.safetensors")
    reads = []
    real = S.load_file
    monkeypatch.setattr(S, "load_file", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    prior_info(trained / "prior.safetensors")
    assert reads == []  # metadata only: no tensors read
    load_prior(trained / "prior.safetensors", vq)
    assert len(reads) == 1
    read = read_prior(trained / "prior.safetensors")  # what `hit-decoder sample` does: read, check, load
    load_prior(read, vq)
    assert len(reads) == 2


def test_sample_cli_end_to_end(trained, tmp_path):
    model, prior_file = trained / "first_stage.safetensors", trained / "prior.safetensors"
    out = tmp_path / "samples"
    args = ["sample", "--model", str(model), "--prior", str(prior_file), "--size", "28x36", "--seed", "5",
            "--top-k", "20", "--batch", "2", "--tile", "16", "--out", str(out)]
    assert main(args) == 0
    vq = adapters.load_vqmodel(model)
    prior = load_prior(prior_file, vq)
    expected = sample_sliding_window(prior, (7, 9), batch_size=2, seed=5, top_k=20, progress=False)
    with torch.no_grad():
        images = adapters.decode_indices(vq, expected)
    for k in range(2):
        codes = np.load(out / f"s5_{k:03d}.npy")
        assert codes.shape == (7, 9) and codes.dtype == np.int64
        assert np.array_equal(codes, expected[k].numpy())
        png = np.asarray(Image.open(out / f"s5_{k:03d}.png"))
        assert png.shape == (28, 36, 3)
        ref = ((images[k].clamp(-1, 1) + 1) / 2 * 255).permute(1, 2, 0).numpy()
        assert np.abs(png.astype(float) - ref).max() <= 1.0  # tiled decode == whole decode, up to uint8 rounding
    assert json.loads((out / "samples.json").read_text())["grid"] == [7, 9]


@pytest.mark.parametrize("args,msg", [
    (["--size", "30x36"], "not a multiple of the model's downsampling factor 4"),
    (["--size", "20x36"], "below the prior's 6x6-code window \\(24x24 px at f4\\)"),
    (["--size", "28x36", "--class", "1"], "this prior is unconditional"),
    (["--size", "28x36", "--tile", "6"], "--tile 6 must be a positive multiple of the model's factor 4"),
])
def test_sample_cli_bad_input(trained, tmp_path, capsys, args, msg):
    base = ["sample", "--model", str(trained / "first_stage.safetensors"), "--prior", str(trained / "prior.safetensors"),
            "--out", str(tmp_path)]
    assert main(base + args) == 2
    import re

    assert re.search(msg, capsys.readouterr().err)


def test_class_conditional_prior_from_an_image_folder(tmp_path, photo_dir):
    out = train(tmp_path, "conditioning=class", "trainer.max_batches=3", f"data.images={photo_dir}", "data.resize=null")
    info = prior_info(out / "prior.safetensors")
    assert info["conditioning"] == {"kind": "class", "n_classes": 2, "class_names": ["cat", "cup"]}
    name = "cup"
    samples = tmp_path / "s"
    base = ["sample", "--model", str(out / "first_stage.safetensors"), "--prior", str(out / "prior.safetensors"),
            "--size", "24x28", "--seed", "1", "--out", str(samples)]
    assert main(base + ["--class", name]) == 0
    by_name = np.load(samples / "s1_000.npy")
    assert main(base + ["--class", "1", "--overwrite"]) == 0  # same seed, same names: asked to replace
    assert np.array_equal(np.load(samples / "s1_000.npy"), by_name)
    assert main(base) == 2  # class-conditional prior without --class


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, photo_dir):
    import pytorch_lightning as pl
    from safetensors.torch import load_file

    from hit_decoder.prior import train_prior

    class Interrupt(pl.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            if module.batches_done == 5:
                raise RuntimeError("simulated interruption")

    def cfg(out, *extra):
        return load_prior_config("demo", [*TINY_PRIOR_RUN, f"out_dir={out}", "trainer.max_batches=6", "trainer.ckpt_every=3",
                                          "pkeep=0.9", f"data.images={photo_dir}", "data.resize=null", *extra])

    straight = train_prior(cfg(tmp_path / "a"))
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_prior(cfg(tmp_path / "b"), callbacks=[Interrupt()])
    assert not (tmp_path / "b" / "prior.safetensors").exists()
    resumed = train_prior(cfg(tmp_path / "b", "resume=auto"))
    assert resumed.batches_done == 6 and len(resumed.losses) == 3  # batches 4..6 re-run from the checkpoint at 3
    assert resumed.losses == straight.losses[3:]
    a, b = load_file(straight.prior), load_file(resumed.prior)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_prior_refuses_a_different_first_stage(trained):
    vq = adapters.load_vqmodel(trained / "first_stage.safetensors")
    info = prior_info(trained / "prior.safetensors")
    gpt = {**info["gpt"], "vocab_size": info["gpt"]["vocab_size"]}
    net = build_prior(vq, gpt, info["conditioning"])
    bad_info = {**info, "first_stage": {**info["first_stage"], "codebook_size": 999}}
    path = save_prior(net, trained.parent / "other.safetensors", bad_info)
    with pytest.raises(ValueError, match="codebook_size=999, but the given model has codebook_size=256"):
        load_prior(path, vq)


def test_prior_config_is_strict():
    cfg = load_prior_config("demo", ["trainer.max_batches=7"])
    assert cfg.trainer.max_batches == 7 and cfg.first_stage.untrained == "demo"
    with pytest.raises(ValueError, match="trainer.max_batchs"):
        load_prior_config("demo", ["trainer.max_batchs=7"])
    with pytest.raises(ValueError, match="give exactly one of first_stage.model"):
        load_prior_config("demo", ["first_stage.model=x.safetensors"])
    with pytest.raises(ValueError, match="conditioning must be one of"):
        load_prior_config("demo", ["conditioning=text"])
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped config"):
        load_prior_config("no-such-config")
    assert load_prior_config("demo_class").conditioning == "class"
