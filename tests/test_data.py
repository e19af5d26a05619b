"""Data sources with real image files written by PIL (including corrupt ones), the embedded
default, deterministic crops and the resumable batch sampler."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from hit_decoder.common.data import (
    EMBEDDED_TRAIN,
    EMBEDDED_VAL,
    ImageFileDataset,
    build_data,
    list_images,
    read_file_list,
)
from hit_decoder.common.loaders import StepBatchSampler, collate
from support import write_image_folder


def test_list_images_recursive_sorted_and_errors(tmp_path):
    write_image_folder(tmp_path / "imgs")
    found = [p.relative_to(tmp_path / "imgs").as_posix() for p in list_images(tmp_path / "imgs")]
    assert found == ["four.BMP", "one.png", "truncated.png", "a/broken.jpg", "a/gray.png", "a/two.jpg",
                     "a/b/alpha.png", "a/b/three.webp"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="holds no images"):
        list_images(tmp_path / "empty")


def test_corrupt_images_are_skipped_with_a_warning_and_counted(tmp_path, caplog):
    write_image_folder(tmp_path / "imgs")
    paths = list_images(tmp_path / "imgs")
    ds = ImageFileDataset(paths, size=16, seed=0, train=True)
    broken = [i for i, p in enumerate(paths) if p.name in ("broken.jpg", "truncated.png")]
    with caplog.at_level(logging.WARNING):
        items = [ds[(i, i)] for i in range(len(paths))]
    # sorted order puts truncated.png right before a/broken.jpg: both are passed over for it
    expected = [0] * len(paths)
    for i in broken:
        j = i
        while j in broken:
            expected[i] += 1
            j += 1
    assert [it["skipped"] for it in items] == expected
    assert sum(expected) == 3
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "broken.jpg" in warned and "truncated.png" in warned
    batch = collate(items)
    assert batch["image"].shape == (len(paths), 3, 16, 16)
    assert int(batch["skipped"]) == 3
    assert batch["unreadable"] == sorted(broken)  # each unreadable file once
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


def test_crops_are_a_function_of_seed_and_position(tmp_path):
    files = write_image_folder(tmp_path / "imgs", corrupt=False)
    ds = ImageFileDataset(files, size=16, seed=3, train=True)
    a, b = ds[(0, 5)]["image"], ds[(0, 5)]["image"]
    assert torch.equal(a, b)
    others = [ds[(0, p)]["image"] for p in range(6, 12)]
    assert any(not torch.equal(a, o) for o in others)
    ds_other_seed = ImageFileDataset(files, size=16, seed=4, train=True)
    assert any(not torch.equal(ds[(0, p)]["image"], ds_other_seed[(0, p)]["image"]) for p in range(6))
    # small images are upscaled to the crop size; validation is a centre crop
    val = ImageFileDataset(files, size=48, seed=0, train=False)
    assert val[0]["image"].shape == (3, 48, 48)


def test_file_list_relative_paths_and_missing_entries(tmp_path, caplog):
    files = write_image_folder(tmp_path / "imgs", corrupt=False)
    lst = tmp_path / "imgs" / "train.txt"
    lst.write_text("# taming-style list\none.png\na/two.jpg\n\nmissing.png\n" + str(files[2]) + "\n")
    with caplog.at_level(logging.WARNING):
        paths = read_file_list(lst)
    assert [p.name for p in paths] == ["one.png", "two.jpg", "three.webp"]
    assert "missing.png" in caplog.text
    gone = tmp_path / "gone.txt"
    gone.write_text("nope.png\n")
    with pytest.raises(FileNotFoundError, match="none of the images"):
        read_file_list(gone)


def _data_cfg(**kw):
    base = dict(train=None, val=None, root=None, size=16, resize=None, flip=True, batch_size=2, val_batch_size=2,
                num_workers=0, val_fraction=0.25, val_max_images=256, val_crops_per_image=2, epoch_crops_per_image=4)
    base.update(kw)
    return SimpleNamespace(**base)


def test_folder_split_and_embedded_default(tmp_path):
    files = write_image_folder(tmp_path / "imgs", corrupt=False)
    splits = build_data(_data_cfg(train=str(tmp_path / "imgs")), seed=0)
    train_names = {p.name for p in splits.train.paths}
    val_names = {p.name for p in splits.val.paths}
    assert len(val_names) == 2 and not train_names & val_names
    assert train_names | val_names == {f.name for f in files}

    emb = build_data(_data_cfg(), seed=0)
    assert set(emb.train.names) == set(EMBEDDED_TRAIN) and set(emb.val.names) == set(EMBEDDED_VAL)
    assert not set(EMBEDDED_TRAIN) & set(EMBEDDED_VAL)  # held-out photographs
    assert len(emb.val) == 2 * len(EMBEDDED_VAL)
    v0 = emb.val[0]["image"]
    assert v0.shape == (3, 16, 16)
    assert torch.equal(v0, build_data(_data_cfg(), seed=9).val[0]["image"])  # fixed across runs
    assert emb.train[(0, 0)]["image"].shape == (3, 16, 16)


def test_missing_data_is_a_start_up_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_data(_data_cfg(train=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(ValueError, match="data.val is set"):
        build_data(_data_cfg(val=str(tmp_path)), seed=0)


def test_step_batch_sampler_covers_epochs_and_resumes():
    n, bs, world, total = 10, 2, 2, 9
    full = [list(StepBatchSampler(n, bs, total, seed=5, rank=r, world_size=world)) for r in range(world)]
    # each global batch: ranks take consecutive, disjoint stream positions
    for b in range(total):
        positions = [p for r in range(world) for _, p in full[r][b]]
        assert positions == list(range(b * bs * world, (b + 1) * bs * world))
    # every data epoch (n consecutive positions) visits every index exactly once
    stream = sorted(((p, i) for r in range(world) for batch in full[r] for i, p in batch))
    indices = [i for _, i in stream]
    assert sorted(indices[:n]) == list(range(n)) and sorted(indices[n:2 * n]) == list(range(n))
    assert indices[:n] != indices[n:2 * n]  # reshuffled per epoch
    # resuming at batch 4 yields exactly the remaining batches
    for r in range(world):
        tail = list(StepBatchSampler(n, bs, total, seed=5, start_batch=4, rank=r, world_size=world))
        assert tail == full[r][4:]
    assert len(StepBatchSampler(n, bs, total, start_batch=4)) == total
    with pytest.raises(ValueError, match="rank"):
        StepBatchSampler(n, bs, total, rank=2, world_size=2)


def test_embedded_train_picks_photographs_and_rejects_other_names():
    from hit_decoder.training.config import load_train_config

    emb = build_data(_data_cfg(embedded_train=["rocket", "astronaut"]), seed=0)
    assert emb.train.names == ["rocket", "astronaut"] and set(emb.val.names) == set(EMBEDDED_VAL)
    assert load_train_config("demo_cnn", ["data.embedded_train=[rocket]"]).data.embedded_train == ["rocket"]
    for bad in ("[chelsea]", "[nosuchphoto]", "[]"):  # a held-out photograph, an unknown name, none
        with pytest.raises(ValueError, match="data.embedded_train must name one or more"):
            load_train_config("demo_cnn", [f"data.embedded_train={bad}"])
    # a folder given with data.train wins (the shipped demo configs set embedded_train, and
    # `train --config demo data.train=DIR` must keep working)
    assert load_train_config("demo_cnn", ["data.embedded_train=[rocket]", "data.train=photos/"]).data.train == "photos/"
