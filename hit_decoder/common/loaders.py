"""Batching of training and validation datasets: the resumable step sampler (training batch ``b`` is
a pure function of ``(seed, b)``, whatever the number of workers or DDP ranks), the validation
shard sampler, and the loaders built on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["StepBatchSampler", "ShardSampler", "ResumableDataLoader", "collate", "make_train_loader",
           "make_val_loader"]


class StepBatchSampler(Sampler):
    """Batches ``start_batch .. total_batches - 1`` of a deterministic sample stream.

    The stream is the concatenation of per-epoch permutations of ``range(n)`` (epoch ``e`` uses
    a generator seeded by ``(seed, e)``). Global batch ``b`` covers stream positions
    ``[b * world * bs, (b + 1) * world * bs)``; rank ``r`` takes its ``bs`` consecutive positions.
    Each yielded key is ``(dataset index, stream position)``. ``len()`` is always the full
    ``total_batches`` (Lightning resumes its batch counter from the checkpoint and counts on).
    """

    def __init__(self, n: int, batch_size: int, total_batches: int, seed: int = 0, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"StepBatchSampler needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if not 0 <= start_batch <= total_batches:
            raise ValueError(f"start_batch {start_batch} must be within [0, total_batches={total_batches}]")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be within [0, world_size={world_size})")
        self.n, self.batch_size, self.total_batches, self.seed = n, batch_size, total_batches, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self._perm_epoch, self._perm = -1, None

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed((int(self.seed) * 1_000_003 + epoch) % (2 ** 63 - 1))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return int(self._perm[offset])

    def batch_positions(self, b: int) -> list[int]:
        first = (b * self.world_size + self.rank) * self.batch_size
        return list(range(first, first + self.batch_size))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b in range(self.start_batch, self.total_batches):
            yield [(self._index(p), p) for p in self.batch_positions(b)]

    def __len__(self) -> int:
        return self.total_batches


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...`` of ``range(n)`` (validation, no padding, no shuffling)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`StepBatchSampler` that tells Lightning it can resume.

    Its position is not stored here: the training module saves its batch counter in the
    checkpoint and builds this loader with ``start_batch`` set from it (Lightning restores the
    module before it asks for dataloaders). ``state_dict`` records that start for inspection.
    """

    def state_dict(self) -> dict[str, int]:
        return {"start_batch": int(self.batch_sampler.start_batch)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # nothing to do: the sampler was already built at the module's restored batch counter
        return None


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([it["image"] for it in items]),  # (B, 3, size, size)
        "skipped": torch.tensor(sum(int(it["skipped"]) for it in items), dtype=torch.long),
        "unreadable": sorted({i for it in items for i in it["unreadable"]}),  # indices of the files passed over
    }


def make_train_loader(dataset: Dataset, batch_size: int, total_batches: int, seed: int, start_batch: int,
                      rank: int, world_size: int, num_workers: int) -> ResumableDataLoader:
    sampler = StepBatchSampler(len(dataset), batch_size, total_batches, seed, start_batch, rank, world_size)
    return ResumableDataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
                               persistent_workers=False, pin_memory=False)


def make_val_loader(dataset: Dataset, batch_size: int, rank: int, world_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), rank, world_size),
                      num_workers=num_workers, collate_fn=collate)
