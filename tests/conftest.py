"""Fixtures shared by several test files (test files never import each other)."""

from pathlib import Path

import pytest
import torch

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the `tomli` backport, in the dev extra for 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pyproject() -> dict:
    """The checkout's parsed ``pyproject.toml``."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture
def one_thread():
    """Tiny models run as fast on one thread, and two OpenMP threads slow down badly (10x and
    more) when other processes share the two cores. Test files opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
