"""The symmetric group S_N acting on the point / node axis.

A permutation ``p`` re-indexes the point axis as ``(g.X)_i = X_{p[i]}``. Haar (uniform)
sampling: the ``argsort`` of ``N`` i.i.d. uniform keys is each of the ``N!`` orderings with
equal probability.

The hypothesis strategy draws a permutation as the product of :data:`MAX_SEARCH_SWAPS`
transpositions, each one integer ``t`` in ``[0, N(N-1)/2]``: ``t = 0`` is no swap and ``t >= 1``
names the pair ``(i, j)``, ``i < j``, in the order (0, 1), (0, 2), (1, 2), (0, 3), ...
(:func:`transposition`). It shrinks to the identity or, when the failure needs the points
reordered, to the single swap of points 0 and 1, the most readable counterexample; and it takes
hypothesis ``MAX_SEARCH_SWAPS`` integer choices instead of ``st.permutations``' ``N - 1`` (31
for 32 points), which were most of the drawing time of a search example on point clouds. A
searched element moves at most ``2 * MAX_SEARCH_SWAPS`` points; the Haar-random elements that a
check evaluates beside it cover all of S_N.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import permutations

import torch

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices, batch1, integer_param

#: 7!: the largest S_N that ``elements()`` enumerates.
MAX_ENUMERATED = 5040
#: Transpositions in one element drawn by the hypothesis strategy (see the module docstring).
MAX_SEARCH_SWAPS = 2


class Symmetric(ComparedByValue, Group):
    """S_N on the point axis; parameters ``{"permutation": (n, N) int64}``.

    ``Symmetric()`` ("S_n") takes ``N`` from the data (``num_points``); ``Symmetric(N)`` ("S_N") pins it.
    """

    permutes_points = True

    def __init__(self, n: int | None = None) -> None:
        if n is not None and n < 1:
            raise ValueError(f"Symmetric group needs n >= 1, got {n}")
        self.n = None if n is None else int(n)
        self.name = "S_n" if n is None else f"S_{n}"

    def size(self, num_points: int | None) -> int:
        """The size ``N`` of the permuted axis: ``num_points`` (checked against a pinned ``n``) or the pinned ``n``."""
        size = num_points if num_points is not None else self.n
        if size is None:
            raise ValueError(f"{self.name} permutes points: pass num_points (the size of the point axis)")
        if self.n is not None and size != self.n:
            raise ValueError(f"{self.name} acts on {self.n} points but the data has {size}")
        if size < 1:
            raise ValueError(f"{self.name} needs num_points >= 1, got {size}")
        return size

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        keys = torch.rand(n, self.size(num_points), generator=generator, dtype=torch.float64)
        return {"permutation": torch.argsort(keys, dim=1)}

    def element(self, params: Params) -> Element:
        return Element(permutation=params["permutation"].to(torch.long))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        size = self.size(num_points)
        swap = integer_param(0, size * (size - 1) // 2)

        def build(values: Sequence[int]) -> Params:
            return {"permutation": batch1(swapped(size, [transposition(t) for t in values if t]), torch.long)}

        return ParamChoices((swap,) * MAX_SEARCH_SWAPS, build)

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return Element(permutation=torch.arange(self.size(num_points)).expand(n, -1).clone())

    def order(self, num_points: int | None = None) -> int | None:
        """``N!``, or ``None`` while ``N`` is unknown."""
        if num_points is None and self.n is None:
            return None
        return math.factorial(self.size(num_points))

    def enumerate_params(self, num_points: int | None = None) -> Params:
        """All ``N!`` permutations in lexicographic order (identity first), for ``N! <= 5040``."""
        size = self.size(num_points)
        if math.factorial(size) > MAX_ENUMERATED:
            raise ValueError(
                f"{self.name} on {size} points has {math.factorial(size)} elements; it enumerates at most {MAX_ENUMERATED} (7!)"
            )
        return {"permutation": torch.tensor(list(permutations(range(size))), dtype=torch.long)}


def transposition(t: int) -> tuple[int, int]:
    """The ``t``-th pair ``(i, j)``, ``i < j``, counting from 1 in the order (0, 1), (0, 2), (1, 2), (0, 3), ..."""
    m = t - 1
    j = (1 + math.isqrt(1 + 8 * m)) // 2
    return m - j * (j - 1) // 2, j


def swapped(size: int, swaps: list[tuple[int, int]]) -> list[int]:
    """The identity order of ``size`` points with the transpositions ``swaps`` applied left to right."""
    order = list(range(size))
    for i, j in swaps:
        order[i], order[j] = order[j], order[i]
    return order
