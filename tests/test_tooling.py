"""The project's own tooling: CI script, packaging promises, the linter."""

import ast
import importlib.util
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

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


# Standard-library names added after Python 3.10 ("What's New in Python 3.11"; 3.12 and 3.13 added
# no new modules). A new module is fine behind `try: ... except ModuleNotFoundError` (see conftest).
NEWER_MODULES = {(3, 11): {"tomllib", "wsgiref.types"}}
NEWER_NAMES = {(3, 11): {("datetime", "UTC"), ("enum", "StrEnum"), ("typing", "Self"),
                         ("typing", "LiteralString"), ("typing", "assert_never"),
                         ("hashlib", "file_digest"), ("contextlib", "chdir"),
                         ("asyncio", "TaskGroup")},
               (3, 12): {("itertools", "batched"), ("typing", "override")}}


def _oldest_promised(pyproject) -> tuple[int, int]:
    spec = pyproject["project"]["requires-python"]
    match = re.fullmatch(r">=\s*3\.(\d+)", spec)
    assert match, f"requires-python {spec!r}: this test reads only '>=3.N'"
    return 3, int(match.group(1))


def _guarded(tree) -> set[int]:
    """Line numbers of imports inside a `try` whose handlers catch a failed import."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if hasattr(n, "lineno")}
    return lines


def test_sources_keep_to_the_oldest_promised_python(pyproject):
    """README and pyproject promise `requires-python`; the tests run on a newer interpreter, so
    check here what a newer one would let slip: grammar (ast's ``feature_version``), stdlib modules
    and the best-known stdlib names added since. Not seen: other new arguments or methods."""
    oldest = _oldest_promised(pyproject)
    modules = {m for since, ms in NEWER_MODULES.items() if since > oldest for m in ms}
    names = {n for since, ns in NEWER_NAMES.items() if since > oldest for n in ns}
    problems = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if path.parts[len(ROOT.parts)] not in ("hit_decoder", "tests", "benchmarks"):
            continue
        where = path.relative_to(ROOT)
        try:
            tree = ast.parse(path.read_text(), feature_version=oldest)
        except SyntaxError as err:
            problems.append(f"{where}:{err.lineno}: {err.msg}")
            continue
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                used = {a.name for a in node.names} & modules
            elif isinstance(node, ast.ImportFrom) and node.module:
                used = ({node.module} & modules) | {f"{node.module}.{a.name}" for a in node.names
                                                     if (node.module, a.name) in names}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                used = {f"{node.value.id}.{node.attr}"} if (node.value.id, node.attr) in names else set()
            else:
                continue
            if used and node.lineno not in guarded:
                problems.append(f"{where}:{node.lineno}: {sorted(used)} is newer than Python {oldest}")
    assert not problems, "\n".join(problems)


def test_every_code_fence_in_the_docs_is_closed():
    # an unmatched ``` turns the rest of a page into one code block
    pages = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
    open_at = {}
    for page in pages:
        fences = [i for i, line in enumerate(page.read_text().splitlines(), 1) if line.lstrip().startswith("```")]
        if len(fences) % 2:
            open_at[page.name] = fences
    assert not open_at, f"odd number of ``` fences (line numbers): {open_at}"


def _sources():
    """The project's own Python files: the package, the tests and the benchmarks."""
    return [p for top in ("hit_decoder", "tests", "benchmarks") for p in sorted((ROOT / top).rglob("*.py"))]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                    reason="ruff is not installed (it is in the dev extra: pip install '.[dev]')")
def test_ruff_finds_nothing():
    """The linter with the settings in pyproject.toml ([tool.ruff]) is clean on the tree."""
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                           cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 0, f"ruff check (fix: ruff check --fix .; see pyproject.toml):\n{found.stdout}{found.stderr}"


def test_every_noqa_names_its_rules_and_says_why():
    # each noqa comment names its rule codes, then says why (as in "noqa: E402  (reason)"): a bare
    # one silences every rule, and one without a reason cannot be judged by the next reader (ruff's
    # RUF100 reports those that no longer silence anything)
    noqa = re.compile(r"#\s*noqa\b(?P<codes>:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)?(?P<reason>.*)$", re.I)
    bad = []
    for path in _sources():
        with path.open("rb") as f:
            comments = [t for t in tokenize.tokenize(f.readline) if t.type == tokenize.COMMENT]
        for token in comments:
            m = noqa.match(token.string)
            if m and (not m.group("codes") or not re.search(r"[a-z]{3}", m.group("reason"))):
                bad.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.line.strip()}")
    assert not bad, "a `# noqa` without rule codes or without a reason after them:\n" + "\n".join(bad)


def test_no_test_file_imports_another():
    # shared fixtures live in tests/conftest.py and shared helpers in tests/support.py: a test file
    # that imports another runs (or re-collects) that file's module and ties the two together
    test_modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            hits = {n for n in names if n.split(".")[0] in test_modules or n.startswith("tests.")}
            if hits:
                found.append(f"tests/{path.name}:{node.lineno}: imports {sorted(hits)}")
    assert not found, "\n".join(found)


def test_the_module_map_names_every_module():
    """docs/architecture.md's module map names every module and subpackage of ``hit_decoder/`` (as
    ``name.py``, ``package/name.py``, ``package/``), so a newcomer finds each file there."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "hit_decoder"
    names = {f"{p.relative_to(package).as_posix()}" for p in package.rglob("*.py") if p.name != "__init__.py"}
    names |= {f"{p.parent.relative_to(package).as_posix()}/" for p in package.rglob("__init__.py") if p.parent != package}
    missing = sorted(n for n in names if f"`{n}`" not in page and f"**{n}**" not in page)
    assert not missing, f"docs/architecture.md's module map lacks {missing}"
