"""Make the ``taming`` package (taming-transformers-rom1504) importable on today's stack.

Upstream taming breaks in three places on current torch / Lightning / transformers:

* ``taming/main.py`` imports ``pytorch_lightning.utilities.distributed.rank_zero_only``
  (moved to ``pytorch_lightning.utilities.rank_zero`` in Lightning 2);
* ``taming/data/utils.py`` imports ``torch._six`` in some snapshots (removed in torch 2);
* ``taming/modules/transformer/mingpt.py`` imports ``top_k_top_p_filtering`` from
  ``transformers`` (removed in transformers 4.39; we do not depend on transformers at all).

Nothing installed is edited. Each missing module is placed in ``sys.modules`` only for the
duration of the one import that needs it, then removed again (a real module that was there
before is put back), so other libraries never see a fake ``transformers`` or ``torch._six``.
The taming modules keep the names they bound at import time.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator

from ..sampling import top_k_top_p_filtering  # plain torch; lives with the sampler

__all__ = ["ensure_taming", "top_k_top_p_filtering"]

_PATCHED = False


@contextlib.contextmanager
def _temporary_module(name: str, module: types.ModuleType) -> Iterator[None]:
    """Expose ``module`` as ``sys.modules[name]`` for the duration of the block only."""
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous


def _import_with(name: str, shims: dict[str, types.ModuleType]) -> None:
    if name in sys.modules:
        return
    with contextlib.ExitStack() as stack:
        for mod_name, mod in shims.items():
            stack.enter_context(_temporary_module(mod_name, mod))
        importlib.import_module(name)


def _needs_transformers_shim() -> bool:
    try:
        from transformers import top_k_top_p_filtering as _  # noqa: F401  (only checks that it exists)
    except Exception:
        return True
    return False


def ensure_taming() -> None:
    """Import taming's modules that need shims. Idempotent; call before using taming."""
    global _PATCHED
    if _PATCHED:
        return
    try:
        import taming  # noqa: F401  (only checks that it is installed)
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ImportError(
            "hit_decoder.adapters needs the 'taming' package: pip install taming-transformers-rom1504 "
            "(PyPI's 'taming-transformers' 0.0.1 is too old: it lacks VectorQuantizer2 and GumbelVQ)."
        ) from exc

    # 1. taming.main <- pytorch_lightning.utilities.distributed.rank_zero_only
    from pytorch_lightning.utilities import rank_zero

    dist_shim = types.ModuleType("pytorch_lightning.utilities.distributed")
    dist_shim.rank_zero_only = rank_zero.rank_zero_only  # type: ignore[attr-defined]
    try:
        importlib.import_module("pytorch_lightning.utilities.distributed")
        pl_shims: dict[str, types.ModuleType] = {}
    except ImportError:
        pl_shims = {"pytorch_lightning.utilities.distributed": dist_shim}
    _import_with("taming.main", pl_shims)

    # 2. taming.data.utils <- torch._six (only some snapshots)
    six_shim = types.ModuleType("torch._six")
    six_shim.string_classes = (str, bytes)  # type: ignore[attr-defined]
    six_shim.int_classes = int  # type: ignore[attr-defined]
    six_shim.inf = float("inf")  # type: ignore[attr-defined]
    six_shims = {"torch._six": six_shim} if "torch._six" not in sys.modules else {}
    try:
        importlib.import_module("torch._six")
        six_shims = {}
    except ImportError:
        pass
    _import_with("taming.data.utils", six_shims)

    # 3. taming.modules.transformer.mingpt <- transformers.top_k_top_p_filtering
    tf_shims: dict[str, types.ModuleType] = {}
    if _needs_transformers_shim():
        tf_shim = types.ModuleType("transformers")
        tf_shim.top_k_top_p_filtering = top_k_top_p_filtering  # type: ignore[attr-defined]
        tf_shims = {"transformers": tf_shim}
    _import_with("taming.modules.transformer.mingpt", tf_shims)

    for name in ("taming.models.vqgan", "taming.models.cond_transformer"):
        importlib.import_module(name)
    _PATCHED = True
