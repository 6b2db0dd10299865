"""Calling models: argument convention, the float64 copy, models stuck in float32, per-output breakdowns."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from eqbench.actions import EdgeIndex, GridImage, Invariant, Mask, Points, Scalars, Tuple, Vectors
from eqbench.check import Verdict, check_equivariance, equivariance_error
from eqbench.check.forward import ModelFailure, call_model, dtype_copy, evaluate, validate_rejects_non_finite
from eqbench.groups import SO3
from eqbench.inputs import InputStructure, PointCloudInputs

CLOUDS = PointCloudInputs(dim=3, max_points=10)
FAST = dict(n_inputs=2, n_elements=4, search_examples=5)


class RadialNet(nn.Module):
    """An MLP on the radii of centred points: rotation invariant."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        radii = (x - x.mean(dim=1, keepdim=True)).norm(dim=-1, keepdim=True)
        return self.net(radii).sum(dim=1)


class StuckInFloat32(RadialNet):
    """Casts its input to float32 itself, so no float64 evaluation exists; optionally reads an axis."""

    def __init__(self, broken: bool) -> None:
        super().__init__()
        self.broken = broken

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return super().forward(x) + (x[:, :1, 0] if self.broken else 0.0)


class ReadsAnAxisSlightly(RadialNet):
    """Adds ``1e-6`` times one coordinate: a symmetry break far below float32's rounding, far above float64's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1e-6 * x[:, :1, 0]


def test_call_convention_unpacks_tuples_and_dicts() -> None:
    def show(*args, **kwargs):
        return args, kwargs

    t = torch.zeros(1)
    assert call_model(show, (t, t)) == ((t, t), {})
    assert call_model(show, {"pos": t}) == ((), {"pos": t})
    assert call_model(show, t) == ((t,), {})


def test_float64_copy_is_cached_and_follows_parameter_updates() -> None:
    model = RadialNet()
    first = dtype_copy(model, torch.float64)
    assert first is dtype_copy(model, torch.float64)
    assert next(first.parameters()).dtype == torch.float64 and next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        model.net[0].bias.add_(1.0)  # an optimiser step: same tensors, new values
    refreshed = dtype_copy(model, torch.float64)
    assert refreshed is first  # refreshed in place, not deep-copied again
    for mine, twin in zip(model.parameters(), refreshed.parameters()):
        assert twin.dtype == torch.float64 and torch.equal(twin, mine.double())
    model.net[0].bias = nn.Parameter(torch.zeros(8))  # a replaced tensor: a fresh copy
    replaced = dtype_copy(model, torch.float64)
    assert replaced is not first and torch.equal(replaced.net[0].bias, torch.zeros(8, dtype=torch.float64))
    assert dtype_copy(model, torch.float32) is not replaced  # one copy per dtype
    with torch.no_grad():
        model.net[0].bias.add_(2.0)  # the fresh copy, not the first, now follows the updates
    assert dtype_copy(model, torch.float64) is replaced and torch.equal(replaced.net[0].bias, torch.full((8,), 2.0, dtype=torch.float64))
    assert not torch.equal(first.net[0].bias, replaced.net[0].bias)


def test_float64_copy_follows_buffer_updates() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    twin = dtype_copy(model, torch.float64)
    model.train()(torch.randn(16, 3))  # batch norm moves its running statistics in place
    assert dtype_copy(model, torch.float64) is twin
    assert torch.equal(twin[1].running_mean, model[1].running_mean.double()) and not torch.equal(twin[1].running_mean, torch.zeros(4, dtype=torch.float64))
    assert int(twin[1].num_batches_tracked) == 1


class SilentAction(Invariant):
    """A plugin's output action whose ``validate`` does not look for NaN or Inf."""

    def validate(self, x: torch.Tensor, where: str = "input") -> None:
        pass


