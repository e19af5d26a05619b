"""The README is tested: every ```python block runs (in a temporary directory, in order, sharing
one namespace: the training quick start's model feeds the sampling one), and every
``hit-decoder ...`` command in it, in code blocks and in inline code, is parsed by the real
argument parser. Blocks whose fence reads ```python no-run would only be compiled."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from hit_decoder.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)
SHELL = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(hit-decoder [^`]*)`")


def _blocks():
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(README.read_text())]


def readme_commands(text: str) -> list[str]:
    """Every ``hit-decoder ...`` command: shell lines (continuations joined, comments dropped, each
    ``&&`` part on its own) and inline code spans."""
    found = []
    for block in SHELL.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#"):
                continue
            found += [part.strip() for part in line.split("&&") if part.strip().startswith("hit-decoder")]
    return found + INLINE.findall(text)


def test_readme_is_short_enough_to_read_in_five_minutes():
    # what it is, the two commands, the demo, three quick starts, links: details live in docs/
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines (at most 150): move details to docs/"


def test_readme_has_python_examples():
    assert any(flag == "" for flag, _ in _blocks())


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()  # the demo config sets trainer.cpu_threads
    namespace: dict = {}
    try:
        for i, (flag, code) in enumerate(_blocks()):
            compiled = compile(code, f"README.md block {i}", "exec")
            if flag == "no-run":
                continue
            exec(compiled, namespace)  # the README is ours
    finally:
        torch.set_num_threads(threads)
    assert namespace["img"].shape == (1, 3, 96, 160)  # the sampling quick start's tiled decode
    assert (tmp_path / "runs" / "quick-prior" / "prior.safetensors").is_file()


def test_readme_finds_every_command_form():
    text = "```bash\nhit-decoder a \\\n    --x 1  # note\n# hit-decoder no\npip install . && hit-decoder b\n```\n`hit-decoder c`"
    assert readme_commands(text) == ["hit-decoder a      --x 1", "hit-decoder b", "hit-decoder c"]


COMMANDS = readme_commands(README.read_text())


def test_readme_shows_every_command():
    shown = {shlex.split(c)[1] for c in COMMANDS}
    assert shown == set(build_parser()._subparsers._group_actions[0].choices)


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line):
    argv = shlex.split(line)
    assert argv[0] == "hit-decoder"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse exits on a bad line
        pytest.fail(f"README command does not parse ({exc.code}): {line}")
    assert callable(getattr(args, "func", None)), line
