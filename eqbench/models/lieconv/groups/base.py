"""The lifting-group interface of LieConv (Finzi, Stanton, Izmailov, Wilson, ICML 2020, sec. 4).

LieConv works on a group ``G`` acting on the data space ``X = R^d``. Each point ``x`` is
*lifted* to group elements ``u`` with ``u . o_q = x``, where ``q`` identifies the orbit of
``x`` (the orbit coordinates, empty when ``G`` acts transitively) and ``o_q`` is the chosen
origin of that orbit. When the stabiliser of ``o_q`` is non-trivial the lift is a set, and
LieConv samples ``liftsamples`` elements of it (Haar on the stabiliser); otherwise the lift
is unique and deterministic.

Elements are stored in a group-specific *encoding* (a unit complex number for SO(2), a
flattened rotation matrix plus translation for SE(3), ...), a tensor ``(..., element_dim)``,
so that the pair quantity of the convolution,

    a_uv = log(v^-1 u)  (Lie algebra coordinates, ``(..., lie_dim)``),

is computed only for the pairs that are needed (:meth:`LiftingGroup.relative` broadcasts).
The invariant distance between lifted points is the paper's

    d((u, q_u), (v, q_v)) = alpha ||log(v^-1 u)|| + (1 - alpha) ||q_u - q_v||,

with group-specific norms where the reference code (mfinzi/LieConv, ``lieGroups.py``) uses
them (e.g. SE(n) splits ``alpha`` between the rotation and translation parts). It is
invariant under ``u, v -> g u, g v`` because ``(g v)^-1 (g u) = v^-1 u``.

The weight network of the convolution sees ``[k(a_uv), q_u, q_v]``, with
:meth:`LiftingGroup.kernel_features` ``k`` the Lie algebra coordinates themselves, except
that a planar rotation angle ``theta`` in ``(-pi, pi]`` is fed as ``(cos theta, sin theta)``:
the principal logarithm jumps from ``pi`` to ``-pi`` on the cut, so an MLP of ``theta``
would break invariance for every antipodal pair of points (all over a pixel grid centred on
the origin). ``(cos, sin)`` is the same group element through a continuous chart.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from eqbench.actions.base import DataError
from eqbench.groups.element import Element

#: Tolerance of :meth:`LiftingGroup.embed`'s membership tests (orthogonality, zero translation), relative to 1.
MEMBERSHIP_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Lift:
    """Lifted points: ``elements`` ``(B, N, element_dim)`` and orbit coordinates ``orbits`` ``(B, N, orbit_dim)``.

    With ``s`` lift samples per point, lifted element ``i * s + j`` is sample ``j`` of point ``i``.
    """

    elements: Tensor
    orbits: Tensor

    @property
    def size(self) -> int:
        return self.elements.shape[1]

    def take(self, index: Tensor) -> Lift:
        """The lifted points at ``index`` ``(B, M)`` (a batched gather along the point axis)."""
        return Lift(gather_points(self.elements, index), gather_points(self.orbits, index))

    def head(self, count: int) -> Lift:
        """The first ``count`` lifted points."""
        return Lift(self.elements[:, :count], self.orbits[:, :count])


def gather_points(values: Tensor, index: Tensor, out: Tensor | None = None) -> Tensor:
    """``values[b, index[b, ...]]`` for ``values`` ``(B, N, C)`` and integer ``index`` ``(B, ...)``: ``(B, ..., C)``.

    One ``index_select`` of whole rows of the flattened ``(B N, C)`` values (a row copy per
    index), written into ``out`` (``(numel(index), C)``) when given.
    """
    batch, points, channels = values.shape
    offsets = torch.arange(batch, device=index.device).view(batch, *([1] * (index.dim() - 1))) * points
    flat = (index + offsets).reshape(-1)
    rows = torch.index_select(values.reshape(batch * points, channels), 0, flat, out=out)
    return rows.view(*index.shape, channels)


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Uniform ``[0, 1)`` numbers drawn in float32 (whatever ``like``'s dtype), cast to ``like``'s dtype and device.

    Drawing in one dtype makes a model and its float64 copy see the same samples for the same
    generator state; ``generator=None`` draws from torch's global RNG.
    """
    return torch.rand(shape, generator=generator, device=like.device, dtype=torch.float32).to(like.dtype)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal numbers drawn in float32, cast to ``like``'s dtype and device (see :func:`uniform`)."""
    return torch.randn(shape, generator=generator, device=like.device, dtype=torch.float32).to(like.dtype)


