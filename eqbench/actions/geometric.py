"""Fields on R^d that the linear part of the group moves: vectors, pseudo-vectors, points, tensors.

For ``g = (M, t, p)`` (see :mod:`eqbench.groups.element`), on the spatial axis (last axis):

* vectors ``v -> M v`` (the standard representation; translations do not move them);
* pseudo-vectors ``v -> det(M) M v`` (angular momenta, normals of oriented planes): they
  flip under reflections relative to ordinary vectors;
* points ``x -> M x + t`` (the affine action; the difference of two points is a vector);
* rank-``k`` tensors ``T -> M^{(x)k} T``; for ``k = 2``: ``T -> M T M^T`` on the last two axes.

Per-point fields ``(B, N, ..., d)`` are also re-indexed by the permutation, ``(g.X)_i = X_{p[i]}``;
global fields ``(B, ..., d)`` are not. Any channel axes between the point axis and the
spatial axes are carried along; ``size=k`` declares that they hold ``k`` vectors (points,
tensors) per point (per item for a global field), so a value of another shape is an error. The math runs in the field's own dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from eqbench.actions.base import DataError
from eqbench.actions.checks import (
    check_batch,
    check_space_dim,
    require_finite,
    require_count,
    require_floating,
    require_ndim,
    require_size,
    require_tensor,
)
from eqbench.actions.field import FieldAction
from eqbench.actions.transforms import broadcast_batch, linear_on_axis, permute_points
from eqbench.groups.element import Element


class SpatialField(FieldAction):
    """Shared shape checks and permutation handling of fields with ``spatial_axes`` trailing axes of size ``d``."""

    per_point: bool
    dim: int | None
    #: Declared number of vectors (points, tensors) per point, or per item for a global field; ``None``: any.
    size: int | None = None
    #: How many trailing axes have length ``d`` (1 for vectors and points, ``k`` for rank-``k`` tensors).
    spatial_axes: int = 1
    what: str = "vectors"

    @property
    def layout(self) -> str:
        d = "d" if self.dim is None else str(self.dim)
        spatial = ", ".join([d] * self.spatial_axes)
        return f"(B, N, ..., {spatial})" if self.per_point else f"(B, ..., {spatial})"

    def validate(self, x: Tensor, where: str = "input") -> None:
        require_tensor(x, where, self.what)
        require_ndim(x, where, self.what, self.layout, self.spatial_axes + (2 if self.per_point else 1))
        require_floating(x, where, self.what)
        sizes = {x.shape[-axis] for axis in range(1, self.spatial_axes + 1)}
        if len(sizes) > 1:
            raise DataError(f"{where}: expected {self.what} of shape {self.layout} with equal spatial axes, got {tuple(x.shape)}")
        for axis in range(1, self.spatial_axes + 1):
            require_size(x, -axis, self.dim, where, self.what, self.layout)
        require_count(x, 2 if self.per_point else 1, self.spatial_axes, self.size, where, self.what)
        require_finite(x, where)

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, self.what)
        check_space_dim(g, x.shape[-1], self.what)
        out = self.transform(g, x)
        if self.per_point and g.permutation is not None:
            out = permute_points(out, g.permutation, self.what)
        return out

    def transform(self, g: Element, x: Tensor) -> Tensor:
        """The action of the affine part ``(M, t)`` (the permutation is applied afterwards)."""
        if g.matrix is not None:
            for axis in range(1, self.spatial_axes + 1):
                x = linear_on_axis(g.matrix, x, axis=-axis)
        return x


@dataclass(frozen=True, repr=False)
class Vectors(SpatialField):
    """Vectors ``v -> M v`` (``pseudo=True``: ``v -> det(M) M v``), shape ``(B, [N,] ..., d)``."""

    per_point: bool = True
    pseudo: bool = False
    dim: int | None = None
    size: int | None = None

    @property
    def what(self) -> str:  # type: ignore[override]
        return "pseudo-vectors" if self.pseudo else "vectors"

    def transform(self, g: Element, x: Tensor) -> Tensor:
        out = super().transform(g, x)
        if self.pseudo and g.matrix is not None:
            out = out * broadcast_batch(g.determinant().sign(), out, trailing=0)
        return out


@dataclass(frozen=True, repr=False)
class Points(SpatialField):
    """Points ``x -> M x + t`` (the affine action of E(d) and its subgroups), shape ``(B, [N,] ..., d)``."""

    per_point: bool = True
    dim: int | None = None
    size: int | None = None
    what = "points"

    def transform(self, g: Element, x: Tensor) -> Tensor:
        out = super().transform(g, x)
        if g.translation is not None:
            out = out + broadcast_batch(g.translation, out, trailing=1)
        return out


@dataclass(frozen=True, repr=False)
class Tensors(SpatialField):
    """Rank-``k`` Cartesian tensors ``T -> M^{(x)k} T`` on the last ``k`` axes (``k = 2``: ``M T M^T``).

    Shape ``(B, [N,] ..., d, ..., d)``; e.g. stress or inertia tensors, covariance matrices.
    """

    per_point: bool = True
    rank: int = 2
    dim: int | None = None
    size: int | None = None
    what = "tensors"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"Tensors rank must be at least 1, got {self.rank}")

    @property
    def spatial_axes(self) -> int:  # type: ignore[override]
        return self.rank
