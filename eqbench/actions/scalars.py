"""Fields that the geometric part of a group leaves alone: scalars, invariants and point masks.

Under ``g = (M, t, p)`` a scalar field only follows the permutation of the point axis:
``(g.s)_i = s_{p[i]}`` (per-point scalars), ``g.s = s`` (global scalars / invariants).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from eqbench.actions.checks import check_batch, require_count, require_dtype, require_finite, require_ndim, require_tensor
from eqbench.actions.field import FieldAction
from eqbench.actions.transforms import permute_points
from eqbench.groups.element import Element


@dataclass(frozen=True, repr=False)
class Scalars(FieldAction):
    """Invariant values, shape ``(B, N, ...)`` per point or ``(B, ...)`` globally.

    The trivial representation of the geometric part (``rho(M, t) = 1``); per-point scalars
    are re-indexed by the permutation part. Any dtype (integer atom types included).
    ``size`` (optional) declares the number of values per point (per item for global scalars):
    a value of another size is a :class:`~eqbench.actions.base.DataError`.
    """

    per_point: bool = True
    size: int | None = None

    @property
    def layout(self) -> str:
        return "(B, N, ...)" if self.per_point else "(B, ...)"

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "scalars")
        if self.per_point and g.permutation is not None:
            return permute_points(x, g.permutation, "scalars")
        return x

    def validate(self, x: Tensor, where: str = "input") -> None:
        require_tensor(x, where, "scalars")
        require_ndim(x, where, "scalars", self.layout, 2 if self.per_point else 1)
        require_count(x, 2 if self.per_point else 1, 0, self.size, where, "scalars")
        require_finite(x, where)


@dataclass(frozen=True, repr=False)
class Invariant(Scalars):
    """A global invariant output, shape ``(B, ...)``: ``g.y = y`` for every ``g`` (``Scalars(per_point=False)``).

    ``Invariant(size=k)`` declares ``k`` values per item (e.g. ``(B, k)``).
    """

    per_point: bool = field(default=False, init=False)


@dataclass(frozen=True, repr=False)
class Mask(FieldAction):
    """A ``(B, N)`` bool mask of real (True) versus padded (False) points; only permuted.

    When a :class:`~eqbench.actions.composite.Dict` or ``Tuple`` has a ``Mask`` field, its
    ``point_mask`` returns it so the checker compares per-point outputs on real points only.
    """

    comparable = False

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "mask")
        if g.permutation is not None:
            return permute_points(x, g.permutation, "mask")
        return x

    def validate(self, x: Tensor, where: str = "input") -> None:
        require_tensor(x, where, "point mask")
        require_ndim(x, where, "point mask", "(B, N)", 2, exact=True)
        require_dtype(x, torch.bool, where, "point mask")

    def point_mask(self, x: Tensor) -> Tensor:
        return x
