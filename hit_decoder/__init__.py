"""hit-decoder: HiT hierarchical transformer decoders for VQGAN / VQ-VAE latents."""

__version__ = "0.1.0"
