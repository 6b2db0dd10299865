"""Verdicts of check_equivariance on correct models and on negative controls, each of which must be caught."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from eqbench.actions import Invariant, Points, Scalars, Tuple, Vectors
from eqbench.check import CheckResult, EquivarianceError, Verdict, assert_equivariant, check_equivariance
from eqbench.groups import O3, SE3, SO2, SO3, Cyclic, Symmetric, Translations
from eqbench.inputs import ImageInputs, InputStructure, PointCloudInputs

CLOUDS = PointCloudInputs(dim=3, max_points=12)
FAST = dict(n_inputs=3, n_elements=8, search_examples=10)


def centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=1, keepdim=True)


def distance_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of pairwise distances: invariant under E(3) and S_n."""
    return torch.cdist(x, x).sum(dim=(1, 2)).unsqueeze(-1)


class RawCoordinateMLP(nn.Module):
    """DeepSets on raw coordinates: permutation invariant, not rotation or translation invariant."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).sum(dim=1)


def reads_z_axis(x: torch.Tensor) -> torch.Tensor:
    """Spread along the z axis only: translation and permutation invariant, not rotation invariant."""
    return centred(x)[..., 2].square().sum(dim=1, keepdim=True)


def order_weighted(x: torch.Tensor) -> torch.Tensor:
    """Radii weighted by point index: E(3) invariant, not permutation invariant."""
    weights = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)
    return (centred(x).norm(dim=-1) * weights).sum(dim=1, keepdim=True)


def chirality(x: torch.Tensor) -> torch.Tensor:
    """Sum of cyclic triple products det(c_i, c_i+1, c_i+2): invariant under SO(3), flips sign under reflections."""
    c = centred(x)
    triple = (c * torch.linalg.cross(c.roll(-1, dims=1), c.roll(-2, dims=1))).sum(dim=-1)
    return triple.sum(dim=1, keepdim=True) + c.square().sum(dim=(1, 2)).unsqueeze(-1)


def slightly_anisotropic(epsilon: float):
    """Radius of gyration times ``1 + epsilon * u_x`` (u the direction of the first point): relative error <= 2 epsilon."""

    def model(x: torch.Tensor) -> torch.Tensor:
        c = centred(x)
        direction = c[:, 0] / c[:, 0].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return c.square().sum(dim=(1, 2)).unsqueeze(-1) * (1 + epsilon * direction[:, :1])

    return model


def cubic_moment(x: torch.Tensor) -> torch.Tensor:
    """Equivariant vector sum_i c_i |c_i|^2: it vanishes on configurations with enough symmetry."""
    c = centred(x)
    return (c * c.square().sum(dim=-1, keepdim=True)).sum(dim=1)


# ------------------------------------------------------------------ correct models
def test_distance_sum_is_exact_under_se3_times_sn() -> None:
    result = check_equivariance(distance_sum, SE3() * Symmetric(), CLOUDS, CLOUDS.action, Invariant(), expected="exact", **FAST)
    assert result.verdict is Verdict.EXACT and result.matches_expected
    assert result.max_rel_error <= result.exact_threshold
    assert result.counterexample is None
    assert result.n_elements > 3 * 8  # random phase plus search


def test_order_dependent_model_is_exact_under_rotations_alone() -> None:
    result = check_equivariance(order_weighted, SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert result.verdict is Verdict.EXACT


def test_chirality_is_exact_under_rotations() -> None:
    result = check_equivariance(chirality, SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert result.verdict is Verdict.EXACT


# --------------------------------------------------------------- negative controls
@pytest.mark.parametrize(
    ("model", "group"),
    [
        (RawCoordinateMLP(), SE3() * Symmetric()),
        (reads_z_axis, SO3()),
        (order_weighted, Symmetric()),
        (chirality, O3()),
    ],
    ids=["raw-coordinate-mlp", "reads-one-axis", "order-dependent", "rotation-not-reflection"],
)
def test_broken_models_are_violated_with_a_counterexample(model, group) -> None:
    result = check_equivariance(model, group, CLOUDS, CLOUDS.action, Invariant(), expected="exact", **FAST)
    assert result.verdict is Verdict.VIOLATED and result.matches_expected is False
    assert result.max_rel_error > 1e-2
    example = result.counterexample
    assert example is not None and example.rel_error > result.exact_threshold
    assert "equivariance_error" in example.reproduce
    assert result.float64 is not None and result.float64.kind == "structural"


def test_approximate_model_within_tolerance_is_approximate_and_beyond_it_violated() -> None:
    model = slightly_anisotropic(1e-3)
    loose = check_equivariance(model, SO3(), CLOUDS, CLOUDS.action, Invariant(), tolerance=1e-2, expected="approximate", **FAST)
    assert loose.verdict is Verdict.APPROXIMATE and loose.matches_expected
    # <= 2 eps of each example's own output; a searched example's output may exceed the check's typical scale
    assert loose.exact_threshold < loose.max_rel_error <= 5e-3
    tight = check_equivariance(model, SO3(), CLOUDS, CLOUDS.action, Invariant(), tolerance=1e-4, **FAST)
    assert tight.verdict is Verdict.VIOLATED


def test_vanishing_outputs_are_not_turned_into_violations() -> None:
    """Symmetric prisms make the equivariant cubic moment vanish; rounding must stay rounding."""
    symmetric = CLOUDS(InputStructure(seed=5, batch=2, num_points=6, degenerate="symmetric"))
    generic = CLOUDS(InputStructure(seed=6, batch=2, num_points=6))
    mixed = torch.cat([symmetric, generic])
    assert cubic_moment(symmetric).abs().max() < 1e-12
    result = check_equivariance(cubic_moment, SE3(), mixed, Points(dim=3), Vectors(per_point=False), **FAST)
    assert result.verdict is Verdict.EXACT
    # the textbook per-sample ratio ||f(gx) - g f(x)|| / ||g f(x)|| explodes on the vanishing items
    assert result.per_output["<value>"].max_sample_ratio > 1e-3 > result.max_rel_error
    only_symmetric = check_equivariance(cubic_moment, SE3(), symmetric, Points(dim=3), Vectors(per_point=False), **FAST)
    assert only_symmetric.verdict is Verdict.EXACT


# ------------------------------------------------------------ structured inputs
MASKED = PointCloudInputs(dim=3, features=2, mask=True, max_points=12)


def masked_centring(pos: torch.Tensor, feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-point vectors from the masked centroid; padded points get raw coordinates, which must be ignored."""
    weights = mask.unsqueeze(-1).to(pos.dtype)
    centre = (pos * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True)
    return torch.where(mask.unsqueeze(-1), (pos - centre) * feat[..., :1], pos)


