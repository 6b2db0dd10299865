"""The trivial group {e}: the baseline every model is invariant to (LieConv's "trivial")."""
from __future__ import annotations

import torch

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices


class Trivial(ComparedByValue, Group):
    """{e}, with no parameters; its element has no parts, which every action reads as the identity (any batch)."""

    name = "trivial"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {}

    def element(self, params: Params) -> Element:
        if params:
            raise ValueError(f"the trivial group has no parameters, got {sorted(params)}")
        return Element()

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        return ParamChoices((), lambda v: {})

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return Element()

    def order(self, num_points: int | None = None) -> int:
        return 1

    def enumerate_params(self, num_points: int | None = None) -> Params:
        return {}
