"""The rotation group SO(3) of R^3, parameterised by unit quaternions.

Haar sampling: a standard Gaussian 4-vector normalised to unit length is uniform on S^3,
and the double cover S^3 -> SO(3) pushes that forward to the Haar measure (Shoemake 1992,
"Uniform random rotations"). The rotation angle ``t`` of a Haar rotation has density
``(1 - cos t) / pi`` on ``[0, pi]`` and its axis is uniform on S^2.

Quaternions are stored scalar first, ``q = (w, x, y, z)``; ``q`` and ``-q`` are the same rotation.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices, float_param

#: Below this squared angle ``exp`` and the SE(3) Jacobian use Taylor series (smooth at 0, so jvp works there).
SMALL_ANGLE_SQUARED = 1e-8
#: Quaternions shorter than this before normalisation are rejected by the hypothesis strategy.
MIN_QUATERNION_NORM = 0.1


def so3_generators() -> Tensor:
    """``L_x, L_y, L_z`` as ``(3, 3, 3)`` float64 with ``(L_i)_{jk} = -epsilon_{ijk}``, so ``L_i v = e_i x v``."""
    basis = torch.zeros(3, 3, 3, dtype=torch.float64)
    for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):
        basis[i, k, j] = 1.0
        basis[i, j, k] = -1.0
    return basis


def hat(omega: Tensor) -> Tensor:
    """The skew matrix ``[omega]_x = sum_i omega_i L_i`` of shape ``(B, 3, 3)``."""
    return torch.einsum("bi,ijk->bjk", omega, so3_generators().to(omega))


def vee(skew: Tensor) -> Tensor:
    """The vector ``omega`` of the antisymmetric part of ``(B, 3, 3)`` matrices: ``vee([omega]_x) = omega``."""
    return torch.stack([skew[:, 2, 1] - skew[:, 1, 2], skew[:, 0, 2] - skew[:, 2, 0], skew[:, 1, 0] - skew[:, 0, 1]], -1) / 2


def quaternion_form() -> Tensor:
    """The ``(16, 9)`` matrix ``C`` with ``R(q) = (q q^T).flatten() @ C / |q|^2`` for every quaternion ``q = (w, x, y, z)``.

    Each entry of the rotation of a unit quaternion is a quadratic form in ``q``:
    ``R = (w^2 - |v|^2) I + 2 v v^T + 2 w [v]_x`` with ``v = (x, y, z)``; dividing by ``|q|^2``
    makes it exact for quaternions of any norm. Cross terms are split evenly between ``q_a q_b``
    and ``q_b q_a``.
    """
    form = torch.zeros(4, 4, 3, 3, dtype=torch.float64)
    for i in range(3):
        form[0, 0, i, i] = 1.0
        for k in range(3):
            form[k + 1, k + 1, i, i] = 1.0 if k == i else -1.0
        for j in range(3):
            if i != j:
                form[i + 1, j + 1, i, j] = form[j + 1, i + 1, i, j] = 1.0
    for (i, j), k in {(2, 1): 0, (0, 2): 1, (1, 0): 2}.items():  # 2 w [v]_x: entry (i, j) is +2 w v_k, (j, i) is -2 w v_k
        form[0, k + 1, i, j] = form[k + 1, 0, i, j] = 1.0
        form[0, k + 1, j, i] = form[k + 1, 0, j, i] = -1.0
    return form.reshape(16, 9)


QUATERNION_FORM = quaternion_form()


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Quaternions ``(w, x, y, z)`` of shape ``(B, 4)``, any nonzero norm, to rotations ``(B, 3, 3)`` (:func:`quaternion_form`)."""
    q = q.to(torch.float64)
    q = q / q.abs().amax(-1, keepdim=True)  # scale to max |q_i| = 1 first: no underflow in q q^T for tiny q
    outer = (q[:, :, None] * q[:, None, :]).reshape(-1, 16)
    return (outer @ QUATERNION_FORM.to(q.device) / (q * q).sum(-1, keepdim=True)).reshape(-1, 3, 3)


