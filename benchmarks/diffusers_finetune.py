"""Decoder swap + fine-tuning on a tiny aMUSEd-shaped diffusers VQModel (the run docs/diffusers.md reports).

1. writes a tiny, randomly initialised (seeded) ``VQModel`` shaped like aMUSEd's VQGAN (group norm,
   five encoder levels = f16, ``lookup_from_codebook``, no mid-block attention) with diffusers' own
   ``save_pretrained`` into ``OUT/vqgan``;
2. runs ``hit-decoder finetune-decoder --diffusers-model OUT/vqgan`` for 200 batches of 64 px crops
   of the embedded photographs (L1 + PatchGAN from batch 100, EMA; LPIPS off: its VGG16 weights
   are not on every machine), validating on the held-out photographs every 20 batches;
3. prints the run's own validation (``logs/version_*/metrics.csv``) and the final EMA evaluation
   (``result.json``).

    OMP_NUM_THREADS=1 python benchmarks/diffusers_finetune.py --out runs/diffusers_amused_tiny
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

#: aMUSEd's VQGAN (amused/amused-256, vqvae/config.json) scaled down: same block types, levels,
#: norm type, codebook lookup and mid-block setting; fewer channels, codes and layers
AMUSED_TINY = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 5,
    "up_block_types": ["UpDecoderBlock2D"] * 5, "block_out_channels": [16, 16, 32, 32, 64],
    "layers_per_block": 1, "act_fn": "silu", "latent_channels": 16, "num_vq_embeddings": 64, "norm_num_groups": 8,
    "norm_type": "group", "mid_block_add_attention": False, "lookup_from_codebook": True,
}
#: a five-stage (f16) HiT decoder about the size of the tiny CNN decoder it replaces
TINY_F16_DECODER = {"channels": [64, 32, 32, 16, 16], "depths": [1, 1, 1, 1, 1], "heads": [2, 2, 2, 2, 2],
                    "num_attention_stages": 2, "block_size": [2, 2], "dilation_grid": [2, 2]}
OVERRIDES = [
    "data.size=64", "data.resize=128", "data.batch_size=8", "data.val_batch_size=8", "data.num_workers=0",
    "data.val_crops_per_image=8", "loss.perceptual_weight=0", "loss.disc_channels=16", "loss.disc_layers=2",
    "loss.disc_train_start=80", "loss.disc_weight_start=100", "loss.disc_weight=0.1", "optim.lr=1e-3",
    "optim.warmup_batches=10", "optim.ema_decay=0.99", "trainer.max_batches=200", "trainer.val_every=20",
    "trainer.image_every=100", "trainer.ckpt_every=50", "trainer.log_every=10", "trainer.progress_bar=false",
    "trainer.tensorboard=false", "trainer.precision=32-true", "trainer.accelerator=cpu",
    f"model.decoder={json.dumps(TINY_F16_DECODER).replace(' ', '')}",
]


def write_vqgan(folder: Path, config: dict, seed: int = 0) -> Path:
    """A randomly initialised (``seed``) diffusers ``VQModel`` saved with its own ``save_pretrained``."""
    import torch
    from diffusers import VQModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        VQModel(**config).save_pretrained(folder)
    return folder


def validation_rows(out: Path) -> list[dict[str, str]]:
    rows = []
    for f in sorted((out / "logs").glob("version_*/metrics.csv")):
        with open(f) as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("val/psnr")]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (the VQGAN and the run)")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args(argv)
    from hit_decoder.cli import main as cli

    vqgan = args.out / "vqgan"
    if not (vqgan / "config.json").is_file():
        write_vqgan(vqgan, AMUSED_TINY)
    command = ["finetune-decoder", "--diffusers-model", str(vqgan), "--out-dir", str(args.out / "run"),
               *OVERRIDES, f"trainer.max_batches={args.batches}", "resume=auto"]
    print("hit-decoder " + " ".join(command), flush=True)
    rc = cli(command)
    if rc:
        return rc
    print("\n| batch | val/l1 | val/psnr (dB) | val/ssim |\n|---:|---:|---:|---:|")
    every = min(args.batches, int(next(o for o in OVERRIDES if o.startswith("trainer.val_every=")).split("=")[1]))
    for k, r in enumerate(validation_rows(args.out / "run")):  # one row per validation, every `every` batches
        print(f"| {(k + 1) * every} | {float(r['val/l1']):.4f} | {float(r['val/psnr']):.2f} | {float(r['val/ssim']):.4f} |")
    result = json.loads((args.out / "run" / "result.json").read_text())
    print("\nfinal EMA evaluation (result.json):", json.dumps(result["val"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
