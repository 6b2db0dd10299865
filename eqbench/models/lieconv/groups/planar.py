"""Lifts for groups of the plane: SO(2), the scale-rotation group R>0 x SO(2) and SE(2).

Encodings (points of ``R^2`` are read as complex numbers ``x + i y``):

* SO(2): a rotation ``R(theta)`` is the unit complex number ``(cos theta, sin theta)``. The
  orbit of ``x != 0`` is the circle of radius ``r = |x|``, origin ``o_r = (r, 0)``; ``x`` lifts
  to ``x / |x|`` with ``q = r``. (The origin is a fixed point: it lifts to ``(0, 0)``, which
  has zero dot and cross products with every element, so it stays invariant.)
* R>0 x SO(2): ``s R(theta)`` is the complex number ``s e^(i theta)``; the action on
  ``R^2 \\ {0}`` is simply transitive, ``x`` lifts to itself, no orbit coordinates. Lie algebra
  coordinates ``(log s, theta)`` (the reference's order).
* SE(2): ``(R(phi), t)`` is ``(cos phi, sin phi, t_x, t_y)``; transitive, the stabiliser of the
  origin is SO(2), so ``x`` lifts to ``(R(phi), x)`` with ``phi`` Haar-random. Lie algebra
  coordinates ``(theta, u_x, u_y)`` with ``exp(theta, u) = (R(theta), V(theta) u)``,
  ``V = sin(theta)/theta I + (1 - cos theta)/theta J`` and
  ``V^-1 = beta I - theta/2 J``, ``beta = (theta / 2) cot(theta / 2)``.

Distances follow the reference (mfinzi/LieConv ``lieGroups.py``): SO(2)
``alpha |theta| + (1 - alpha) |r_u - r_v| / (r_u + r_v + 1e-3)`` (a scale-relative orbit
distance); R>0 x SO(2) ``alpha |theta| + (1 - alpha) |log s|``; SE(2)
``alpha |theta| + (1 - alpha) ||u||``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from eqbench.groups.rotations3d import rotation_series
from eqbench.models.lieconv.groups.base import Lift, LiftingGroup, safe_norm, stratified_angles
from eqbench.models.lieconv.groups.translations import euclidean_distances

#: The reference's regulariser of the SO(2) orbit distance ``|r_u - r_v| / (r_u + r_v + eps)``.
RADIUS_EPS = 1e-3
#: Below this ``theta^2`` the series of ``beta = (theta/2) cot(theta/2)`` is used.
SMALL_ANGLE_SQUARED = 1e-6


def complex_multiply(a: Tensor, b: Tensor) -> Tensor:
    """``a b`` for complex numbers stored as ``(..., 2)`` (broadcasting)."""
    return torch.stack([a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1], a[..., 0] * b[..., 1] + a[..., 1] * b[..., 0]], -1)


def conjugate_multiply(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """``(Re, Im)`` of ``conj(v) u``: the dot product ``u . v`` (zeros unsigned) and the cross product ``v x u``."""
    dot = u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1]
    return unsigned_zeros(dot), v[..., 0] * u[..., 1] - v[..., 1] * u[..., 0]


def unsigned_zeros(dot: Tensor) -> Tensor:
    """``dot`` with ``-0.0`` made ``+0.0``, in place (so that ``atan2(cross, dot)`` is ``0`` for a zero lift).

    The origin, a fixed point of rotations, lifts to the zero complex number, so every pair
    with it has ``dot = cross = 0``, and the sign of that zero follows the quadrant of the
    other point; ``atan2(+-0, -0) = +-pi`` would then make the pair's angle depend on where
    the other point is (breaking invariance on pixel grids with a centre pixel).
    """
    return dot.masked_fill_(dot == 0, 0.0)


def all_pairs_dot_cross(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """``u_i . v_j`` (zeros unsigned) and ``v_j x u_i`` ``(B, m, n)`` for ``(B, m, 2)`` and ``(B, n, 2)``.

    Elementwise (:func:`conjugate_multiply` broadcast over the pairs): a batched matrix
    product with two terms per output runs far below the memory speed on CPU.
    """
    return conjugate_multiply(u[:, :, None], v[:, None])


def half_angle_cot(theta: Tensor) -> Tensor:
    """``beta = (theta / 2) cot(theta / 2)``, with its series ``1 - theta^2/12 - theta^4/720`` near 0."""
    squared = theta * theta
    small = squared < SMALL_ANGLE_SQUARED
    half = torch.where(small, torch.ones_like(theta), theta) / 2
    exact = half * torch.cos(half) / torch.sin(half)
    return torch.where(small, 1 - squared / 12 - squared * squared / 720, exact)


def rotate(cos_sin: Tensor, x: Tensor) -> Tensor:
    """``R(theta) x`` for ``(..., 2)`` rotations ``(cos, sin)`` and vectors (broadcasting)."""
    return complex_multiply(cos_sin, x)


def rotate_back(cos_sin: Tensor, x: Tensor) -> Tensor:
    """``R(theta)^T x``."""
    conjugate = torch.stack([cos_sin[..., 0], -cos_sin[..., 1]], -1)
    return complex_multiply(conjugate, x)


class SO2Lift(LiftingGroup):
    """SO(2) on the plane: deterministic lift ``x -> (x / |x|, q = |x|)``; ``a = theta``."""

    name = "SO(2)"
    space_dim = 2
    lie_dim = 1
    orbit_dim = 1
    element_dim = 2
    kernel_dim = 2

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return matrix[:, :, 0]

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        radius = safe_norm(points, keepdim=True)
        return Lift(points / radius.clamp_min(torch.finfo(points.dtype).tiny), radius)

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return elements * orbits

    def exp(self, a: Tensor) -> Tensor:
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)

    def log(self, elements: Tensor) -> Tensor:
        return torch.atan2(elements[..., 1:2], elements[..., 0:1])

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return complex_multiply(g, h)

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return rotate(g, points)

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        dot, cross = conjugate_multiply(u, v)
        return torch.atan2(cross, dot)[..., None]

    def kernel_features(self, a: Tensor) -> Tensor:
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)

    def orbit_distance(self, q_u: Tensor, q_v: Tensor) -> Tensor:
        return ((q_u - q_v).abs() / (q_u + q_v + RADIUS_EPS))[..., 0]

    def distance(self, a: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        return self.alpha * a[..., 0].abs() + (1 - self.alpha) * self.orbit_distance(q_u, q_v)

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        dot, cross = all_pairs_dot_cross(u.elements, v.elements)
        distance = torch.atan2(cross, dot, out=cross).abs_().mul_(self.alpha)
        r_u, r_v = u.orbits[:, :, None, 0], v.orbits[:, None, :, 0]
        difference = torch.sub(r_u, r_v, out=dot).abs_()
        return distance.addcdiv_(difference, r_u + (r_v + RADIUS_EPS), value=1 - self.alpha)


class RxSO2Lift(LiftingGroup):
    """R>0 x SO(2) (log-polar LieConv): ``x`` lifts to the complex number ``x``; ``a = (log s, theta)``.

    Points at the origin have no lift (``log 0``); their radius is clamped to the smallest
    positive float, so keep inputs away from the origin.
    """

    name = "RxSO(2)"
    space_dim = 2
    lie_dim = 2
    element_dim = 2
    kernel_dim = 3
    linear_part = "similarity"

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return matrix[:, :, 0]

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        return Lift(points, points.new_zeros(*points.shape[:2], 0))

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return elements

    def exp(self, a: Tensor) -> Tensor:
        scale = torch.exp(a[..., 0:1])
        return scale * torch.cat([torch.cos(a[..., 1:2]), torch.sin(a[..., 1:2])], dim=-1)

    def log(self, elements: Tensor) -> Tensor:
        radius = safe_norm(elements).clamp_min(torch.finfo(elements.dtype).tiny)
        return torch.stack([torch.log(radius), torch.atan2(elements[..., 1], elements[..., 0])], -1)

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return complex_multiply(g, h)

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return complex_multiply(g, points)

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        tiny = torch.finfo(u.dtype).tiny
        dot, cross = conjugate_multiply(u, v)
        log_ratio = torch.log(safe_norm(u).clamp_min(tiny)) - torch.log(safe_norm(v).clamp_min(tiny))
        return torch.stack([log_ratio, torch.atan2(cross, dot)], -1)

    def kernel_features(self, a: Tensor) -> Tensor:
        return torch.cat([a[..., 0:1], torch.cos(a[..., 1:2]), torch.sin(a[..., 1:2])], dim=-1)

    def distance(self, a: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        return self.alpha * a[..., 1].abs() + (1 - self.alpha) * a[..., 0].abs()

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        tiny = torch.finfo(u.elements.dtype).tiny
        dot, cross = all_pairs_dot_cross(u.elements, v.elements)
        distance = torch.atan2(cross, dot, out=cross).abs_().mul_(self.alpha)
        log_u = torch.log(safe_norm(u.elements).clamp_min(tiny))
        log_v = torch.log(safe_norm(v.elements).clamp_min(tiny))
        return distance.add_(torch.sub(log_u[:, :, None], log_v[:, None], out=dot).abs_(), alpha=1 - self.alpha)


class SE2Lift(LiftingGroup):
    """SE(2): ``x`` lifts to ``(R(phi), x)`` with Haar-random ``phi`` (stratified over ``liftsamples``); ``a = (theta, u)``."""

    name = "SE(2)"
    space_dim = 2
    lie_dim = 3
    element_dim = 4
    kernel_dim = 4
    random_lift = True
    translates = True

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return torch.cat([matrix[:, :, 0], translation], -1)

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        batch, n, _ = points.shape
        angles = stratified_angles((batch, n), samples, generator, points)
        rotations = torch.stack([torch.cos(angles), torch.sin(angles)], -1)
        translations = points[:, :, None, :].expand(batch, n, samples, 2)
        elements = torch.cat([rotations, translations], -1).reshape(batch, n * samples, 4)
        return Lift(elements, points.new_zeros(batch, n * samples, 0))

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return elements[..., 2:]

    def exp(self, a: Tensor) -> Tensor:
        theta = a[..., 0]
        sinc, cosc, _ = rotation_series(theta * theta)
        v_diag, v_off = sinc, cosc * theta
        u = a[..., 1:]
        translation = torch.stack([v_diag * u[..., 0] - v_off * u[..., 1], v_off * u[..., 0] + v_diag * u[..., 1]], -1)
        return torch.cat([torch.cos(a[..., 0:1]), torch.sin(a[..., 0:1]), translation], -1)

    def log(self, elements: Tensor) -> Tensor:
        theta = torch.atan2(elements[..., 1], elements[..., 0])
        return torch.cat([theta[..., None], inverse_left_jacobian_2d(theta, elements[..., 2:])], -1)

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        rotation = complex_multiply(g[..., :2], h[..., :2])
        translation = rotate(g[..., :2], h[..., 2:]) + g[..., 2:]
        return torch.cat([rotation, translation], -1)

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return rotate(g[..., :2], points) + g[..., 2:]

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        dot, cross = conjugate_multiply(u[..., :2], v[..., :2])
        theta = torch.atan2(cross, dot)
        offset = rotate_back(v[..., :2], u[..., 2:] - v[..., 2:])
        return torch.cat([theta[..., None], inverse_left_jacobian_2d(theta, offset)], -1)

    def kernel_features(self, a: Tensor) -> Tensor:
        return torch.cat([torch.cos(a[..., 0:1]), torch.sin(a[..., 0:1]), a[..., 1:]], dim=-1)

    def distance(self, a: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        return self.alpha * a[..., 0].abs() + (1 - self.alpha) * safe_norm(a[..., 1:])

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        """Closed form: ``||V^-1 t|| = ||t|| sqrt(beta^2 + theta^2 / 4)`` since ``J t`` is orthogonal to ``t``."""
        dot, cross = all_pairs_dot_cross(u.elements[..., :2], v.elements[..., :2])
        theta = torch.atan2(cross, dot)
        offset = euclidean_distances(u.elements[..., 2:], v.elements[..., 2:])
        stretch = torch.sqrt(half_angle_cot(theta).square() + theta.square() / 4)
        return self.alpha * theta.abs() + (1 - self.alpha) * offset * stretch


def inverse_left_jacobian_2d(theta: Tensor, t: Tensor) -> Tensor:
    """``V(theta)^-1 t = beta t - (theta / 2) J t`` with ``J t = (-t_y, t_x)`` (``t`` of shape ``(..., 2)``)."""
    beta = half_angle_cot(theta)
    half = theta / 2
    return torch.stack([beta * t[..., 0] + half * t[..., 1], beta * t[..., 1] - half * t[..., 0]], -1)
