"""Prior quality: the windowed prior against a taming GPT of the same depth, width and budget.

    python benchmarks/prior_quality.py                 # needs the quality benchmark's stage 0 (see below)
    python benchmarks/prior_quality.py --batches 20 --no-write --out /tmp/pq   # smoke run

Protocol (nothing is downloaded):

* Codes: the frozen f8 taming VQGAN of ``benchmarks/quality.py`` (its stage 0, 512 codes; make it
  with ``python benchmarks/quality.py --stage0-only --seeds 0`` if ``runs/bench_quality/seed0/stage0`` is absent).
  Training grids: scikit-image's training photographs and their mirror images, shorter side 256 px
  (32 x 48-ish codes). Held-out grids: chelsea and coffee, encoded the same way, never trained on.
* Both priors are trained by ``train_prior`` on the same ``16 x 16`` code crops in the same order
  (same seed), with the same batch size, number of batches, optimiser (taming's AdamW grouping),
  learning rate, dropout, depth, width and heads; unconditional.
* Score: negative log-likelihood of every held-out code, in bits per code, each code predicted
  from the context the sampler would give it — the taming GPT from its sliding 16 x 16 window
  (taming's placement, :func:`hit_decoder.sampling.window_start`: one GPT forward per window
  placement, the logits of each position read at its place in its window), the windowed prior from
  its neighbourhood (one masked forward over the whole grid, which equals its streaming sampler).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarking import update_section

import torch
import torch.nn.functional as F

from hit_decoder import adapters
from hit_decoder.common.data import EMBEDDED_VAL, embedded_photographs
from hit_decoder.images import fit_to_factor
from hit_decoder.prior import WindowedPrior, load_prior, train_prior
from hit_decoder.sampling import window_start

ROOT = Path(__file__).resolve().parents[1]
SECTION = "prior_quality"


@torch.no_grad()
def held_out_grids(vq, resize: int) -> dict[str, torch.Tensor]:
    f = adapters.downsample_factor(vq)
    return {name: adapters.encode_indices(vq, fit_to_factor(img, f, resize)[None])[0]
            for name, img in embedded_photographs(EMBEDDED_VAL)}


@torch.no_grad()
def gpt_nll(net, grid: torch.Tensor, window: int) -> torch.Tensor:
    """Nats per code of ``grid (H, W)`` under a taming GPT prior with taming's sliding-window contexts."""
    H, W = grid.shape
    gpt, sos = net.transformer, int(net.sos_token)
    groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for i in range(H):
        for j in range(W):
            groups[(window_start(i, H, window), window_start(j, W, window))].append((i, j))
    total = torch.zeros((), dtype=torch.float64)
    origins = list(groups)
    for k in range(0, len(origins), 64):
        batch = origins[k : k + 64]
        crops = torch.stack([grid[i0 : i0 + window, j0 : j0 + window].reshape(-1) for i0, j0 in batch])  # (b, w*w)
        seq = torch.cat([torch.full((len(batch), 1), sos), crops[:, :-1]], dim=1)  # (b, w*w)
        logp = gpt(seq)[0].log_softmax(-1)  # (b, w*w, V): position t predicts window code t
        for b, (i0, j0) in enumerate(batch):
            for i, j in groups[(i0, j0)]:
                t = (i - i0) * window + (j - j0)
                total -= logp[b, t, grid[i, j]].double()
    return total / grid.numel()


