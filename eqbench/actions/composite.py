"""Structured values: a tuple or dict of fields, each with its own action.

``Tuple(Points(), Vectors())`` acts on ``(x, v)`` field by field, ``Dict(pos=Points(), mask=Mask())``
on ``{"pos": x, "mask": m}``. Leaves are named by position (``"0"``, ``"1"``) or key
(``"pos"``), nested ones joined with dots (``"inputs.1"``). Validation checks every field,
then that all fields share the batch size, all per-point fields the number of points, and
that edge indices stay below it. Errors raised while acting name the field.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Callable, Iterator, Mapping, Sequence

from torch import Tensor

from eqbench.actions.base import Action, DataError, Leaf
from eqbench.actions.graph import EdgeIndex
from eqbench.groups.element import Element


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Composite(Action):
    """A fixed collection of named sub-actions; subclasses say how the value is stored."""

    fields: dict[str, Action]

    @abstractmethod
    def _values(self, x: Any, where: str = "value") -> list[Any]:
        """The field values of ``x`` in the order of ``self.fields`` (checks the container)."""

    @abstractmethod
    def _rebuild(self, values: list[Any]) -> Any:
        """A container of the same kind from field values in the order of ``self.fields``."""

    def _items(self, x: Any, where: str = "value") -> Iterator[tuple[str, Action, Any]]:
        return zip(self.fields, self.fields.values(), self._values(x, where))

    # -------------------------------------------------------------------- action
    def apply(self, g: Element, x: Any) -> Any:
        out = []
        for name, action, value in self._items(x):
            try:
                out.append(action.apply(g, value))
            except DataError as error:
                raise _in_field(error, name) from None
        return self._rebuild(out)

    def validate(self, x: Any, where: str = "input") -> None:
        for name, action, value in self._items(x, where):
            action.validate(value, _join(where, name))
        leaves = self.leaves(x)
        batches = {leaf.name: leaf.tensor.shape[0] for leaf in leaves}
        if len(set(batches.values())) > 1:
            raise DataError(f"{where}: fields disagree on the batch size: {_describe(batches)}")
        points = {leaf.name: leaf.tensor.shape[1] for leaf in leaves if leaf.per_point}
        if len(set(points.values())) > 1:
            raise DataError(f"{where}: per-point fields disagree on the number of points: {_describe(points)}")
        if points:
            self._check_edges(x, next(iter(points.values())), where)

    def _check_edges(self, x: Any, num_points: int, where: str) -> None:
        for name, action, value in self._items(x, where):
            if isinstance(action, EdgeIndex):
                action.validate_nodes(value, num_points, _join(where, name))
            elif isinstance(action, Composite):
                action._check_edges(value, num_points, _join(where, name))

    def is_exact(self, g: Element) -> bool:
        """True when every field's action is exact for ``g`` (see :meth:`GridImage.is_exact`)."""
        return all(getattr(action, "is_exact", lambda _: True)(g) for action in self.fields.values())

    def leaves(self, x: Any, prefix: str = "") -> list[Leaf]:
        return [leaf for name, action, value in self._items(x) for leaf in action.leaves(value, _join(prefix, name))]

    def map_tensors(self, x: Any, fn: Callable[[Tensor], Tensor]) -> Any:
        return self._rebuild([action.map_tensors(value, fn) for _, action, value in self._items(x)])

    def point_mask(self, x: Any) -> Tensor | None:
        """The first :class:`~eqbench.actions.scalars.Mask` field (searched depth-first), if any."""
        for _, action, value in self._items(x):
            mask = action.point_mask(value)
            if mask is not None:
                return mask
        return None


class Tuple(Composite):
    """Positional fields: the value is a tuple (or list) ``(x0, x1, ...)``; leaves ``"0"``, ``"1"``, ..."""

    def __init__(self, *actions: Action) -> None:
        _require_actions(actions, "Tuple")
        self.actions = tuple(actions)
        self.fields = {str(i): action for i, action in enumerate(actions)}

    def _values(self, x: Any, where: str = "value") -> list[Any]:
        if not isinstance(x, (tuple, list)):
            raise DataError(f"{where}: expected a tuple of {len(self.actions)} fields, got {type(x).__name__}")
        if len(x) != len(self.actions):
            raise DataError(f"{where}: expected a tuple of {len(self.actions)} fields, got {len(x)}")
        return list(x)

    def _rebuild(self, values: list[Any]) -> tuple:
        return tuple(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tuple) and self.actions == other.actions

    def __hash__(self) -> int:
        return hash(("Tuple", self.actions))

    def __repr__(self) -> str:
        return f"Tuple({', '.join(map(repr, self.actions))})"


class Dict(Composite):
    """Named fields: the value is a dict ``{"pos": x, ...}`` with exactly these keys; leaves named by key."""

    def __init__(self, **actions: Action) -> None:
        _require_actions(actions.values(), "Dict")
        self.fields = dict(actions)

    def _values(self, x: Any, where: str = "value") -> list[Any]:
        if not isinstance(x, Mapping):
            raise DataError(f"{where}: expected a dict with keys {list(self.fields)}, got {type(x).__name__}")
        missing = [key for key in self.fields if key not in x]
        unexpected = [key for key in x if key not in self.fields]
        if missing or unexpected:
            raise DataError(f"{where}: expected a dict with keys {list(self.fields)}; missing {missing}, unexpected {unexpected}")
        return [x[key] for key in self.fields]

    def _rebuild(self, values: list[Any]) -> dict[str, Any]:
        return dict(zip(self.fields, values))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dict) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(("Dict", tuple(self.fields.items())))

    def __repr__(self) -> str:
        return f"Dict({', '.join(f'{key}={action!r}' for key, action in self.fields.items())})"


def _require_actions(actions: Sequence[Action] | Any, kind: str) -> None:
    for action in actions:
        if not isinstance(action, Action):
            raise TypeError(f"{kind} fields must be actions, got {action!r}")


def _describe(sizes: dict[str, int]) -> str:
    return ", ".join(f"{name or 'value'} {size}" for name, size in sizes.items())


def _in_field(error: DataError, name: str) -> DataError:
    """The same error with the field path in front (``inputs.1: ...``), built up through nesting."""
    inner = getattr(error, "field_path", None)
    message = getattr(error, "bare_message", str(error))
    path = _join(name, inner) if inner else name
    wrapped = DataError(f"field '{path}': {message}")
    wrapped.field_path = path  # type: ignore[attr-defined]
    wrapped.bare_message = message  # type: ignore[attr-defined]
    return wrapped
