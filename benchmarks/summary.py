"""Write the README's benchmark summary from BENCHMARKS.md (never by hand).

Usage: ``python benchmarks/summary.py`` rewrites the block between
``<!-- benchmark-summary:begin -->`` and ``<!-- benchmark-summary:end -->`` in README.md;
``--check`` only says whether that block is up to date (exit 1 if not). Run it after any benchmark
script has rewritten a section of BENCHMARKS.md; ``tests/test_benchmark_summary.py`` fails while the
README block is stale.

The summary is one short table, a row per headline section (speed: ``decoder``, ``decoder_gpu``, ``sampler``;
quality: ``quality``, ``prior_quality``): its heading, its verdict as BENCHMARKS.md words it (the
``Result`` line, or else the target lines), its machine line and the script that measures it. A
section that BENCHMARKS.md does not have is reported as not measured, never filled in; the tables
themselves stay in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "benchmark-summary"
#: (section name in BENCHMARKS.md, what it measures, the script that writes it)
SECTIONS = (
    ("decoder", "speed", "python benchmarks/decoder.py"),
    ("decoder_gpu", "speed", "python benchmarks/gpu.py"),
    ("sampler", "speed", "python benchmarks/sampler.py"),
    ("quality", "quality", "python benchmarks/quality.py"),
    ("prior_quality", "quality", "python benchmarks/prior_quality.py"),
)


def sections(text: str) -> dict[str, str]:
    """The bodies of the ``<!-- name:begin -->`` ... ``<!-- name:end -->`` sections of ``text``."""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"<!-- (\w[\w-]*):begin -->\n(.*?)<!-- \1:end -->", text, re.S)}


def _heading(body: str, name: str) -> str:
    return next((ln.lstrip("#").strip() for ln in body.splitlines() if ln.startswith("#")), name)


def _machine(body: str) -> str | None:
    for line in body.splitlines():
        text = line.lstrip("- ").strip()
        if text.startswith(("CPU:", "machine:")):
            return text
    return None


def headline(body: str) -> str | None:
    """The section's own verdict: its ``Result ...:`` line, or else its target lines
    (``- ... (target ...): met``) joined, or None."""
    lines = [ln.strip() for ln in body.splitlines()]
    result = next((ln for ln in lines if re.match(r"Result\b[^:]*:", ln)), None)
    if result is not None:
        return re.sub(r"^Result:\s*", "", result)
    targets = [ln[2:] for ln in lines if ln.startswith("- ") and "(target" in ln]
    return "; ".join(targets) or None


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary(benchmarks_md: str) -> str:
    """The README block (without its markers) for the text of BENCHMARKS.md."""
    found = sections(benchmarks_md)
    out = ["Headlines of [BENCHMARKS.md](BENCHMARKS.md) (protocols, every table), written by `python benchmarks/summary.py`:", "",
           "| measured | result | on | by |", "|---|---|---|---|"]
    for name, kind, script in SECTIONS:
        body = found.get(name)
        if body is None:
            row = [f"{kind} ({name})", f"not measured: BENCHMARKS.md has no `{name}` section", "", f"`{script}`"]
        else:
            result = headline(body) or f"no result line: see the `{name}` section of BENCHMARKS.md"
            row = [f"{kind}: {_heading(body, name)}", result, _machine(body) or "not stated", f"`{script}`"]
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(out)


def readme_block(readme_md: str) -> str | None:
    return sections(readme_md).get(BLOCK)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md's summary is stale, write nothing")
    p.add_argument("--benchmarks", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = p.parse_args(argv)
    want = summary(args.benchmarks.read_text())
    if args.check:
        fresh = readme_block(args.readme.read_text()) == want.strip()
        print("README benchmark summary is " + ("up to date" if fresh else "STALE: run python benchmarks/summary.py"))
        return 0 if fresh else 1
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmarking import update_section

    update_section(args.readme, BLOCK, want)
    print(f"wrote the benchmark summary into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
