"""The README is tested: every ```python block runs (in a temporary directory, in order, sharing
one namespace). Blocks whose fence reads ```python no-run illustrate paths the user supplies and
are only compiled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def _blocks():
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(README.read_text())]


def test_readme_has_python_examples():
    assert any(flag == "" for flag, _ in _blocks())


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, (flag, code) in enumerate(_blocks()):
        compiled = compile(code, f"README.md block {i}", "exec")
        if flag == "no-run":
            continue
        exec(compiled, namespace)  # noqa: S102 - the README is ours
