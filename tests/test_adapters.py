"""taming adapters, against the real taming classes on tiny models built here: loading taming-shaped
checkpoints (Lightning .ckpt + YAML, plain state dicts, Net2NetTransformer checkpoints, GumbelVQ),
strict/safe loading errors, decoder swap inside taming's own Net2NetTransformer sampling, shipped
taming YAMLs, bit-exact export round trips, and the swap / inspect commands."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import hit_decoder.adapters as A
from hit_decoder import HiTDecoder, HiTDecoderConfig
from hit_decoder.cli import main

from taming.main import instantiate_from_config
from taming.models.cond_transformer import Net2NetTransformer
from taming.models.vqgan import GumbelVQ, VQModel

# GroupNorm(32) in taming's blocks needs channel counts that are multiples of 32
DD = {"double_z": False, "z_channels": 8, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
      "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.0}
TINY_HIT = {"channels": [32, 16], "depths": [1, 1], "heads": [2, 2], "num_attention_stages": 1,
            "block_size": [2], "dilation_grid": [2]}
TAMING_LOSS = {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
               "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 10001,
                          "disc_weight": 0.8, "codebook_weight": 1.0}}
SCHEDULER = {"target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
             "params": {"warm_up_steps": 0, "max_decay_steps": 1000, "lr_start": 0.9, "lr_max": 0.9, "lr_min": 1e-6}}


def vq_config(dd=DD, loss=TAMING_LOSS, n_embed=32) -> dict:
    """A taming model YAML as taming ships it (real LPIPS loss config: loading must not build it)."""
    return {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.vqgan.VQModel",
                      "params": {"embed_dim": 8, "n_embed": n_embed, "ddconfig": copy.deepcopy(dd), "lossconfig": loss}}}


def gumbel_config() -> dict:
    return {"model": {"target": "taming.models.vqgan.GumbelVQ",
                      "params": {"embed_dim": 8, "n_embed": 32, "kl_weight": 1e-8, "ddconfig": copy.deepcopy(DD),
                                 "temperature_scheduler_config": SCHEDULER, "lossconfig": TAMING_LOSS}}}


def taming_built(cfg: dict, seed: int = 0) -> nn.Module:
    """The reference: taming's own instantiate_from_config (loss swapped for a parameter-free one)."""
    model_cfg = copy.deepcopy(cfg["model"])
    model_cfg["params"]["lossconfig"] = {"target": "taming.modules.losses.DummyLoss"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return instantiate_from_config(model_cfg).eval()


def save_as_taming_ships(model: nn.Module, cfg: dict, folder: Path) -> tuple[Path, Path]:
    """A Lightning-1.x-style checkpoint: weights incl. the discriminator's under ``loss.``, training
    state, and the ModelCheckpoint *class* as a callbacks key (not readable with weights_only alone)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from taming.modules.discriminator.model import NLayerDiscriminator

    state = dict(model.state_dict())
    state.update({f"loss.discriminator.{k}": v for k, v in NLayerDiscriminator(3, ndf=8, n_layers=1).state_dict().items()})
    folder.mkdir(parents=True, exist_ok=True)
    ckpt, yaml = folder / "last.ckpt", folder / "model.yaml"
    torch.save({"state_dict": state, "epoch": 7, "global_step": 1234, "pytorch-lightning_version": "1.0.8",
                "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}},
                "optimizer_states": [{}], "lr_schedulers": []}, ckpt)
    OmegaConf.save(OmegaConf.create(cfg), yaml)
    return ckpt, yaml


def images(n=2, h=16, w=16, seed=1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def seeded_swap(model, decoder=None, seed=0, **kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return A.swap_decoder(model, TINY_HIT if decoder is None else decoder, **kw)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A taming VQModel saved as taming ships it (.ckpt + YAML) and the taming-built reference."""
    cfg = vq_config()
    ref = taming_built(cfg)
    ckpt, yaml = save_as_taming_ships(ref, cfg, tmp_path_factory.mktemp("shipped"))
    return cfg, ref, ckpt, yaml


# ----------------------------------------------------------------------------- taming on today's stack
def test_import_name_and_no_fake_modules_left_behind(tmp_path):
    code = (
        "import importlib, importlib.util, json, sys\n"
        "try:\n    import adapters\n    top = getattr(adapters, '__file__', '?')\nexcept ImportError:\n    top = None\n"
        "import hit_decoder.adapters as A\n"
        "for m in ('taming.models.vqgan', 'taming.models.cond_transformer', 'taming.modules.transformer.mingpt',"
        " 'taming.data.utils', 'taming.main'):\n    importlib.import_module(m)\n"
        "from taming.modules.transformer import mingpt\n"
        "print(json.dumps({'top': top, 'fs': importlib.util.find_spec('transformers') is not None,"
        " 'tf': 'transformers' in sys.modules, 'six': 'torch._six' in sys.modules,"
        " 'pld': 'pytorch_lightning.utilities.distributed' in sys.modules,"
        " 'ours': mingpt.top_k_top_p_filtering is A.top_k_top_p_filtering}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["top"] is None or "hit" not in str(out["top"]), "our adapters/ must not be importable as `adapters`"
    if not out["fs"]:  # transformers not installed: no fake module may remain
        assert not out["tf"] and out["ours"]
    assert not out["six"] and not out["pld"]


# ----------------------------------------------------------------------------- loading
def test_taming_shaped_ckpt_and_yaml_load_and_encode_like_taming(shipped):
    cfg, ref, ckpt, yaml = shipped
    model = A.load_vqgan(yaml, ckpt)
    assert type(model) is VQModel and isinstance(model.loss, nn.Identity) and not model.training
    x = images()
    with torch.no_grad():
        q_ref, _, (_, _, idx_ref) = ref.encode(x)
        q, _, (_, _, idx) = model.encode(x)
        assert torch.equal(idx, idx_ref) and torch.equal(q, q_ref)
        assert torch.equal(model.decode(q), ref.decode(q_ref))
    # dict, OmegaConf and bare {target, params} configs load the same weights
    for form in (cfg, OmegaConf.create(cfg), cfg["model"]):
        assert same_state(A.load_vqgan(form, ckpt), model)
    # with_loss builds the config's loss and loads loss.* strictly too (DummyLoss has no weights)
    dummy = copy.deepcopy(cfg)
    dummy["model"]["params"]["lossconfig"] = {"target": "taming.modules.losses.DummyLoss"}
    with pytest.raises(ValueError, match=r"(?s)unexpected.*loss\.discriminator\.main\.0\.weight"):
        A.load_vqgan(dummy, ckpt, with_loss=True)
    # the state-dict loader strips the Lightning wrapper and keeps loss keys for the caller
    state = A.load_checkpoint_state(ckpt)
    assert "encoder.conv_in.weight" in state and any(k.startswith("loss.discriminator.") for k in state)


def test_plain_prefixed_and_net2net_checkpoints(shipped, tmp_path):
    cfg, ref, _, _ = shipped
    plain = tmp_path / "plain.pt"
    torch.save({f"module._orig_mod.{k}": v for k, v in ref.state_dict().items()}, plain)  # DDP + compile prefixes
    assert same_state(A.load_vqgan(cfg, plain), ref)
    from safetensors.torch import save_file

    st = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(st))
    assert same_state(A.load_vqgan(cfg, st), ref)
    # a Net2NetTransformer built by taming around this first stage; its checkpoint holds first_stage_model.*
    first = copy.deepcopy(cfg["model"])
    first["params"]["lossconfig"] = {"target": "taming.modules.losses.DummyLoss"}
    n2n_cfg = {"model": {"target": "taming.models.cond_transformer.Net2NetTransformer", "params": {
        "first_stage_config": first, "cond_stage_config": "__is_unconditional__", "unconditional": True,
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT",
                               "params": {"vocab_size": 32, "block_size": 17, "n_layer": 1, "n_head": 2, "n_embd": 16}}}}}
    n2n = instantiate_from_config(n2n_cfg["model"])
    n2n.first_stage_model.load_state_dict(ref.state_dict())
    ckpt = tmp_path / "n2n.ckpt"
    torch.save({"state_dict": n2n.state_dict()}, ckpt)
    assert same_state(A.load_vqgan(cfg, ckpt), ref)
    assert same_state(A.load_vqgan(n2n_cfg, ckpt), ref)  # the N2N config's first_stage_config is used
    info = A.describe_checkpoint(ckpt)
    assert info["layout"] == "Lightning checkpoint (Net2NetTransformer)"
    assert info["transformer"] == {"vocab_size": 32, "n_embd": 16, "n_layer": 1, "block_size": 17}
    assert info["vq"]["codebook"]["size"] == 32 and info["vq"]["decoder"]["downsample_factor"] == 2


