"""Direct products of groups acting on different parts of the data (e.g. SE(3) x S_n).

Parameters of factor ``i`` are stored under ``"i.<key>"`` (``"0.quaternion"``,
``"1.permutation"``); elements are merged part by part (:meth:`Element.merge`), so the factors
must act through different parts (say rotations and translations of one factor, the
permutation of another). Sampling is the product of the factors' measures.

Lie structure: the generators are those of the continuous factors (finite and permutation
factors contribute none). With one continuous factor, ``exp`` and ``log`` are that factor's:
``exp`` returns elements that act as the identity on the other factors' parts (they carry no
permutation part), and ``log`` reads only that factor's parts. With several continuous factors
(e.g. SO(3) x T(3)), ``exp`` is the matrix exponential of the combined generators and ``log``
is not defined.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices, joined


class DirectProduct(ComparedByValue, Group):
    """``G_1 x G_2 x ...`` (also ``G * H``); nested products are flattened, the name is ``"G_1xG_2"``."""

    def __init__(self, *factors: Group) -> None:
        flat: list[Group] = []
        for factor in factors:
            if not isinstance(factor, Group):
                raise TypeError(f"DirectProduct factors must be groups, got {factor!r}")
            flat.extend(factor.factors if isinstance(factor, DirectProduct) else [factor])
        if len(flat) < 2:
            raise ValueError(f"DirectProduct needs at least two factors, got {len(flat)}")
        dims = {f.space_dim for f in flat if f.space_dim is not None}
        if len(dims) > 1:
            raise ValueError(f"direct product factors act on spaces of different dimension: {sorted(dims)}")
        _check_disjoint_parts(flat)
        self.factors = tuple(flat)
        self.space_dim = dims.pop() if dims else None
        self.permutes_points = any(f.permutes_points for f in flat)
        self.compact = all(f.compact for f in flat)
        self.name = "x".join(f.name for f in flat)

    def _split(self, params: Params) -> list[Params]:
        parts: list[Params] = [{} for _ in self.factors]
        for key, value in params.items():
            index, dot, name = key.partition(".")
            if not dot or not index.isdigit() or int(index) >= len(self.factors):
                raise ValueError(f"{self.name}: parameter {key!r} is not of the form '<factor index>.<name>'")
            parts[int(index)][name] = value
        return parts

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        params: Params = {}
        for i, factor in enumerate(self.factors):
            params.update({f"{i}.{k}": v for k, v in factor.sample_params(n, generator, num_points).items()})
        return params

    def element(self, params: Params) -> Element:
        return Element.merge([f.element(p) for f, p in zip(self.factors, self._split(params))])

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        def merge(parts: list[Params]) -> Params:
            return {f"{i}.{k}": v for i, p in enumerate(parts) for k, v in p.items()}

        return joined([f.param_choices(num_points) for f in self.factors], merge)

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return Element.merge([f.identity(n, num_points) for f in self.factors])

    # ------------------------------------------------------------------ Lie
    def _lie_factors(self) -> list[Group]:
        return [f for f in self.factors if f.is_lie]

    @property
    def lie_algebra(self) -> Tensor | None:
        algebras = [f.lie_algebra for f in self._lie_factors()]
        return torch.cat(algebras) if algebras else None

    def exp(self, coefficients: Tensor) -> Element:
        lie = self._lie_factors()
        if not lie:
            raise NotImplementedError(f"{self.name} has no continuous factor")
        return lie[0].exp(coefficients) if len(lie) == 1 else super().exp(coefficients)

    def log(self, g: Element) -> Tensor:
        lie = self._lie_factors()
        if len(lie) != 1:
            raise NotImplementedError(f"{self.name}: log is defined for products with exactly one continuous factor")
        return lie[0].log(g)

    # --------------------------------------------------------------- finite
    def order(self, num_points: int | None = None) -> int | None:
        orders = [f.order(num_points) for f in self.factors]
        return None if any(o is None for o in orders) else math.prod(orders)

    def enumerate_params(self, num_points: int | None = None) -> Params:
        """Every tuple of factor elements, the last factor varying fastest."""
        enumerated = [f.enumerate_params(num_points) for f in self.factors]
        sizes = [f.order(num_points) for f in self.factors]
        params: Params = {}
        for i, factor_params in enumerate(enumerated):
            inner, outer = math.prod(sizes[i + 1 :]), math.prod(sizes[:i])
            for key, value in factor_params.items():
                params[f"{i}.{key}"] = value.repeat_interleave(inner, dim=0).repeat(outer, *[1] * (value.dim() - 1))
        return params


def _parts(group: Group) -> set[str]:
    """The parts through which ``group`` acts (read off its identity; a permuting group is taken to permute only)."""
    parts = {"permutation"} if group.permutes_points else set()
    if group.space_dim is not None and not group.permutes_points:
        probe = group.identity(1)
        parts |= {part for part in ("matrix", "translation") if getattr(probe, part) is not None}
    return parts


def _check_disjoint_parts(factors: list[Group]) -> None:
    owner: dict[str, Group] = {}
    for factor in factors:
        for part in _parts(factor):
            if part in owner:
                raise ValueError(
                    f"{owner[part].name} and {factor.name} both act through the {part} part; a direct product needs "
                    "factors acting on different parts (e.g. SO(3) x T(3) x S_n; use SE(3) for rotations with translations)"
                )
            owner[part] = factor
