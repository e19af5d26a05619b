"""Configs, presets, registry, self-describing files, CLI listing."""

from __future__ import annotations

from importlib import resources

import pytest
import torch
from omegaconf import OmegaConf

from hit_decoder import (
    HiTDecoderConfig,
    create_decoder,
    get_decoder_config,
    list_decoders,
    load_decoder,
    load_decoder_config,
    save_decoder,
)
from hit_decoder.cli import main as cli_main

TINY = dict(z_channels=4, channels=[16, 8], depths=[1, 1], heads=[2, 2], num_attention_stages=1,
            block_size=[2], dilation_grid=[2])


def test_presets_exist_and_are_shipped_as_yaml():
    names = list_decoders()
    assert {"hit-1m-f16", "hit-8m-f16", "hit-2m-f8"} <= set(names)
    root = resources.files("hit_decoder.configs") / "decoders"
    for name in names:
        data = OmegaConf.to_container(OmegaConf.load(str(root / f"{name}.yaml")))
        assert get_decoder_config(name) == HiTDecoderConfig.from_dict(data)
    assert get_decoder_config("hit-8m-f16").downsample_factor == 16
    assert get_decoder_config("hit-8m-f16").z_channels == 256
    assert get_decoder_config("hit-2m-f8").downsample_factor == 8


def test_unknown_key_raises_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match="chanels"):
        HiTDecoderConfig.from_dict({**TINY, "chanels": [1]})
    with pytest.raises(ValueError, match="dephts"):
        create_decoder("hit-1m-f16", dephts=(1,))
    path = tmp_path / "bad.yaml"
    path.write_text("z_channels: 4\nblock_sise: [2]\n")
    with pytest.raises(ValueError, match="block_sise"):
        load_decoder_config(path)
    with pytest.raises(ValueError, match="unknown decoder preset 'hit-xl'.*hit-8m-f16"):
        get_decoder_config("hit-xl")


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(depths=[1]), "depths has 1 entries"),
        (dict(channels=[18, 8], heads=[3, 2]), "heads must be even"),
        (dict(channels=[18, 8], heads=[4, 2]), "positive multiple of heads"),
        (dict(block_size=[2, 2]), "one per attention stage"),
        (dict(cross_window=2), "odd"),
    ],
)
def test_inconsistent_config_is_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        HiTDecoderConfig.from_dict({**TINY, **bad})


def test_config_round_trips_through_dict_and_yaml(tmp_path):
    cfg = HiTDecoderConfig.from_dict(TINY)
    assert HiTDecoderConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "dec.yaml"
    OmegaConf.save(OmegaConf.create(cfg.to_dict()), path)
    assert load_decoder_config(path) == cfg
    assert load_decoder_config(OmegaConf.create(TINY)) == cfg


def test_one_resolver_fills_the_model_interface_the_same_for_every_source(tmp_path):
    """A model's interface fields replace a preset's values and fill in what a mapping or YAML file
    leaves out; a value the mapping or file sets is kept (the adapters check it fits); overrides win."""
    iface = {"z_channels": 12, "out_channels": 1}
    preset = load_decoder_config("hit-1m-f16", interface=iface)
    assert (preset.z_channels, preset.out_channels) == (12, 1)
    assert preset.replace(z_channels=256, out_channels=3) == get_decoder_config("hit-1m-f16")
    no_z = {k: v for k, v in TINY.items() if k != "z_channels"}
    path = tmp_path / "no_z.yaml"
    OmegaConf.save(OmegaConf.create(no_z), path)
    for source in (no_z, OmegaConf.create(no_z), path, str(path)):
        assert load_decoder_config(source, interface=iface) == HiTDecoderConfig.from_dict({**no_z, **iface})
    assert load_decoder_config(TINY, interface=iface).z_channels == 4  # set by the mapping: kept
    assert load_decoder_config(TINY, interface=iface, z_channels=8).z_channels == 8  # overrides win
    cfg = HiTDecoderConfig.from_dict(TINY)
    assert load_decoder_config(cfg, interface=iface) is cfg  # a config object is taken as it is
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [16, 8\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_decoder_config(bad, interface=iface)


def test_save_and_load_decoder_bit_exact(tmp_path):
    torch.manual_seed(0)
    dec = create_decoder(TINY).eval()
    path = save_decoder(dec, tmp_path / "d.safetensors")
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind
    back = load_decoder(path).eval()
    assert back.config == dec.config
    for (k, a), (k2, b) in zip(dec.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    z = torch.randn(1, 4, 3, 5)
    with torch.no_grad():
        assert torch.equal(dec(z), back(z))


def test_load_decoder_rejects_truncated_and_foreign_files(tmp_path):
    path = save_decoder(create_decoder(TINY), tmp_path / "d.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_decoder(tmp_path / "cut.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a hit-decoder/decoder file"):
        load_decoder(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError):
        load_decoder(tmp_path / "missing.safetensors")


def test_cli_lists_presets_with_params_and_gflops(capsys):
    assert cli_main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in list_decoders():
        assert name in out
    assert "GFLOPs" in out


def test_config_defaults_are_the_hit_8m_f16_preset():
    assert HiTDecoderConfig() == get_decoder_config("hit-8m-f16")


def test_inference_chunk_tokens_is_a_runtime_setting_not_architecture(tmp_path):
    dec = create_decoder(TINY)
    assert "inference_chunk_tokens" not in dec.config.to_dict()
    from safetensors import safe_open
    from safetensors.torch import save_file

    # a file written before it left the architecture still loads (the key is ignored)
    path = save_decoder(dec, tmp_path / "d.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = meta["config"][:-1] + ', "inference_chunk_tokens": 4096}'
    save_file(state, str(tmp_path / "old.safetensors"), metadata=meta)
    old = load_decoder(tmp_path / "old.safetensors")
    assert old.config == dec.config and old.inference_chunk_tokens is None  # the device's default
    assert HiTDecoderConfig.from_dict({**TINY, "inference_chunk_tokens": 7}) == dec.config


def test_weight_decay_groups_follow_no_weight_decay():
    from hit_decoder.training.steps import weight_decay_groups

    dec = create_decoder(TINY)
    params = list(dec.parameters())
    assert weight_decay_groups(params, dec, 0.0) == [{"params": params, "weight_decay": 0.0}]
    decay, no_decay = weight_decay_groups(params, dec, 0.01)
    exempt = {id(p) for n, p in dec.named_parameters() if n in dec.no_weight_decay()}
    assert exempt and {id(p) for p in no_decay["params"]} == exempt and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(params) and decay["weight_decay"] == 0.01


def test_preset_names_do_not_promise_hit_sizes_and_old_names_still_work():
    for name in list_decoders():  # hit-<millions of parameters>m-f<factor>[-<variant>]
        size, factor = name.split("-")[1:3]
        dec = create_decoder(name)
        assert round(sum(p.numel() for p in dec.parameters()) / 1e6) == int(size[:-1]), name
        assert int(factor[1:]) == dec.downsample_factor, name
    with pytest.warns(FutureWarning, match="'hit-b-f16' is now called 'hit-8m-f16'"):
        assert get_decoder_config("hit-b-f16") == get_decoder_config("hit-8m-f16")
    with pytest.warns(FutureWarning):
        assert load_decoder_config("hit-s-f16") == get_decoder_config("hit-1m-f16")
