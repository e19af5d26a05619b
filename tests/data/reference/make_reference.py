"""Writes the stored decoding reference (run once, with the code it is meant to pin down).

    OMP_NUM_THREADS=1 python tests/data/reference/make_reference.py

Produced with hit-decoder at commit 420182e (before the decoder restructure of issue 17): small
decoder files in the format of that version (``save_decoder``) covering every architecture option,
f8 and f16, and ``cases.safetensors`` with fixed latents and the images that code decoded from
them (float32, ``torch.no_grad``, whole decode). tests/test_reference.py checks that today's code
loads these files and decodes them to within 1e-5.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from hit_decoder import HiTDecoder, HiTDecoderConfig
from hit_decoder.serialization import save_decoder

HERE = Path(__file__).resolve().parent

#: name -> (config, latent grid (B, h, w)); tiny widths, every option of HiTDecoderConfig exercised
CASES = {
    "f16_default": (dict(z_channels=8, channels=(32, 16, 16, 8, 8), depths=(1, 2, 1, 1, 1), heads=(4, 2, 2, 2, 2),
                         num_attention_stages=3, block_size=(2, 4, 4), dilation_grid=(2, 2, 2)), (2, 3, 5)),
    "f8_cell_pixelshuffle": (dict(z_channels=6, channels=(32, 16, 8, 8), depths=(2, 1, 1, 1), heads=(2, 2, 2, 2),
                                  num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 3),
                                  cross_attention="cell", upsample="pixel_shuffle", mlp_conv=False,
                                  rgb_upsample="nearest", out_conv=False, cross_window=5), (1, 4, 7)),
    "f8_bilinear_all": (dict(z_channels=4, channels=(16, 16, 8, 8), depths=(1, 1, 2, 1), heads=(2, 2, 2, 2),
                             num_attention_stages=2, block_size=(2, 2), dilation_grid=(2, 2),
                             upsample="bilinear_all", rgb_upsample="nearest", latent_dim=12), (2, 6, 3)),
    "f4_no_attention": (dict(z_channels=4, channels=(16, 8, 8), depths=(1, 1, 1), heads=(2, 2, 1),
                             num_attention_stages=0, block_size=(), dilation_grid=(), out_conv=False,
                             mlp_ratio=2.0), (1, 5, 5)),
    "f8_all_attention": (dict(z_channels=4, channels=(16, 16, 8, 8), depths=(1, 1, 1, 1), heads=(2, 2, 2, 2),
                              num_attention_stages=4, block_size=(2, 2, 4, 4), dilation_grid=(1, 2, 2, 2),
                              cross_attention="cell", cross_window=3), (1, 3, 2)),
}


def main() -> None:
    tensors = {}
    for i, (name, (cfg, (B, h, w))) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        dec = HiTDecoder(HiTDecoderConfig(**cfg)).eval()
        with torch.no_grad():  # random, non-trivial LayerNorm affine and biases (init sets them to 1 / 0)
            for n, p in dec.named_parameters():
                if not n.endswith("weight") or p.ndim == 1:
                    p.add_(torch.randn_like(p) * 0.1)
        save_decoder(dec, HERE / f"{name}.safetensors")
        z = torch.randn(B, cfg["z_channels"], h, w, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            tensors[f"{name}.z"] = z
            tensors[f"{name}.out"] = dec(z).contiguous()
    save_file(tensors, str(HERE / "cases.safetensors"), metadata={"commit": "420182e"})


if __name__ == "__main__":
    main()
