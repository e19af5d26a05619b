"""``benchmarks/profile.py`` files every aten op that costs time into one of its op classes: an op
it does not know (a new in-place variant, say) would land in "other" and hide from the breakdown."""

from __future__ import annotations

import torch

from hit_decoder import HiTDecoder, HiTDecoderConfig
from support import benchmark_script


def test_every_costly_op_of_a_decode_has_an_op_class():
    prof = benchmark_script("profile")
    torch.manual_seed(0)
    cfg = HiTDecoderConfig(z_channels=8, channels=(32, 16, 16), depths=(1, 1, 1), heads=(2, 2, 2),
                           num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 2), mlp_conv=True)
    dec = HiTDecoder(cfg, inference_chunk_tokens=64).eval()  # banded: the path a large decode takes
    result = prof.profile_decoder(dec, torch.randn(1, 8, 6, 6), repeats=2, warmup=1)
    total = sum(result["by_class"].values())
    # pure metadata ops (views, strides, empty tensors) may stay "other"; nothing that computes
    metadata = {"aten::empty", "aten::empty_strided", "aten::as_strided", "aten::view", "aten::t", "aten::slice",
                "aten::expand", "aten::permute", "aten::transpose", "aten::select", "aten::unsqueeze",
                "aten::squeeze", "aten::alias", "aten::detach", "aten::lift_fresh", "aten::resize_",
                "aten::result_type", "aten::item", "aten::_local_scalar_dense", "aten::is_nonzero",
                "aten::chunk", "aten::split", "aten::unbind", "aten::unflatten", "aten::flatten",
                "aten::_reshape_alias", "aten::is_same_size", "aten::arange", "aten::scalar_tensor",
                "aten::narrow", "aten::new_empty", "aten::resolve_conj", "aten::_nnpack_available"}
    unclassified = {name for name, _, _ in result["ops"] if prof.op_class(name) == "other" and name not in metadata}
    assert not unclassified, f"ops without a class in benchmarks/profile.py: {sorted(unclassified)}"
    assert {"matmul", "attention", "normalisation", "elementwise", "convolution"} <= set(result["by_class"]), result
    assert total > 0
