"""diffusers VQModel folders (hit_decoder.adapters.diffusers) on tiny random VQModels shaped like
aMUSEd's VQGAN (group norm, codebook lookup, f16), Kandinsky 2.2's MoVQ (spatial norm, f8) and an LDM
VQ-f4, written with diffusers' own ``save_pretrained``; checked against diffusers' own ``VQModel``.
The hub's offline switch is set and every socket connection fails the test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers / huggingface_hub read it

import pytest
import torch
from diffusers import VQModel
from safetensors.torch import load_file, save_file

from hit_decoder import HiTDecoder, HiTDecoderConfig
from hit_decoder.adapters import diffusers as hd
from hit_decoder.cli import main
from support import CrashAfter, final_state, tiny_config, write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")

AMUSED = {  # amused/amused-256 vqvae/config.json, scaled down
    "down_block_types": ["DownEncoderBlock2D"] * 5, "up_block_types": ["UpDecoderBlock2D"] * 5,
    "block_out_channels": [8, 8, 16, 16, 16], "layers_per_block": 1, "latent_channels": 8, "num_vq_embeddings": 32,
    "norm_num_groups": 4, "norm_type": "group", "mid_block_add_attention": False, "lookup_from_codebook": True,
}
MOVQ = {  # kandinsky-community/kandinsky-2-2-decoder movq/config.json, scaled down (SpatialNorm needs 32 | channels)
    "down_block_types": ["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
    "up_block_types": ["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3, "block_out_channels": [32, 32, 32, 32],
    "layers_per_block": 1, "latent_channels": 4, "vq_embed_dim": 4, "num_vq_embeddings": 32, "norm_num_groups": 8,
    "norm_type": "spatial",
}
LDM_F4 = {  # CompVis ldm-super-resolution-4x-openimages vqvae/config.json, scaled down
    "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [8, 16, 16], "layers_per_block": 1, "latent_channels": 3, "vq_embed_dim": 3,
    "num_vq_embeddings": 32, "norm_num_groups": 4,
}
SHAPES = {"amused": AMUSED, "movq": MOVQ, "ldm_f4": LDM_F4}


def tiny_decoder(levels: int) -> dict:
    """A HiT decoder config with ``levels`` stages (factor ``2 ** (levels - 1)``)."""
    return {"channels": [32] + [16] * (levels - 1), "depths": [1] * levels, "heads": [2] * levels,
            "num_attention_stages": 2, "block_size": [2, 2], "dilation_grid": [2, 2]}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def write_vqmodel(folder: Path, config: dict, seed: int = 0) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        VQModel(**config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vqmodels")
    return {name: write_vqmodel(root / name, cfg, seed=i) for i, (name, cfg) in enumerate(SHAPES.items())}


def images(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_guard_refuses_connections():
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("huggingface.co", 443))


def test_importing_the_library_does_not_import_diffusers():
    code = ("import sys, hit_decoder, hit_decoder.adapters, hit_decoder.training, hit_decoder.cli\n"
            "hit_decoder.cli.build_parser()\n"
            "assert 'diffusers' not in sys.modules, 'diffusers was imported'\n"
            "import hit_decoder.adapters.diffusers\n"
            "assert 'diffusers' in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)


@pytest.mark.parametrize("name", list(SHAPES))
def test_load_swap_decode_tile_and_round_trip(name, folders, tmp_path):
    folder = folders[name]
    reference = VQModel.from_pretrained(folder).eval()  # diffusers' own loader, local folder
    model = hd.load_vqmodel(folder)
    x = images(32, 48)
    with torch.no_grad():
        h = reference.encode(x).latents
        assert torch.equal(model.encode(x).latents, h)
        assert torch.equal(model.decode(h).sample, reference.decode(h).sample)
        codes = reference.quantize(h)[2][2].flatten()  # (B h w,)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("decoder.")}

    levels = len(SHAPES[name]["block_out_channels"])
    hd.swap_decoder(model, tiny_decoder(levels))
    assert isinstance(model, VQModel) and isinstance(model.decoder, HiTDecoder)
    latent, quant = hd.decoder_inputs(model)
    assert model.decoder.z_channels == latent + quant and (quant > 0) == (name == "movq")
    after = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    assert after.keys() == frozen.keys() and all(torch.equal(after[k], frozen[k]) for k in frozen)
    f = hd.downsample_factor(model)
    with torch.no_grad():
        assert torch.equal(model.encode(x).latents, h)
        assert torch.equal(model.quantize(h)[2][2].flatten(), codes)  # identical codes before and after the swap
        for gh, gw in ((3, 5), (7, 2), (1, 1)):  # any grid size
            z = torch.randn(1, model.quantize.vq_embed_dim, gh, gw, generator=torch.Generator().manual_seed(gh))
            assert model.decode(z).sample.shape == (1, 3, gh * f, gw * f)

        # tiled decoding of the swapped model == whole decoding, from latents and from code indices
        z = torch.randn(1, model.quantize.vq_embed_dim, 9, 7, generator=torch.Generator().manual_seed(1))
        whole = model.decode(z).sample
        assert torch.equal(hd.decode_tiled(model, z, tile=3), whole)
        idx = torch.randint(0, 32, (2, 6, 5), generator=torch.Generator().manual_seed(2))
        quant_map = model.quantize.get_codebook_entry(idx.flatten(), (2, 6, 5, model.quantize.vq_embed_dim))
        if SHAPES[name].get("lookup_from_codebook"):  # aMUSEd's path: indices straight into decode
            by_codes = model.decode(idx.flatten(), force_not_quantize=True, shape=(2, 6, 5, model.quantize.vq_embed_dim))
        else:
            by_codes = model.decode(quant_map, force_not_quantize=True)
        assert torch.equal(hd.decode_tiled(model, idx, tile=2), by_codes.sample)
        assert torch.equal(hd.decode_tiled(model, quant_map, tile=2), by_codes.sample)  # re-quantized: same codes

        # save -> load: library file, diffusers-style folder, and diffusers' own save_pretrained
        hd.save_vqmodel(model, tmp_path / "model.safetensors")
        hd.export_diffusers(model, tmp_path / "exported")
        model.save_pretrained(tmp_path / "saved_by_diffusers")
        for source in (tmp_path / "model.safetensors", tmp_path / "exported", tmp_path / "saved_by_diffusers"):
            again = hd.load_vqmodel(source)
            assert isinstance(again.decoder, HiTDecoder)
            assert torch.equal(again.decode(z).sample, whole), source


def test_spatial_norm_maps_quant_into_the_cross_attention(folders):
    """MoVQ: the HiT decoder gets [post_quant_conv(quant), quant]; the reference is a plain HiT decoder
    with the same weights fed that stack by hand."""
    model = hd.swap_decoder(hd.load_vqmodel(folders["movq"]), tiny_decoder(4))
    plain = HiTDecoder(HiTDecoderConfig.from_dict(model.config["hit_decoder"]["decoder"]))
    plain.load_state_dict(model.decoder.state_dict())
    quant = torch.randn(1, 4, 5, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = model.post_quant_conv(quant)
        expected = plain(torch.cat([z, quant], dim=1))
        assert torch.equal(model.decode(quant, force_not_quantize=True).sample, expected)
        # the quantized map reaches the decoder on its own: same z, other quant -> other image
        assert not torch.allclose(model.decoder(z, quant.flip(-1)), expected)
    with pytest.raises(ValueError, match="decoder\\(post_quant_conv\\(quant\\), quant\\)"):
        model.decoder(z)


def test_what_diffusers_itself_makes_of_an_export(folders, tmp_path):
    """docs/diffusers.md: diffusers loads the export's encoder, quantizer and convs, warns about (and
    does not use) the hit_decoder config entry and the HiT weights, and builds a fresh CNN decoder."""
    model = hd.swap_decoder(hd.load_vqmodel(folders["ldm_f4"]), tiny_decoder(3))
    hd.export_diffusers(model, tmp_path / "exported")
    theirs = VQModel.from_pretrained(tmp_path / "exported").eval()
    ours = dict(model.state_dict())
    for k, v in theirs.state_dict().items():
        if not k.startswith("decoder."):
            assert torch.equal(v, ours[k]), k
    assert type(theirs.decoder).__name__ == "Decoder"  # diffusers' CNN decoder, freshly initialised


def _tamper_weights(folder: Path, edit) -> None:
    path = folder / hd.WEIGHTS_NAME
    state = load_file(path)
    edit(state)
    save_file(state, path)


def _tamper_config(folder: Path, edit) -> None:
    path = folder / hd.CONFIG_NAME
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("tamper, error, match", [
    (lambda d: _tamper_weights(d, lambda s: s.update({"quant_conv.weight": torch.zeros(5, 8, 1, 1)})),
     ValueError, r"quant_conv\.weight: file \(5, 8, 1, 1\)"),
    (lambda d: _tamper_config(d, lambda c: c.update({"_class_name": "AutoencoderKL"})),
     ValueError, "_class_name is 'AutoencoderKL'; hit-decoder reads diffusers VQModel folders only"),
    (lambda d: _tamper_config(d, lambda c: c.update({"num_vq_embedings": 16})),
     ValueError, r"unknown VQModel config key\(s\) \['num_vq_embedings'\]"),
    (lambda d: _tamper_weights(d, lambda s: s.update({"extra.weight": torch.zeros(2)})),
     ValueError, r"unexpected \['extra\.weight'\]"),
    (lambda d: _tamper_weights(d, lambda s: s.pop("quantize.embedding.weight")),
     ValueError, r"missing \['quantize\.embedding\.weight'\]"),
    (lambda d: (torch.save(load_file(d / hd.WEIGHTS_NAME), d / "diffusion_pytorch_model.bin"),
                (d / hd.WEIGHTS_NAME).unlink()),
     ValueError, "holds its weights as a pickle .*diffusion_pytorch_model.bin.* safetensors only"),
    (lambda d: (d / hd.CONFIG_NAME).write_text("{not json"), ValueError, "is not valid JSON"),
    (lambda d: (d / hd.WEIGHTS_NAME).write_bytes((d / hd.WEIGHTS_NAME).read_bytes()[:1000]),
     ValueError, "could not be read as a checkpoint.*truncated or corrupt"),
    (lambda d: _tamper_config(d, lambda c: c.update({"hit_decoder": {"version": "1", "decoder": {"chanels": [8]}}})),
     ValueError, r"unknown decoder config key\(s\) \['chanels'\]"),
])
def test_tampered_folders_are_refused_with_a_clear_error(folders, tmp_path, tamper, error, match):
    folder = _copy(folders["amused"], tmp_path / "model")
    tamper(folder)
    with pytest.raises(error, match=match):
        hd.load_vqmodel(folder)


def test_sources_that_are_not_local_folders(folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="'amused/amused-256' is not a local folder.*hf download"):
        hd.load_vqmodel("amused/amused-256")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hd.load_vqmodel(tmp_path / "missing")
    pipeline = tmp_path / "pipeline"
    _copy(folders["movq"], pipeline / "movq")
    with pytest.raises(FileNotFoundError, match=f"subfolder: {pipeline / 'movq'}"):
        hd.load_vqmodel(pipeline)
    taming_file = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(1)}, taming_file, metadata={"format": "hit-decoder/vqmodel"})
    with pytest.raises(ValueError, match="is not a hit-decoder/diffusers-vqmodel file"):
        hd.load_vqmodel(taming_file)


def test_cli_swap_inspect_reconstruct(folders, tmp_path, capsys):
    imgs = tmp_path / "images"
    write_image_folder(imgs)  # real PNG/JPEG photographs-to-be, plus two unreadable files
    out = tmp_path / "swapped"
    spec = json.dumps(tiny_decoder(4))
    decoder_yaml = tmp_path / "decoder.yaml"
    decoder_yaml.write_text(spec)  # JSON is YAML
    assert main(["swap", "--diffusers-model", str(folders["movq"]), "--decoder", str(decoder_yaml), "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "diffusers" / hd.CONFIG_NAME).is_file()
    assert main(["swap", "--diffusers-model", str(folders["movq"]), "--decoder", str(decoder_yaml), "--out", str(out),
                 "--format", "taming", "--overwrite"]) == 2
    assert "--format taming does not fit a diffusers model" in capsys.readouterr().err
    assert main(["swap", "--diffusers-model", str(folders["movq"]), "--decoder", str(decoder_yaml), "--out",
                 str(tmp_path / "s2"), "--allow-unsafe-pickle"]) == 2  # a taming flag, not silently ignored
    assert "drop --allow-unsafe-pickle" in capsys.readouterr().err and not (tmp_path / "s2").exists()

    capsys.readouterr()
    assert main(["inspect", str(folders["movq"])]) == 0
    text = capsys.readouterr().out
    assert "diffusers VQModel folder" in text and "CNN (diffusers Decoder, norm_type spatial)" in text
    assert main(["inspect", str(out / "model.safetensors"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vq"]["decoder"]["kind"].startswith("HiT") and info["vq"]["codebook"]["size"] == 32

    tables = {}
    for source in (out / "model.safetensors", out / "diffusers"):
        dst = tmp_path / f"recon_{source.name}"
        assert main(["reconstruct", "--model", str(source), "--images", str(imgs), "--out", str(dst)]) == 0
        tables[source.name] = (dst / "metrics.csv").read_text()
    assert tables["model.safetensors"] == tables["diffusers"]  # the two exports reconstruct identically
    assert main(["reconstruct", "--model", "amused/amused-256", "--images", str(imgs), "--out", str(tmp_path / "r")]) == 2
    assert "is not a local folder" in capsys.readouterr().err


def test_finetune_decoder_on_a_diffusers_folder_resumes_exactly(folders, tmp_path):
    """finetune-decoder --diffusers-model: frozen parts stay bit-identical, the exports load back, and a
    run that crashed and was resumed with resume=auto ends bit-identical to an uninterrupted one (as
    tests/test_training_resume_ddp.py checks for the taming path)."""
    from hit_decoder.training import run_training

    folder = folders["amused"]
    crashed = tiny_config(tmp_path / "crashed", mode="decoder_swap",
                          model={"diffusers_model": str(folder), "decoder": tiny_decoder(5)},
                          data={"size": 32, "resize": 64, "batch_size": 2, "val_batch_size": 4},
                          loss={"disc_train_start": 2, "disc_weight_start": 3},
                          optim={"warmup_batches": 4}, trainer={"max_batches": 8, "ckpt_every": 4})

    config = tmp_path / "run.json"
    config.write_text(json.dumps({**crashed, "out_dir": "unused"}))  # JSON is YAML
    # the uninterrupted run through the CLI, the same config
    assert main(["finetune-decoder", "--config", str(config), "--diffusers-model", str(folder),
                 "--out-dir", str(tmp_path / "full")]) == 0
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(crashed, callbacks=[CrashAfter(6)])  # last checkpoint: batch 4
    assert run_training(crashed, ["resume=auto"]).batches_done == 8

    a, b = final_state(tmp_path / "full"), final_state(tmp_path / "crashed")
    assert a["hit_decoder_training"]["batches_done"] == b["hit_decoder_training"]["batches_done"] == 8
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])] == []
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == 2  # decoder and discriminator
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"]):
        for k in oa["state"]:
            assert all(torch.equal(oa["state"][k][n], ob["state"][k][n]) for n in ("exp_avg", "exp_avg_sq", "step"))

    original = load_file(folder / hd.WEIGHTS_NAME)
    frozen = [k for k in original if not k.startswith("decoder.")]
    assert frozen and all(torch.equal(a["state_dict"]["vq.model." + k], original[k]) for k in frozen)
    result = json.loads((tmp_path / "full" / "result.json").read_text())
    assert set(result["exports"]) == {"decoder", "model", "diffusers"}
    ema = {k[len("ema_vq.model."):]: v for k, v in a["state_dict"].items() if k.startswith("ema_vq.model.")}
    for source in (result["exports"]["model"], result["exports"]["diffusers"]):
        exported = hd.load_vqmodel(source).state_dict()
        assert exported.keys() == ema.keys() and all(torch.equal(v, ema[k]) for k, v in exported.items())
