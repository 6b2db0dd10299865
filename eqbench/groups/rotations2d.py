"""Continuous groups of the plane: SO(2) and the scale-rotation group R>0 x SO(2).

Haar measure of SO(2): the angle is uniform on [-pi, pi). The scale of R>0 x SO(2) is
non-compact; eqbench draws ``log s`` uniform on ``[-log max_scale, log max_scale]`` (the
stated distribution: the Haar measure ``ds / s`` of R>0 restricted to that interval).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices, batch1, float_param

if TYPE_CHECKING:
    from hypothesis import strategies as st

#: ``J = [[0, -1], [1, 0]]`` in homogeneous form: ``exp(theta J) = R(theta)``.
ROTATION_GENERATOR = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
#: The identity on R^2 in homogeneous form: ``exp(lambda I) = e^lambda I`` (uniform scaling).
SCALING_GENERATOR = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))


def rotation_matrix(angle: Tensor) -> Tensor:
    """``R(theta) = [[cos, -sin], [sin, cos]]`` of shape ``(B, 2, 2)`` (float64)."""
    angle = angle.to(torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def angle_of(matrix: Tensor) -> Tensor:
    """The rotation angle in (-pi, pi] of (scaled) rotation matrices ``s R(theta)``."""
    return torch.atan2(matrix[:, 1, 0], matrix[:, 0, 0])


def uniform_angle(n: int, generator: torch.Generator) -> Tensor:
    """``n`` angles uniform on [-pi, pi) (the Haar measure of SO(2))."""
    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi


def angle_strategy() -> st.SearchStrategy[float]:
    return float_param(-math.pi, math.pi)


class SO2(ComparedByValue, Group):
    """Rotations of the plane ``R(theta)``; Lie algebra spanned by ``J = [[0, -1], [1, 0]]``."""

    name = "SO(2)"
    space_dim = 2

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"angle": uniform_angle(n, generator)}

    def element(self, params: Params) -> Element:
        return Element(matrix=rotation_matrix(params["angle"]))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        return ParamChoices((angle_strategy(),), lambda v: {"angle": batch1(v[0])})

    @property
    def lie_algebra(self) -> Tensor:
        return ROTATION_GENERATOR[None].clone()

    def exp(self, coefficients: Tensor) -> Element:
        """``exp(c J) = R(c)``."""
        return self.element({"angle": coefficients[:, 0]})

    def log(self, g: Element) -> Tensor:
        """The angle in (-pi, pi] as ``(B, 1)`` coefficients."""
        return angle_of(g.linear(2))[:, None]


class ScaleRotation(ComparedByValue, Group):
    """The scale-rotation group R>0 x SO(2), ``x -> s R(theta) x`` (LieConv's ``RxSO2``, Finzi et al. 2020).

    Parameters ``angle`` (uniform on [-pi, pi)) and ``log_scale`` (uniform on
    ``[-log max_scale, log max_scale]``, ``max_scale = 2`` by default: a stated distribution,
    the group is not compact). Lie algebra: the rotation generator ``J`` and the scaling
    generator ``I``; ``exp(a J + b I) = e^b R(a)``.
    """

    space_dim = 2
    compact = False
    name = "RxSO(2)"

    def __init__(self, max_scale: float = 2.0) -> None:
        if not max_scale > 1.0:
            raise ValueError(f"ScaleRotation needs max_scale > 1, got {max_scale}")
        self.max_scale = float(max_scale)

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        angle = uniform_angle(n, generator)
        log_scale = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.log(self.max_scale)
        return {"angle": angle, "log_scale": log_scale}

    def element(self, params: Params) -> Element:
        scale = torch.exp(params["log_scale"].to(torch.float64))
        return Element(matrix=scale[:, None, None] * rotation_matrix(params["angle"]))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        bound = math.log(self.max_scale)
        return ParamChoices(
            (angle_strategy(), float_param(-bound, bound)), lambda v: {"angle": batch1(v[0]), "log_scale": batch1(v[1])}
        )

    @property
    def lie_algebra(self) -> Tensor:
        return torch.stack([ROTATION_GENERATOR, SCALING_GENERATOR])

    def exp(self, coefficients: Tensor) -> Element:
        return self.element({"angle": coefficients[:, 0], "log_scale": coefficients[:, 1]})

    def log(self, g: Element) -> Tensor:
        """``(theta, log s)`` with ``s = sqrt(det M)`` and ``theta`` in (-pi, pi]."""
        m = g.linear(2)
        return torch.stack([angle_of(m), 0.5 * torch.log(torch.linalg.det(m))], dim=-1)
