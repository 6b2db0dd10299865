"""Small groups made from one generator or one mirror: the candidates a symmetry profile scans.

* :class:`GeneratedGroup` with one generator: ``{exp(s X) : s in [-bound, bound]}`` for one homogeneous
  generator ``X`` (``(d+1, d+1)``, see :mod:`eqbench.groups.base`): rotations in one coordinate
  plane (``X = E_ji - E_ij``, ``bound = pi``: the Haar measure of that circle), translations
  along one axis (``X = E_{i,d}``), uniform scaling (``X = diag(1, ..., 1, 0)``,
  ``s = log`` of the scale). ``s`` is drawn uniform on ``[-bound, bound]``: for the non-compact
  ones (translations, scaling) a stated distribution, not a Haar measure.
* :class:`Mirror`: the two-element group ``{I, F}`` with ``F = diag(1, .., -1, .., 1)`` flipping
  one axis (finite: a check on it is exhaustive).

Helpers :func:`rotation_generator`, :func:`translation_generator`, :func:`scaling_generator`
build the homogeneous generators; :func:`affine_basis` is the basis of gl(d) plus the ``d``
translations (the Lie algebra of the affine group Aff(d)), ``d^2 + d`` generators.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.euclidean import translation_generators
from eqbench.groups.strategies import ParamChoices, batch1, float_param, integer_param

#: Names of the coordinate axes, in order (``x``, ``y``, ``z``).
AXES = "xyz"


def rotation_generator(dim: int, i: int, j: int) -> Tensor:
    """``E_ji - E_ij`` in homogeneous form: ``exp(theta X)`` rotates axis ``i`` towards axis ``j`` by ``theta``."""
    generator = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
    generator[j, i], generator[i, j] = 1.0, -1.0
    return generator


def translation_generator(dim: int, i: int) -> Tensor:
    """The unit translation along axis ``i`` in homogeneous form."""
    return translation_generators(dim)[i]


def scaling_generator(dim: int) -> Tensor:
    """``diag(1, ..., 1, 0)``: ``exp(s X)`` scales R^d by ``e^s``."""
    return torch.diag(torch.cat([torch.ones(dim), torch.zeros(1)])).to(torch.float64)


def affine_basis(dim: int) -> tuple[Tensor, list[str]]:
    """The ``dim^2 + dim`` generators of aff(d) = gl(d) + translations and their names (``E_xy``, ``T_x``).

    ``E_ij`` is the matrix unit (row ``i``, column ``j``) in the linear block; the coordinates of a
    homogeneous generator ``X`` in this basis are ``X[:d, :d]`` flattened row by row, then ``X[:d, d]``.
    """
    basis = torch.zeros(dim * dim + dim, dim + 1, dim + 1, dtype=torch.float64)
    names = []
    for i in range(dim):
        for j in range(dim):
            basis[i * dim + j, i, j] = 1.0
            names.append(f"E_{AXES[i]}{AXES[j]}")
    basis[dim * dim :] = translation_generators(dim)
    names += [f"T_{AXES[i]}" for i in range(dim)]
    return basis, names


def affine_coordinates(generators: Tensor) -> Tensor:
    """Coordinates ``(k, d^2 + d)`` of homogeneous generators ``(k, d+1, d+1)`` in the :func:`affine_basis`."""
    d = generators.shape[-1] - 1
    return torch.cat([generators[:, :d, :d].reshape(-1, d * d), generators[:, :d, d]], dim=1)


class GeneratedGroup(Group):
    """``exp(sum_i s_i X_i)`` for homogeneous generators ``X_i`` (``(k, d+1, d+1)``); ``s`` uniform on ``[-bound, bound]^k``.

    One generator gives a one-parameter group (module docstring); the :func:`affine_basis` gives
    a neighbourhood of the identity in the affine group Aff(d) (whose Lie algebra is what the
    symmetry profile differentiates along).
    """

    def __init__(self, generators: Tensor, name: str, bound: float) -> None:
        if generators.dim() == 2:
            generators = generators[None]
        if generators.dim() != 3 or generators.shape[1] != generators.shape[2]:
            raise ValueError(f"GeneratedGroup needs (k, d+1, d+1) generators, got shape {tuple(generators.shape)}")
        if not bound > 0:
            raise ValueError(f"GeneratedGroup needs bound > 0, got {bound}")
        self.generators = generators.to(torch.float64)
        self.space_dim = generators.shape[-1] - 1
        self.name = name
        self.bound = float(bound)
        self.compact = False

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        k = self.generators.shape[0]
        return {"s": (torch.rand(n, k, generator=generator, dtype=torch.float64) * 2 - 1) * self.bound}

    def element(self, params: Params) -> Element:
        return self.exp(params["s"].to(torch.float64))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        k = self.generators.shape[0]
        return ParamChoices((float_param(-self.bound, self.bound),) * k, lambda v: {"s": batch1(list(v))})

    @property
    def lie_algebra(self) -> Tensor:
        return self.generators.clone()


class Mirror(Group):
    """``{I, F}`` with ``F`` the reflection of axis ``axis`` of R^dim; parameter ``{"flip": 0 or 1}``."""

    def __init__(self, dim: int, axis: int) -> None:
        if not 0 <= axis < dim:
            raise ValueError(f"Mirror axis must be in [0, {dim}), got {axis}")
        self.space_dim = dim
        self.axis = axis
        self.name = f"mirror-{AXES[axis]}"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        return {"flip": torch.randint(0, 2, (n,), generator=generator)}

    def element(self, params: Params) -> Element:
        flip = params["flip"].to(torch.float64)
        diagonal = torch.ones(flip.shape[0], self.space_dim, dtype=torch.float64)
        diagonal[:, self.axis] = 1.0 - 2.0 * flip
        return Element(matrix=torch.diag_embed(diagonal))

    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        return ParamChoices((integer_param(0, 1),), lambda v: {"flip": batch1(v[0], torch.long)})

    def order(self, num_points: int | None = None) -> int:
        return 2

    def enumerate_params(self, num_points: int | None = None) -> Params:
        return {"flip": torch.tensor([0, 1])}


#: Bounds of the one-parameter candidates: a full turn; 2 units of translation; scales in [1/2, 2].
ROTATION_BOUND, TRANSLATION_BOUND, LOG_SCALE_BOUND = math.pi, 2.0, math.log(2.0)
