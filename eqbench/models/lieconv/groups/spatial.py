"""Lifts for groups of space: SO(3) and SE(3).

Encodings: a rotation is its matrix flattened row-major to 9 numbers; an SE(3) element
``(R, t)`` is those 9 followed by ``t``. Lie algebra coordinates are the axis-angle vector
``w`` (``|w| = theta`` in ``[0, pi]``) and, for SE(3), ``(w, u)`` with ``exp(w, u) = (exp[w], V(w) u)``,
``V(w) u = u + b w x u + c w x (w x u)`` (``b = (1 - cos theta)/theta^2``, ``c = (theta - sin theta)/theta^3``)
and ``V(w)^-1 t = t - w x t / 2 + gamma w x (w x t)``, ``gamma = (1 - (theta/2) cot(theta/2)) / theta^2``.
Rodrigues' formula and the axis-angle logarithm are eqbench's (:mod:`eqbench.groups.rotations3d`).

* SO(3) on ``R^3``: the orbit of ``x`` is the sphere of radius ``q = |x|``, origin ``o_q = q e_1``,
  stabiliser the rotations about ``e_1``. ``x`` lifts to ``F(x) Rot_1(phi)`` where ``F(x)`` is a
  rotation with first column ``x / |x|`` and ``phi`` is Haar-random (stratified over samples):
  whatever frame ``F`` is chosen, the lifted elements are uniform on the coset. The origin is
  fixed by every rotation, so it lifts to Haar-random rotations (its coset is all of SO(3)).
* SE(3): transitive; the stabiliser of the origin is SO(3), so ``x`` lifts to ``(R, x)`` with
  ``R`` Haar-random (normalised Gaussian quaternions, Shoemake 1992).

Distances follow the reference: SO(3) ``alpha theta + (1 - alpha) |q_u - q_v|``; SE(3)
``alpha theta + (1 - alpha) ||u||``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from eqbench.groups.rotations3d import quaternion_to_matrix, rotation_series, so3_exp, so3_log
from eqbench.models.lieconv.groups.base import Lift, LiftingGroup, normal, safe_norm, stratified_angles
from eqbench.models.lieconv.groups.planar import SMALL_ANGLE_SQUARED, half_angle_cot


def matrices(elements: Tensor) -> Tensor:
    """``(..., 9)`` row-major rotation encodings as ``(..., 3, 3)`` matrices."""
    return elements[..., :9].unflatten(-1, (3, 3))


def rotation_exp(w: Tensor) -> Tensor:
    """Rodrigues' formula for axis-angle vectors ``(..., 3)``: rotation matrices ``(..., 3, 3)`` in ``w``'s dtype."""
    return so3_exp(w.reshape(-1, 3)).to(w.dtype).reshape(*w.shape[:-1], 3, 3)


def rotation_log(r: Tensor) -> Tensor:
    """The axis-angle vector ``(..., 3)`` of rotation matrices ``(..., 3, 3)`` (``|w| <= pi``), in ``r``'s dtype."""
    return so3_log(r.reshape(-1, 3, 3)).to(r.dtype).reshape(*r.shape[:-2], 3)


def apply_rotation(r: Tensor, x: Tensor) -> Tensor:
    """``R x`` for matrices ``(..., 3, 3)`` and vectors ``(..., 3)`` (broadcasting)."""
    return (r * x[..., None, :]).sum(-1)


def apply_transpose(r: Tensor, x: Tensor) -> Tensor:
    """``R^T x`` (broadcasting)."""
    return (r * x[..., :, None]).sum(-2)


def inverse_left_jacobian(w: Tensor, t: Tensor) -> Tensor:
    """``V(w)^-1 t = t - w x t / 2 + gamma w x (w x t)`` (series ``gamma = 1/12 + theta^2/720`` near 0)."""
    w, t = torch.broadcast_tensors(w, t)
    squared = (w * w).sum(-1, keepdim=True)
    small = squared < SMALL_ANGLE_SQUARED
    theta = torch.sqrt(torch.where(small, torch.ones_like(squared), squared))
    exact = (1 - half_angle_cot(theta)) / torch.where(small, torch.ones_like(squared), squared)
    gamma = torch.where(small, 1 / 12 + squared / 720, exact)
    wt = torch.linalg.cross(w, t)
    return t - wt / 2 + gamma * torch.linalg.cross(w, wt)


