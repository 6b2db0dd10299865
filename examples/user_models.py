"""A user's own models, registered from outside eqbench (a plugin file).

    eqbench list --plugin examples/user_models.py
    eqbench check --plugin examples/user_models.py
    eqbench train nbody --model user-nbody-drift --plugin examples/user_models.py

Each ``register_model`` call names the model, the group it should respect, how that group
acts on its input and output, which example inputs to try, and the verdict to expect.
``register_trainable`` adds a model to a training task, beside the reference models (it
trains with the task's reference preset unless ``--option`` says otherwise).
"""
from __future__ import annotations

import torch
from torch import nn

from eqbench.actions import Invariant, Points, Vectors
from eqbench.groups import E3, SE3, Symmetric
from eqbench.inputs import NBodyInputs, PointCloudInputs
from eqbench.registry import register_model
from eqbench.tasks.trainable import register_trainable

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


class NBodyDrift(nn.Module):
    """Charged n-body positions after a time step: ``x_i + a v_i + sum_j phi(|x_ij|^2, q_i q_j) x_ij``.

    ``x_ij = x_i - x_j``; the drift ``a`` is learned. Differences and velocities rotate and
    reflect with the input and translations cancel in ``x_ij``, so the prediction is
    E(3) x S_n equivariant (points in, points out).
    """

    def __init__(self, hidden: int = 32, start_still: bool = False) -> None:
        super().__init__()
        self.drift = nn.Parameter(torch.zeros(()) if start_still else torch.randn(()))
        self.pair = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        if start_still:  # training starts at "no motion" and learns the drift and the pair forces
            nn.init.zeros_(self.pair[-1].weight)
            nn.init.zeros_(self.pair[-1].bias)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        offsets = positions[:, :, None] - positions[:, None]
        features = torch.cat([offsets.square().sum(-1, keepdim=True), charges[:, :, None] * charges[:, None]], dim=-1)
        return positions + self.drift * velocities + (self.pair(features) * offsets).sum(dim=2)


@register_model(
    "user-nbody-drift",
    group=E3() * Symmetric(),
    in_action=NBodyInputs().action,
    out_action=Points(),
    inputs=NBodyInputs(),
    expected="exact",
    description="a user's n-body model (E(3) x S_n equivariant), also trainable on the nbody task",
    check_options=QUICK,
)
def nbody_drift() -> NBodyDrift:
    return NBodyDrift()


@register_trainable("nbody", "user-nbody-drift")
def trainable_nbody_drift(data: object, generator: torch.Generator, *, hidden: int = 32) -> NBodyDrift:
    return NBodyDrift(hidden, start_still=True)
