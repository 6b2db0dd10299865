"""Translations T(d) and the Euclidean groups SE(2), E(2), SE(3), E(3): ``x -> R x + t``.

Translations are non-compact: eqbench draws them from ``N(0, sigma^2 I)`` (``sigma`` a
constructor argument, default 1), the stated distribution for the non-compact part; the
rotation part keeps its Haar measure. ``exp``/``log`` are the closed forms of SE(2)/SE(3)
(e.g. Barfoot, "State Estimation for Robotics", sec. 7.1): ``exp(w, u) = (exp([w]), V(w) u)``
with the left Jacobian ``V(w) = sum_k [w]^k / (k + 1)!``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.comparison import ComparedByValue
from eqbench.groups.element import Element
from eqbench.groups.reflections import O2, O3
from eqbench.groups.rotations2d import SO2
from eqbench.groups.rotations3d import SO3, hat, rotation_series
from eqbench.groups.strategies import ParamChoices, batch1, float_param, joined, union


def translation_generators(dim: int) -> Tensor:
    """The ``dim`` unit translations as homogeneous ``(dim, dim + 1, dim + 1)`` matrices."""
    basis = torch.zeros(dim, dim + 1, dim + 1, dtype=torch.float64)
    basis[torch.arange(dim), torch.arange(dim), dim] = 1.0
    return basis


class Translations(ComparedByValue, Group):
    """T(d): ``x -> x + t`` with ``t ~ N(0, sigma^2 I)``; parameters ``{"translation": (n, d)}``.

    Elements carry only a translation part, so T(d) combines with rotations or permutations in
    a :class:`~eqbench.groups.product.DirectProduct`. The hypothesis strategy draws each
    coordinate in ``[-3 sigma, 3 sigma]``.
    """

    compact = False

    def __init__(self, dim: int = 3, sigma: float = 1.0) -> None:
        if dim < 1:
            raise ValueError(f"Translations needs dim >= 1, got {dim}")
        if not sigma > 0:
            raise ValueError(f"Translations needs sigma > 0, got {sigma}")
        self.space_dim = int(dim)
        self.sigma = float(sigma)
        self.name = f"T({self.space_dim})"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"translation": self.sigma * torch.randn(n, self.space_dim, generator=generator, dtype=torch.float64)}

    def element(self, params: Params) -> Element:
        return Element(translation=params["translation"].to(torch.float64))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        coordinate = float_param(-3 * self.sigma, 3 * self.sigma)
        return ParamChoices((coordinate,) * self.space_dim, lambda v: {"translation": batch1(list(v))})

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return self.element({"translation": torch.zeros(n, self.space_dim, dtype=torch.float64)})

    @property
    def lie_algebra(self) -> Tensor:
        return translation_generators(self.space_dim)

    def exp(self, coefficients: Tensor) -> Element:
        return self.element({"translation": coefficients})

    def log(self, g: Element) -> Tensor:
        if g.translation is None:
            return torch.zeros(g.batch_size, self.space_dim, dtype=torch.float64)
        return g.translation.to(torch.float64)


def left_jacobian(rotation_coefficients: Tensor, dim: int) -> Tensor:
    """``V(w) = sum_k [w]^k / (k + 1)!`` as ``(B, d, d)`` (closed forms for d = 2 and 3).

    d = 2: ``V = sin t / t I + (1 - cos t) / t J``; d = 3: ``V = I + (1 - cos t)/t^2 [w] + (t - sin t)/t^3 [w]^2``.
    """
    w = rotation_coefficients.to(torch.float64)
    if dim == 2:
        theta = w[:, 0]
        a, b, _ = rotation_series(theta * theta)
        b = b * theta
        return torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)
    _, b, c = rotation_series((w * w).sum(-1))
    k = hat(w)
    eye = torch.eye(3, dtype=torch.float64).expand_as(k)
    return eye + b[:, None, None] * k + c[:, None, None] * (k @ k)


class Euclidean(ComparedByValue, Group):
    """A rotation group on R^d (SO(d) or O(d)) with translations: parameters the rotations' plus ``translation``.

    Lie algebra: the rotation generators followed by the ``d`` translation generators.
    """

    compact = False

    def __init__(self, rotations: Group, name: str, sigma: float = 1.0) -> None:
        if rotations.space_dim not in (2, 3):
            raise ValueError(f"Euclidean groups are defined on R^2 and R^3, not on R^{rotations.space_dim}")
        self.rotations = rotations
        self.translations = Translations(rotations.space_dim, sigma)
        self.space_dim = rotations.space_dim
        self.name = name

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {**self.rotations.sample_params(n, generator), **self.translations.sample_params(n, generator)}

    def element(self, params: Params) -> Element:
        rotation = self.rotations.element({k: v for k, v in params.items() if k != "translation"})
        return rotation.with_parts(translation=params["translation"].to(torch.float64))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        return joined([self.rotations.param_choices(), self.translations.param_choices()], union)

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return self.rotations.identity(n).with_parts(translation=torch.zeros(n, self.space_dim, dtype=torch.float64))

    @property
    def lie_algebra(self) -> Tensor:
        return torch.cat([self.rotations.lie_algebra, translation_generators(self.space_dim)])

    def _split(self, coefficients: Tensor) -> tuple[Tensor, Tensor]:
        k = self.rotations.lie_algebra.shape[0]
        return coefficients[:, :k].to(torch.float64), coefficients[:, k:].to(torch.float64)

    def exp(self, coefficients: Tensor) -> Element:
        w, u = self._split(coefficients)
        translation = torch.einsum("bij,bj->bi", left_jacobian(w, self.space_dim), u)
        return self.rotations.exp(w).with_parts(translation=translation)

    def log(self, g: Element) -> Tensor:
        """``(w, V(w)^-1 t)`` with ``w = log R`` (rotation angle below pi, where ``V`` is invertible)."""
        w = self.rotations.log(g)
        t = self.translations.log(g)
        return torch.cat([w, torch.linalg.solve(left_jacobian(w, self.space_dim), t)], dim=-1)


class SE2(Euclidean):
    """SE(2): rotations and translations of the plane; parameters ``angle``, ``translation``."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__(SO2(), "SE(2)", sigma)


class E2(Euclidean):
    """E(2): rotations, reflections and translations of the plane; parameters ``angle``, ``reflect``, ``translation``."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__(O2(), "E(2)", sigma)


class SE3(Euclidean):
    """SE(3): rotations and translations of space; parameters ``quaternion``, ``translation``."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__(SO3(), "SE(3)", sigma)


class E3(Euclidean):
    """E(3): rotations, the inversion and translations of space; parameters ``quaternion``, ``reflect``, ``translation``."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__(O3(), "E(3)", sigma)
