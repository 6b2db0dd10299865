"""Common machinery of the actions on one tensor field (everything but the composites)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from torch import Tensor

from eqbench.actions.base import Action, Leaf
from eqbench.groups.element import Element


class FieldAction(Action):
    """An action on a single tensor: one leaf, ``fn`` applied to that tensor, a compact repr.

    Subclasses are frozen dataclasses (so actions are comparable, hashable values); their
    repr lists only the arguments that differ from the defaults, e.g. ``Vectors(pseudo=True)``.
    """

    #: Whether the field is compared in norm by the checker (False for integer bookkeeping fields).
    comparable: ClassVar[bool] = True
    #: Whether the tensor has the point axis at position 1 (a dataclass field in most subclasses).
    per_point: bool = True

    def is_exact(self, g: Element) -> bool:
        """Whether ``g`` acts exactly (a true group action); only interpolated images are not."""
        return True

    def leaves(self, x: Tensor, prefix: str = "") -> list[Leaf]:
        """One leaf named ``prefix`` (empty for a value that is a single tensor)."""
        return [Leaf(prefix, x, self.per_point, self.comparable)]

    def map_tensors(self, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        return fn(x)

    def __repr__(self) -> str:
        changed = []
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if not field.init:
                continue
            value: Any = getattr(self, field.name)
            if value != field.default:
                changed.append(f"{field.name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"
