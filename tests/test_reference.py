"""Decoder files saved by earlier code decode as they did then (tests/data/reference)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hit_decoder.serialization import load_decoder

REF = Path(__file__).resolve().parent / "data" / "reference"
NAMES = sorted(p.stem for p in REF.glob("*.safetensors") if p.stem != "cases")


def test_the_reference_covers_every_architecture_option():
    import json

    from hit_decoder.serialization import read_safetensors

    seen: dict[str, set] = {}
    for name in NAMES:
        _, meta = read_safetensors(REF / f"{name}.safetensors", "hit-decoder/decoder", "2", tensors=False)
        for k, v in json.loads(meta["config"]).items():
            seen.setdefault(k, set()).add(json.dumps(v))
    assert len(NAMES) >= 5
    for key, n in (("cross_attention", 2), ("upsample", 3), ("mlp_conv", 2), ("rgb_upsample", 2), ("out_conv", 2)):
        assert len(seen[key]) == n, f"{key}: the reference holds only {seen[key]}"


@pytest.mark.parametrize("name", NAMES)
def test_saved_decoders_decode_as_the_code_that_saved_them(name):
    cases = load_file(str(REF / "cases.safetensors"))
    dec = load_decoder(REF / f"{name}.safetensors").eval()
    with torch.no_grad():
        out = dec(cases[f"{name}.z"])
    torch.testing.assert_close(out, cases[f"{name}.out"], rtol=0, atol=1e-5)
