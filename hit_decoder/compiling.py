"""``torch.compile`` for a decoder with as few graphs as grid sizes allow (docs/performance.md,
"Compilation").

``torch.compile(decoder, fullgraph=True, dynamic=True)`` traces the HiT decoder as one graph with
symbolic grid sizes. PyTorch still specialises a graph on whether a size is 1: a stage whose grid is
one attention super-window wide (the usual case of the first stage: ``hit-8m-f16`` decodes a 16x16
latent at 256²) and one two super-windows wide take different graphs. :func:`compile_decoder`
traces with PyTorch's size-oblivious reasoning for those checks
(``torch.fx.experimental._config.backed_size_oblivious``, set only while the compiled decoder
traces): the trace is then one graph for every grid size, and so is inductor's code (checked on
the test decoder and on ``hit-8m-f16`` at 256² and 512²). Batch 1 and batches of 2 or more are
two graphs (PyTorch's convolution specialises on it).

Checked with torch 2.14.1 (the tests). With torch 2.11.0 on a GPU, dynamo failed on the HiT
decoder at every size (``PendingUnbackedSymbolNotFound``, an output with unbacked sizes: the
cross-attention's crop, as far as its strides show; that crop is now a gather while compiling, not
yet checked on torch 2.11). Use torch 2.14 or newer to compile it, or decode eagerly
(docs/performance.md, "GPU").
"""

from __future__ import annotations

import torch
import torch.fx.experimental._config as fx_config
from torch import nn

__all__ = ["CompiledDecoder", "compile_decoder"]


class CompiledDecoder(nn.Module):
    """A compiled decoder: call it like the decoder. ``decoder`` is the eager module it was made
    from (same parameters: train, save or ``.to()`` that one)."""

    def __init__(self, decoder: nn.Module, **compile_kwargs) -> None:
        super().__init__()
        self.compiled = torch.compile(decoder, **compile_kwargs)

    @property
    def decoder(self) -> nn.Module:
        return self.compiled._orig_mod

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # the setting is read while a graph is traced (the first call, and any recompilation)
        with fx_config.patch(backed_size_oblivious=True):
            return self.compiled(z)


def compile_decoder(decoder: nn.Module, *, fullgraph: bool = True, dynamic: bool = True, **compile_kwargs) -> CompiledDecoder:
    """``torch.compile(decoder, fullgraph=fullgraph, dynamic=dynamic, **compile_kwargs)``, traced with
    size-oblivious shape reasoning (see the module docstring for the graphs this leaves). The first
    call compiles (minutes on a CPU); outputs equal the eager decoder's to float rounding."""
    return CompiledDecoder(decoder, fullgraph=fullgraph, dynamic=dynamic, **compile_kwargs)
