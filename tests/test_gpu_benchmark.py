"""``benchmarks/gpu.py``: its BENCHMARKS.md section is what ``--render`` makes of the committed
measurement files, and the script itself runs end to end (on the CPU here, tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import benchmark_script

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted((ROOT / "benchmarks" / "results").glob("gpu-*.jsonl"))


def _section(text: str, name: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    assert begin in text and end in text, f"BENCHMARKS.md has no {name} section"
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def test_gpu_section_is_rendered_from_the_committed_runs():
    assert RUNS, "benchmarks/results/ holds no gpu-*.jsonl measurement files"
    runs = [[json.loads(line) for line in p.read_text().splitlines() if line.strip()] for p in RUNS]
    names = [p.relative_to(ROOT).as_posix() for p in RUNS]
    section = _section((ROOT / "BENCHMARKS.md").read_text(), "decoder_gpu")
    assert section == benchmark_script("gpu").render(runs, names).strip(), (
        "BENCHMARKS.md's GPU section is stale: run `python benchmarks/gpu.py --render benchmarks/results/gpu-*.jsonl`")


def test_gpu_benchmark_runs_end_to_end_on_the_cpu(tmp_path):
    jsonl, md = tmp_path / "g.jsonl", tmp_path / "B.md"
    cmd = [sys.executable, "gpu.py", "--device", "cpu", "--models", "hit-1m-f16", "--sizes", "32", "--batches", "1", "2",
           "--repeats", "1", "--compile-models", "none", "--jsonl", str(jsonl)]
    subprocess.run(cmd, cwd=ROOT / "benchmarks", check=True, capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    times = [r for r in rows if r["kind"] == "time"]
    # every dtype, banded and whole, at both batches; FLOPs scale with the batch
    assert {(r["mode"], r["batch"]) for r in times} == {(m + w, b) for m in ("fp32", "bf16", "fp16")
                                                         for w in ("", "-whole") for b in (1, 2)}
    flops = {(r["mode"], r["batch"]): r["gflops"] for r in times}
    assert abs(flops[("fp32", 2)] - 2 * flops[("fp32", 1)]) < 1e-6 * flops[("fp32", 2)]
    assert all(r["seconds"] > 0 for r in times) and rows[-1]["kind"] == "done"
    subprocess.run([sys.executable, "gpu.py", "--render", str(jsonl), "--out", str(md)], cwd=ROOT / "benchmarks",
                   check=True, capture_output=True, text=True, timeout=120)
    section = _section(md.read_text(), "decoder_gpu")
    assert "| hit-1m-f16 | bf16, whole | 2 × 32² |" in section and "| hit-1m-f16 | fp32, 8192-token bands | 1 × 32² |" in section
    # --no-bands: whole runners only
    subprocess.run(cmd[:-1] + [str(tmp_path / "w.jsonl"), "--batches", "1", "--no-bands"], cwd=ROOT / "benchmarks",
                   check=True, capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert {r["mode"] for r in rows if r["kind"] == "time"} == {"fp32-whole", "bf16-whole", "fp16-whole"}
