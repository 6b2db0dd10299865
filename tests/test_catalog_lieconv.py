"""LieConv and LieConv + GIGP registrations: verdicts, negative controls, Monte-Carlo checks (common random numbers, in distribution), inputs."""
from __future__ import annotations

import pytest
import torch

from eqbench import registry
from eqbench.check import Verdict, monte_carlo_sweep
from eqbench.inputs import InputStructure
from eqbench.models.lieconv.groups import NAMES as LIFTING_GROUPS
from eqbench.models.lieconv.groups import lifting_group
from eqbench.catalog import lieconv as catalog_lieconv

registry.load_builtin()
ENTRIES = [entry for entry in registry.entries() if entry.source.startswith(catalog_lieconv.__name__ + ":")]
#: The registered default suite runs seed 0 in CI; the tests use other seeds.
DETERMINISTIC = [e.name for e in ENTRIES if e.stochastic is None]
MONTE_CARLO = [e.name for e in ENTRIES if e.stochastic is not None and e.expected == "approximate"]
#: How far above its tolerance a Monte-Carlo control's bias bound must lie (the 20-seed run's
#: smallest ratio, seeds 0..19, is in the module docstring of eqbench.catalog.lieconv).
CONTROL_MARGIN = 3.0


def model(name: str, seed: int = 0):
    return registry.build_model(registry.get_entry(name), seed)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_entries_meet_their_expectation(name):
    entry = registry.get_entry(name)
    result = registry.run_entry(entry, seed=1)
    assert entry.matches(result.verdict), str(result)
    if entry.expected == "violated":  # negative controls: caught far beyond the tolerance, with a counterexample
        assert result.max_rel_error > 10 * entry.tolerance and result.counterexample is not None
        assert result.float64 is not None and result.float64.kind == "structural"


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_monte_carlo_entries_meet_their_expectation_within_their_measured_spread(name):
    entry = registry.get_entry(name)
    result = registry.run_entry(entry, seed=1)
    assert entry.matches(result.verdict) and result.mode == entry.stochastic, str(result)
    assert 0 < result.spread <= catalog_lieconv.MEASURED_SPREAD[name]  # the recorded spread still bounds this network's
    assert entry.tolerance == pytest.approx(catalog_lieconv.monte_carlo_tolerance(catalog_lieconv.MEASURED_SPREAD[name]))
    assert result.bias_bound <= entry.tolerance


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_monte_carlo_controls_are_checked_like_their_entry_and_caught_well_above_its_tolerance(name):
    entry, control = registry.get_entry(name), registry.get_entry(f"{name}-control")
    assert (control.group, control.inputs, control.stochastic, control.tolerance) == (
        entry.group, entry.inputs, entry.stochastic, entry.tolerance
    )
    assert dict(control.check_options) == dict(entry.check_options) and control.expected == "violated"
    result = registry.run_entry(control, seed=1)
    assert result.verdict is Verdict.VIOLATED, str(result)
    assert result.bias_bound > CONTROL_MARGIN * entry.tolerance, str(result)


def test_every_lifting_group_and_gigp_front_end_is_registered():
    networks = {name: model(name) for name in ("lieconv-trivial", "lieconv-so2-gigp", "lieconv-t3-molecule-gigp")}
    lifts = {type(model(e.name).group) for e in ENTRIES}
    assert lifts == {type(lifting_group(name)) for name in LIFTING_GROUPS}  # T(n), SO(2), RxSO(2), SE(2), SO(3), SE(3), trivial
    assert all(networks[name].pool is not None for name in ("lieconv-so2-gigp", "lieconv-t3-molecule-gigp"))
    assert [e.expected for e in ENTRIES if e.name in networks] == ["exact", "exact", "violated"]


def test_so2_ball_sampling_commutes_with_rotations_under_common_random_numbers():
    result = registry.run_entry(registry.get_entry("lieconv-so2-mc"), seed=3)
    assert result.mode == "crn" and result.verdict is Verdict.EXACT, str(result)


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_monte_carlo_networks_sample_afresh_at_each_call_and_repeat_under_a_seed(name):
    """What check_stochastic relies on: the draws come from torch's global RNG (one stream per call)."""
    entry = registry.get_entry(name)
    network = model(name)
    batch = catalog_lieconv.as_float32(entry.inputs(entry.inputs.default_structure(seed=5, batch=3)))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        draws = [network(**batch) for _ in range(2)]
        torch.manual_seed(7)
        first = network(**batch)
        torch.manual_seed(7)
        again = network(**batch)
    assert not torch.allclose(draws[0], draws[1]) and torch.equal(first, again)
    assert network.fixed_seed is None and network.generator is None


def test_ball_sampling_error_falls_with_the_sample_count():
    entry = registry.get_entry("lieconv-so2-mc")
    free = model("lieconv-so2-mc")
    structure = InputStructure(seed=0, batch=4, num_points=128, num_padded=2)

    def with_nbhd(n: int):
        free.nbhd = n
        return free

    sweep = monte_carlo_sweep(
        with_nbhd, [2, 4, 8, 16, 32], entry.group, entry.inputs(structure), entry.in_action, entry.out_action,
        repeats=3, n_inputs=4, n_elements=4,
    )
    assert sweep.rate < 0 and sweep.rate_high < 0, sweep.format()
    assert list(sweep.table["mean_rel_error"]) == sorted(sweep.table["mean_rel_error"], reverse=True)


def test_image_point_clouds_keep_the_pixels_within_the_radius():
    pixels = catalog_lieconv.ImagePointClouds(size=9, radius=4.5)
    value = pixels(pixels.default_structure(seed=3, batch=2))
    images = pixels.images(pixels.default_structure(seed=3, batch=2))
    assert value["pos"].shape == (2, pixels.num_points, 2) and bool(value["mask"].all())
    assert float(value["pos"].norm(dim=-1).max()) < pixels.radius
    coords = torch.linspace(-4.5, 4.5, 9, dtype=torch.float64)
    keep = (coords[:, None] ** 2 + coords[None, :] ** 2).sqrt() < pixels.radius
    assert torch.equal(value["feat"][..., 0], images[:, 0][:, keep])
    pixels.action.validate(value)


def test_molecules_are_zero_on_padded_atoms():
    molecules = catalog_lieconv.MoleculeInputs()
    structure = InputStructure(seed=4, batch=3, num_points=10, num_padded=3)
    value = molecules(structure)
    real = value["charges"] > 0
    assert real.sum(1).tolist() == [7, 7, 7]
    assert torch.equal(value["one_hot"].sum(-1), real.to(value["one_hot"].dtype))
    assert set(value["charges"][real].tolist()) <= set(map(float, catalog_lieconv.QM9_CHARGES))
    molecules.action.validate(value)


def test_calibration_moves_gigp_off_mean_pooling_and_fits_its_bins():
    network = model("lieconv-so2-gigp")
    pool = network.pool
    assert bool(pool.fitted) and float(pool.bins[-1]) > float(pool.bins[0])
    weights, last = pool.orbit_weights.detach(), pool.phi[-1].weight.detach()
    assert float(last.abs().max()) > 0 and not torch.allclose(weights, torch.ones_like(weights))
    assert not network.training and not torch.isnan(network.blocks[0].conv.ball.radius)
