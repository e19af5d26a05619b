"""The project's own tooling: CI script, packaging promises."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_keeps_its_environment_out_of_the_users_venv():
    # README command 1 makes `.venv` in the checkout; `.ci/run` must neither delete nor reuse it.
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    removed = re.findall(r"rm -rf\s+(\S+)", script)
    assert removed, "expected .ci/run to start from a fresh environment"
    venv_dirs = re.findall(r"^venv=(\S+)$", script, flags=re.M)
    assert venv_dirs == [".ci/venv"], venv_dirs
    for target in removed:
        assert target.strip("\"'") in ("$venv", "${venv}"), f".ci/run removes {target}"
    assert ".venv" not in script.replace(".ci/venv", ""), "the CI script mentions the user's .venv"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".ci/venv/bin/python"], cwd=ROOT)
    assert ignored.returncode == 0, ".ci/venv is not git-ignored"
