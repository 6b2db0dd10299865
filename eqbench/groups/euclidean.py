"""Translations T(n) and the Euclidean groups SE(2), SE(3), E(3) = rotations (and reflections) with translations.

Translations are non-compact: eqbench draws them from ``N(0, sigma^2 I)`` (``sigma`` a
constructor argument, default 1), the stated distribution for the non-compact part. The
rotation part keeps its Haar measure. Points move as ``x -> R x + t``.
"""
from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.rotations2d import O2, SO2
from eqbench.groups.rotations3d import O3, SO3, hat, so3_generators
from eqbench.groups.strategies import float_param


def _translation_generators(dim: int) -> Tensor:
    basis = torch.zeros(dim, dim + 1, dim + 1, dtype=torch.float64)
    for i in range(dim):
        basis[i, i, dim] = 1.0
    return basis


class Translations(Group):
    """T(n): ``x -> x + t`` with ``t ~ N(0, sigma^2 I)``; Lie algebra of the ``n`` unit translations."""

    compact = False

    def __init__(self, dim: int = 3, sigma: float = 1.0) -> None:
        if dim < 1:
            raise ValueError(f"Translations needs dim >= 1, got {dim}")
        if sigma <= 0:
            raise ValueError(f"Translations needs sigma > 0, got {sigma}")
        self.space_dim = int(dim)
        self.sigma = float(sigma)
        self.name = f"T({dim})"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"translation": self.sigma * torch.randn(n, self.space_dim, generator=generator, dtype=torch.float64)}

    def element(self, params: Params) -> Element:
        t = params["translation"].to(torch.float64)
        return Element(matrix=torch.eye(self.space_dim, dtype=torch.float64).expand(t.shape[0], -1, -1).clone(), translation=t)

    def params_strategy(self, num_points: int | None = None):
        bound = 3 * self.sigma
        return st.lists(float_param(-bound, bound), min_size=self.space_dim, max_size=self.space_dim).map(
            lambda t: {"translation": torch.tensor([t], dtype=torch.float64)}
        )

    @property
    def lie_algebra(self) -> Tensor:
        return _translation_generators(self.space_dim)

    def exp(self, coefficients: Tensor) -> Element:
        return self.element({"translation": coefficients})

    def log(self, g: Element) -> Tensor:
        return g.translation.to(torch.float64)


class Euclidean(Group):
    """A rotation group (SO(d) or O(d)) with translations: SE(2), SE(3), E(2), E(3).

    Lie algebra: the rotation generators followed by the ``d`` translation generators.
    ``log`` uses the closed-form left Jacobian ``V`` of SE(2)/SE(3): ``t = V u`` for ``exp`` of ``(w, u)``.
    """

    compact = False

    def __init__(self, rotations: Group, name: str, sigma: float = 1.0) -> None:
        self.rotations = rotations
        self.translations = Translations(rotations.space_dim, sigma)
        self.space_dim = rotations.space_dim
        self.name = name

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {**self.rotations.sample_params(n, generator), **self.translations.sample_params(n, generator)}

    def element(self, params: Params) -> Element:
        rotation = self.rotations.element({k: v for k, v in params.items() if k != "translation"})
        return rotation.with_parts(translation=params["translation"].to(torch.float64))

    def params_strategy(self, num_points: int | None = None):
        return st.builds(lambda r, t: {**r, **t}, self.rotations.params_strategy(), self.translations.params_strategy())

    @property
    def lie_algebra(self) -> Tensor:
        rot = self.rotations.lie_algebra
        return torch.cat([rot, _translation_generators(self.space_dim)])

    def exp(self, coefficients: Tensor) -> Element:
        k = self.rotations.lie_algebra.shape[0]
        rotation = self.rotations.exp(coefficients[:, :k]).matrix
        jacobian = _left_jacobian(coefficients[:, :k].to(torch.float64), self.space_dim)
        translation = torch.einsum("bij,bj->bi", jacobian, coefficients[:, k:].to(torch.float64))
        return Element(matrix=rotation, translation=translation)

    def log(self, g: Element) -> Tensor:
        rotation_coefficients = self.rotations.log(g)
        jacobian = _left_jacobian(rotation_coefficients, self.space_dim)
        t = g.translation if g.translation is not None else torch.zeros(g.batch_size, self.space_dim, dtype=torch.float64)
        u = torch.linalg.solve(jacobian, t.to(torch.float64))
        return torch.cat([rotation_coefficients, u], dim=-1)


def _left_jacobian(rotation_coefficients: Tensor, dim: int) -> Tensor:
    """``V = sum_k K^k / (k+1)!`` for the rotation generator ``K`` (closed forms for d = 2, 3)."""
    if dim == 2:
        theta = rotation_coefficients[:, 0]
        small = theta.abs() < 1e-6
        safe = torch.where(small, torch.ones_like(theta), theta)
        a = torch.where(small, 1 - theta**2 / 6, torch.sin(safe) / safe)
        b = torch.where(small, theta / 2, (1 - torch.cos(safe)) / safe)
        return torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)
    theta = rotation_coefficients.norm(dim=-1)[:, None, None]
    small = theta < 1e-6
    safe = torch.where(small, torch.ones_like(theta), theta)
    b = torch.where(small, 0.5 - theta**2 / 24, (1 - torch.cos(safe)) / safe**2)
    c = torch.where(small, 1 / 6 - theta**2 / 120, (safe - torch.sin(safe)) / safe**3)
    k = hat(rotation_coefficients)
    eye = torch.eye(3, dtype=torch.float64).expand_as(k)
    return eye + b * k + c * (k @ k)


def SE2(sigma: float = 1.0) -> Euclidean:
    """SE(2): rotations and translations of the plane."""
    return Euclidean(SO2(), "SE(2)", sigma)


def E2(sigma: float = 1.0) -> Euclidean:
    """E(2): rotations, reflections and translations of the plane."""
    return Euclidean(O2(), "E(2)", sigma)


def SE3(sigma: float = 1.0) -> Euclidean:
    """SE(3): rotations and translations of space."""
    return Euclidean(SO3(), "SE(3)", sigma)


def E3(sigma: float = 1.0) -> Euclidean:
    """E(3): rotations, the inversion and translations of space."""
    return Euclidean(O3(), "E(3)", sigma)


__all__ = ["Translations", "Euclidean", "SE2", "E2", "SE3", "E3", "so3_generators"]
