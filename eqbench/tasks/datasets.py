"""In-memory data sets of named tensors, and the built data of a task.

Every task here fits in memory (at most 130,831 padded molecules), so a split is a dict of
tensors sharing their first axis. Batches are fetched by index lists (``dataset[indices]``), so
one gather per batch replaces per-example collation.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class TensorDictDataset(Dataset):
    """Rows of named tensors: ``dataset[indices]`` is ``{name: tensor[indices]}`` (a batch)."""

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        if not tensors:
            raise ValueError("a TensorDictDataset needs at least one tensor")
        lengths = {name: int(t.shape[0]) for name, t in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors of a data set must share their first axis, got lengths {lengths}")
        self.tensors = dict(tensors)
        self.length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, indices: Sequence[int] | Tensor) -> dict[str, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {name: tensor[index] for name, tensor in self.tensors.items()}

    def head(self, count: int | None) -> TensorDictDataset:
        """The first ``count`` rows (all when ``None`` or larger than the set)."""
        if count is None or count >= self.length:
            return self
        if count < 1:
            raise ValueError(f"a data set subset needs at least one row, got {count}")
        return TensorDictDataset({name: tensor[:count] for name, tensor in self.tensors.items()})


@dataclass
class TaskData:
    """The splits of a built task, which fields the model reads, and facts the model builders need.

    ``inputs`` are passed to the model positionally in this order; ``target`` is compared with
    its output. ``meta`` holds e.g. ``image_shape``, ``num_classes``, ``target_mean`` and
    ``target_std`` (training set statistics), ``max_atoms`` or ``source``.
    """

    splits: dict[str, TensorDictDataset]
    inputs: tuple[str, ...]
    target: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for required in ("train", "test"):
            if required not in self.splits:
                raise ValueError(f"task data needs a {required!r} split, got {sorted(self.splits)}")
        for name, split in self.splits.items():
            missing = [key for key in (*self.inputs, self.target) if key not in split.tensors]
            if missing:
                raise ValueError(f"split {name!r} lacks the fields {missing}")
