"""Direct products of groups acting on different parts of the data (e.g. SE(3) x S_n).

Parameters of factor ``i`` are stored under ``"i.<key>"``; elements are merged part by part
(:meth:`Element.merge`), so the factors must act through different parts (matrix and
translation of one factor, permutation of another). Sampling is the product of the
factors' measures. The Lie algebra is that of the single continuous factor (the others are
discrete and contribute no generators); ``exp`` returns elements of that factor, which act
as the identity on the other parts.
"""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element


class DirectProduct(Group):
    """``G_1 x G_2 x ...``; nested products are flattened."""

    def __init__(self, *factors: Group) -> None:
        flat: list[Group] = []
        for factor in factors:
            flat.extend(factor.factors if isinstance(factor, DirectProduct) else [factor])
        if len(flat) < 2:
            raise ValueError("DirectProduct needs at least two factors")
        dims = {f.space_dim for f in flat if f.space_dim is not None}
        if len(dims) > 1:
            raise ValueError(f"factors act on spaces of different dimension: {sorted(dims)}")
        self.factors = tuple(flat)
        self.space_dim = dims.pop() if dims else None
        self.permutes_points = any(f.permutes_points for f in flat)
        self.compact = all(f.compact for f in flat)
        self.name = "x".join(f.name for f in flat)

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        params: Params = {}
        for i, factor in enumerate(self.factors):
            params.update({f"{i}.{k}": v for k, v in factor.sample_params(n, generator, num_points).items()})
        return params

    def _split(self, params: Params) -> list[Params]:
        parts: list[Params] = [{} for _ in self.factors]
        for key, value in params.items():
            index, _, name = key.partition(".")
            parts[int(index)][name] = value
        return parts

    def element(self, params: Params) -> Element:
        return Element.merge([f.element(p) for f, p in zip(self.factors, self._split(params))])

    def params_strategy(self, num_points: int | None = None):
        def merge(values: tuple[Params, ...]) -> Params:
            return {f"{i}.{k}": v for i, p in enumerate(values) for k, v in p.items()}

        return st.tuples(*(f.params_strategy(num_points) for f in self.factors)).map(merge)

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return Element.merge([f.identity(n, num_points) for f in self.factors])

    def _lie_factor(self) -> Group | None:
        lie = [f for f in self.factors if f.is_lie]
        if len(lie) > 1:
            raise NotImplementedError(f"{self.name}: exp/log are defined for products with one continuous factor")
        return lie[0] if lie else None

    @property
    def lie_algebra(self) -> Tensor | None:
        factor = self._lie_factor()
        return None if factor is None else factor.lie_algebra

    def exp(self, coefficients: Tensor) -> Element:
        factor = self._lie_factor()
        if factor is None:
            raise NotImplementedError(f"{self.name} has no continuous factor")
        return factor.exp(coefficients)

    def log(self, g: Element) -> Tensor:
        factor = self._lie_factor()
        if factor is None:
            raise NotImplementedError(f"{self.name} has no continuous factor")
        return factor.log(g)

    def order(self, num_points: int | None = None) -> int | None:
        orders = [f.order(num_points) for f in self.factors]
        return None if any(o is None for o in orders) else math.prod(orders)

    def elements(self, num_points: int | None = None) -> Element:
        enumerated = [f.elements(num_points) for f in self.factors]
        sizes = [e.batch_size if _has_parts(e) else 1 for e in enumerated]
        combined = []
        for i, element in enumerate(enumerated):
            if not _has_parts(element):
                continue
            inner = math.prod(sizes[i + 1 :])
            outer = math.prod(sizes[:i])
            combined.append(element.repeat_interleave(inner).repeat(outer))
        return Element.merge(combined)


def _has_parts(element: Element) -> bool:
    return any(p is not None for p in (element.matrix, element.translation, element.permutation))
