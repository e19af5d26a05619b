"""Decoder swap + fine-tuning on a tiny aMUSEd-shaped diffusers VQModel (the run docs/diffusers.md reports).

1. writes a tiny ``VQModel`` shaped like aMUSEd's VQGAN (group norm, five encoder levels = f16,
   ``lookup_from_codebook``, no mid-block attention) with diffusers' own ``save_pretrained`` into
   ``OUT/vqgan``. It is not a trained VQGAN: the encoder keeps its random (seeded) weights and the
   codebook is set to encoder outputs at random positions of crops of the *training* photographs,
   so that its codes are used and carry information (diffusers' initial codebook, uniform in
   +-1/n, maps nearly everything to a handful of codes);
2. runs ``hit-decoder finetune-decoder --diffusers-model OUT/vqgan`` for 200 batches of 64 px crops
   of the embedded photographs (L1, EMA; no GAN and no LPIPS in this short run: LPIPS's VGG16
   weights are not on every machine), validating on the held-out photographs every 20 batches;
3. prints the run's own validation (``logs/version_*/metrics.csv``), the final EMA evaluation
   (``result.json``) and, for reference, the same evaluation of the swapped model before training.

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
    "data.val_crops_per_image=8", "loss.perceptual_weight=0", "loss.disc_weight=0", "optim.lr=5e-4",
    "optim.warmup_batches=10", "optim.ema_decay=0.98", "trainer.max_batches=200", "trainer.val_every=20",
    "trainer.image_every=100", "trainer.ckpt_every=50", "trainer.log_every=10", "trainer.progress_bar=false",
    "trainer.tensorboard=false", "trainer.precision=32-true", "trainer.accelerator=cpu",
    f"model.decoder={json.dumps(TINY_F16_DECODER).replace(' ', '')}",
]


def write_vqgan(folder: Path, config: dict, seed: int = 0, crop: int = 64) -> Path:
    """A diffusers ``VQModel`` with random (``seed``) encoder weights and a codebook of encoder outputs
    on crops of the training photographs, saved with its own ``save_pretrained``."""
    import torch
    from diffusers import VQModel

    from hit_decoder.common.data import EMBEDDED_TRAIN, embedded_photographs, random_crop_flip
    from hit_decoder.common.seeding import seeded

    with seeded(seed):
        model = VQModel(**config).eval()
        gen = torch.Generator().manual_seed(seed)
        x = torch.stack([random_crop_flip(img, crop, 2 * crop, True, gen)
                         for _ in range(4) for _, img in embedded_photographs(EMBEDDED_TRAIN)])  # (N, 3, crop, crop)
        with torch.no_grad():
            h = model.encode(x).latents  # (N, vq_embed_dim, h, w)
        pool = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])  # (N h w, vq_embed_dim)
        pick = torch.randperm(pool.shape[0], generator=gen)[: model.quantize.n_e]
        with torch.no_grad():
            model.quantize.embedding.weight.copy_(pool[pick])
        model.save_pretrained(folder)
    return folder


def untrained_validation(vqgan: Path) -> dict:
    """The run's validation metrics for the swapped model before its first batch (same seed, so the
    same initial decoder, and the same held-out crops)."""
    from hit_decoder.common.data import build_data
    from hit_decoder.common.loaders import make_val_loader
    from hit_decoder.training import load_train_config
    from hit_decoder.training.evaluate import evaluate_reconstructions
    from hit_decoder.training.models import build_models
    from hit_decoder.training.module import StageOneModule

    cfg = load_train_config("finetune_f16", [*OVERRIDES, "mode=decoder_swap"], check=False)
    cfg.model.diffusers_model = str(vqgan)
    data = build_data(cfg.data, cfg.seed)
    module = StageOneModule(cfg, build_models(cfg).vq, data)
    batches = (b["image"] for b in make_val_loader(data.val, cfg.data.val_batch_size, 0, 1, 0))
    return evaluate_reconstructions(module.reconstruct, batches)


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
    print("the swapped model before training, same evaluation:", json.dumps(untrained_validation(vqgan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
