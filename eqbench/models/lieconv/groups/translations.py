"""Lifts with a trivial group part: the translations T(n) and the trivial group.

* ``T(n)`` acts on ``R^n`` by ``x -> x + t``, simply transitively: a point lifts to the one
  translation ``u = x`` taking the origin to it, there are no orbit coordinates, and
  ``log(v^-1 u) = x_u - x_v``. The distance is ``alpha ||x_u - x_v||`` (the reference's).
* The trivial group ``{e}`` on ``R^d``: every point is its own orbit, ``q = x``; the pair
  representation is ``[q_u, q_v] = [x_u, x_v]`` and the distance ``(1 - alpha) ||x_u - x_v||``.
  A LieConv on it is a PointConv on raw coordinates, invariant to nothing (the baseline).
"""
from __future__ import annotations

import torch
from torch import Tensor

from eqbench.models.lieconv.groups.base import Lift, LiftingGroup


class TranslationLift(LiftingGroup):
    """``T(dim)``: elements are translation vectors; ``exp``/``log`` are the identity map."""

    linear_part = "identity"
    translates = True

    def __init__(self, dim: int = 2, alpha: float = 0.2) -> None:
        if dim < 1:
            raise ValueError(f"TranslationLift needs dim >= 1, got {dim}")
        self.space_dim = self.lie_dim = self.element_dim = self.kernel_dim = int(dim)
        self.name = f"T({dim})"
        super().__init__(alpha)

    def __repr__(self) -> str:
        return f"TranslationLift(dim={self.space_dim}, alpha={self.alpha:g})"

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return translation

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        return Lift(points, points.new_zeros(*points.shape[:2], 0))

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return elements

    def exp(self, a: Tensor) -> Tensor:
        return a

    def log(self, elements: Tensor) -> Tensor:
        return elements

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return g + h

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return points + g

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        return u - v

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        return euclidean_distances(u.elements, v.elements).mul_(self.alpha)


class TrivialLift(LiftingGroup):
    """The trivial group on ``R^dim``: no group part, orbit coordinates ``q = x``."""

    lie_dim = element_dim = kernel_dim = 0
    linear_part = "identity"

    def __init__(self, dim: int = 2, alpha: float = 0.2) -> None:
        if dim < 1:
            raise ValueError(f"TrivialLift needs dim >= 1, got {dim}")
        self.space_dim = self.orbit_dim = int(dim)
        self.name = "trivial"
        super().__init__(alpha)

    def __repr__(self) -> str:
        return f"TrivialLift(dim={self.space_dim}, alpha={self.alpha:g})"

    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        return translation.new_zeros(translation.shape[0], 0)

    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        return Lift(points.new_zeros(*points.shape[:2], 0), points)

    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        return orbits

    def exp(self, a: Tensor) -> Tensor:
        return a

    def log(self, elements: Tensor) -> Tensor:
        return elements

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return torch.zeros(torch.broadcast_shapes(g.shape, h.shape), dtype=g.dtype, device=g.device)

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        return points

    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        return torch.zeros(torch.broadcast_shapes(u.shape, v.shape), dtype=u.dtype, device=u.device)

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        return euclidean_distances(u.orbits, v.orbits).mul_(1 - self.alpha)


def euclidean_distances(x: Tensor, y: Tensor) -> Tensor:
    """``||x_i - y_j||`` for ``(B, m, d)`` and ``(B, n, d)``: ``(B, m, n)``, from explicit differences.

    (``torch.cdist``'s matrix-product shortcut loses precision in float32, which would
    make distances of transformed inputs differ by more than rounding.)
    """
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