def masked_centring_leaky(pos: torch.Tensor, feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_centring(pos, feat, mask) + 0.1 * pos[..., :1]


def test_dict_inputs_are_passed_as_keywords_and_padded_points_are_ignored() -> None:
    group = SE3() * Symmetric()
    result = check_equivariance(masked_centring, group, MASKED, MASKED.action, Vectors(dim=3), expected="exact", **FAST)
    assert result.verdict is Verdict.EXACT
    leaky = check_equivariance(masked_centring_leaky, group, MASKED, MASKED.action, Vectors(dim=3), expected="exact", **FAST)
    assert leaky.verdict is Verdict.VIOLATED


def test_tuple_inputs_are_passed_as_positional_arguments() -> None:
    def weighted_centre(pos: torch.Tensor, vel: torch.Tensor) -> torch.Tensor:
        return centred(pos).square().sum(dim=(1, 2)).unsqueeze(-1) * vel.mean(dim=1)

    pos = CLOUDS(InputStructure(seed=1, batch=3))
    value = (pos, torch.randn(pos.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    result = check_equivariance(weighted_centre, SO3(), value, Tuple(Points(), Vectors()), Vectors(per_point=False), **FAST)
    assert result.verdict is Verdict.EXACT and result.n_inputs == 3
    forgets_velocity = check_equivariance(weighted_centre, SO3(), value, Tuple(Points(), Scalars()), Vectors(per_point=False), **FAST)
    assert forgets_velocity.verdict is Verdict.VIOLATED


def test_interpolated_image_rotations_cap_exact_at_approximate() -> None:
    images = ImageInputs(size=12, disk=True)

    def linear_pointwise(img: torch.Tensor) -> torch.Tensor:
        return 3.0 * img

    def shift_right(img: torch.Tensor) -> torch.Tensor:
        return torch.roll(img, 1, dims=-1)

    on_grid = check_equivariance(linear_pointwise, Cyclic(4), images, images.action, images.action, **FAST)
    assert on_grid.verdict is Verdict.EXACT
    interpolated = check_equivariance(linear_pointwise, SO2(), images, images.action, images.action, **FAST)
    assert interpolated.verdict is Verdict.APPROXIMATE and interpolated.max_rel_error <= interpolated.exact_threshold
    assert "approximately" in interpolated.message
    broken = check_equivariance(shift_right, Cyclic(4), images, images.action, images.action, **FAST)
    assert broken.verdict is Verdict.VIOLATED


# ------------------------------------------------------------------------ results
def test_same_seed_same_result_and_different_seeds_agree_on_verdicts() -> None:
    def run(seed: int) -> CheckResult:
        return check_equivariance(reads_z_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), seed=seed, expected="exact", **FAST)

    first, again = run(3).to_record(), run(3).to_record()
    first.pop("seconds"), again.pop("seconds")
    assert first == again
    assert {run(seed).verdict for seed in range(3)} == {Verdict.VIOLATED}
    correct = {check_equivariance(distance_sum, SE3(), CLOUDS, CLOUDS.action, Invariant(), seed=s, **FAST).verdict for s in range(3)}
    assert correct == {Verdict.EXACT}


def test_record_is_flat_json_with_the_required_fields() -> None:
    result = check_equivariance(reads_z_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), expected="exact", seed=7, name="z-reader", **FAST)
    record = json.loads(json.dumps(result.to_record()))
    for key in ("model", "group", "verdict", "expected", "max_rel_error", "mean_rel_error", "noise_floor", "n_elements", "seed"):
        assert key in record
    assert record["model"] == "z-reader" and record["verdict"] == "violated" and record["seed"] == 7
    assert all(not isinstance(value, (dict, list)) for value in record.values())
    text = str(result)
    assert "violated" in text and "reproduce with" in text and "z-reader" in text


def test_assert_equivariant_raises_a_readable_error_and_passes_correct_models() -> None:
    with pytest.raises(EquivarianceError) as caught:
        assert_equivariant(reads_z_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert isinstance(caught.value, AssertionError)
    message = str(caught.value)
    assert "violated" in message and "output <value>" in message and "counterexample" in message
    assert caught.value.result.verdict is Verdict.VIOLATED
    passed = assert_equivariant(distance_sum, SO3(), CLOUDS, CLOUDS.action, Invariant(), expected="exact", **FAST)
    assert passed.verdict is Verdict.EXACT
    # a declared violation that holds is not a failure
    assert_equivariant(reads_z_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), expected="violated", **FAST)


def test_invalid_arguments_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="expected must be one of"):
        check_equivariance(distance_sum, SO3(), CLOUDS, CLOUDS.action, Invariant(), expected="perfect")
    with pytest.raises(ValueError, match="n_elements"):
        check_equivariance(distance_sum, SO3(), CLOUDS, CLOUDS.action, Invariant(), n_elements=0)
    with pytest.raises(TypeError, match="eqbench Group"):
        check_equivariance(distance_sum, "SO3", CLOUDS, CLOUDS.action, Invariant())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_cancellation_is_rounding_because_it_shrinks_in_float64(seed: int) -> None:
    """``mean(x^2) - mean(x)^2`` is translation invariant, but far from the origin it cancels catastrophically:
    small clouds (scale 0.03) translated by N(0, 1) show float32 errors far above the exact threshold, which
    the float64 re-evaluation brings down by the roundoff ratio: rounding, so ``exact``. A structural break
    (a 3e-3 relative leak) does not shrink and is found."""

    def variance(x: torch.Tensor) -> torch.Tensor:
        return (x.square().mean(dim=1) - x.mean(dim=1).square()).sum(-1, keepdim=True)

    def lopsided(x: torch.Tensor) -> torch.Tensor:
        return variance(x) + 3e-3 * variance(x) * torch.tanh(x.mean(dim=1)[:, :1])

    clouds = PointCloudInputs(dim=3, min_points=8, max_points=8, min_scale=0.03, max_scale=0.03, degenerate=())
    options = {"expected": "exact", "n_inputs": 2, "n_elements": 8, "search_examples": 0, "seed": seed}
    result = check_equivariance(variance, Translations(3), clouds, clouds.action, Invariant(), **options)
    assert result.verdict is Verdict.EXACT and result.unexplained_error == 0, str(result)
    assert result.max_rel_error > 10 * result.exact_threshold  # float32 alone could not have told
    broken = check_equivariance(lopsided, Translations(3), clouds, clouds.action, Invariant(), **options)
    assert broken.verdict is not Verdict.EXACT and broken.float64.kind == "structural", str(broken)
    assert broken.float64.max_rel_error > 0.1 * broken.float64.float32_max_rel_error
