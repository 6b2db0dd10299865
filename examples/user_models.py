"""A user's own models, registered from outside eqbench (a plugin file).

    eqbench list --plugin examples/user_models.py
    eqbench check --plugin examples/user_models.py

Each ``register_model`` call names the model, the group it should respect, how that group
acts on its input and output, which example inputs to try, and the verdict to expect.
"""
from __future__ import annotations

import torch
from torch import nn

from eqbench.actions import Invariant, Points, Vectors
from eqbench.groups import SE3, Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.registry import register_model

CLOUDS = PointCloudInputs(max_points=16)
QUICK = {"n_inputs": 2, "n_elements": 8, "search_examples": 10}


class CentroidSpring(nn.Module):
    """A force on each point towards the cloud's centroid, with a learned radial strength.

    ``F_i = phi(||c - x_i||) (c - x_i)`` with ``c = mean_j x_j``: translations cancel in
    ``c - x_i``, rotations rotate it and leave its norm alone, and re-indexing the points
    re-indexes the forces, so ``F`` is SE(3) x S_n equivariant (a per-point vector output).
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.strength = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        offset = pos.mean(dim=1, keepdim=True) - pos
        return self.strength(offset.norm(dim=-1, keepdim=True)) * offset


class FlatBaseline(nn.Module):
    """A non-equivariant baseline: an MLP on each point's raw coordinates, summed.

    Summing makes it S_n invariant, but raw coordinates change under rotations, so it is
    *expected* to be violated under SE(3) x S_n: registering it documents that.
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.net(pos).sum(dim=1)


@register_model(
    "user-centroid-spring",
    group=SE3() * Symmetric(),
    in_action=Points(),
    out_action=Vectors(),
    inputs=CLOUDS,
    expected="exact",
    description="force towards the centroid (a user's equivariant model)",
    check_options=QUICK,
)
def centroid_spring() -> CentroidSpring:
    return CentroidSpring()


@register_model(
    "user-flat-baseline",
    group=SE3() * Symmetric(),
    in_action=Points(),
    out_action=Invariant(),
    inputs=CLOUDS,
    expected="violated",
    description="MLP on raw coordinates (a user's known non-equivariant baseline)",
    check_options=QUICK,
)
def flat_baseline() -> FlatBaseline:
    return FlatBaseline()
