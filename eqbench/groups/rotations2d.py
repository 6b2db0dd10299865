"""Groups acting on the plane: SO(2), O(2), the scale-rotation group R>0 x SO(2), C_n and D_n.

Haar measures: the angle of SO(2) is uniform on [-pi, pi); O(2) adds a reflection
``diag(1, -1)`` with probability 1/2; C_n / D_n are uniform on their elements. The scale of
R>0 x SO(2) (non-compact) is drawn log-uniform on [1/max_scale, max_scale] (stated
distribution; log-uniform is the Haar measure of R>0 restricted to that interval).
"""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.strategies import batch1, float_param

ROTATION_GENERATOR = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
SCALING_GENERATOR = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
REFLECTION = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))


def rotation_matrix(angle: Tensor) -> Tensor:
    """``R(theta) = [[cos, -sin], [sin, cos]]`` of shape ``(B, 2, 2)``."""
    angle = angle.to(torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def uniform_angle(n: int, generator: torch.Generator) -> Tensor:
    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi


def angle_of(matrix: Tensor) -> Tensor:
    """The rotation angle in (-pi, pi] of (scaled) rotation matrices."""
    return torch.atan2(matrix[:, 1, 0], matrix[:, 0, 0])


class SO2(Group):
    """Rotations of the plane, ``R(theta)``; Lie algebra spanned by ``[[0, -1], [1, 0]]``."""

    name = "SO(2)"
    space_dim = 2

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"angle": uniform_angle(n, generator)}

    def element(self, params: Params) -> Element:
        return Element(matrix=rotation_matrix(params["angle"]))

    def params_strategy(self, num_points: int | None = None):
        return st.builds(lambda a: {"angle": batch1(a)}, float_param(-math.pi, math.pi))

    @property
    def lie_algebra(self) -> Tensor:
        return ROTATION_GENERATOR[None].clone()

    def exp(self, coefficients: Tensor) -> Element:
        return Element(matrix=rotation_matrix(coefficients[:, 0]), translation=torch.zeros(coefficients.shape[0], 2, dtype=torch.float64))

    def log(self, g: Element) -> Tensor:
        return angle_of(g.linear(2))[:, None]


class O2(SO2):
    """Rotations and reflections of the plane: ``R(theta) diag(1, -1)^r``, ``r`` in {0, 1}.

    Its Lie algebra is SO(2)'s; ``log`` is defined on the rotations only.
    """

    name = "O(2)"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        reflect = (torch.rand(n, generator=generator) < 0.5).long()
        return {"angle": uniform_angle(n, generator), "reflect": reflect}

    def element(self, params: Params) -> Element:
        rot = rotation_matrix(params["angle"])
        flips = params["reflect"].to(torch.bool)
        return Element(matrix=torch.where(flips[:, None, None], rot @ REFLECTION, rot))

    def params_strategy(self, num_points: int | None = None):
        return st.builds(
            lambda a, r: {"angle": batch1(a), "reflect": batch1(r, torch.long)},
            float_param(-math.pi, math.pi),
            st.integers(0, 1),
        )

    def log(self, g: Element) -> Tensor:
        if (g.determinant() < 0).any():
            raise ValueError("O(2).log is defined on rotations only; this element contains a reflection")
        return super().log(g)


class ScaleRotation(Group):
    """The scale-rotation group R>0 x SO(2) acting as ``x -> s R(theta) x`` (LieConv's "RxSO2").

    ``log_scale`` is uniform on ``[-log max_scale, log max_scale]`` (default ``max_scale = 2``).
    Lie algebra: the rotation generator and the identity (scaling) generator.
    """

    space_dim = 2
    compact = False

    def __init__(self, max_scale: float = 2.0) -> None:
        if max_scale <= 1.0:
            raise ValueError(f"ScaleRotation needs max_scale > 1, got {max_scale}")
        self.max_scale = float(max_scale)
        self.name = "RxSO(2)"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        bound = math.log(self.max_scale)
        log_scale = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return {"angle": uniform_angle(n, generator), "log_scale": log_scale}

    def element(self, params: Params) -> Element:
        scale = torch.exp(params["log_scale"].to(torch.float64))
        return Element(matrix=scale[:, None, None] * rotation_matrix(params["angle"]))

    def params_strategy(self, num_points: int | None = None):
        bound = math.log(self.max_scale)
        return st.builds(
            lambda a, s: {"angle": batch1(a), "log_scale": batch1(s)},
            float_param(-math.pi, math.pi),
            float_param(-bound, bound),
        )

    @property
    def lie_algebra(self) -> Tensor:
        return torch.stack([ROTATION_GENERATOR, SCALING_GENERATOR])

    def exp(self, coefficients: Tensor) -> Element:
        params = {"angle": coefficients[:, 0], "log_scale": coefficients[:, 1]}
        return self.element(params).with_parts(translation=torch.zeros(coefficients.shape[0], 2, dtype=torch.float64))

    def log(self, g: Element) -> Tensor:
        m = g.linear(2)
        log_scale = 0.5 * torch.log(torch.linalg.det(m))
        return torch.stack([angle_of(m), log_scale], dim=-1)


class Cyclic(Group):
    """C_n: rotations of the plane by ``2 pi k / n``. For n in {1, 2, 4} the matrices are exact integers."""

    space_dim = 2

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Cyclic group needs n >= 1, got {n}")
        self.n = int(n)
        self.name = f"C{self.n}"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"k": torch.randint(0, self.n, (n,), generator=generator), "reflect": torch.zeros(n, dtype=torch.long)}

    def element(self, params: Params) -> Element:
        rot = _exact_rotation(params["k"], self.n)
        flips = params["reflect"].to(torch.bool)
        return Element(matrix=torch.where(flips[:, None, None], rot @ REFLECTION, rot))

    def params_strategy(self, num_points: int | None = None):
        return st.builds(lambda k: {"k": batch1(k, torch.long), "reflect": batch1(0, torch.long)}, st.integers(0, self.n - 1))

    def order(self, num_points: int | None = None) -> int:
        return self.n

    def elements(self, num_points: int | None = None) -> Element:
        return self.element({"k": torch.arange(self.n), "reflect": torch.zeros(self.n, dtype=torch.long)})


class Dihedral(Cyclic):
    """D_n: the ``2n`` symmetries of the regular n-gon, ``R(2 pi k / n) diag(1, -1)^r``."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.name = f"D{self.n}"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        k = torch.randint(0, self.n, (n,), generator=generator)
        return {"k": k, "reflect": torch.randint(0, 2, (n,), generator=generator)}

    def params_strategy(self, num_points: int | None = None):
        return st.builds(
            lambda k, r: {"k": batch1(k, torch.long), "reflect": batch1(r, torch.long)},
            st.integers(0, self.n - 1),
            st.integers(0, 1),
        )

    def order(self, num_points: int | None = None) -> int:
        return 2 * self.n

    def elements(self, num_points: int | None = None) -> Element:
        k = torch.arange(self.n).repeat(2)
        reflect = torch.arange(2).repeat_interleave(self.n)
        return self.element({"k": k, "reflect": reflect})


def _exact_rotation(k: Tensor, n: int) -> Tensor:
    """Rotation by ``2 pi k / n``, with cos/sin rounded to integers when they are integers (grid symmetries)."""
    matrix = rotation_matrix(2 * math.pi * k.to(torch.float64) / n)
    rounded = torch.round(matrix)
    return torch.where((matrix - rounded).abs() < 1e-12, rounded, matrix)
