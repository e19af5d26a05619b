"""hit-decoder: HiT hierarchical transformer decoders for VQGAN / VQ-VAE latents."""

from .config import HiTDecoderConfig
from .decoder import HiTDecoder
from .registry import create_decoder, get_decoder_config, list_decoders, load_decoder_config
from .serialization import load_decoder, save_decoder

__version__ = "0.2.0"

__all__ = [
    "HiTDecoder",
    "HiTDecoderConfig",
    "create_decoder",
    "get_decoder_config",
    "list_decoders",
    "load_decoder_config",
    "load_decoder",
    "save_decoder",
]
