"""The torus translations ``Z_H x Z_W``: cyclic shifts of signals on an ``H x W`` periodic grid.

Grid signals are ``(B, H*W, C)`` tensors with the sites in row-major order on the point axis
(the layout of :mod:`eqbench.models.lconv`), so a shift is a permutation of the point axis and
the plain :class:`~eqbench.actions.Scalars` action moves the signal. Shift-generator L-convs
(circular CNNs) commute with this group exactly.
"""
from __future__ import annotations

import torch

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices, batch1, integer_param


class CyclicTranslations(Group):
    """The translations ``Z_H x Z_W`` of an ``H x W`` periodic grid, acting on row-major sites by permutation.

    Parameters ``{"shift": (n, 2) int64}`` (row and column shift, uniform: Haar on a finite
    group). A shift ``s`` moves the content at site ``q`` to ``q + s`` (mod the grid), i.e.
    ``(g.h)[p] = h[p - s]``, the permutation ``perm[p] = index(p - s)`` of the point axis.
    """

    permutes_points = True

    def __init__(self, height: int, width: int) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"CyclicTranslations needs height, width >= 1, got {height}, {width}")
        self.height, self.width = height, width
        self.name = f"Z{height}xZ{width}"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        self._check_points(num_points)
        rows = torch.randint(self.height, (n,), generator=generator)
        cols = torch.randint(self.width, (n,), generator=generator)
        return {"shift": torch.stack([rows, cols], dim=1)}

    def element(self, params: Params) -> Element:
        shift = params["shift"].long()
        rows, cols = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        source_rows = torch.remainder(rows.reshape(1, -1) - shift[:, :1], self.height)
        source_cols = torch.remainder(cols.reshape(1, -1) - shift[:, 1:], self.width)
        return Element(permutation=source_rows * self.width + source_cols)

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        self._check_points(num_points)
        shifts = (integer_param(0, self.height - 1), integer_param(0, self.width - 1))
        return ParamChoices(shifts, lambda v: {"shift": batch1(list(v), torch.long)})

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return self.element({"shift": torch.zeros(n, 2, dtype=torch.long)})

    def order(self, num_points: int | None = None) -> int:
        return self.height * self.width

    def enumerate_params(self, num_points: int | None = None) -> Params:
        self._check_points(num_points)
        rows, cols = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        return {"shift": torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)}

    def _check_points(self, num_points: int | None) -> None:
        if num_points is not None and num_points != self.height * self.width:
            raise ValueError(f"{self.name} permutes {self.height * self.width} grid sites, but the data has {num_points} points")
