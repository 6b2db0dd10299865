"""Charged n-body states for checks of n-body models (EGNN, FA-GNN, GNN and users' own)."""
from __future__ import annotations

import math
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.actions import Points, Scalars, Tuple, Vectors
from eqbench.inputs.base import InputGenerator, InputStructure


class NBodyInputs(InputGenerator):
    """Charged n-body states ``(positions, velocities, charges)``: ``(B, N, 3)``, ``(B, N, 3)``, ``(B, N, 1)``.

    Positions ``N(0, scale^2)``, velocities ``N(0, 1)``, charges ``+-1`` with equal odds (the
    charged-particles setting of Kipf et al. 2018 used by EGNN and FA); float64. The search
    draws a seed, ``N`` in ``[min_particles, max_particles]`` and a log-uniform scale.
    """

    def __init__(self, min_particles: int = 3, max_particles: int = 8, min_scale: float = 0.3, max_scale: float = 3.0) -> None:
        if not 1 <= min_particles <= max_particles or not 0 < min_scale <= max_scale:
            raise ValueError(
                "NBodyInputs needs 1 <= min_particles <= max_particles and 0 < min_scale <= max_scale; got "
                f"{min_particles}, {max_particles}, {min_scale}, {max_scale}"
            )
        self.min_particles, self.max_particles = min_particles, max_particles
        self.min_scale, self.max_scale = min_scale, max_scale

    def __repr__(self) -> str:
        return f"NBodyInputs(particles={self.min_particles}..{self.max_particles})"

    @property
    def action(self) -> Tuple:
        return Tuple(Points(dim=3), Vectors(dim=3), Scalars())

    def __call__(self, structure: InputStructure) -> tuple[Tensor, Tensor, Tensor]:
        generator = self.generator(structure)
        shape = (structure.batch, structure.num_points)
        positions = structure.scale * torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
        velocities = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
        charges = torch.randint(0, 2, (*shape, 1), generator=generator).to(torch.float64) * 2 - 1
        return positions, velocities, charges

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(
            InputStructure,
            seed=st.integers(0, 2**31 - 1),
            batch=st.just(batch),
            num_points=st.integers(self.min_particles, self.max_particles),
            scale=st.floats(math.log(self.min_scale), math.log(self.max_scale)).map(self._clamped_scale),
        )

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        """Five particles at scale 1, as in the paper's benchmark."""
        return InputStructure(seed=seed, batch=batch, num_points=min(max(5, self.min_particles), self.max_particles))

    def _clamped_scale(self, log_scale: float) -> float:
        return min(max(math.exp(log_scale), self.min_scale), self.max_scale)