def stratified_angles(shape: tuple[int, ...], samples: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """``(*shape, samples)`` angles ``phi_0 + 2 pi j / samples`` with ``phi_0`` uniform on ``[0, 2 pi)``.

    Each of the ``samples`` angles is Haar-uniform on the circle, and together they cover it
    evenly (the stratified stabiliser samples of the reference's SE(2) lift).
    """
    offset = 2 * torch.pi * uniform((*shape, 1), generator, like)
    steps = torch.arange(samples, device=like.device, dtype=like.dtype) * (2 * torch.pi / samples)
    return offset + steps


def safe_norm(x: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    """Euclidean norm along ``dim`` with a zero gradient (instead of NaN) at the zero vector."""
    squared = x.square().sum(dim=dim, keepdim=keepdim)
    positive = squared > 0
    return torch.where(positive, squared.clamp_min(torch.finfo(x.dtype).tiny).sqrt(), torch.zeros_like(squared))


class LiftingGroup(ABC):
    """A group acting on ``R^space_dim`` with LieConv's lift, ``exp``/``log`` and invariant distance.

    Subclasses set the class attributes and implement :meth:`lift_points`, :meth:`point`,
    :meth:`exp`, :meth:`log`, :meth:`compose`, :meth:`act` and :meth:`relative`.
    ``alpha`` in ``[0, 1]`` weights the group part of the distance against the orbit part.
    """

    name: str = "group"
    space_dim: int
    lie_dim: int
    orbit_dim: int = 0
    element_dim: int
    #: Width of :meth:`kernel_features` (the Lie algebra part of the weight network's input).
    kernel_dim: int
    #: True when stabilisers are non-trivial, so that lifts are sampled (``liftsamples`` may exceed 1).
    random_lift: bool = False
    #: The linear parts of the group's action on ``R^space_dim``: ``"identity"``, ``"rotation"`` (SO(d)) or
    #: ``"similarity"`` (positive multiples of rotations); and whether it translates (:meth:`embed`).
    linear_part: str = "rotation"
    translates: bool = False

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"{self.name}: alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha:g})"

    # ------------------------------------------------------------------ lifting
    def lift(self, points: Tensor, samples: int = 1, generator: torch.Generator | None = None) -> Lift:
        """Lift ``(B, n, space_dim)`` points to ``samples`` elements each: a :class:`Lift` of ``n * samples`` points.

        Deterministic lifts (trivial stabilisers) accept only ``samples == 1``; random lifts
        draw Haar stabiliser elements from ``generator`` (torch's global RNG when ``None``).
        """
        if points.dim() != 3 or points.shape[-1] != self.space_dim:
            raise ValueError(f"{self.name} lifts points of shape (B, n, {self.space_dim}), got {tuple(points.shape)}")
        self.check_samples(samples)
        return self.lift_points(points, samples, generator)

    def check_samples(self, samples: object) -> None:
        """Raise ``ValueError`` unless ``samples`` is a positive int, and 1 for a deterministic lift."""
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"liftsamples must be a positive integer, got {samples!r}")
        if samples > 1 and not self.random_lift:
            raise ValueError(
                f"{self.name} has trivial stabilisers: every point has exactly one lift, so liftsamples must be 1, got {samples}"
            )

    @abstractmethod
    def lift_points(self, points: Tensor, samples: int, generator: torch.Generator | None) -> Lift:
        """The lift of :meth:`lift` after validation."""

    @abstractmethod
    def point(self, elements: Tensor, orbits: Tensor) -> Tensor:
        """``u . o_q``: the point a lifted element stands for (inverse of the lift)."""

    # ------------------------------------------------------------- group structure
    @abstractmethod
    def exp(self, a: Tensor) -> Tensor:
        """The element encoding of ``exp(a)`` for Lie algebra coordinates ``a`` ``(..., lie_dim)``."""

    @abstractmethod
    def log(self, elements: Tensor) -> Tensor:
        """Lie algebra coordinates ``(..., lie_dim)`` of the principal logarithm."""

    @abstractmethod
    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        """The product ``g h`` of encoded elements (broadcasting leading axes)."""

    @abstractmethod
    def act(self, g: Tensor, points: Tensor) -> Tensor:
        """``g . x`` for encoded elements ``g`` and points ``(..., space_dim)`` (broadcasting)."""

    @abstractmethod
    def relative(self, u: Tensor, v: Tensor) -> Tensor:
        """``log(v^-1 u)`` for encoded elements (broadcasting leading axes): ``(..., lie_dim)``."""

    # ------------------------------------------------------- eqbench group elements
    def embed(self, g: Element) -> Tensor:
        """The encodings ``(B, element_dim)`` of eqbench's affine elements ``g = (M, t)`` as elements of this group.

        This is how the group acts on lifted points: ``g`` takes the lift ``u`` of ``x`` to the
        lift ``g u`` of ``g . x`` (left multiplication; :mod:`eqbench.models.lieconv.lifting`).
        Raises :class:`~eqbench.actions.base.DataError` when an element is not in this group (a
        reflection for SE(3), a rotation for T(n), a translation for SO(3)) or permutes points.
        """
        if g.permutation is not None:
            raise DataError(f"{self.name} acts on lifted points by left multiplication; it does not permute them")
        d = self.space_dim
        matrix = g.linear(d)
        translation = g.translation.to(torch.float64) if g.translation is not None else matrix.new_zeros(matrix.shape[0], d)
        gram = matrix.transpose(1, 2) @ matrix
        scale = gram.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None]
        identity = torch.eye(d, dtype=torch.float64, device=matrix.device)
        members = {
            "identity": (matrix - identity).abs().amax((1, 2)) <= MEMBERSHIP_TOLERANCE,
            "rotation": ((gram - identity).abs().amax((1, 2)) <= MEMBERSHIP_TOLERANCE) & (torch.linalg.det(matrix) > 0),
            "similarity": ((gram - scale * identity).abs().amax((1, 2)) <= MEMBERSHIP_TOLERANCE * scale[:, 0, 0]) & (torch.linalg.det(matrix) > 0),
        }[self.linear_part]
        if not self.translates:
            members &= translation.abs().amax(-1) <= MEMBERSHIP_TOLERANCE
        if not bool(members.all()):
            raise DataError(f"an element (M, t) acting on the points is not in the lifting group {self.name}")
        return self.encode(matrix, translation)

    @abstractmethod
    def encode(self, matrix: Tensor, translation: Tensor) -> Tensor:
        """The encoding ``(B, element_dim)`` of the members ``(M, t)`` ``(B, d, d)``, ``(B, d)`` of this group."""

    # ------------------------------------------------------------------ distance
    def distance(self, a: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
        """``alpha ||a|| + (1 - alpha) ||q_u - q_v||`` (overridden where the reference splits the norm)."""
        return self.alpha * safe_norm(a) + (1 - self.alpha) * self.orbit_distance(q_u, q_v)

    def orbit_distance(self, q_u: Tensor, q_v: Tensor) -> Tensor:
        """``||q_u - q_v||`` (zero for transitive actions)."""
        if q_u.shape[-1] == 0:
            return torch.zeros(torch.broadcast_shapes(q_u.shape, q_v.shape)[:-1], dtype=q_u.dtype, device=q_u.device)
        return safe_norm(q_u - q_v)

    @torch.no_grad()
    def pair_distances(self, u: Lift, v: Lift) -> Tensor:
        """``(B, m, n)`` invariant distances between every lifted point of ``u`` ``(B, m)`` and of ``v`` ``(B, n)``.

        For selecting neighbourhoods and farthest points: computed without gradient. This default forms ``log(v^-1 u)`` for all ``m * n`` pairs (``(B, m, n, lie_dim)`` of
        transient memory); groups override it where the distance has a cheaper closed form.
        """
        a = self.relative(u.elements[:, :, None], v.elements[:, None])
        return self.distance(a, u.orbits[:, :, None], v.orbits[:, None])

    # --------------------------------------------------------------- weight-net input
    def kernel_features(self, a: Tensor) -> Tensor:
        """The weight network's view of ``a = log(v^-1 u)`` (the coordinates themselves by default)."""
        return a

    @property
    def pair_dim(self) -> int:
        """Width of :meth:`pair_features`: ``kernel_dim + 2 orbit_dim``."""
        return self.kernel_dim + 2 * self.orbit_dim

    def pair_features(self, u: Lift, v: Lift) -> Tensor:
        """``[k(log(v^-1 u)), q_u, q_v]`` for broadcastable lifted points (the lifted pair representation)."""
        a = self.relative(u.elements, v.elements)
        kernel = self.kernel_features(a)
        shape = kernel.shape[:-1]
        parts = [kernel]
        if self.orbit_dim:
            parts += [u.orbits.expand(*shape, self.orbit_dim), v.orbits.expand(*shape, self.orbit_dim)]
        return torch.cat(parts, dim=-1)