def left_jacobian_apply(w: Tensor, u: Tensor) -> Tensor:
    """``V(w) u = u + b w x u + c w x (w x u)`` (coefficients from eqbench's ``rotation_series``)."""
    w, u = torch.broadcast_tensors(w, u)
    _, b, c = rotation_series((w * w).sum(-1, keepdim=True))
    wu = torch.linalg.cross(w, u)
    return u + b * wu + c * torch.linalg.cross(w, wu)


def frame_with_first_column(direction: Tensor) -> Tensor:
    """Rotations ``(..., 3, 3)`` whose first column is the unit vector ``direction`` ``(..., 3)``.

    The second column is a helper axis (``e_3``, or ``e_2`` when ``direction`` is within
    about 25 degrees of ``e_3``) made orthogonal by Gram-Schmidt, the third their cross product.
    """
    helper = torch.zeros_like(direction)
    near_pole = direction[..., 2].abs() > 0.9
    helper[..., 2] = torch.where(near_pole, 0.0, 1.0).to(direction.dtype)
    helper[..., 1] = torch.where(near_pole, 1.0, 0.0).to(direction.dtype)
    second = helper - (helper * direction).sum(-1, keepdim=True) * direction
    second = second / safe_norm(second, keepdim=True)
    third = torch.linalg.cross(direction, second)
    return torch.stack([direction, second, third], dim=-1)