def test_non_finite_outputs_are_failures_whether_or_not_the_output_action_looks_for_them() -> None:
    assert validate_rejects_non_finite(Invariant()) and validate_rejects_non_finite(Tuple(Points(), Scalars(), Mask()))
    assert validate_rejects_non_finite(EdgeIndex()) and validate_rejects_non_finite(GridImage())
    assert not validate_rejects_non_finite(SilentAction()) and not validate_rejects_non_finite(Tuple(Points(), SilentAction()))
    x = torch.ones(3, 4, 3)
    for action, message in ((Invariant(), "bad model output: model output: contains NaN"), (SilentAction(), "contains NaN or Inf")):
        with pytest.raises(ModelFailure, match=message):  # the silent action's NaN is caught by evaluate itself
            evaluate(lambda pos: pos.sum(dim=(1, 2)).unsqueeze(1) * float("nan"), x, Points(), action, 3)


def test_dtype_copies_keep_complex_and_integer_tensors() -> None:
    """A spectral layer's complex weights keep their imaginary part in the float64 and float32 twins."""
    model = nn.Module()
    model.weight = nn.Parameter(torch.tensor([1 + 2j, -3j], dtype=torch.complex64))
    model.register_buffer("index", torch.tensor([0, 1]))
    model.register_buffer("scale", torch.tensor([0.5], dtype=torch.float32))
    for dtype in (torch.float64, torch.float32):
        twin = dtype_copy(model, dtype)
        assert twin.weight.dtype == torch.complex64 and torch.equal(twin.weight, model.weight)
        assert twin.index.dtype == torch.int64 and twin.scale.dtype == dtype


def test_models_without_a_float64_evaluation_still_get_verdicts() -> None:
    good = check_equivariance(StuckInFloat32(broken=False), SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert good.verdict is Verdict.EXACT and "batch-order" in good.message
    bad = check_equivariance(StuckInFloat32(broken=True), SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert bad.verdict is Verdict.VIOLATED and bad.float64.kind == "unavailable"


def test_float64_checks_take_their_floor_from_the_float32_twin_scaled_by_the_roundoff_ratio() -> None:
    model = RadialNet().double()
    good = check_equivariance(model, SO3(), CLOUDS, CLOUDS.action, Invariant(), dtype=torch.float64, **FAST)
    assert good.verdict is Verdict.EXACT and "float32-scaled" in good.message, good
    x = CLOUDS(InputStructure(seed=0, batch=2, num_points=8))
    with torch.no_grad():
        y64, y32 = model(x), dtype_copy(model, torch.float32)(x.float()).double()
    scale = float(y64.norm(dim=-1).square().mean().sqrt())
    expected = float((y64 - y32).norm(dim=-1).max()) / scale * torch.finfo(torch.float64).eps / torch.finfo(torch.float32).eps
    assert 0 < good.noise_floor < 1e-14 and abs(good.noise_floor - expected) <= 0.5 * expected, (good.noise_floor, expected)
    bad = check_equivariance(ReadsAnAxisSlightly().double(), SO3(), CLOUDS, CLOUDS.action, Invariant(), dtype=torch.float64, **FAST)
    assert bad.verdict is not Verdict.EXACT and "float32-scaled" in bad.message, bad


def test_per_output_breakdown_names_the_broken_output() -> None:
    def two_outputs(x: torch.Tensor):
        c = x - x.mean(dim=1, keepdim=True)
        return c.square().sum(dim=(1, 2)).unsqueeze(-1), c.sum(dim=1) + c[:, 0] * torch.tensor([1.0, 0.0, 0.0])

    result = check_equivariance(two_outputs, SO3(), CLOUDS, CLOUDS.action, Tuple(Invariant(), Vectors(per_point=False)), **FAST)
    assert result.verdict is Verdict.VIOLATED
    assert set(result.per_output) == {"0", "1"}
    assert result.per_output["0"].max_rel_error < 1e-5 < 1e-2 < result.per_output["1"].max_rel_error
    assert result.counterexample.output == "1"
    assert "output 1:" in str(result)


def test_equivariance_error_matches_a_direct_computation() -> None:
    x = CLOUDS(InputStructure(seed=3, batch=1))
    g = SO3().element({"quaternion": torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)})  # 180 degrees about z

    def reads_x(points: torch.Tensor) -> torch.Tensor:
        return points[..., 0].sum(dim=1, keepdim=True)

    # f(g.x) = -f(x): the error is |2 f(x)|, the scale (RMS of |f(x)| and |f(g.x)|) is |f(x)|
    assert abs(equivariance_error(reads_x, x, g, CLOUDS.action, Invariant(), dtype=torch.float64) - 2.0) < 1e-12
