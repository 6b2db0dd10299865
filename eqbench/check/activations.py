"""How a group acts on a module's activations: declared, or inferred from their layout and their motion.

Per-module attribution (:mod:`eqbench.check.attribution`) needs an action on every tensor a module
reads or writes. A module declared with :func:`eqbench.declare` carries its own actions; for the
others the action of each floating tensor ``a`` (batch ``R`` rows, or ``R * m`` rows when a model
flattens ``(B, N, C)`` to ``(B N, C)``) is chosen among candidates that fit its layout:

* ``Invariant()`` (always): ``g.a = a``;
* ``Scalars()`` when the point axis matches the input's (per-point features, permuted by S_n);
* :class:`PairField` when the first two axes both match it (pairwise distances or messages;
  with vectors on the last axis too, e.g. ``x_i - x_j``);
* ``Vectors()`` and ``Points()`` when the last axis has the group's dimension ``d`` (per-point when
  the point axis matches as well);
* the model input's own field actions whose shape ``a`` has (images, grid signals, ...);
* the field actions declared on the model's modules (:func:`eqbench.declare`) that accept ``a``
  (e.g. LieConv's lifted group elements, moved by left multiplication, wherever they travel).

The chosen candidate is the one under which the tensor moves most nearly as it actually does:
``argmin_c ||observed - expected_c||`` where, for a Lie algebra generator ``X``, *observed* is
the tangent ``d/dt a(exp(tX).x)`` and *expected* ``d/dt rho_c(exp(tX)) a`` (by a central difference
of ``Action.apply`` in float64, step :data:`~eqbench.check.lie.FD_STEP`); for a group element
``g``, *observed* is ``a(g.x)`` and *expected* ``rho_c(g) a(x)``. Ties go to the earlier candidate
in the order above (an activation that does not move is invariant). Which candidate wins moves
blame between modules but never changes the total (see :mod:`eqbench.check.attribution`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from eqbench.actions import Invariant, Points, Scalars, Vectors
from eqbench.actions.base import Action, DataError
from eqbench.actions.composite import Composite
from eqbench.actions.field import FieldAction
from eqbench.actions.transforms import linear_on_axis, permute_points
from eqbench.check.lie import FD_STEP
from eqbench.groups.element import Element


@dataclass(frozen=True, repr=False)
class PairField(FieldAction):
    """A field on ordered pairs of points, shape ``(B, N, N, ...)``: both point axes re-indexed, ``(g.T)_ij = T_{p[i] p[j]}``.

    ``vectors=True``: the last axis is a vector ``v_ij -> M v_ij`` (e.g. ``x_i - x_j``); otherwise
    the entries are invariant (distances, messages). Used only to infer activations' actions.
    """

    vectors: bool = False

    def validate(self, x: Tensor, where: str = "input") -> None:
        if not isinstance(x, Tensor) or x.dim() < 3 or x.shape[1] != x.shape[2]:
            raise DataError(f"{where}: expected a pair field of shape (B, N, N, ...), got {getattr(x, 'shape', type(x))}")

    def apply(self, g: Element, x: Tensor) -> Tensor:
        self.validate(x, "pair field")
        out = linear_on_axis(g.matrix.to(x.dtype), x, axis=-1) if self.vectors and g.matrix is not None else x
        if g.permutation is not None:
            out = permute_points(permute_points(out, g.permutation, "pairs").transpose(1, 2), g.permutation, "pairs").transpose(1, 2)
        return out


def field_actions(action: Action) -> list[Action]:
    """The field actions of a (possibly composite) action, one per leaf, in leaf order."""
    if isinstance(action, Composite):
        return [leaf for sub in action.fields.values() for leaf in field_actions(sub)]
    return [action]


def flatten(value: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """The leaves of a nested value and how to rebuild it from new leaves (:func:`flatten_named` without the names)."""
    leaves, _, rebuild = flatten_named(value)
    return leaves, rebuild


def flatten_named(value: Any, path: str = "") -> tuple[list[Any], list[str], Callable[[list[Any]], Any]]:
    """The leaves of a nested value, their paths (``[0].pos``, ``.distances``) and how to rebuild it from new leaves.

    Containers: tuples (named ones too), lists, dicts and *frozen* dataclasses (value objects
    such as a lifted point cloud; rebuilt with ``dataclasses.replace``); anything else
    (tensors, numbers, mutable objects) is a leaf.
    """
    if isinstance(value, (tuple, list)):
        parts = [flatten_named(item, f"{path}[{i}]") for i, item in enumerate(value)]
        named = isinstance(value, tuple) and hasattr(value, "_fields")
        return _joined(parts, lambda items: type(value)(*items) if named else type(value)(items))
    if isinstance(value, dict):
        keys = list(value)
        parts = [flatten_named(value[key], f"{path}.{key}") for key in keys]
        return _joined(parts, lambda items: dict(zip(keys, items)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen:
        names = [f.name for f in dataclasses.fields(value) if f.init]
        parts = [flatten_named(getattr(value, name), f"{path}.{name}") for name in names]
        return _joined(parts, lambda items: dataclasses.replace(value, **dict(zip(names, items))))
    return [value], [path], lambda leaves: leaves[0]


def _joined(
    parts: list[tuple[list[Any], list[str], Callable]], build: Callable[[list[Any]], Any]
) -> tuple[list[Any], list[str], Callable]:
    sizes = [len(leaves) for leaves, _, _ in parts]

    def rebuild(leaves: list[Any]) -> Any:
        items, start = [], 0
        for (_, _, inner), size in zip(parts, sizes):
            items.append(inner(leaves[start : start + size]))
            start += size
        return build(items)

    return [leaf for leaves, _, _ in parts for leaf in leaves], [p for _, paths, _ in parts for p in paths], rebuild


def argument_name(path: str) -> str:
    """A readable name for the path of a leaf of ``(args, kwargs)``: ``[0][1].distances`` -> ``arg1.distances``."""
    if path.startswith("[0]["):
        index, _, rest = path[4:].partition("]")
        return f"arg{index}{rest}"
    return path[4:] if path.startswith("[1].") else path


def is_floating(t: Any) -> bool:
    return isinstance(t, Tensor) and t.is_floating_point()


def expand_rows(g: Element, rows: int) -> Element | None:
    """``g`` (``R`` elements) acting on a tensor of ``rows`` rows: each element repeated ``rows / R`` times.

    ``None`` when ``rows`` is not a multiple of ``R`` (the tensor has no batch-major layout).
    """
    count = g.batch_size
    if rows % count:
        return None
    factor = rows // count
    if factor == 1:
        return g
    parts = {name: getattr(g, name) for name in ("matrix", "translation", "permutation")}
    return Element(**{name: None if part is None else part.repeat_interleave(factor, dim=0) for name, part in parts.items()})


@dataclass
class Layout:
    """What the candidates need to know about the data: ``space_dim`` ``d`` (or ``None``), the point count, the input
    fields, and the field actions declared on the model's modules."""

    space_dim: int | None
    num_points: int | None
    input_fields: list[tuple[Action, tuple[int, ...]]] = field(default_factory=list)
    declared: list[Action] = field(default_factory=list)

    def candidates(self, a: Tensor) -> list[Action]:
        """The actions that fit tensor ``a`` (module docstring), in tie-breaking order."""
        found: list[Action] = [Invariant()]
        per_point = self.num_points is not None and a.dim() >= 2 and a.shape[1] == self.num_points
        if per_point:
            found.append(Scalars())
        pairs = per_point and a.dim() >= 3 and a.shape[2] == self.num_points
        if pairs:
            found.append(PairField())
        found += [action for action, shape in self.input_fields if tuple(a.shape[1:]) == shape]
        if self.space_dim is not None and a.dim() >= 2 and a.shape[-1] == self.space_dim:
            spatial_per_point = per_point and a.dim() >= 3
            found += [Vectors(per_point=spatial_per_point), Points(per_point=spatial_per_point)]
            if pairs and a.dim() >= 4:
                found.append(PairField(vectors=True))
        found += [action for action in self.declared if accepts(action, a)]
        unique: list[Action] = []
        for action in found:
            if action not in unique:
                unique.append(action)
        return unique


