"""The cyclic group C_n: rotations of the plane by multiples of ``2 pi / n`` (Haar = uniform).

Rotations by multiples of pi/2 are built with exact integer entries, so that C_4 and D_4
(see :mod:`eqbench.groups.reflections`) map a square pixel grid exactly onto itself.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.rotations2d import rotation_matrix
from eqbench.groups.strategies import ParamChoices, batch1, integer_param


def exact_rotation(k: Tensor, n: int) -> Tensor:
    """``R(2 pi k / n)`` with entries within 1e-12 of an integer rounded to it (exact for n = 1, 2, 4)."""
    matrix = rotation_matrix(2 * math.pi * torch.remainder(k, n).to(torch.float64) / n)
    rounded = torch.round(matrix)
    return torch.where((matrix - rounded).abs() < 1e-12, rounded + 0.0, matrix)  # + 0.0 turns -0.0 into 0.0


class Cyclic(ComparedByValue, Group):
    """C_n = {R(2 pi k / n) : k = 0..n-1}; parameters ``{"k": int64}``."""

    space_dim = 2

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Cyclic group needs n >= 1, got {n}")
        self.n = int(n)
        self.name = f"C{self.n}"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"k": torch.randint(0, self.n, (n,), generator=generator)}

    def element(self, params: Params) -> Element:
        return Element(matrix=exact_rotation(params["k"].long(), self.n))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        return ParamChoices((integer_param(0, self.n - 1),), lambda v: {"k": batch1(v[0], torch.long)})

    def order(self, num_points: int | None = None) -> int:
        return self.n

    def enumerate_params(self, num_points: int | None = None) -> Params:
        return {"k": torch.arange(self.n)}
