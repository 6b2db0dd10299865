"""Symmetric molecules (methane, SF6, benzene) as checker inputs, exact or slightly distorted.

Geometries from standard bond lengths (Angstrom): methane CH4 is a regular tetrahedron
(C-H 1.087, point group T_d), sulfur hexafluoride SF6 a regular octahedron (S-F 1.561, O_h),
benzene C6H6 two concentric regular hexagons (C-C 1.397, C-H 1.084, D_6h). Every vector or
pseudovector that is a sum over atoms of an equivariant per-atom quantity vanishes on them
(each group fixes no non-zero vector), so a correct model's dipole-like output is zero up to
rounding: the hard case for relative errors.

A structure's ``num_points`` picks the molecule (5, 7 or 12 atoms); ``degenerate="exact"``
gives the exact geometry, ``""`` the geometry with every atom moved by ``N(0, (0.05 scale)^2)``
(generic: non-zero dipoles, where broken models show). Each item is randomly rotated (Haar on
O(3)) and shifted. The value is a dict ``pos`` ``(B, N, 3)`` float64, ``z`` ``(B, N)`` int64
atomic numbers.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from hypothesis import strategies as st

from eqbench.actions import Action, Dict, Points, Scalars
from eqbench.inputs.base import InputGenerator, InputStructure
from eqbench.inputs.configurations import PLATONIC, random_orthonormal


def _methane() -> tuple[torch.Tensor, list[int]]:
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), 1.087 * PLATONIC[4]]), [6, 1, 1, 1, 1]


def _sf6() -> tuple[torch.Tensor, list[int]]:
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), 1.561 * PLATONIC[6]]), [16] + [9] * 6


def _benzene() -> tuple[torch.Tensor, list[int]]:
    angles = 2 * math.pi * torch.arange(6, dtype=torch.float64) / 6
    ring = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(6, dtype=torch.float64)], dim=-1)
    return torch.cat([1.397 * ring, (1.397 + 1.084) * ring]), [6] * 6 + [1] * 6


#: Molecules by atom count.
MOLECULES = {5: _methane(), 7: _sf6(), 12: _benzene()}
EXACT = "exact"


class MoleculeInputs(InputGenerator):
    """Methane, SF6 and benzene, exact or distorted, randomly placed (module docstring)."""

    @property
    def action(self) -> Action:
        return Dict(pos=Points(), z=Scalars())

    def __call__(self, structure: InputStructure) -> dict[str, torch.Tensor]:
        if structure.num_points not in MOLECULES or structure.degenerate not in ("", EXACT):
            raise ValueError(f"no molecule for {structure} (atom counts {sorted(MOLECULES)}, degenerate '' or {EXACT!r})")
        generator = self.generator(structure)
        geometry, numbers = MOLECULES[structure.num_points]
        batch = structure.batch
        pos = geometry.expand(batch, -1, -1).clone()
        if structure.degenerate != EXACT:
            pos = pos + 0.05 * structure.scale * torch.randn(pos.shape, generator=generator, dtype=torch.float64)
        rotation = random_orthonormal(batch, 3, generator)
        shift = torch.randn(batch, 1, 3, generator=generator, dtype=torch.float64)
        z = torch.tensor(numbers).expand(batch, -1).clone()
        return {"pos": pos @ rotation.transpose(1, 2) + shift, "z": z}

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(
            InputStructure,
            seed=st.integers(0, 2**31 - 1),
            batch=st.just(batch),
            num_points=st.sampled_from(sorted(MOLECULES, reverse=True)),
            degenerate=st.sampled_from(("", EXACT)),
        )

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return InputStructure(seed=seed, batch=batch, num_points=12)
