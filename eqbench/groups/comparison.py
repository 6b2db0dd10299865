"""Value semantics for groups: two groups are equal when they are the same class built with the same parameters."""
from __future__ import annotations

from typing import Any


class ComparedByValue:
    """Mixin giving ``==`` and ``hash`` by class and constructor parameters (``SO3() == SO3()``).

    The parameters are the instance attributes (``n``, ``sigma``, ``max_scale``, factor groups, ...);
    they must be hashable values.
    """

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items(), key=lambda item: item[0]))))
