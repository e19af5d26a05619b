"""Stage-1 training of VQGANs with HiT decoders (from scratch, or decoder swap on a frozen VQGAN).

Entry point: :func:`run_training`. Heavy imports (Lightning, taming) happen inside the
submodules, so ``import hit_decoder.training`` stays cheap.
"""

from .config import TrainConfig, load_train_config, shipped_train_configs, train_config_from_dict
from .run import TrainResult, run_training

__all__ = [
    "TrainConfig",
    "TrainResult",
    "load_train_config",
    "run_training",
    "shipped_train_configs",
    "train_config_from_dict",
]
