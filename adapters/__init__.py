"""taming-transformers integration for hit-decoder (the only code that imports ``taming``)."""

from ._compat import ensure_taming, top_k_top_p_filtering

ensure_taming()

__all__ = ["ensure_taming", "top_k_top_p_filtering"]
