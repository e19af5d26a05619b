"""Fixtures shared by several test files (test files never import each other)."""

from pathlib import Path

import pytest

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the `tomli` backport, in the dev extra for 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pyproject() -> dict:
    """The checkout's parsed ``pyproject.toml``."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())
