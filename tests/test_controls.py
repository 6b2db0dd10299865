"""The control suite: every correct control is exact and every broken one violated, for seeds 0..19.

This is the checker's own acceptance test: a checker that passes a broken control, fails a
correct one, or flakes between seeds is wrong. Broken controls must also come with a
counterexample that the hypothesis search shrank.
"""
from __future__ import annotations

import pytest
import torch

from eqbench import registry
from eqbench.check import check_equivariance
from eqbench.models import controls

SEEDS = range(20)
registry.load_builtin()
CONTROLS = sorted(e.name for e in registry.entries() if e.source.startswith("eqbench.catalog.controls:"))
CORRECT = [name for name in CONTROLS if registry.get_entry(name).expected == "exact"]
BROKEN = [name for name in CONTROLS if registry.get_entry(name).expected == "violated"]


def test_the_control_suite_has_correct_and_broken_models():
    assert set(CORRECT) == {"distance-mlp", "deepsets", "pointnet", "pointnet-per-point", "egnn-layer", "chiral-so3"}
    assert set(BROKEN) == {
        "chiral-o3",
        "coordinate-mlp",
        "axis-reader",
        "index-weighted-pooling",
        "raw-velocity-energy",
        "truncated-neighbourhood",
    }


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CONTROLS)
def test_control_verdict(name, seed):
    entry = registry.get_entry(name)
    result = registry.run_entry(entry, seed=seed)
    assert str(result.verdict) == entry.expected, str(result)
    if entry.expected == "violated":
        assert result.counterexample is not None and result.counterexample.source == "search", str(result)
        assert result.float64 is not None and result.float64.kind == "structural", str(result)


def test_truncated_neighbourhood_passes_generic_clouds_and_fails_dense_ones():
    """The rare-input control: only the search, not the random phase, finds its violation."""
    entry = registry.get_entry("truncated-neighbourhood")
    random_only = {**entry.check_options, "search_examples": 0}
    for seed in SEEDS:
        model = registry.build_model(entry, seed)
        result = check_equivariance(
            model, entry.group, entry.inputs, entry.in_action, entry.out_action, tolerance=entry.tolerance, seed=seed, **random_only
        )
        assert str(result.verdict) == "exact", f"seed {seed}:\n{result}"
    # a dense cloud: every point has all others within the radius, so which K are kept depends on the order
    model = registry.build_model(entry, 0)
    pos = 0.02 * torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(0))
    reversed_order = torch.arange(5, -1, -1)
    with torch.no_grad():
        assert not torch.allclose(model(pos[:, reversed_order]), model(pos)[:, reversed_order], atol=1e-3)


def test_chiral_invariant_flips_its_signed_volume_under_reflection():
    model = controls.ChiralInvariant()
    pos = torch.randn(2, 7, 3, generator=torch.Generator().manual_seed(1))
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    with torch.no_grad():
        out, mirrored = model(pos), model(pos @ mirror)
    assert torch.allclose(mirrored[:, :-1], out[:, :-1], atol=1e-5)
    assert torch.allclose(mirrored[:, -1], -out[:, -1], atol=1e-5) and out[:, -1].abs().min() > 1e-2


def test_controls_validate_their_inputs():
    with pytest.raises(ValueError, match=r"CoordinateMLP expects positions of shape \(B, 8, 3\), got \(1, 5, 3\)"):
        controls.CoordinateMLP(num_points=8)(torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="at most 4 points, got 5"):
        controls.IndexWeightedPooling(max_points=4)(torch.zeros(1, 5, 3))
