"""The README's benchmark summary is generated from BENCHMARKS.md by ``benchmarks/summary.py``;
a README whose block is stale relative to BENCHMARKS.md fails here."""

from __future__ import annotations

from pathlib import Path

from support import benchmark_script

ROOT = Path(__file__).resolve().parents[1]


def test_readme_benchmark_summary_is_generated_from_benchmarks_md():
    s = benchmark_script("summary")
    block = s.readme_block((ROOT / "README.md").read_text())
    assert block is not None, "README.md has no <!-- benchmark-summary:begin/end --> block"
    assert block == s.summary((ROOT / "BENCHMARKS.md").read_text()).strip(), (
        "README.md's benchmark summary is stale: run `python benchmarks/summary.py`")


def test_summary_is_one_table_of_each_sections_verdict_as_stated():
    s = benchmark_script("summary")
    md = ("# Benchmarks\n\n<!-- quality:begin -->\n## Q\n\n| decoder | PSNR (dB) |\n|---|---|\n| hit | 21.50 |\n\n"
          "Result (2 seeds): HiT is below | far below.\n<!-- quality:end -->\n\n"
          "<!-- decoder:begin -->\n## D\nCPU: test box\n\n| decoder | s / image |\n|---|---|\n| hit | 0.3 |\n\n"
          "Targets:\n- speed 3.0× (target >= 10×): NOT met\n- FLOPs 0.07 (target <= 0.125): met\n- bf16: not measured\n"
          "<!-- decoder:end -->\n\n<!-- prior_quality:begin -->\n## P\n\n| a |\n|---|\n| 1 |\n<!-- prior_quality:end -->\n")
    lines = s.summary(md).splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| measured")]
    assert len(rows) == 5, lines  # one row per headline section, in SECTIONS order, nothing else tabled
    decoder, gpu, sampler, quality, prior = rows
    assert "not measured: BENCHMARKS.md has no `decoder_gpu` section" in gpu
    assert decoder == ("| speed: D | speed 3.0× (target >= 10×): NOT met; FLOPs 0.07 (target <= 0.125): met "
                       "| CPU: test box | `python benchmarks/decoder.py` |")
    assert "not measured: BENCHMARKS.md has no `sampler` section" in sampler  # absent: said so, not invented
    assert r"Result (2 seeds): HiT is below \| far below." in quality and "| not stated |" in quality
    assert "no result line" in prior and "| 1 |" not in "\n".join(lines)  # tables stay in BENCHMARKS.md


def test_summary_check_mode_detects_a_stale_readme(tmp_path, capsys):
    s = benchmark_script("summary")
    bench, readme = tmp_path / "BENCHMARKS.md", tmp_path / "README.md"
    bench.write_text("<!-- decoder:begin -->\n## D\n\n| a |\n|---|\n| 1 |\n\nResult: fast.\n<!-- decoder:end -->\n")
    readme.write_text("# x\n\n<!-- benchmark-summary:begin -->\nold\n<!-- benchmark-summary:end -->\n")
    args = ["--benchmarks", str(bench), "--readme", str(readme)]
    assert s.main([*args, "--check"]) == 1
    assert s.main(args) == 0 and s.main([*args, "--check"]) == 0
    assert readme.read_text().startswith("# x\n") and "| speed: D | fast. |" in readme.read_text()
