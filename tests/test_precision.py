"""Reduced precision and compilation: bf16 (cast and autocast) against fp32, torch.compile against eager."""

from __future__ import annotations

import copy

import pytest
import torch

from hit_decoder import HiTDecoder, HiTDecoderConfig
from hit_decoder.precision import decode_precision

TINY = dict(z_channels=8, channels=(32, 16, 16), depths=(1, 1, 1), heads=(2, 2, 2),
            num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 2))


def _decoder() -> HiTDecoder:
    torch.manual_seed(0)
    return HiTDecoder(HiTDecoderConfig(**TINY)).eval()


def _psnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR of ``a`` against ``ref`` over the reference's own range."""
    a, ref = a.float(), ref.float()
    span = (ref.max() - ref.min()).item()
    return 10 * torch.log10(span**2 / (a - ref).square().mean()).item()


@pytest.mark.parametrize("mode", ["cast", "autocast"])
def test_bf16_decodes_close_to_fp32(mode):
    dec = _decoder()
    z = torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(1))  # pads in both attention stages
    with torch.no_grad():
        ref = dec(z)
        if mode == "cast":
            out = copy.deepcopy(dec).to(torch.bfloat16)(z.bfloat16())
        else:
            with decode_precision("bf16"):
                out = dec(z)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    # bf16 keeps 8 bits of mantissa: about 48 dB for one rounding of values in the reference's range
    assert _psnr(out, ref) > 35.0, f"bf16 ({mode}) PSNR {_psnr(out, ref):.1f} dB against fp32"


def test_the_tent_table_follows_the_module_dtype_exactly():
    from hit_decoder.layers import LatentCrossAttention, tent_log_weights

    attn = LatentCrossAttention(8, 8, 2, 4, 3).double()
    assert attn.tent.dtype == torch.float64 and torch.equal(attn.tent, tent_log_weights(4, 3))  # not rounded via fp32
    assert "tent" not in attn.state_dict()  # a constant of the architecture, never saved
    half = attn.to(torch.bfloat16).tent
    assert half.dtype == torch.bfloat16 and torch.equal(half, tent_log_weights(4, 3).bfloat16())


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        decode_precision("fp8")


# batch and sides > 1; the attention stage's super-window is 4x4: the first two grids pad to 8x8, the
# third needs no padding in its rows, the fourth is one super-window wide; the fifth is large enough
# that the eager decoder decodes it in row bands (a compiled decoder decodes every grid whole)
COMPILE_GRIDS = [(2, 8, 5, 7), (3, 8, 7, 6), (2, 8, 12, 10), (2, 8, 7, 3), (2, 8, 48, 41)]


def _small_decoder() -> HiTDecoder:
    torch.manual_seed(0)  # the smallest decoder with every kind of block: compile time grows with the graph
    return HiTDecoder(HiTDecoderConfig(z_channels=8, channels=(16, 8), depths=(1, 1), heads=(2, 2),
                                       num_attention_stages=1, block_size=(2,), dilation_grid=(2,))).eval()


def _compile_and_decode(compile_fn, grids):
    """Decode ``grids`` with ``compile_fn(decoder)`` (recompiling is an error) and eagerly; returns
    the decoder, the compiled one, both outputs and the number of graphs compiled."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    dec = _small_decoder()
    compiled = compile_fn(dec)
    outs, refs = [], []
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
        for shape in grids:
            z = torch.randn(shape, generator=torch.Generator().manual_seed(2))
            outs.append(compiled(z))
            refs.append(dec(z))
    return dec, compiled, outs, refs, torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_compiled_decoder_traces_one_graph_for_every_grid_size():
    """The graph capture (dynamo, backend "eager": no code generation, seconds instead of minutes):
    no graph break (fullgraph), no recompilation across grids that need padding, need none or are
    one super-window wide. Guards come from the trace, so this is what recompiles; the inductor
    run below checks the generated code."""
    from hit_decoder.compiling import compile_decoder

    dec, compiled, outs, refs, graphs = _compile_and_decode(lambda d: compile_decoder(d, backend="eager"), COMPILE_GRIDS)
    assert compiled.decoder is dec
    assert graphs == 1
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_plain_torch_compile_shares_a_graph_between_padded_and_unpadded_grids():
    """Without compile_decoder: torch.compile(fullgraph, dynamic) itself no longer tells apart grids
    that need padding from grids that need none."""
    *_, outs, refs, graphs = _compile_and_decode(
        lambda d: torch.compile(d, fullgraph=True, dynamic=True, backend="eager"), COMPILE_GRIDS[:3])
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert graphs == 1


@pytest.mark.slow_compile
def test_compiled_decoder_is_one_graph_for_every_grid_size():
    """compile_decoder with inductor: no graph break, one compilation for the five grid sizes, outputs
    within 1e-4 of eager. Costs about 2 minutes of compiling on 2 quiet CPU cores."""
    from hit_decoder.compiling import compile_decoder

    dec, compiled, outs, refs, graphs = _compile_and_decode(lambda d: compile_decoder(d, backend="inductor"), COMPILE_GRIDS)
    assert compiled.decoder is dec
    assert graphs == 1
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
