"""Signals on an ``H x W`` grid, laid out ``(B, H*W, C)`` (row-major sites on the point axis)."""
from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.inputs.base import InputGenerator, InputStructure


class GridSignalInputs(InputGenerator):
    """``(B, H*W, channels)`` signals with i.i.d. ``N(0, 1)`` values (float64); only the seed varies."""

    def __init__(self, height: int, width: int, channels: int = 1) -> None:
        if height < 1 or width < 1 or channels < 1:
            raise ValueError(f"GridSignalInputs needs positive sizes, got height={height}, width={width}, channels={channels}")
        self.height, self.width, self.channels = height, width, channels

    def __repr__(self) -> str:
        return f"GridSignalInputs({self.height}x{self.width}, channels={self.channels})"

    def __call__(self, structure: InputStructure) -> Tensor:
        shape = (structure.batch, self.height * self.width, self.channels)
        return torch.randn(shape, generator=self.generator(structure), dtype=torch.float64)

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(self.default_structure, seed=st.integers(0, 2**31 - 1), batch=st.just(batch))

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return InputStructure(seed=seed, batch=batch, num_points=self.height * self.width)
