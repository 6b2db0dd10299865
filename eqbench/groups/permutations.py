"""The symmetric group S_n acting on the point / node axis, and the trivial group.

A permutation ``p`` re-indexes the point axis as ``(g.X)_i = X_{p[i]}``. Haar (uniform)
sampling: ``argsort`` of i.i.d. uniform keys gives each of the ``N!`` orderings with equal
probability. The hypothesis strategy shrinks towards the identity ordering.
"""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element

MAX_ENUMERATED = 5040  # 7!: beyond this an exhaustive check over S_n is not a check anyone wants


class Symmetric(Group):
    """S_n on the point axis. ``Symmetric()`` takes ``n`` from the data; ``Symmetric(n)`` pins it."""

    permutes_points = True

    def __init__(self, n: int | None = None) -> None:
        if n is not None and n < 1:
            raise ValueError(f"Symmetric group needs n >= 1, got {n}")
        self.n = n
        self.name = "S_n" if n is None else f"S_{n}"

    def _size(self, num_points: int | None) -> int:
        size = num_points if num_points is not None else self.n
        if size is None:
            raise ValueError(f"{self.name} permutes points: pass num_points (the size of the point axis)")
        if self.n is not None and size != self.n:
            raise ValueError(f"{self.name} acts on {self.n} points but the data has {size}")
        return size

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        keys = torch.rand(n, self._size(num_points), generator=generator)
        return {"permutation": torch.argsort(keys, dim=1)}

    def element(self, params: Params) -> Element:
        return Element(permutation=params["permutation"].to(torch.long))

    def params_strategy(self, num_points: int | None = None):
        size = self._size(num_points)
        return st.permutations(list(range(size))).map(lambda p: {"permutation": torch.tensor([p], dtype=torch.long)})

    def order(self, num_points: int | None = None) -> int | None:
        size = num_points if num_points is not None else self.n
        return None if size is None else math.factorial(size)

    def elements(self, num_points: int | None = None) -> Element:
        size = self._size(num_points)
        if math.factorial(size) > MAX_ENUMERATED:
            raise ValueError(f"{self.name} on {size} points has {math.factorial(size)} elements; enumeration stops at {MAX_ENUMERATED}")
        from itertools import permutations

        return self.element({"permutation": torch.tensor(list(permutations(range(size))), dtype=torch.long)})


class Trivial(Group):
    """The trivial group {e}: every model is invariant to it (a baseline for LieConv and the registry)."""

    name = "trivial"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {}

    def element(self, params: Params) -> Element:
        return Element()

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        """The identity has no parts; an Element without parts acts as the identity on any batch."""
        return Element()

    def params_strategy(self, num_points: int | None = None):
        return st.just({})

    def order(self, num_points: int | None = None) -> int:
        return 1

    def elements(self, num_points: int | None = None) -> Element:
        return Element()

