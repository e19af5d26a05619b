"""The README's benchmark summary is generated from BENCHMARKS.md by ``benchmarks/summary.py``;
a README whose block is stale relative to BENCHMARKS.md fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _summary_module():
    spec = importlib.util.spec_from_file_location("benchmark_summary", ROOT / "benchmarks" / "summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_benchmark_summary_is_generated_from_benchmarks_md():
    s = _summary_module()
    block = s.readme_block((ROOT / "README.md").read_text())
    assert block is not None, "README.md has no <!-- benchmark-summary:begin/end --> block"
    assert block == s.summary((ROOT / "BENCHMARKS.md").read_text()).strip(), (
        "README.md's benchmark summary is stale: run `python benchmarks/summary.py`")


def test_summary_shows_speed_and_quality_tables_as_measured():
    s = _summary_module()
    md = ("# Benchmarks\n\n<!-- quality:begin -->\n## Q\n\n| decoder | PSNR (dB) |\n|---|---|\n| hit | 21.50 |\n\n"
          "Per photograph:\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\nResult: HiT is below.\n<!-- quality:end -->\n\n"
          "<!-- decoder:begin -->\n## D\nCPU: test box\n\n| decoder | s / image |\n|---|---|\n| hit | 0.3 |\n"
          "<!-- decoder:end -->\n")
    text = s.summary(md)
    assert "| hit | 21.50 |" in text and "| hit | 0.3 |" in text  # quality and speed rows, copied as measured
    assert "| 1 | 2 |" not in text  # only each section's first table
    assert "Result: HiT is below." in text and "CPU: test box." in text
    assert "(sampler):** not measured" in text  # an absent section is said to be absent, not invented


def test_summary_check_mode_detects_a_stale_readme(tmp_path, capsys):
    s = _summary_module()
    bench, readme = tmp_path / "BENCHMARKS.md", tmp_path / "README.md"
    bench.write_text("<!-- decoder:begin -->\n## D\n\n| a |\n|---|\n| 1 |\n<!-- decoder:end -->\n")
    readme.write_text("# x\n\n<!-- benchmark-summary:begin -->\nold\n<!-- benchmark-summary:end -->\n")
    args = ["--benchmarks", str(bench), "--readme", str(readme)]
    assert s.main([*args, "--check"]) == 1
    assert s.main(args) == 0 and s.main([*args, "--check"]) == 0
    assert readme.read_text().startswith("# x\n") and "| 1 |" in readme.read_text()
