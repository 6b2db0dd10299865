"""Rotations of space: SO(3) and O(3).

Haar sampling of SO(3): a standard Gaussian 4-vector normalised to a unit quaternion is
uniform on S^3, and the double cover S^3 -> SO(3) pushes that to the Haar measure
(Shoemake 1992). The rotation angle ``t`` of a Haar rotation then has density
``(1 - cos t) / pi`` on ``[0, pi]``. O(3) = SO(3) x {I, -I}, the inversion drawn with probability 1/2.
"""
from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.strategies import batch1, float_param

_SMALL_ANGLE = 1e-6


def so3_generators() -> Tensor:
    """``L_x, L_y, L_z`` as ``(3, 3, 3)`` float64: ``(L_i)_{jk} = -epsilon_{ijk}``, so ``L_i v = e_i x v``."""
    basis = torch.zeros(3, 3, 3, dtype=torch.float64)
    for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):
        basis[i, k, j] = 1.0
        basis[i, j, k] = -1.0
    return basis


def hat(omega: Tensor) -> Tensor:
    """The skew matrix ``[omega]_x`` of shape ``(B, 3, 3)``."""
    return torch.einsum("bi,ijk->bjk", omega, so3_generators().to(omega))


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternions ``(w, x, y, z)`` of shape ``(B, 4)`` (normalised here) to ``(B, 3, 3)`` rotations."""
    q = q.to(torch.float64)
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def so3_exp(omega: Tensor) -> Tensor:
    """Rodrigues: ``exp([w]_x) = I + sin t/t [w]_x + (1 - cos t)/t^2 [w]_x^2`` with ``t = |w|``."""
    omega = omega.to(torch.float64)
    theta = omega.norm(dim=-1)[:, None, None]
    small = theta < _SMALL_ANGLE
    safe = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta**2 / 6, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - theta**2 / 24, (1 - torch.cos(safe)) / safe**2)
    k = hat(omega)
    eye = torch.eye(3, dtype=torch.float64).expand_as(k)
    return eye + a * k + b * (k @ k)


def so3_log(rotation: Tensor) -> Tensor:
    """Axis-angle vector ``w`` (``|w|`` in ``[0, pi]``) with ``so3_exp(w) == rotation``.

    Uses the antisymmetric part away from ``t = pi`` and the symmetric part ``(R + R^T)/2 - cos t I = (1 - cos t) u u^T`` near it.
    """
    r = rotation.to(torch.float64)
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    theta = torch.acos(cos)
    skew = torch.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], -1) / 2
    sin = torch.sin(theta)
    small = theta < _SMALL_ANGLE
    factor = torch.where(small, 1 + theta**2 / 6, theta / torch.where(small, torch.ones_like(sin), sin))
    omega = skew * factor[:, None]
    near_pi = theta > 3.0
    if near_pi.any():
        rn = r[near_pi]
        eye = torch.eye(3, dtype=torch.float64)
        sym = (rn + rn.transpose(-1, -2)) / 2 - cos[near_pi, None, None] * eye  # = (1 - cos t) u u^T exactly
        column = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
        u = sym[torch.arange(sym.shape[0]), :, column]
        u = u / u.norm(dim=-1, keepdim=True)
        sign = torch.sign((u * skew[near_pi]).sum(-1))
        u = u * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
        omega[near_pi] = u * theta[near_pi, None]
    return omega


def haar_quaternion(n: int, generator: torch.Generator) -> Tensor:
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return q / q.norm(dim=-1, keepdim=True)


def _quaternion_strategy():
    """Four floats in [-1, 1]; (1, 0, 0, 0) is the identity and (0, 0, 0, 0) also maps to it."""

    def build(w: float, x: float, y: float, z: float) -> Tensor:
        q = torch.tensor([[1.0 - w, x, y, z]], dtype=torch.float64)
        return q if q.norm() > 1e-3 else torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)

    c = float_param(-1.0, 1.0)
    return st.builds(build, float_param(0.0, 2.0), c, c, c)


class SO3(Group):
    """Rotations of R^3; Lie algebra spanned by ``L_x, L_y, L_z``."""

    name = "SO(3)"
    space_dim = 3

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"quaternion": haar_quaternion(n, generator)}

    def element(self, params: Params) -> Element:
        return Element(matrix=quaternion_to_matrix(params["quaternion"]))

    def params_strategy(self, num_points: int | None = None):
        return _quaternion_strategy().map(lambda q: {"quaternion": q})

    @property
    def lie_algebra(self) -> Tensor:
        out = torch.zeros(3, 4, 4, dtype=torch.float64)
        out[:, :3, :3] = so3_generators()
        return out

    def exp(self, coefficients: Tensor) -> Element:
        return Element(matrix=so3_exp(coefficients), translation=torch.zeros(coefficients.shape[0], 3, dtype=torch.float64))

    def log(self, g: Element) -> Tensor:
        return so3_log(g.linear(3))


class O3(SO3):
    """Rotations and the inversion ``-I`` of R^3 (parity drawn with probability 1/2).

    Its Lie algebra is SO(3)'s; ``log`` is defined on the identity component only.
    """

    name = "O(3)"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        params = super().sample_params(n, generator)
        params["reflect"] = (torch.rand(n, generator=generator) < 0.5).long()
        return params

    def element(self, params: Params) -> Element:
        rot = quaternion_to_matrix(params["quaternion"])
        sign = 1 - 2 * params["reflect"].to(torch.float64)
        return Element(matrix=rot * sign[:, None, None])

    def params_strategy(self, num_points: int | None = None):
        return st.builds(
            lambda q, r: {"quaternion": q, "reflect": batch1(r, torch.long)}, _quaternion_strategy(), st.integers(0, 1)
        )

    def log(self, g: Element) -> Tensor:
        if (g.determinant() < 0).any():
            raise ValueError("O(3).log is defined on rotations only; this element contains the inversion -I")
        return super().log(g)