def test_missing_unexpected_and_misshaped_keys_are_listed(shipped, tmp_path):
    cfg, ref, _, _ = shipped
    state = dict(ref.state_dict())
    del state["encoder.conv_in.bias"]
    state["decoder.mystery.weight"] = torch.zeros(2)
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": state}, bad)
    with pytest.raises(ValueError) as err:
        A.load_vqgan(cfg, bad)
    msg = str(err.value)
    assert "encoder.conv_in.bias" in msg and "decoder.mystery.weight" in msg and str(bad) in msg
    assert "missing" in msg and "unexpected" in msg
    with pytest.raises(ValueError, match=r"quantize\.embedding\.weight: checkpoint \(32, 8\) vs model \(64, 8\)"):
        A.load_vqgan(vq_config(n_embed=64), _plain_ckpt(ref, tmp_path / "good.ckpt"))


def _plain_ckpt(model: nn.Module, path: Path) -> Path:
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_truncated_corrupt_and_missing_files_fail_clearly(shipped, tmp_path):
    cfg, _, ckpt, _ = shipped
    data = ckpt.read_bytes()
    cases = {"truncated.ckpt": data[: len(data) // 2], "garbage.ckpt": os.urandom(4096), "empty.ckpt": b"",
             "pickle_cut.pt": pickle.dumps({"a": list(range(100))}, protocol=2)[:40]}
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(ValueError, match="truncated or corrupt") as err:
            A.load_vqgan(cfg, path)
        assert str(path) in str(err.value) and not isinstance(err.value, pickle.UnpicklingError)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        A.load_vqgan(cfg, tmp_path / "nope.ckpt")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        A.load_vqgan(tmp_path / "nope.yaml", ckpt)


TRIGGERED: list[str] = []


def _trigger(tag: str) -> str:
    TRIGGERED.append(tag)
    return tag


class _Trap:
    """Unpickling this runs _trigger: it stands for code a malicious checkpoint would execute."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self):
        return (_trigger, (self.tag,))


class _StateDictSubclass(dict):
    pass


def test_foreign_objects_outside_the_weights_load_safely_without_running(shipped, tmp_path):
    cfg, ref, _, _ = shipped
    path = tmp_path / "trap_outside.ckpt"
    torch.save({"state_dict": ref.state_dict(), "callbacks": {"x": _Trap("outside")}}, path)
    TRIGGERED.clear()
    assert same_state(A.load_vqgan(cfg, path), ref)
    assert TRIGGERED == []  # the trap was replaced by an inert placeholder, not called
    info = A.describe_checkpoint(path)
    assert any(name.endswith("_trigger") for name in info["not_loaded"])


def test_unsafe_pickle_requires_opt_in(shipped, tmp_path):
    cfg, ref, _, _ = shipped
    path = tmp_path / "needs_pickle.ckpt"
    torch.save({"state_dict": _StateDictSubclass(ref.state_dict())}, path)
    with pytest.raises(A.UnsafeCheckpointError) as err:
        A.load_vqgan(cfg, path)
    msg = str(err.value)
    assert "allow_unsafe_pickle=True" in msg and "execute" in msg and "trust" in msg and str(path) in msg
    assert same_state(A.load_vqgan(cfg, path, allow_unsafe_pickle=True), ref)
    # a weight that is a pickled object: refused without running it; with the opt-in it does run
    trap = tmp_path / "trap_inside.ckpt"
    state = dict(ref.state_dict())
    state["encoder.conv_in.bias"] = _Trap("inside")
    torch.save({"state_dict": state}, trap)
    TRIGGERED.clear()
    with pytest.raises(A.UnsafeCheckpointError, match="encoder.conv_in.bias"):
        A.load_checkpoint_state(trap)
    assert TRIGGERED == []
    with pytest.raises(ValueError, match="not a state dict"):
        A.load_checkpoint_state(trap, allow_unsafe_pickle=True)
    assert TRIGGERED == ["inside"]


def test_bad_configs_name_the_problem(tmp_path):
    bad_key = vq_config()
    bad_key["model"]["params"]["ddconfig"]["z_chanels"] = 8
    with pytest.raises(ValueError, match="z_chanels"):
        A.load_vqgan(bad_key)
    extra = vq_config()
    extra["model"]["params"]["n_embd"] = 3
    with pytest.raises(ValueError, match="n_embd"):
        A.load_vqgan(extra)
    foreign = {"target": "os.system", "params": {}}
    with pytest.raises(ValueError, match="target = 'os.system' is not a class hit-decoder supports"):
        A.load_vqgan(foreign)
    hit = vq_config()["model"]
    hit["target"] = "hit_decoder.adapters.HiTVQModel"
    hit["params"]["decoder_config"] = {**TINY_HIT, "z_channels": 4}
    with pytest.raises(ValueError, match="z_channels=4.*8 channels"):
        A.load_vqgan(hit)


# ----------------------------------------------------------------------------- swap
def test_swap_keeps_encoder_and_quantizer_and_decodes_any_grid(shipped):
    cfg, ref, ckpt, yaml = shipped
    model = A.load_vqgan(yaml, ckpt)
    x = images()
    with torch.no_grad():
        before = model.encode(x)
    kept = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    assert seeded_swap(model) is model
    assert type(model) is A.HiTVQModel and isinstance(model, VQModel) and isinstance(model.decoder, HiTDecoder)
    assert model.decoder.z_channels == 8 and not model.decoder.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items())
    with torch.no_grad():
        after = model.encode(x)
        assert torch.equal(after[0], before[0]) and torch.equal(after[2][2], before[2][2])
        assert model.decode(after[0]).shape == (2, 3, 16, 16)
        for h, w in [(4, 4), (3, 5), (1, 7)]:
            idx = torch.randint(0, 32, (2, h, w), generator=torch.Generator().manual_seed(h * w))
            assert A.decode_indices(model, idx).shape == (2, 3, 2 * h, 2 * w)
        # indices from the encoder decode to what decode(quant) gives (codebook lookup vs quantizer)
        idx = A.encode_indices(model, x)
        assert idx.shape == (2, 8, 8)
        assert torch.allclose(A.decode_indices(model, idx), model.decode(after[0]), atol=1e-6)
        assert torch.equal(model.decode_code(idx), A.decode_indices(model, idx))
    # taming's adaptive GAN weight differentiates the reconstruction through get_last_layer()
    last = model.get_last_layer()
    assert last is model.decoder.get_last_layer()
    rec = model(x)[0]
    (grad,) = torch.autograd.grad(rec.abs().mean(), last)
    assert grad.shape == last.shape and grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        A.decode_indices(model, idx.reshape(-1))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        A.decode_indices(model, idx + 32)


def test_swap_rejects_decoders_that_do_not_fit(shipped):
    cfg, ref, ckpt, yaml = shipped
    model = A.load_vqgan(yaml, ckpt)
    wrong_z = HiTDecoder(HiTDecoderConfig(**{**TINY_HIT, "z_channels": 16}))
    with pytest.raises(ValueError, match="z_channels=16.*post_quant_conv outputs 8.*z_channels=8"):
        A.swap_decoder(model, wrong_z)
    with pytest.raises(ValueError, match="upsamples by 16.*downsamples by 2.*no shipped preset has f=2"):
        A.swap_decoder(model, "hit-1m-f16")
    with pytest.raises(ValueError, match="depht"):
        A.swap_decoder(model, TINY_HIT, depht=3)
    assert type(model) is VQModel and not isinstance(model.decoder, HiTDecoder)  # untouched after errors
    f8 = A.load_vqgan(vq_config(dd={**DD, "ch_mult": [1, 1, 1, 1], "attn_resolutions": []}))
    with pytest.raises(ValueError, match="f=8: hit-2m-f8"):
        A.swap_decoder(f8, "hit-1m-f16")
    with pytest.raises(ValueError, match="supports taming VQModel and GumbelVQ"):
        A.swap_decoder(nn.Linear(2, 2), TINY_HIT)


def test_decoder_yaml_mistakes_read_the_same_through_the_adapters(tmp_path):
    """The adapters resolve decoder sources through the registry's one resolver: a broken or missing
    YAML file is the same one-line error there, and a YAML without z_channels takes the model's."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [16, 8\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        A.resolve_decoder_config(bad, 8, 2, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        A.resolve_decoder_config(tmp_path / "missing.yaml", 8, 2, 3)
    no_z = tmp_path / "no_z.yaml"
    OmegaConf.save(OmegaConf.create(TINY_HIT), no_z)
    assert A.resolve_decoder_config(no_z, 8, 2, 3) == HiTDecoderConfig(**{**TINY_HIT, "z_channels": 8})


def _n2n(first_stage_config: dict, cond: dict | str, vocab: int = 32) -> Net2NetTransformer:
    cfg = {"target": "taming.models.cond_transformer.Net2NetTransformer", "params": {
        "first_stage_config": first_stage_config, "cond_stage_config": cond,
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT",
                               "params": {"vocab_size": vocab, "block_size": 17, "n_layer": 1, "n_head": 2, "n_embd": 16}},
        **({"unconditional": True} if cond == "__is_unconditional__" else {"cond_stage_key": "class_label"})}}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return instantiate_from_config(cfg).eval()


