"""Small helpers shared by the groups' hypothesis strategies (floats that shrink towards 0).

A group's search strategy is a flat tuple of hypothesis primitives (:class:`ParamChoices`) and
one function that builds the parameters from the drawn values. The checker's search draws the
primitives one by one inside its own ``st.composite`` (:mod:`eqbench.check.search`);
:meth:`ParamChoices.strategy` (``st.tuples(...).map(build)``) serves everyone else. Nesting a
strategy per factor instead (SO(3) inside O(3) inside E(3) inside E(3) x S_n, each a
``tuples(...).map``) draws the same values but costs hypothesis a span, a draw and a map per
level.

hypothesis is imported when a strategy is first built (:func:`float_param`, :func:`integer_param`,
:meth:`ParamChoices.strategy`), not with the groups: models that only use the groups' maths
(e.g. :mod:`eqbench.models.lieconv`) do not load the search library.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from hypothesis import strategies as st


@dataclass(frozen=True)
class ParamChoices:
    """One element's parameters as hypothesis primitives: ``build(values)`` makes the params of the drawn ``values``."""

    strategies: tuple[st.SearchStrategy[Any], ...]
    build: Callable[[Sequence[Any]], dict[str, Tensor]]

    def strategy(self) -> st.SearchStrategy[dict[str, Tensor]]:
        """The flat strategy: one ``st.tuples`` of the primitives, mapped through ``build``."""
        from hypothesis import strategies as st

        return st.tuples(*self.strategies).map(self.build)


def joined(parts: Sequence[ParamChoices], merge: Callable[[list[dict[str, Tensor]]], dict[str, Tensor]]) -> ParamChoices:
    """The choices of several parts side by side in one flat tuple; ``merge`` combines the parts' params."""
    sizes = [len(part.strategies) for part in parts]

    def build(values: Sequence[Any]) -> dict[str, Tensor]:
        built, start = [], 0
        for part, size in zip(parts, sizes):
            built.append(part.build(values[start : start + size]))
            start += size
        return merge(built)

    return ParamChoices(tuple(s for part in parts for s in part.strategies), build)


def union(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The params of parts with distinct keys as one dict (the ``merge`` of :func:`joined` for one group's parts)."""
    return {key: value for part in parts for key, value in part.items()}


def float_param(low: float, high: float) -> st.SearchStrategy[float]:
    """A finite float in ``[low, high]``; hypothesis shrinks it towards 0 (the identity for angles)."""
    from hypothesis import strategies as st

    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def integer_param(low: int, high: int) -> st.SearchStrategy[int]:
    """An integer in ``[low, high]``; hypothesis shrinks it towards ``low`` (the identity for indices from 0)."""
    from hypothesis import strategies as st

    return st.integers(low, high)


def batch1(value: Any, dtype: torch.dtype = torch.float64) -> Tensor:
    """One parameter (a number or a list of numbers) as a batch-1 tensor."""
    return torch.tensor([value], dtype=dtype)


def bernoulli(n: int, generator: torch.Generator) -> Tensor:
    """``n`` fair coin flips in {0, 1} as int64 (the Haar measure on a two-element group)."""
    return torch.randint(0, 2, (n,), generator=generator)
