"""The group interface: a group is how to draw its elements and how they act.

A group is defined by the few facts that make it itself; the base class derives the rest:

* ``sample_params(n, generator, num_points)`` draws Haar-distributed *parameters*
  (angles, unit quaternions, permutations, integers, ...) as a dict of tensors with a
  leading batch axis, from a caller-seeded ``torch.Generator``;
* ``element(params)`` turns parameters into a concrete :class:`~eqbench.groups.element.Element`;
* ``param_choices(num_points)`` draws the same parameters for *one* element through
  ``hypothesis`` primitives, so that a failing element shrinks (an angle towards 0, a
  permutation towards the identity); ``params_strategy(num_points)`` is their flat strategy
  (:class:`~eqbench.groups.strategies.ParamChoices`).

Because the random sampler and the hypothesis strategy share one parameterisation, a
counterexample found by random sampling replays exactly as a hypothesis example.

Lie groups also give ``lie_algebra`` (generators as homogeneous ``(k, d+1, d+1)``
matrices), ``exp`` and ``log``; finite groups give ``order()`` and ``enumerate_params()`` (hence
``elements()``), so that a check on them can try every element.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from eqbench.groups.element import Element
from eqbench.groups.strategies import ParamChoices

Params = dict[str, Tensor]



def cat_params(params: list[Params]) -> Params:
    """Concatenate parameter batches of one group (same keys)."""
    return {key: torch.cat([p[key] for p in params]) for key in params[0]}

class Group(ABC):
    """A symmetry group acting on R^d (``space_dim``) and/or on the point axis.

    Subclasses set ``name`` and ``space_dim`` and implement ``sample_params``, ``element``
    and ``param_choices``; Lie groups override ``lie_algebra``/``exp``/``log`` and finite
    groups override ``order``/``enumerate_params``.
    """

    name: str = "group"
    space_dim: int | None = None
    #: True when the group re-indexes the point / node axis (S_n and products with it).
    permutes_points: bool = False
    #: True when the group is compact (Haar sampling is a probability measure).
    compact: bool = True

    # ---------------------------------------------------------------- required
    @abstractmethod
    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        """Draw ``n`` Haar-distributed parameter sets (a dict of tensors with leading axis ``n``)."""

    @abstractmethod
    def element(self, params: Params) -> Element:
        """Turn a batch of parameters into a batch of elements (float64 parts)."""

    @abstractmethod
    def param_choices(self, num_points: int | None = None) -> ParamChoices:
        """The hypothesis primitives of one element's parameters and how to build them (dict of batch-1 tensors)."""

    # ----------------------------------------------------------------- derived
    def params_strategy(self, num_points: int | None = None) -> Any:
        """A hypothesis strategy for the parameters of one element: the flat :meth:`param_choices`."""
        return self.param_choices(num_points).strategy()

    def sample(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Element:
        """``n`` Haar-distributed elements (see each group's docstring for non-compact parts)."""
        return self.element(self.sample_params(n, generator, num_points))

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        """``n`` copies of the identity element."""
        parts: dict[str, Tensor] = {}
        if self.space_dim is not None:
            parts["matrix"] = torch.eye(self.space_dim, dtype=torch.float64).expand(n, -1, -1).clone()
        if self.permutes_points:
            if num_points is None:
                raise ValueError(f"{self.name} permutes points: identity() needs num_points")
            parts["permutation"] = torch.arange(num_points).expand(n, -1).clone()
        return Element(**parts)

    def compose(self, a: Element, b: Element) -> Element:
        """``a * b``: apply ``b`` first, then ``a``."""
        return a * b

    def inverse(self, g: Element) -> Element:
        return g.inverse()

    def matrix_representation(self, g: Element) -> Tensor:
        """The homogeneous ``(B, d+1, d+1)`` matrix ``[[M, t], [0, 1]]`` of the affine part."""
        if self.space_dim is None:
            raise ValueError(f"{self.name} has no matrix representation on R^d (it only permutes points)")
        d = self.space_dim
        out = torch.zeros(g.batch_size, d + 1, d + 1, dtype=torch.float64)
        out[:, :d, :d] = g.linear(d)
        if g.translation is not None:
            out[:, :d, d] = g.translation.to(torch.float64)
        out[:, d, d] = 1.0
        return out

    # -------------------------------------------------------------- Lie groups
    @property
    def is_lie(self) -> bool:
        return self.lie_algebra is not None

    @property
    def lie_algebra(self) -> Tensor | None:
        """Basis of the Lie algebra as homogeneous ``(k, d+1, d+1)`` float64 matrices, or ``None``."""
        return None

    def exp(self, coefficients: Tensor) -> Element:
        """``exp(sum_i c_i X_i)`` for coefficients of shape ``(B, k)`` (matrix exponential)."""
        basis = self.lie_algebra
        if basis is None:
            raise NotImplementedError(f"{self.name} is not a Lie group")
        algebra = torch.einsum("bk,kij->bij", coefficients.to(basis.dtype), basis)
        return homogeneous_to_element(torch.linalg.matrix_exp(algebra), self.space_dim)

    def log(self, g: Element) -> Tensor:
        """Coefficients ``(B, k)`` in the ``lie_algebra`` basis with ``exp(log g) == g``."""
        raise NotImplementedError(f"{self.name} does not implement log")

    # ----------------------------------------------------------- finite groups
    @property
    def is_finite(self) -> bool:
        return self.order() is not None

    def order(self, num_points: int | None = None) -> int | None:
        """Number of elements, or ``None`` for infinite groups."""
        return None

    def enumerate_params(self, num_points: int | None = None) -> Params:
        """The parameters of every element (batch axis ``order(num_points)``), for exhaustive checks of finite groups."""
        raise NotImplementedError(f"{self.name} is not finite: it cannot enumerate its elements")

    def elements(self, num_points: int | None = None) -> Element:
        """Every element: ``element(enumerate_params(num_points))``."""
        return self.element(self.enumerate_params(num_points))

    # ---------------------------------------------------------------- products
    def __mul__(self, other: Group) -> Group:
        from eqbench.groups.product import DirectProduct

        return DirectProduct(self, other)

    def __repr__(self) -> str:
        return self.name


def homogeneous_to_element(h: Tensor, space_dim: int | None) -> Element:
    """Split ``(B, d+1, d+1)`` homogeneous matrices into an :class:`Element`."""
    d = space_dim if space_dim is not None else h.shape[-1] - 1
    return Element(matrix=h[:, :d, :d], translation=h[:, :d, d])
