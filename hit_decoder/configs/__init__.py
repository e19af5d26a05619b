"""YAML presets shipped with hit-decoder (decoders, training runs, taming-format model files)."""