@pytest.mark.parametrize("cond", ["__is_unconditional__", "class"])
def test_net2net_built_by_taming_samples_and_decodes_with_the_swapped_first_stage(shipped, tmp_path, cond):
    cfg, ref, ckpt, yaml = shipped
    swapped = seeded_swap(A.load_vqgan(yaml, ckpt))
    ckpt2, yaml2 = A.export_taming(swapped, tmp_path / "m.ckpt", tmp_path / "m.yaml")
    first = OmegaConf.to_container(OmegaConf.load(yaml2).model)
    first["params"]["ckpt_path"] = str(ckpt2)  # HiTVQModel loads it itself, safely and strictly
    cond_cfg = cond if cond != "class" else {"target": "taming.modules.util.Labelator", "params": {"n_classes": 10}}
    n2n = _n2n(first, cond_cfg)
    assert type(n2n.first_stage_model) is A.HiTVQModel and same_state(n2n.first_stage_model, swapped)
    B, h, w = 2, 3, 4
    x = images(B, 2 * h, 2 * w)
    _, z_idx = n2n.encode_to_z(x)
    assert torch.equal(z_idx, A.encode_indices(swapped, x).reshape(B, -1))
    c_idx = n2n.encode_to_c(x if cond != "class" else torch.tensor([3, 7]))[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        index = n2n.sample(z_idx[:, :0], c_idx, steps=h * w, sample=True, top_k=8)
    assert index.shape == (B, h * w) and 0 <= int(index.min()) and int(index.max()) < 32
    img = n2n.decode_to_img(index, (B, 8, h, w))
    assert img.shape == (B, 3, 2 * h, 2 * w)
    with torch.no_grad():
        assert torch.equal(img, A.decode_indices(swapped, index.reshape(B, h, w)))
    logits, target = n2n(x, x if cond != "class" else torch.tensor([3, 7]))  # training forward
    assert logits.shape == (B, h * w, 32) and torch.equal(target, z_idx)


def test_gumbel_vq_loads_swaps_and_exports(tmp_path):
    cfg = gumbel_config()
    ref = taming_built(cfg)
    ckpt, yaml = save_as_taming_ships(ref, cfg, tmp_path / "g")
    model = A.load_vqgan(yaml, ckpt)
    assert type(model) is GumbelVQ and same_state(model, ref)
    x = images()

    def enc(m):  # GumbelQuantize samples Gumbel noise even in eval mode: compare under one seed
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(5)
            return A.encode_indices(m, x)

    before = enc(ref)
    assert torch.equal(enc(model), before)
    seeded_swap(model)
    assert type(model) is A.HiTGumbelVQ and isinstance(model, GumbelVQ)
    assert torch.equal(enc(model), before)
    with torch.no_grad():
        assert A.decode_indices(model, before[:, :3, :5]).shape == (2, 3, 6, 10)  # non-square
    assert model.get_last_layer() is model.decoder.get_last_layer()
    lib = A.load_vqmodel(A.save_vqmodel(model, tmp_path / "g.safetensors"))
    assert type(lib) is A.HiTGumbelVQ and same_state(lib, model)
    assert A.taming_config(lib)["params"]["temperature_scheduler_config"] == SCHEDULER
    ckpt2, yaml2 = A.export_taming(model, tmp_path / "t" / "g.ckpt", tmp_path / "t" / "g.yaml")
    back = instantiate_from_config(OmegaConf.load(yaml2).model)
    back.load_state_dict(torch.load(ckpt2, weights_only=True)["state_dict"])
    assert type(back) is A.HiTGumbelVQ and same_state(back.eval(), model)


# ----------------------------------------------------------------------------- shipped YAMLs, export
def test_shipped_taming_yamls_instantiate_through_taming():
    root = resources.files("hit_decoder.configs") / "taming"
    files = sorted(f for f in root.iterdir() if f.name.endswith(".yaml"))
    assert len(files) >= 3
    seen = set()
    for f in files:
        cfg = OmegaConf.create(f.read_text())
        with torch.device("meta"):  # full-size models: build the modules, allocate no weights
            model = instantiate_from_config(cfg.model)
        vq = model.first_stage_model if isinstance(model, Net2NetTransformer) else model
        assert isinstance(vq.decoder, HiTDecoder), f.name
        assert vq.decoder.downsample_factor == A.downsample_factor(vq), f.name
        assert vq.decoder.z_channels == vq.post_quant_conv.out_channels, f.name
        with torch.device("meta"):
            assert type(A.load_vqgan(cfg)) is type(vq), f.name
        seen.add(type(vq).__name__)
    assert seen == {"HiTVQModel", "HiTGumbelVQ"}
    # one for real, with weights: taming's f8 Gumbel layout with the hit-2m-f8 decoder
    cfg = OmegaConf.create((root / "vqgan_gumbel_f8_hit-2m.yaml").read_text())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = instantiate_from_config(cfg.model).eval()
    with torch.no_grad():
        assert A.decode_indices(model, torch.randint(0, 8192, (1, 3, 2))).shape == (1, 3, 24, 16)


def test_export_round_trips_are_bit_exact(shipped, tmp_path):
    cfg, ref, ckpt, yaml = shipped
    cnn = A.load_vqgan(yaml, ckpt)
    # the config rebuilt from the modules is the one the model came from (loss aside)
    rebuilt = A.taming_config(cnn)
    assert rebuilt["target"] == "taming.models.vqgan.VQModel" and rebuilt["params"]["ddconfig"] == DD
    swapped = seeded_swap(A.load_vqgan(yaml, ckpt))
    x = images(1)
    for model in (cnn, swapped):
        lib = A.load_vqmodel(A.save_vqmodel(model, tmp_path / "lib.safetensors"))
        assert type(lib) is type(model) and same_state(lib, model)
        c, y = A.export_taming(model, tmp_path / "tm" / "model.ckpt", tmp_path / "tm" / "model.yaml")
        back = instantiate_from_config(OmegaConf.load(y).model)  # taming's own code
        back.load_state_dict(torch.load(c, weights_only=True)["state_dict"])  # strict
        back.eval()
        assert type(back) is type(model) and same_state(back, model)
        again = A.load_vqgan(y, c)
        assert same_state(again, model)
        with torch.no_grad():
            expected = model(x)[0]
            assert torch.equal(lib(x)[0], expected) and torch.equal(back(x)[0], expected)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["lib.safetensors", "model.ckpt", "model.yaml"]


def test_library_files_cannot_name_foreign_code_and_writes_are_atomic(shipped, tmp_path):
    cfg, ref, ckpt, yaml = shipped
    from safetensors.torch import save_file

    evil = tmp_path / "evil.safetensors"
    save_file({"w": torch.zeros(1)}, str(evil), metadata={
        "format": A.FORMAT_VQMODEL, "version": "2", "config": json.dumps({"target": "os.system", "params": {}})})
    with pytest.raises(ValueError, match="target = 'os.system' is not a class hit-decoder supports"):
        A.load_vqmodel(evil)
    gcfg = gumbel_config()["model"]
    gcfg["params"]["temperature_scheduler_config"] = {"target": "builtins.eval", "params": {}}
    save_file({"w": torch.zeros(1)}, str(evil), metadata={"format": A.FORMAT_VQMODEL, "version": "2",
                                                          "config": json.dumps(gcfg)})
    with pytest.raises(ValueError, match="builtins.eval"):
        A.load_vqmodel(evil)
    dest = tmp_path / "keep.safetensors"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError, match="not supported"):
        A.save_vqmodel(nn.Linear(2, 2), dest)
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["evil.safetensors", "keep.safetensors"]


