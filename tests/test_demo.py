"""`hit-decoder demo` through its real code path with tiny budgets (``--budget tiny``): every
artefact, the report page (parsed; every image embedded or present), finite metrics, a clean
terminal, the same numbers from two runs with one seed (one with two processes, one with one),
and nothing replaced without --overwrite."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hit_decoder
from hit_decoder.cli import main
from hit_decoder.demo import BUDGETS, DemoPlan
from hit_decoder.demo.phases import Job, lpips_state
from hit_decoder.demo.report import losses_that_ran
from hit_decoder.demo.run import _Worker, claim_demo_outputs
from hit_decoder.demo.terminal import TerminalReporter

NOISE = ("Tip:", "GPU available", "TPU available", "LOCAL_RANK", "Warning", "deprecated", "Trainer.fit", "LitLogger",
         "Working with z")
#: numbers that measure the machine, not the models
TIMING_KEYS = {"times", "total_seconds", "decode_seconds", "sampling_seconds", "speedup", "date",
               "summary"}  # summary: prose with times
RUN_KEYS = {"command", "command_line", "machine", "workers"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("script", "link", "iframe") or (tag in ("a", "link") and str(a.get("href", "")).startswith("http")):
            self.external.append(f"<{tag} {a}>")

    def handle_data(self, data):
        self.text.append(data)


def _demo(out: Path, *extra: str) -> int:
    return main(["demo", "--out", str(out), "--budget", "tiny", "--no-progress", *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny demos with one seed: two processes (the default, in this process) and one (as a
    command in a subprocess, whose terminal output is kept)."""
    root = tmp_path_factory.mktemp("demo")
    a, b = root / "a", root / "b"
    assert _demo(a, "--seed", "3") == 0
    res = subprocess.run([sys.executable, "-m", "hit_decoder.cli", "demo", "--out", str(b), "--budget", "tiny",
                          "--seed", "3", "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return a, b, res.stdout + res.stderr


def _finite_numbers(d, where=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _finite_numbers(v, f"{where}.{k}")
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _finite_numbers(v, f"{where}[{i}]")
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        yield where, d


def _comparable(d, out: Path):
    """The report without timings and run details, with the output folder written as OUT."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMING_KEYS | RUN_KEYS}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return json.loads(json.dumps(strip(d)).replace(str(out), "OUT"))


def test_tiny_demo_writes_every_artefact(runs):
    out = runs[0]
    report = json.loads((out / "report.json").read_text())
    pngs = sorted((out / "images").glob("*.png"))
    names = {p.stem for p in pngs}
    for photo in ("chelsea", "coffee"):
        assert {f"{photo}_original", f"{photo}_cnn", f"{photo}_hit", f"{photo}_stage1"} <= names
    assert {"texture_photo", "texture_recon"} <= names
    for prior in ("gpt", "windowed"):
        assert {f"sample_{prior}", f"sample_{prior}_grid", f"sample_{prior}_diff"} <= names
    for p in pngs:
        with Image.open(p) as img:
            img.load()
    s = report["sampling"]
    t = s["texture"]
    assert t["name"] == BUDGETS["tiny"].texture and Path(t["file"]).is_file()
    with Image.open(t["file"]) as img:  # the photograph the priors learned, at the size they learned it
        assert [img.height, img.width] == [c * s["factor"] for c in t["grid_codes"]]
    # the canvas: at least 4x the photograph's code grid, and at least two prior windows per side
    assert s["canvas_codes"][0] * s["canvas_codes"][1] >= 4 * t["grid_codes"][0] * t["grid_codes"][1]
    assert all(c >= 2 * w for c, w in zip(s["canvas_codes"], s["window"]))
    assert s["pixels"] == [c * s["factor"] for c in s["canvas_codes"]]
    for prior in ("gpt", "windowed"):
        codes = np.load(out / "images" / f"sample_{prior}_codes.npy")
        assert list(codes.shape) == s["canvas_codes"]
        with Image.open(out / "images" / f"sample_{prior}.png") as img:
            assert [img.height, img.width] == s["pixels"]
    for sub in ("swap/cnn", "swap/cnn_decoder", "swap/hit", "stage1", "prior/gpt", "prior/windowed"):
        assert list((out / sub).glob("logs/version_*/metrics.csv")), sub
    for sub in ("prior/gpt", "prior/windowed"):
        assert (out / sub / "prior.safetensors").is_file(), sub
    assert (out / "swap/cnn/export/taming/model.ckpt").is_file() and (out / "stage1/export/model.safetensors").is_file()


def test_report_numbers_are_finite_and_say_what_ran(runs):
    report = json.loads((runs[0] / "report.json").read_text())
    bad = [(w, v) for w, v in _finite_numbers(report) if not math.isfinite(v)]
    assert not bad
    d = report["swap"]["decoders"]
    for k in ("cnn", "hit"):
        assert set(d[k]["mean"]) == {"psnr", "ssim", "seam_p2", "seam_p4", "chroma_ratio"}
        assert d[k]["decode_seconds"] > 0 and d[k]["gflops"] > 0
        assert set(d[k]["images"]) == {"chelsea", "coffee"}
        assert all(0 <= v["chroma_ratio"] < 5 for v in d[k]["images"].values())
    assert 0 <= report["stage1"]["mean"]["chroma_ratio"] < 5
    assert report["swap"]["codes_identical"] is True
    s = report["sampling"]
    assert set(s["priors"]) == {"prior", "windowed"}
    for v in s["priors"].values():
        assert v["max_abs_diff"] == 0.0  # HiT decoders tile exactly
        assert 0 <= v["tv"] <= 1 and v["sampling_seconds"] > 0 and v["batches"] == 3
        assert all(v[k] is None or v[k] >= 0 for k in ("seam_window", "seam_shifted"))
    assert s["speedup"] > 0 and s["period_px"] == s["window"][0] * s["factor"]
    assert 0 <= s["texture"]["tv_halves"] <= 1
    losses = report["stage1"]["losses"]  # tiny budget: 3 batches, so the GAN term (batch 300) never enters
    assert [x.split(" (")[0] for x in losses] == [
        "L1 reconstruction", "codebook + commitment",
        "adversarial configured but never entered: it starts at batch 300, the run had 3"]
    assert report["swap"]["losses"]["hit"] == ["L1 reconstruction (weight 1)"]
    lpips_on, lpips_line = lpips_state()  # what this machine has: the report must say the same
    assert (report["lpips"], report["lpips_line"]) == (lpips_on, lpips_line)
    assert report["lpips_line"].startswith("LPIPS on" if lpips_on else "LPIPS off")
    assert {t["phase"] for t in report["times"]} == {"cnn", "cnn_decoder", "swap", "stage1", "prior", "windowed", "sample_prior",
                                                    "sample_windowed", "evaluate_stage1", "evaluate"}
    assert set(report["configs"]) == {"decoder swap, CNN VQGAN", "decoder swap, CNN decoder", "decoder swap, HiT decoder",
                                      "stage 1", "prior", "windowed prior"}
    assert report["configs"]["stage 1"]["merged"]["trainer"]["max_batches"] == 3
    assert (report["versions"]["torch"], report["versions"]["hit-decoder"]) == (torch.__version__, hit_decoder.__version__)


def test_the_comparisons_are_fair(runs):
    """Both priors: one config but the architecture (same codes, crops, seed, budget, size). Both
    decoders of the swap: one config but the decoder (same frozen codes, batches, loss, schedule)."""
    report = json.loads((runs[0] / "report.json").read_text())
    gpt, win = (dict(report["configs"][k]["merged"]) for k in ("prior", "windowed prior"))
    assert (gpt.pop("architecture"), win.pop("architecture")) == ("gpt", "windowed")
    assert (gpt.pop("out_dir"), win.pop("out_dir")) != (None, None)
    assert gpt == win
    cnn, hit = (dict(report["configs"][k]["merged"]) for k in ("decoder swap, CNN decoder", "decoder swap, HiT decoder"))
    assert (cnn.pop("out_dir"), hit.pop("out_dir")) != (None, None)
    cnn_model, hit_model = cnn.pop("model"), hit.pop("model")
    assert cnn_model.pop("decoder") == "cnn" and isinstance(hit_model.pop("decoder"), dict)
    assert cnn == hit and cnn_model == hit_model  # the same VQGAN files, loss, data, schedule and budget
    assert cnn["mode"] == "decoder_swap" and cnn_model["vqgan_ckpt"].endswith("swap/cnn/export/taming/model.ckpt")
    assert report["swap"]["batches"]["cnn"] == report["swap"]["batches"]["hit"] == 3
    assert report["swap"]["losses"]["cnn"] == report["swap"]["losses"]["hit"]


def test_losses_that_ran_say_when_the_gan_term_entered():
    from hit_decoder.training.config import config_to_dict, load_train_config

    cfg = config_to_dict(load_train_config("demo", check=False))
    entered = losses_that_ran(cfg, 400)
    assert entered[-1].startswith("adversarial (hinge PatchGAN, weight 0.1 x adaptive; the discriminator learns from "
                                  "batch 200, its term enters the generator loss at batch 300 of 400)")
    assert losses_that_ran(cfg, 250)[-1] == "adversarial configured but never entered: it starts at batch 300, the run had 250"
    cfg["loss"]["disc_weight"] = 0.0
    assert not any("adversarial" in x for x in losses_that_ran(cfg, 400))


def test_report_page_escapes_what_it_shows(runs):
    """A hostile string in any value the page shows (a texture name, a config override, a version,
    the command line) reaches the page as text, never as markup."""
    from hit_decoder.demo.page import render_page

    out = runs[0]
    data = json.loads((out / "report.json").read_text())
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>&'
    data["sampling"]["texture"]["name"] = hostile
    data["swap"]["decoders"]["cnn"]["images"]["chelsea"]["size"] = hostile
    data["configs"]["stage 1"]["overrides"].append(hostile)
    data["versions"]["torch"] = hostile
    data["command_line"] = hostile
    data["summary"].append(hostile)
    pngs = {p.stem: p.read_bytes() for p in (out / "images").glob("*.png")}
    page_html = render_page(data, pngs, dict.fromkeys(("swap", "stage1", "prior", "codebook"), pngs["chelsea_original"]))
    page = _Page()
    page.feed(page_html)
    assert not page.external  # no <script> came through
    assert "<script>" not in page_html and "onerror=" not in page_html.replace("onerror=alert(1)&gt;", "")
    assert page_html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 6
    assert sum(hostile in t for t in page.text) >= 5  # shown as text (the parser unescapes it)


def test_both_decoders_get_one_config_and_one_budget():
    from hit_decoder.commands.demo import FLAG_PHASES
    from hit_decoder.demo.plan import PHASE_CONFIGS

    assert PHASE_CONFIGS["cnn_decoder"] == PHASE_CONFIGS["swap"] == "demo_swap"
    assert FLAG_PHASES["swap"] == ("cnn_decoder", "swap")  # --swap-batches sets both
    assert BUDGETS["full"].batches["cnn_decoder"] == BUDGETS["full"].batches["swap"]
    assert BUDGETS["tiny"].batches["cnn_decoder"] == BUDGETS["tiny"].batches["swap"]


def test_report_page_is_self_contained(runs):
    out = runs[0]
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert not page.external, page.external
    assert len(page.images) >= 20  # 2 photographs x 4, the texture + its reconstruction, 2 samples + 2 differences, plots
    for src in page.images:
        if src.startswith("data:"):
            head, payload = src.split(",", 1)
            assert head == "data:image/png;base64"
            with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
                img.load()
        else:
            assert (out / src).is_file(), src
    text = " ".join(page.text)
    assert text.count("What the pictures show:") == 3 and text.count("What limits them:") == 3  # one per section
    for words in ("PSNR", "SSIM", "seam", "chroma ratio", "decode", "codebook", "window", "tiled", "taming GPT",
                  "windowed prior", "speed-up", "TV", "Merged configs", "Versions", "--budget tiny"):
        assert words in text, words


def test_two_runs_with_one_seed_agree(runs):
    a, b, _ = runs
    ra, rb = (json.loads((p / "report.json").read_text()) for p in (a, b))
    assert ra["plan"]["workers"] == 2 and rb["plan"]["workers"] == 1
    assert _comparable(ra, a) == _comparable(rb, b)


def test_terminal_is_clean(runs, capfd):
    lines = [ln for ln in runs[2].splitlines() if ln.strip()]
    noisy = [ln for ln in lines if any(n in ln for n in NOISE)]
    assert not noisy, noisy
    for phase in ("[swap] taming VQGAN", "[swap] a fresh CNN decoder", "[swap] its decoder swapped", "[stage 1]",
                  "[sampling] taming GPT prior trained",
                  "[sampling] windowed prior trained", "[sampling] taming GPT prior sampled",
                  "[sampling] windowed prior sampled", "[evaluation] stage-1 VQGAN",
                  "held-out photographs (whole), same codes", "report:"):
        assert sum(phase in ln for ln in lines) == 1, phase


def test_an_earlier_demo_is_replaced_only_when_asked(runs, capfd):
    out = runs[0]
    before = (out / "report.json").read_bytes()
    assert _demo(out) == 2  # refused before anything runs
    assert "--overwrite" in capfd.readouterr().err
    assert (out / "report.json").read_bytes() == before
    claim_demo_outputs(out, overwrite=True)  # what --overwrite does first: the report files go
    assert not (out / "report.json").exists() and not list((out / "images").glob("*.png"))
    assert (out / "stage1" / "checkpoints" / "last.ckpt").is_file()  # each phase replaces its own run


def test_progress_bars_and_phase_lines(capsys):
    reporter = TerminalReporter(bars=True)
    reporter.start("x", "[test] phase", 3)
    for i in (1, 2, 3):
        reporter.advance("x", i, f"loss {i:.3f}")
    reporter.finish("x", "[test] phase: done", 1.5)
    out, err = capsys.readouterr()
    assert out == "[test] phase: done (2 s)\n"
    assert "[test] phase:" in err and "/3 [" in err  # a bar over 3 batches (tqdm redraws at most 10 times a second)


def test_bad_demo_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--stage1-batches", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least twice the photograph's code grid"):
        DemoPlan(canvas_scale=1)


def test_a_failing_worker_process_is_a_one_line_error(tmp_path):
    """The decoder-swap process fails (its run folder is a file): the main process gets its error."""
    (tmp_path / "swap").mkdir()
    (tmp_path / "swap" / "cnn").write_text("a file where the run folder goes")
    worker = _Worker(Job(BUDGETS["tiny"], tmp_path, False, False, time.time(), "worker"), TerminalReporter(bars=False))
    worker.start()
    with pytest.raises(RuntimeError, match="decoder-swap phases failed: .*out_dir"):
        worker.cnn_result()  # the main process, waiting for the CNN VQGAN to train its HiT decoder
    with pytest.raises(RuntimeError, match="decoder-swap phases failed: .*out_dir"):
        worker.result()
    assert worker.pid is not None and worker.pid != os.getpid()  # it ran in another process ...
    with pytest.raises(ProcessLookupError):  # ... which has ended
        os.kill(worker.pid, 0)


_KILLED_MAIN = """
import sys, time
from pathlib import Path
from hit_decoder.demo import DemoPlan
from hit_decoder.demo.phases import Job
from hit_decoder.demo.run import _Worker
from hit_decoder.demo.terminal import TerminalReporter
plan = DemoPlan().with_batches(cnn=100000)  # the CNN VQGAN trains until the process is killed
worker = _Worker(Job(plan, Path(sys.argv[1]), False, False, time.time(), "worker"), TerminalReporter(bars=False))
worker.start()
while worker.pid is None:
    time.sleep(0.1)
print(worker.pid, flush=True)
time.sleep(600)
"""


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)  # a zombie has ended
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_second_process_ends_with_a_killed_main_process(tmp_path):
    """SIGKILL to the process that runs the demo (nothing in it can clean up) while its second
    process trains: the second process ends too, within seconds (its run stops at the end of a
    batch), instead of training on for minutes or waiting out the 30 s SIGTERM grace."""
    script = tmp_path / "main.py"
    script.write_text(_KILLED_MAIN)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        time.sleep(8)  # into the training run
        assert not _ended(pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while not _ended(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _ended(pid):
            os.kill(pid, 9)
            pytest.fail("the demo's second process outlived its killed main process by 20 s")
    finally:
        proc.kill()
