"""Stochastic models (spread, common random numbers, in-distribution, sample-count sweeps) and the Lie derivative."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from eqbench.actions import Invariant, Vectors
from eqbench.check import Verdict, check_stochastic, lie_derivative, monte_carlo_sweep
from eqbench.groups import SE3, SO2, SO3, Symmetric
from eqbench.inputs import InputStructure, PointCloudInputs

CLOUDS = PointCloudInputs(dim=3, max_points=12)
PLANAR = PointCloudInputs(dim=2, max_points=12)


class RandomSubsetRadius(nn.Module):
    """Monte-Carlo estimate of the mean squared radius from ``samples`` points drawn with replacement.

    Its randomness (which points) commutes with rotations: exact under SO(3) with common random
    numbers; under S_n it is equivariant only in distribution.
    """

    def __init__(self, samples: int, tilt: float = 0.0) -> None:
        super().__init__()
        self.samples, self.tilt = samples, tilt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.randint(0, x.shape[1], (x.shape[0], self.samples))
        picked = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return (picked.square().sum(dim=-1) + self.tilt * picked[..., 0]).mean(dim=1, keepdim=True)


def test_spread_is_measured_and_crn_passes_a_model_whose_randomness_commutes() -> None:
    state = torch.random.get_rng_state()
    result = check_stochastic(RandomSubsetRadius(16), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="crn", expected="exact")
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert result.spread > 1e-2
    assert result.verdict is Verdict.EXACT and result.matches_expected
    again = check_stochastic(RandomSubsetRadius(16), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="crn")
    assert again.max_rel_error == result.max_rel_error and again.spread == result.spread


def test_crn_catches_randomness_that_does_not_commute_but_distribution_mode_accepts_it() -> None:
    crn = check_stochastic(RandomSubsetRadius(16), Symmetric(), CLOUDS, CLOUDS.action, Invariant(), mode="crn")
    assert crn.verdict is Verdict.VIOLATED
    in_distribution = check_stochastic(RandomSubsetRadius(16), Symmetric(), CLOUDS, CLOUDS.action, Invariant(), mode="distribution", repeats=16)
    assert in_distribution.verdict is Verdict.APPROXIMATE and in_distribution.z_score < 3, str(in_distribution)


def test_distribution_mode_calls_a_deterministic_invariant_model_exact() -> None:
    """No spread between draws and no bias: nothing is approximate about it."""
    result = check_stochastic(RandomSubsetRadius(16), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="distribution", repeats=4)
    deterministic = check_stochastic(
        lambda x: x.square().sum(dim=-1).mean(dim=1, keepdim=True), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="distribution", repeats=4
    )
    assert result.verdict is Verdict.APPROXIMATE and deterministic.verdict is Verdict.EXACT, (str(result), str(deterministic))


def test_distribution_mode_catches_a_biased_model() -> None:
    result = check_stochastic(RandomSubsetRadius(16, tilt=2.0), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="distribution", repeats=16)
    assert result.verdict is Verdict.VIOLATED and result.z_score > 3


def test_stochastic_model_failure_is_an_error_verdict() -> None:
    def noisy_nan(x):
        return torch.rand(x.shape[0], 1) * float("nan")

    result = check_stochastic(noisy_nan, SO3(), CLOUDS, CLOUDS.action, Invariant())
    assert result.verdict is Verdict.ERROR and "NaN" in result.message


def test_monte_carlo_sweep_recovers_the_inverse_square_root_rate() -> None:
    sweep = monte_carlo_sweep(RandomSubsetRadius, [4, 16, 64, 256, 1024], Symmetric(), CLOUDS, CLOUDS.action, Invariant(), repeats=4)
    assert list(sweep.table["samples"]) == [4, 16, 64, 256, 1024]
    assert sweep.rate_low <= -0.5 <= sweep.rate_high
    assert sweep.rate_high - sweep.rate_low < 0.3
    assert (sweep.table["mean_rel_error"].diff().dropna() < 0).all()
    assert "95% CI" in sweep.format()
    with pytest.raises(ValueError, match="at least 3"):
        monte_carlo_sweep(RandomSubsetRadius, [4, 16], Symmetric(), CLOUDS, CLOUDS.action, Invariant())


# ------------------------------------------------------------------ Lie derivative
def planar_moment(x: torch.Tensor) -> torch.Tensor:
    """SO(2)-equivariant vector sum_i x_i |x_i|^2."""
    return (x * x.square().sum(dim=-1, keepdim=True)).sum(dim=1)


def planar_moment_broken(x: torch.Tensor) -> torch.Tensor:
    return planar_moment(x) + 0.1 * x[..., :1].square().sum(dim=1)


def test_lie_derivative_vanishes_for_an_equivariant_model_and_not_for_a_broken_one() -> None:
    x = PLANAR(InputStructure(seed=2, batch=3))
    good = lie_derivative(planar_moment, SO2(), x, PLANAR.action, Vectors(per_point=False))
    assert good.method == "jvp" and len(good.norms) == 1
    assert good.max_relative_norm < 1e-8
    bad = lie_derivative(planar_moment_broken, SO2(), x, PLANAR.action, Vectors(per_point=False))
    assert bad.max_relative_norm > 1e-3
    assert bad.squared_norms[0] >= bad.norms[0] ** 2  # mean of squares >= square of mean


def test_lie_derivative_falls_back_to_finite_differences_where_forward_ad_is_missing() -> None:
    """``torch.cdist`` has no forward-mode derivative; the central difference still sees exact invariance."""
    x = CLOUDS(InputStructure(seed=4, batch=2))

    def distance_sum(points):
        return torch.cdist(points, points).sum(dim=(1, 2)).unsqueeze(-1)

    result = lie_derivative(distance_sum, SE3(), x, CLOUDS.action, Invariant())
    assert result.method == "finite-difference" and len(result.norms) == 6
    assert result.max_relative_norm < 1e-8


def test_lie_derivative_has_one_entry_per_generator_and_rejects_finite_groups() -> None:
    x = CLOUDS(InputStructure(seed=1, batch=2))

    def reads_z(points):
        return points[..., 2:].sum(dim=1)

    result = lie_derivative(reads_z, SO3(), x, CLOUDS.action, Invariant())
    assert len(result.relative_norms) == 3
    assert max(result.relative_norms) > 1e-3
    with pytest.raises(ValueError, match="Lie algebra"):
        lie_derivative(reads_z, Symmetric(), x, CLOUDS.action, Invariant())


class NoisyRows(nn.Module):
    """Invariant mean squared radius plus noise whose size differs a thousandfold between rows (by the first coordinate's sign)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        radius = x.square().sum(dim=-1).mean(dim=1, keepdim=True)
        loud = (x[:, :1, 0] > 0).to(x.dtype)
        return radius * (1 + (0.001 + loud) * torch.randn(x.shape[0], 1))


def test_distribution_mode_judges_each_row_against_its_own_noise() -> None:
    """A loud row's large mean difference is noise, not bias: the bias bound stays 0 where a raw-gap rule would fail it."""
    result = check_stochastic(NoisyRows(), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="distribution", repeats=16, tolerance=1e-3)
    assert result.bias_bound == 0.0 and result.max_rel_error > 100 * result.tolerance
    assert result.verdict is Verdict.APPROXIMATE, str(result)


def test_results_carry_the_check_record_fields_and_the_bias_bound() -> None:
    from eqbench.check.result import RECORD_FIELDS

    biased = check_stochastic(RandomSubsetRadius(16, tilt=2.0), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="distribution", repeats=16)
    assert 0 < biased.tolerance < biased.bias_bound < biased.max_rel_error  # the bound is the gap less 3 standard errors
    crn = check_stochastic(RandomSubsetRadius(16, tilt=2.0), SO3(), CLOUDS, CLOUDS.action, Invariant(), mode="crn", repeats=4)
    assert crn.verdict is Verdict.VIOLATED and crn.bias_bound == crn.max_rel_error  # same draws: no noise to take off
    for result in (biased, crn):
        record = result.to_record()
        assert set(RECORD_FIELDS) <= set(record) and record["noise_floor"] == result.noise_floor
        assert record["n_elements"] == result.repeats * 4 * 8 and "bias bound" in str(result)
