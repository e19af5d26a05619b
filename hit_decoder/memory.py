"""Memory checks before large allocations: what the OS says is available, and a refusal with the
numbers when a job's estimate does not fit (``sample --size``, ``reconstruct``, ``presets --size``)."""

from __future__ import annotations

__all__ = ["available_memory", "GB", "fits"]

GB = 1024**3


def available_memory() -> int | None:
    """Bytes the OS reports as available (psutil's ``available``: Linux ``MemAvailable``), or None
    where psutil cannot tell."""
    import psutil

    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError):  # unsupported platform or unreadable source
        return None


def fits(need: float) -> tuple[bool, float]:
    """``(need <= available, available)``; unknown availability counts as fitting."""
    free = available_memory()
    return (free is None or need <= free), float(free or 0)
