"""Groups made of a rotation group H and one reflection F: ``G = H u H F`` (O(2), O(3), D_n).

An element is ``h F^r`` with ``h`` in H and ``r`` in {0, 1}; ``F = diag(f)`` normalises H
(``F H F^-1 = H``), so these products form a group. Haar sampling: ``h`` Haar on H and ``r``
a fair coin (the Haar measure of G gives each coset mass 1/2). Parameters are H's plus
``"reflect"`` (int64 in {0, 1}). The Lie algebra, ``exp`` and ``log`` are H's: ``log`` is
defined on the identity component (``det > 0``) only.

* O(2) = SO(2) with ``F = diag(1, -1)``: ``R(theta) diag(1, -1)^r``;
* O(3) = SO(3) with ``F = -I`` (the inversion, so O(3) = SO(3) x {I, -I});
* D_n = C_n with ``F = diag(1, -1)``: the ``2n`` symmetries of the regular n-gon.
"""
from __future__ import annotations

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params, cat_params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.polygons import Cyclic
from eqbench.groups.rotations2d import SO2
from eqbench.groups.rotations3d import SO3
from eqbench.groups.strategies import (
    ParamChoices,
    batch1,
    bernoulli,
    integer_param,
    joined,
    union,
)


class WithReflection(ComparedByValue, Group):
    """``H u H F`` for a rotation group ``H`` (``rotations``) and ``F = diag(reflection_diagonal)``."""

    reflection_diagonal: tuple[float, ...]

    def __init__(self, rotations: Group, name: str) -> None:
        self.rotations = rotations
        self.name = name
        self.space_dim = rotations.space_dim
        self.compact = rotations.compact

    def _reflect(self, matrix: Tensor, reflect: Tensor) -> Tensor:
        """``M F^r`` (``F`` diagonal, so this scales the columns of ``M``; exact for integer matrices)."""
        f = torch.tensor(self.reflection_diagonal, dtype=matrix.dtype)
        columns = torch.where(reflect.to(torch.bool)[:, None], f, torch.ones_like(f))
        return matrix * columns[:, None, :]

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {**self.rotations.sample_params(n, generator), "reflect": bernoulli(n, generator)}

    def element(self, params: Params) -> Element:
        rotation = self.rotations.element({k: v for k, v in params.items() if k != "reflect"})
        return Element(matrix=self._reflect(rotation.matrix, params["reflect"]))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        reflect = ParamChoices((integer_param(0, 1),), lambda v: {"reflect": batch1(v[0], torch.long)})
        return joined([self.rotations.param_choices(), reflect], union)

    @property
    def lie_algebra(self) -> Tensor | None:
        return self.rotations.lie_algebra

    def exp(self, coefficients: Tensor) -> Element:
        return self.rotations.exp(coefficients)

    def log(self, g: Element) -> Tensor:
        if (g.determinant() < 0).any():
            raise ValueError(f"{self.name}.log is defined on the rotations only; this batch contains a reflection (det < 0)")
        return self.rotations.log(g)

    def order(self, num_points: int | None = None) -> int | None:
        order = self.rotations.order()
        return None if order is None else 2 * order

    def enumerate_params(self, num_points: int | None = None) -> Params:
        """The rotations' enumeration, then the same rotations times ``F``."""
        rotations = self.rotations.enumerate_params()
        count = self.rotations.order()
        flags = torch.cat([torch.zeros(count, dtype=torch.long), torch.ones(count, dtype=torch.long)])
        return {**cat_params([rotations, rotations]), "reflect": flags}


class O2(WithReflection):
    """O(2): ``R(theta) diag(1, -1)^r``; parameters ``angle``, ``reflect``."""

    reflection_diagonal = (1.0, -1.0)

    def __init__(self) -> None:
        super().__init__(SO2(), "O(2)")


class O3(WithReflection):
    """O(3) = SO(3) x {I, -I}: ``(-1)^r R(q)``; parameters ``quaternion``, ``reflect``."""

    reflection_diagonal = (-1.0, -1.0, -1.0)

    def __init__(self) -> None:
        super().__init__(SO3(), "O(3)")


class Dihedral(WithReflection):
    """D_n: ``R(2 pi k / n) diag(1, -1)^r`` (``2n`` elements, exact integers for n = 4)."""

    reflection_diagonal = (1.0, -1.0)

    def __init__(self, n: int) -> None:
        super().__init__(Cyclic(n), f"D{n}")
        self.n = int(n)
