"""FA-GNN (Puny et al. 2022): frames in every layer keep the n-body model exactly E(3) x S_n equivariant.

The model reads hidden states as equivariant 3-vectors between layers and frames them again
(the authors' n-body construction). Checked with eqbench's checker, each claim with a negative
control it catches: proper-rotation frames under reflections, and the naive frame on a
symmetric (regular polygon) system, where the covariance has a repeated eigenvalue.
"""
from __future__ import annotations

import math

import pytest
import torch

from eqbench.actions import Points
from eqbench.check import check_equivariance
from eqbench.groups import E3, O3, SE3, Symmetric
from eqbench.inputs import NBodyInputs
from eqbench.models.baselines import NBodyGNN
from eqbench.models.frame_averaging import FAGNN, FrameAveraging

SYSTEMS = NBodyInputs()
CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 5}


def built(build):
    torch.manual_seed(0)
    return build()


def verdict(model, group, inputs=SYSTEMS, **options) -> str:
    result = check_equivariance(model, group, inputs, SYSTEMS.action, Points(), expected="exact", **{**CHECK, **options})
    return str(result.verdict)


def polygon_system(sides: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regular polygon of particles (two equal covariance eigenvalues, one zero) with generic velocities, float64."""
    angles = torch.arange(sides, dtype=torch.float64) * 2 * math.pi / sides
    positions = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(sides, dtype=torch.float64)], dim=-1)[None]
    velocities = torch.randn(1, sides, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    charges = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)[:sides].reshape(1, sides, 1)
    return positions, velocities, charges


def test_proper_frames_give_se3_but_not_reflections():
    model = built(lambda: FAGNN(15, 2, group="SE"))
    assert verdict(model, SE3() * Symmetric()) == "exact"
    assert verdict(model, O3()) == "violated"


def test_symmetric_systems_need_the_multiplicity_aware_frame():
    system = polygon_system()
    options = {"search_examples": 0, "dtype": torch.float64}
    ours = built(lambda: FAGNN(15, 2)).double()
    naive = built(lambda: FAGNN(15, 2, degeneracy="naive")).double()
    assert ours.frames(system[0]).degenerate.item()
    assert verdict(ours, E3() * Symmetric(), system, **options) == "exact"
    assert verdict(naive, E3() * Symmetric(), system, **options) == "violated"


def test_the_generic_wrapper_around_the_gnn_is_exact_too():
    """End-to-end frame averaging of the whole GNN (one frame set), the other way to build an FA-GNN."""
    wrapped = built(lambda: FrameAveraging(NBodyGNN(16, 2), "E", "points", ("vectors", "scalars")))
    assert verdict(wrapped, E3() * Symmetric()) == "exact"


def test_hidden_width_must_hold_whole_vectors():
    with pytest.raises(ValueError, match="multiple of 3"):
        FAGNN(16, 2)


def test_every_parameter_learns_through_the_latent_frames():
    model = built(lambda: FAGNN(15, 3))
    positions, velocities, charges = (t.float() for t in SYSTEMS(SYSTEMS.default_structure(batch=3)))
    model(positions, velocities, charges).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