@torch.no_grad()
def windowed_nll(net: WindowedPrior, grid: torch.Tensor) -> torch.Tensor:
    logits = net(grid[None])[0]  # (H, W, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), grid.reshape(-1), reduction="mean")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first-stage", default=str(ROOT / "runs" / "bench_quality" / "seed0" / "stage0" / "model.safetensors"))
    ap.add_argument("--batches", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--crop", type=int, default=16)
    ap.add_argument("--neighbourhood", type=int, nargs=2, default=[7, 7], metavar=("ROWS_ABOVE", "COLS_EACH_SIDE"))
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: two threads stall whenever anything else shares the cores)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_prior_quality")
    ap.add_argument("--overwrite", action="store_true", help="replace earlier runs in --out")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    args = ap.parse_args()
    if not Path(args.first_stage).is_file():
        raise SystemExit(f"{args.first_stage} does not exist: make the quality benchmark's stage 0 with "
                         "`python benchmarks/quality.py --stage0-only --seeds 0`, or pass --first-stage MODEL.safetensors")
    torch.set_num_threads(args.threads)
    vq = adapters.load_vqmodel(args.first_stage).eval()
    d = args.dropout
    common = [f"seed={args.seed}", "first_stage.untrained=null", f"first_stage.model={args.first_stage}",
              "conditioning=unconditional",
              f"gpt.n_layer={args.layers}", f"gpt.n_head={args.heads}", f"gpt.n_embd={args.embd}",
              f"gpt.embd_pdrop={d}", f"gpt.resid_pdrop={d}", f"gpt.attn_pdrop={d}", f"data.resize={args.resize}",
              f"data.crop={args.crop}", f"data.batch_size={args.batch_size}", "data.crops_per_grid=64",
              f"optim.lr={args.lr}", f"trainer.max_batches={args.batches}", "trainer.log_every=50",
              f"trainer.ckpt_every={args.batches}", "trainer.progress_bar=false",
              f"windowed.rows_above={args.neighbourhood[0]}", f"windowed.cols_each_side={args.neighbourhood[1]}",
              *(["overwrite=true"] if args.overwrite else [])]
    grids = held_out_grids(vq, args.resize)
    t0 = time.time()
    arms = {}
    for arch in ("gpt", "windowed"):
        start = time.time()
        run = train_prior("demo", [*common, f"architecture={arch}", f"out_dir={args.out / arch}"])
        seconds = time.time() - start
        net = load_prior(run.prior, vq).eval()
        model = net if isinstance(net, WindowedPrior) else net.transformer
        bits = {name: float((windowed_nll(net, g) if arch == "windowed" else gpt_nll(net, g, args.crop)) / math.log(2))
                for name, g in grids.items()}
        arms[arch] = {"bits": bits, "mean_bits": sum(bits.values()) / len(bits), "train_seconds": seconds,
                      "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                      "final_train_loss_bits": sum(run.losses[-50:]) / len(run.losses[-50:]) / math.log(2)}
        print(f"{arch}: {seconds:.0f} s, held-out {arms[arch]['mean_bits']:.3f} bits/code {bits}", flush=True)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "arms": arms, "minutes": (time.time() - t0) / 60,
              "grids": {n: list(g.shape) for n, g in grids.items()}, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
              "command": " ".join(sys.argv[1:])}
    (args.out / "prior_quality.json").write_text(json.dumps(result, indent=2))
    body = render(result)
    print(body)
    if not args.no_write:
        update_section(ROOT / "BENCHMARKS.md", SECTION, body)
    return 0


def render(d: dict) -> str:
    a, arms = d["args"], d["arms"]
    names = list(d["grids"])
    gpt, win = arms["gpt"]["mean_bits"], arms["windowed"]["mean_bits"]
    rows = [f"| {label} | {arms[k]['params_m']:.2f} | {arms[k]['train_seconds']:.0f} | {arms[k]['final_train_loss_bits']:.3f} | "
            + " | ".join(f"{arms[k]['bits'][n]:.3f}" for n in names) + f" | **{arms[k]['mean_bits']:.3f}** |"
            for k, label in (("gpt", "taming GPT (16x16 window, sliding-window contexts)"),
                             ("windowed", f"windowed prior (neighbourhood {a['neighbourhood']})"))]
    return "\n".join([
        "## Priors: windowed prior vs taming GPT, held-out bits per code",
        "",
        f"Produced by `python benchmarks/prior_quality.py {d['command']}`. Codes of the quality benchmark's frozen f8 "
        f"stage 0 (512 codes); training grids: the embedded training photographs and their mirror images at shorter "
        f"side {a['resize']} px; both priors trained by `train_prior` on the same {a['crop']}x{a['crop']} code crops "
        f"in the same order: {a['layers']} layers, width {a['embd']}, {a['heads']} heads, dropout {a['dropout']}, "
        f"batch {a['batch_size']}, {a['batches']} batches, AdamW lr {a['lr']}, seed {a['seed']}, "
        f"{a.get('threads', '?')} thread(s). Scored on the held-out "
        f"photographs' whole code grids ({', '.join(f'{n} {g[0]}x{g[1]}' for n, g in d['grids'].items())}), every code "
        "predicted from the context its sampler gives it (GPT: taming's window placement; windowed: its neighbourhood).",
        "",
        f"CPU: {d['machine']}, torch {d['torch']}; run took {d['minutes']:.0f} min on {d['date']}.",
        "",
        "| prior | params (M) | train s | train loss, last 50 batches (bits) | "
        + " | ".join(f"{n} (bits/code)" for n in names) + " | mean |",
        "|---|---|---|---|" + "---|" * len(names) + "---|",
        *rows,
        "",
        f"Result: windowed prior no worse than the taming GPT (issue 12): {'met' if win <= gpt else 'NOT met'} "
        f"({win:.3f} vs {gpt:.3f} bits/code, {win - gpt:+.3f}).",
    ])


if __name__ == "__main__":
    sys.exit(main())
