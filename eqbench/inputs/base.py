"""Example-input generators: dense tensors built from a small, shrinkable structure.

Property-based search draws the *structure* of an input (a seed, the number of points, a
scale, how many points are padding, whether the configuration is degenerate) through
hypothesis primitives, and the generator builds the dense tensors from it with a seeded
``torch.Generator``. Hypothesis arrays would give near-constant tensors that hide bugs; a
drawn seed gives generic ones, and the structure fields are what shrinking makes small.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class InputStructure:
    """What an example input looks like, independent of its random values.

    * ``seed``: seeds the ``torch.Generator`` that draws the dense values;
    * ``batch``: number of independent inputs stacked on the batch axis;
    * ``num_points``: size of the point / node axis (padded size when ``num_padded > 0``);
    * ``scale``: overall length scale of positions (small scales make dense clouds);
    * ``num_padded``: trailing points per item that are masked out (when the input has a mask);
    * ``degenerate``: ``""`` for generic inputs, or a named degenerate configuration
      (``"duplicate"``, ``"collinear"``, ``"coplanar"``, ``"symmetric"``) for rare-input bugs.
    """

    seed: int = 0
    batch: int = 1
    num_points: int = 8
    scale: float = 1.0
    num_padded: int = 0
    degenerate: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InputGenerator(ABC):
    """Builds batched example inputs that match a model's input action."""

    @abstractmethod
    def __call__(self, structure: InputStructure) -> Any:
        """The batched input value for ``structure`` (deterministic given ``structure.seed``)."""

    @abstractmethod
    def structure_strategy(self, batch: int = 1) -> Any:
        """A hypothesis strategy over :class:`InputStructure` (with the given batch size)."""

    def draw_structure(self, draw: Any, batch: int = 1) -> InputStructure:
        """What :meth:`structure_strategy` draws, drawn inside the caller's ``st.composite``.

        The checker's search draws each example's structure this way. A generator whose
        strategy is itself a composite overrides it with the direct draws, so that the search
        pays hypothesis no extra nesting level (a span and a draw) per example.
        """
        return draw(self.structure_strategy(batch))

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        """A generic structure for the random (non-search) phase of a check."""
        return InputStructure(seed=seed, batch=batch)

    def generator(self, structure: InputStructure) -> torch.Generator:
        return torch.Generator().manual_seed(int(structure.seed))
