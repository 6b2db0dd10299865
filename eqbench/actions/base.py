"""The action interface: one description of how g acts on a field, for inputs and outputs alike.

Conventions (every action, every field):

* every tensor has a leading batch axis ``B``, and the ``b``-th group element acts on the
  ``b``-th item (so a checker stacks many ``(element, input)`` pairs into one forward pass);
* per-point fields have the point / node axis at position 1: ``(B, N, ...)``;
* vector-like fields keep the spatial axis last: ``(B, [N,] [C,] d)``.

An action is a value: ``Tuple(Points(), Vectors())`` or ``Dict(pos=Points(), mask=Mask())``
describe structured inputs, and the same objects describe outputs (``Invariant()``,
``Vectors(per_point=False)``, ...).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from eqbench.groups.element import Element


class DataError(ValueError):
    """Input or output data does not match its declared action (shape, dtype, NaN, ...)."""


@dataclass(frozen=True)
class Leaf:
    """One named tensor of a structured value, for per-output error reports.

    ``per_point`` says the tensor has the point axis at position 1 (so a point mask applies);
    ``comparable`` is False for integer bookkeeping fields (masks, edge indices) that the
    checker compares exactly rather than in norm.
    """

    name: str
    tensor: Tensor
    per_point: bool
    comparable: bool = True


class Action(ABC):
    """How a batch of group elements acts on one (possibly structured) field."""

    @abstractmethod
    def apply(self, g: Element, x: Any) -> Any:
        """``g . x``, batched: element ``b`` acts on item ``b``. Floating math in ``x``'s dtype."""

    @abstractmethod
    def validate(self, x: Any, where: str = "input") -> None:
        """Raise :class:`DataError` naming the problem if ``x`` cannot carry this action."""

    @abstractmethod
    def leaves(self, x: Any, prefix: str = "") -> list[Leaf]:
        """The named tensors of ``x`` (one per field), in a fixed order."""

    @abstractmethod
    def map_tensors(self, x: Any, fn: Callable[[Tensor], Tensor]) -> Any:
        """Rebuild ``x`` with ``fn`` applied to each tensor (batch indexing, repeats, casts)."""

    # ----------------------------------------------------------------- derived
    def num_points(self, x: Any) -> int | None:
        """Size of the point axis of the per-point fields (``None`` when there are none)."""
        sizes = {leaf.tensor.shape[1] for leaf in self.leaves(x) if leaf.per_point}
        if len(sizes) > 1:
            raise DataError(f"per-point fields disagree on the number of points: {sorted(sizes)}")
        return sizes.pop() if sizes else None

    def point_mask(self, x: Any) -> Tensor | None:
        """``(B, N)`` bool mask of real (non-padded) points, when a field is a :class:`Mask`."""
        return None

    def batch_size(self, x: Any) -> int:
        leaves = self.leaves(x)
        if not leaves:
            raise DataError("value has no tensors")
        return leaves[0].tensor.shape[0]

    def cast(self, x: Any, dtype: torch.dtype) -> Any:
        """Floating tensors to ``dtype``; integer and bool tensors unchanged."""
        return self.map_tensors(x, lambda t: t.to(dtype) if t.is_floating_point() else t)

    def index(self, x: Any, idx: Tensor | slice) -> Any:
        return self.map_tensors(x, lambda t: t[idx])

    def repeat_interleave(self, x: Any, repeats: int) -> Any:
        return self.map_tensors(x, lambda t: t.repeat_interleave(repeats, dim=0))

    def clone(self, x: Any) -> Any:
        return self.map_tensors(x, lambda t: t.clone())