def haar_rotations(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Haar-random rotations ``(*shape, 9)`` (row-major) in ``like``'s dtype: normalised Gaussian quaternions (Shoemake 1992)."""
    quaternions = normal((math.prod(shape), 4), generator, like)
    return quaternion_to_matrix(quaternions).to(like.dtype).reshape(*shape, 9)


class SO3Lift(LiftingGroup):
    """SO(3) on ``R^3``: ``x`` lifts to rotations taking ``|x| e_1`` to ``x`` (random about ``e_1``); ``q = |x|``."""

    name = "SO(3)"
    space_dim = 3
    lie_dim = 3
    orbit_dim = 1
    element_dim = 9
    kernel_dim = 3
    random_lift = True

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return matrix.flatten(1)

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        batch, n, _ = points.shape
        radius = safe_norm(points, keepdim=True)
        e1 = torch.zeros_like(points)
        e1[..., 0] = 1.0
        direction = torch.where(radius > 0, points / radius.clamp_min(torch.finfo(points.dtype).tiny), e1)
        frame = frame_with_first_column(direction)[:, :, None]  # (B, n, 1, 3, 3)
        angles = stratified_angles((batch, n), samples, generator, points)
        cos, sin = torch.cos(angles)[..., None], torch.sin(angles)[..., None]
        second, third = frame[..., 1], frame[..., 2]
        columns = [frame[..., 0].expand_as(second * cos), cos * second + sin * third, cos * third - sin * second]
        rotations = torch.stack(columns, dim=-1)  # F Rot_1(phi), (B, n, s, 3, 3)
        elements = rotations.reshape(batch, n * samples, 9)
        origin = (radius == 0).expand(batch, n, samples).reshape(batch, n * samples)
        if bool(origin.any()):
            elements = torch.where(origin[..., None], haar_rotations((batch, n * samples), generator, points), elements)
        orbits = radius[:, :, None, :].expand(batch, n, samples, 1).reshape(batch, n * samples, 1)
        return Lift(elements, orbits)

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return matrices(elements)[..., 0] * orbits

    def exp(self, a: Tensor) -> Tensor:
        return rotation_exp(a).flatten(-2)

    def log(self, elements: Tensor) -> Tensor:
        return rotation_log(matrices(elements))

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return (matrices(g) @ matrices(h)).flatten(-2)

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return apply_rotation(matrices(g), points)

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        return rotation_log(matrices(v).transpose(-1, -2) @ matrices(u))

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        """``alpha theta_uv + (1 - alpha) |q_u - q_v|`` for all pairs, from ``(B, m, n)`` bilinear forms only.

        With ``M = R_v^T R_u``: ``cos theta = (tr M - 1) / 2`` and ``sin theta = |vee(M)|``, each
        entry of ``M`` a dot product of a column of ``R_v`` with one of ``R_u``; ``atan2`` of the
        two is accurate at every angle (a chordal ``2 asin(|R_u - R_v| / 2 sqrt 2)`` loses half
        the digits near ``pi``, where the stratified lift samples of one point sit).
        """
        theta = all_pairs_rotation_angles(u.elements, v.elements)
        orbit = (u.orbits[:, :, None, 0] - v.orbits[:, None, :, 0]).abs()
        return theta.mul_(self.alpha).add_(orbit, alpha=1 - self.alpha)


def all_pairs_rotation_angles(u: Tensor, v: Tensor) -> Tensor:
    """Angles ``(B, m, n)`` of ``R_v^T R_u`` for row-major rotation encodings ``(B, m, 9)`` and ``(B, n, 9)``."""
    cu, cv = matrices(u).unbind(-1), matrices(v).unbind(-1)  # columns, (B, ., 3) each

    def difference(a: int, b: int) -> Tensor:  # M[a, b] - M[b, a] = <cv_a, cu_b> - <cv_b, cu_a>
        return torch.cat([cu[b], cu[a]], -1) @ torch.cat([cv[a], -cv[b]], -1).transpose(1, 2)

    twice_sin = difference(2, 1).square_().add_(difference(0, 2).square_()).add_(difference(1, 0).square_()).sqrt_()
    trace = u[..., :9] @ v[..., :9].transpose(1, 2)
    return torch.atan2(twice_sin, trace.sub_(1), out=twice_sin)


class SE3Lift(LiftingGroup):
    """SE(3): ``x`` lifts to ``(R, x)`` with Haar-random ``R``; ``a = (w, u)``."""

    name = "SE(3)"
    space_dim = 3
    lie_dim = 6
    element_dim = 12
    kernel_dim = 6
    random_lift = True
    translates = True

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return torch.cat([matrix.flatten(1), translation], -1)

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        batch, n, _ = points.shape
        rotations = haar_rotations((batch, n, samples), generator, points)
        translations = points[:, :, None, :].expand(batch, n, samples, 3)
        elements = torch.cat([rotations, translations], -1).reshape(batch, n * samples, 12)
        return Lift(elements, points.new_zeros(batch, n * samples, 0))

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return elements[..., 9:]

    def exp(self, a: Tensor) -> Tensor:
        w, u = a[..., :3], a[..., 3:]
        return torch.cat([rotation_exp(w).flatten(-2), left_jacobian_apply(w, u)], -1)

    def log(self, elements: Tensor) -> Tensor:
        w = rotation_log(matrices(elements))
        return torch.cat([w, inverse_left_jacobian(w, elements[..., 9:])], -1)

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        rotation = matrices(g) @ matrices(h)
        translation = apply_rotation(matrices(g), h[..., 9:]) + g[..., 9:]
        return torch.cat([rotation.flatten(-2), translation], -1)

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return apply_rotation(matrices(g), points) + g[..., 9:]

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        r_v = matrices(v)
        w = rotation_log(r_v.transpose(-1, -2) @ matrices(u))
        return torch.cat([w, inverse_left_jacobian(w, apply_transpose(r_v, u[..., 9:] - v[..., 9:]))], -1)

    def distance(self, a: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        return self.alpha * safe_norm(a[..., :3]) + (1 - self.alpha) * safe_norm(a[..., 3:])