def test_hit_vqmodel_from_config_with_a_preset_name_and_ckpt_path(shipped, tmp_path):
    cfg, ref, ckpt, yaml = shipped
    params = {**copy.deepcopy(cfg["model"]["params"]), "lossconfig": {"target": "torch.nn.Identity"},
              "ddconfig": {**DD, "ch_mult": [1, 1, 1, 1, 1], "attn_resolutions": []}, "decoder_config": "hit-1m-f16"}
    model = instantiate_from_config({"target": "hit_decoder.adapters.HiTVQModel", "params": params})
    assert model.decoder.downsample_factor == 16 and model.decoder.z_channels == 8  # preset's z filled from ddconfig
    path = tmp_path / "w.ckpt"
    torch.save({"state_dict": model.state_dict()}, path)
    again = instantiate_from_config({"target": "hit_decoder.adapters.HiTVQModel",
                                     "params": {**params, "ckpt_path": str(path)}})
    assert same_state(again, model)
    state = dict(model.state_dict())
    state.pop("decoder.latent_embed.weight")
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match="decoder.latent_embed.weight"):
        again.init_from_ckpt(path)  # what the ckpt_path parameter runs


# ----------------------------------------------------------------------------- CLI
def test_cli_swap_and_inspect(tmp_path, capsys):
    cfg = vq_config(dd={**DD, "ch_mult": [1, 1, 1, 1, 1], "attn_resolutions": []})
    ref = taming_built(cfg)
    ckpt, yaml = save_as_taming_ships(ref, cfg, tmp_path / "in")
    out = tmp_path / "out"
    assert main(["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--decoder", "hit-1m-f16",
                 "--override", "depths=[1,1,1,1,1]", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hit-1m-f16" in printed and "model.safetensors" in printed
    lib = A.load_vqmodel(out / "model.safetensors")
    tam = A.load_vqgan(out / "taming" / "model.yaml", out / "taming" / "model.ckpt")
    assert type(lib) is A.HiTVQModel and same_state(lib, tam)
    kept = {k: v for k, v in ref.state_dict().items() if not k.startswith("decoder.")}
    assert all(torch.equal(lib.state_dict()[k], v) for k, v in kept.items())
    assert main(["inspect", str(ckpt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vq"]["codebook"] == {"kind": "VectorQuantizer2", "size": 32, "dim": 8}
    assert info["vq"]["encoder"]["downsampling_factor"] == 16 and info["vq"]["decoder"]["kind"].startswith("CNN")
    assert info["training"]["global_step"] == 1234 and any("ModelCheckpoint" in n for n in info["not_loaded"])
    assert main(["inspect", str(out / "model.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "hit-decoder VQ model" in text and "kind HiT" in text and "downsampling factor 16" in text
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    assert main(["inspect", str(bad)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert main(["swap", "--vqgan-config", str(yaml), "--vqgan-ckpt", str(ckpt), "--decoder", "hit-2m-f8",
                 "--out", str(tmp_path / "x")]) == 2
    assert "hit-8m-f16" in capsys.readouterr().err and not (tmp_path / "x").exists()