def rotation_series(theta_squared: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(sin t / t, (1 - cos t) / t^2, (t - sin t) / t^3)`` from ``t^2``, Taylor series near 0.

    Computed from ``t^2`` so that they stay differentiable at ``t = 0`` (``|omega|`` is not).
    """
    small = theta_squared < SMALL_ANGLE_SQUARED
    t2 = torch.where(small, torch.ones_like(theta_squared), theta_squared)
    t = torch.sqrt(t2)
    sin_t, cos_t = torch.sin(t), torch.cos(t)
    a = torch.where(small, 1 - theta_squared / 6, sin_t / t)
    b = torch.where(small, 0.5 - theta_squared / 24, (1 - cos_t) / t2)
    c = torch.where(small, 1 / 6 - theta_squared / 120, (t - sin_t) / (t2 * t))
    return a, b, c


def so3_exp(omega: Tensor) -> Tensor:
    """Rodrigues' formula ``exp([w]_x) = I + sin t / t [w]_x + (1 - cos t) / t^2 [w]_x^2``, ``t = |w|``."""
    omega = omega.to(torch.float64)
    a, b, _ = rotation_series((omega * omega).sum(-1))
    k = hat(omega)
    eye = torch.eye(3, dtype=torch.float64).expand_as(k)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


def so3_log(rotation: Tensor) -> Tensor:
    """The axis-angle vector ``w`` (``|w|`` in ``[0, pi]``) with ``so3_exp(w) == rotation``.

    With ``R = cos t I + sin t [u]_x + (1 - cos t) u u^T``: ``t = atan2(|vee(R)|, (tr R - 1) / 2)``
    (accurate at every angle). For ``t <= pi / 2`` ``w = t / sin t * vee(R)``; beyond, where
    ``sin t`` vanishes, ``u`` comes from the symmetric part ``(R + R^T) / 2 - cos t I = (1 - cos t) u u^T``
    (its largest column) with the sign of ``vee(R) = sin t u``.
    """
    r = rotation.to(torch.float64)
    skew = vee(r)
    sin = skew.norm(dim=-1)
    cos = (r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    theta = torch.atan2(sin, cos)
    small = theta < 1e-4
    ratio = torch.where(small, 1 + theta**2 / 6, theta / torch.where(small, torch.ones_like(sin), sin))
    near_axis = skew * ratio[:, None]

    eye = torch.eye(3, dtype=torch.float64)
    outer = (r + r.transpose(-1, -2)) / 2 - cos[:, None, None] * eye
    column = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)
    u = outer[torch.arange(r.shape[0]), :, column]
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    sign = torch.where((u * skew).sum(-1) < 0, -1.0, 1.0).to(torch.float64)
    near_pi = u * (sign * theta)[:, None]
    return torch.where((cos < 0)[:, None], near_pi, near_axis)


def haar_quaternion(n: int, generator: torch.Generator) -> Tensor:
    """``n`` unit quaternions uniform on S^3 (normalised standard Gaussians)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return q / q.norm(dim=-1, keepdim=True)


def quaternion_choices() -> ParamChoices:
    """A ``(1, 4)`` unit quaternion from four floats: scalar part ``1 - s``, ``s`` in [0, 2], vector part in [-1, 1]^3.

    Every float shrinking to 0 gives ``(1, 0, 0, 0)``: the identity rotation. The raw
    quaternion is normalised; one shorter than ``MIN_QUATERNION_NORM`` is read as the identity
    instead, so that no draw is rejected (a hypothesis filter would cost a draw of its own per
    example). By volume that is 3e-5 of the box the floats fill; hypothesis, which favours the
    simple values ``s = 1`` and ``0``, lands there on about 0.8% of its draws.
    """
    c = float_param(-1.0, 1.0)
    return ParamChoices((float_param(0.0, 2.0), c, c, c), lambda v: {"quaternion": unit_quaternion(v)})


def unit_quaternion(values: Sequence[float]) -> Tensor:
    """``(1 - s, x, y, z)`` normalised as a ``(1, 4)`` tensor, or the identity when shorter than ``MIN_QUATERNION_NORM``."""
    raw = (1.0 - values[0], values[1], values[2], values[3])
    norm = math.sqrt(sum(c * c for c in raw))
    return torch.tensor([[c / norm for c in raw] if norm >= MIN_QUATERNION_NORM else [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)


class SO3(ComparedByValue, Group):
    """Rotations of R^3; parameters ``{"quaternion": (n, 4)}``; Lie algebra ``L_x, L_y, L_z``.

    ``exp`` is Rodrigues' formula and ``log`` the axis-angle map (closed forms).
    """

    name = "SO(3)"
    space_dim = 3

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"quaternion": haar_quaternion(n, generator)}

    def element(self, params: Params) -> Element:
        return Element(matrix=quaternion_to_matrix(params["quaternion"]))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        return quaternion_choices()

    @property
    def lie_algebra(self) -> Tensor:
        out = torch.zeros(3, 4, 4, dtype=torch.float64)
        out[:, :3, :3] = so3_generators()
        return out

    def exp(self, coefficients: Tensor) -> Element:
        return Element(matrix=so3_exp(coefficients))

    def log(self, g: Element) -> Tensor:
        return so3_log(g.linear(3))