def accepts(action: Action, a: Tensor) -> bool:
    """Whether ``a`` can carry ``action`` (its ``validate`` passes)."""
    try:
        action.validate(a, "activation")
    except DataError:
        return False
    return True


def acted(action: Action, g: Element, a: Any) -> Any | None:
    """``rho(g) a`` with ``g`` expanded to ``a``'s rows, or ``None`` when the action does not fit ``a``."""
    try:
        leaves, _ = flatten(a)
        rows = next(t.shape[0] for t in leaves if isinstance(t, Tensor))
        expanded = expand_rows(g, rows)
        if expanded is None:
            return None
        return action.apply(expanded, a)
    except (DataError, ValueError, RuntimeError, IndexError, StopIteration):
        return None


def action_tangent(action: Action, exp: Callable[[float], Element], a: Any) -> Any | None:
    """``d/dt rho(exp(t X)) a`` at ``t = 0`` by a central difference (``None`` when the action does not fit)."""
    ahead, behind = acted(action, exp(FD_STEP), a), acted(action, exp(-FD_STEP), a)
    if ahead is None or behind is None:
        return None
    ahead_leaves, rebuild = flatten(ahead)
    behind_leaves, _ = flatten(behind)
    return rebuild([(p - q) / (2 * FD_STEP) if is_floating(p) else torch.zeros(()) for p, q in zip(ahead_leaves, behind_leaves)])


def best_fit(observed: Tensor, expectations: list[tuple[Action, Tensor]]) -> tuple[Action, Tensor]:
    """The ``(action, expected)`` pair nearest to ``observed`` (first wins ties)."""
    best = expectations[0]
    best_gap = float(torch.linalg.vector_norm(observed - best[1]))
    for action, expected in expectations[1:]:
        gap = float(torch.linalg.vector_norm(observed - expected))
        if gap < best_gap:
            best, best_gap = (action, expected), gap
    return best


def inferred_tangent(layout: Layout, exp: Callable[[float], Element], a: Tensor, observed: Tensor) -> tuple[Action, Tensor]:
    """The candidate action of ``a`` whose tangent is nearest ``observed``, and that tangent."""
    expectations = []
    for action in layout.candidates(a):
        # scalars do not move along the algebra (its elements have no permutation part): no differences needed
        still = isinstance(action, Scalars) or action == PairField()
        tangent = torch.zeros_like(a) if still else action_tangent(action, exp, a)
        if tangent is not None:
            expectations.append((action, tangent))
    return best_fit(observed, expectations)


def inferred_image(layout: Layout, g: Element, a: Tensor, observed: Tensor) -> tuple[Action, Tensor]:
    """The candidate action of ``a`` under which ``rho(g) a`` is nearest ``observed`` (``a`` at ``g.x``), and ``rho(g) a``."""
    expectations = []
    for action in layout.candidates(a):
        image = a if action == Invariant() else acted(action, g, a)  # invariant fits any layout (packed rows too)
        if image is not None:
            expectations.append((action, image))
    return best_fit(observed, expectations)
