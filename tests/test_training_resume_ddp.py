"""Runs that survive: a crashed run resumed from its checkpoint ends bit-identical to an
uninterrupted run; and real 2-process DDP (gloo on CPU) keeps the replicas identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hit_decoder.training import run_training
from support import CrashAfter, final_state, tiny_config, write_tiny_images

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    images = write_tiny_images(tmp_path / "images", n=6)
    sections = dict(data={"train": str(images), "val": str(images), "resize": None, "size": 12},
                    loss={"disc_train_start": 2, "disc_weight_start": 3},
                    optim={"dead_code_restart": True, "dead_code_every": 3, "warmup_batches": 4},
                    trainer={"max_batches": 10, "ckpt_every": 4})
    full = tiny_config(tmp_path / "full", **sections)
    full["model"]["encoder"]["resolution"] = 12
    crashed = json.loads(json.dumps(full))
    crashed["out_dir"] = str(tmp_path / "crashed")

    run_training(full)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(crashed, callbacks=[CrashAfter(6)])  # last checkpoint: batch 4
    assert final_state(tmp_path / "crashed")["hit_decoder_training"]["batches_done"] == 4
    resumed = run_training(crashed, ["resume=auto"])
    assert resumed.batches_done == 10

    a, b = final_state(tmp_path / "full"), final_state(tmp_path / "crashed")
    assert a["hit_decoder_training"]["batches_done"] == b["hit_decoder_training"]["batches_done"] == 10
    assert a["state_dict"].keys() == b["state_dict"].keys()
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert differ == []  # model, discriminator, EMA, code counts
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == 2
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"]):
        assert oa["state"].keys() == ob["state"].keys()
        for k in oa["state"]:
            for name in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(oa["state"][k][name], ob["state"][k][name]), (k, name)
    assert torch.equal(a["hit_decoder_training"]["rng_state"], b["hit_decoder_training"]["rng_state"])

    # a finished run can be extended, but not shortened below its checkpoint
    assert run_training(crashed, ["resume=auto", "trainer.max_batches=11"]).batches_done == 11
    with pytest.raises(ValueError, match="raise trainer.max_batches"):
        run_training(crashed, ["resume=auto", "trainer.max_batches=5"])


DRIVER = textwrap.dedent('''
    """Both DDP ranks run this file (Lightning's launcher re-executes it for rank 1)."""
    import json, sys
    import pytorch_lightning as pl
    import torch
    from hit_decoder.training import run_training

    class DumpParameters(pl.Callback):
        def on_train_end(self, trainer, pl_module):
            params = {n: p.detach().cpu().clone() for n, p in pl_module.named_parameters()}
            torch.save({"rank": trainer.global_rank, "world": trainer.world_size, "params": params,
                        "batches_done": pl_module.batches_done},
                       f"{sys.argv[2]}/rank{trainer.global_rank}.pt")

    if __name__ == "__main__":
        with open(sys.argv[1]) as fh:
            run_training(json.load(fh), callbacks=[DumpParameters()])
''')


def test_two_process_ddp_on_cpu_keeps_replicas_identical(tmp_path):
    images = write_tiny_images(tmp_path / "images", n=8)
    cfg = tiny_config(tmp_path / "run", data={"train": str(images), "val": str(images), "resize": None,
                                               "batch_size": 2},
                      loss={"disc_train_start": 1, "disc_weight_start": 2},
                      optim={"dead_code_restart": True, "dead_code_every": 2},
                      trainer={"max_batches": 4, "devices": 2, "accelerator": "cpu", "strategy": "ddp"})
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores
    proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "cfg.json"), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    assert r0["batches_done"] == r1["batches_done"] == 4
    assert r0["params"].keys() == r1["params"].keys()
    assert [n for n in r0["params"] if not torch.equal(r0["params"][n], r1["params"][n])] == []
    # and training did happen: the weights moved away from their (seeded) initial values
    from hit_decoder.training import train_config_from_dict
    from hit_decoder.training.models import build_models

    init = build_models(train_config_from_dict(cfg)).vq.decoder.state_dict()
    moved = [k for k, v in init.items() if not torch.equal(v, r0["params"]["vq.decoder." + k])]
    assert moved
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["batches_done"] == 4
