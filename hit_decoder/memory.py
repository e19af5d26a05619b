"""Memory checks before large allocations: what the OS says is available, and a refusal with the
numbers when a job's estimate does not fit (``sample --size``, ``reconstruct``, ``presets --size``)."""

from __future__ import annotations

__all__ = ["available_memory", "GB", "fits"]

GB = 1024**3


def available_memory() -> int | None:
    """Bytes the OS reports as available (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fits(need: float) -> tuple[bool, float]:
    """``(need <= available, available)``; unknown availability counts as fitting."""
    free = available_memory()
    return (free is None or need <= free), float(free or 0)
