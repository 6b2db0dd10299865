"""Per-module attribution (``eqbench.check.explain``, ``eqbench explain``): known answers and negative controls."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import Tensor, nn

import eqbench
from eqbench.actions import Invariant, Points
from eqbench.check import explain, lie_derivative
from eqbench.check.cases import InputSource
from eqbench.check.attribution import CODE_BEFORE, METHOD_LIE, METHOD_LOCAL
from eqbench.cli.main import main
from eqbench.groups import SE3, Symmetric
from eqbench.inputs import PointCloudInputs

CLOUDS = PointCloudInputs(min_points=5, max_points=5)


class PositionUpdate(nn.Module):
    """An E(3)-equivariant EGNN-style update ``x_i + mean_j (x_i - x_j) phi(|x_i - x_j|^2)``."""

    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x: Tensor) -> Tensor:
        diff = x[:, :, None] - x[:, None]
        return x + (diff * self.phi(diff.square().sum(-1, keepdim=True))).mean(2)


class RadialReadout(nn.Module):
    """An E(3) x S_n invariant readout: an MLP of each point's distance to the centroid, summed."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x: Tensor) -> Tensor:
        radius = (x - x.mean(1, keepdim=True)).norm(dim=-1, keepdim=True)
        return self.mlp(radius).sum(1)


class Buried(nn.Module):
    """Equivariant updates with one layer in the middle: ``middle`` is a coordinate-reading linear map or the identity."""

    def __init__(self, middle: nn.Module) -> None:
        super().__init__()
        self.first, self.second, self.middle, self.third = PositionUpdate(), PositionUpdate(), middle, PositionUpdate()
        self.readout = RadialReadout()

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.third(self.middle(self.second(self.first(x)))))


class IndexWeights(nn.Module):
    """Multiplies point ``i`` by its own weight ``w_i``: not permutation equivariant."""

    def __init__(self, points: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(1.0 + torch.randn(points))

    def forward(self, h: Tensor) -> Tensor:
        return h * self.weight[: h.shape[1], None]


def buried(middle: nn.Module) -> Buried:
    torch.manual_seed(0)
    return Buried(middle)


def test_the_buried_coordinate_reading_layer_ranks_first_with_almost_all_the_share() -> None:
    torch.manual_seed(1)
    model = buried(nn.Linear(3, 3))
    attribution = explain(model, SE3(), CLOUDS, Points(), Invariant(), n_inputs=2)
    assert attribution.method == METHOD_LIE
    assert attribution.top.module == "middle"
    assert attribution.top.share > 0.9
    assert attribution.top.local_error > 0.01
    assert attribution.total > 1e-3
    assert attribution.residual < 1e-8 * max(attribution.total, 1.0)  # the contributions add up to the Lie derivative
    assert sum(m.share for m in attribution.modules) == pytest.approx(1.0)
    contributions = [m.contribution for m in attribution.modules]
    assert contributions == sorted(contributions, reverse=True)


def test_negative_control_the_same_network_with_an_identity_layer_has_no_breaking() -> None:
    attribution = explain(buried(nn.Identity()), SE3(), CLOUDS, Points(), Invariant(), n_inputs=2)
    assert attribution.total < 1e-8
    assert all(m.contribution < 1e-8 for m in attribution.modules)


def test_breaking_in_a_modules_own_code_is_blamed_on_the_code_that_feeds_the_next_unit() -> None:
    class AxisSpread(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(1, 3)
            self.readout = RadialReadout()

        def forward(self, x: Tensor) -> Tensor:
            return self.readout(x) + self.head(x[..., :1].var(dim=1))  # the variance along x is not rotation invariant

    torch.manual_seed(0)
    attribution = explain(AxisSpread(), SE3(), CLOUDS, Points(), Invariant(), n_inputs=2)
    assert attribution.top.module == f"{CODE_BEFORE} head"
    assert attribution.top.share > 0.9
    assert attribution.residual < 1e-8


def test_a_declared_module_is_one_unit_named_by_its_path() -> None:
    torch.manual_seed(2)
    block = eqbench.declare(nn.Sequential(nn.Linear(3, 3)), in_action=Points(), out_action=Points())
    model = buried(block)
    attribution = explain(model, SE3(), CLOUDS, Points(), Invariant(), n_inputs=2)
    names = [m.module for m in attribution.modules]
    assert attribution.top.module == "middle" and "middle.0" not in names
    assert attribution.top.actions == "Points -> Points"
    assert attribution.top.share > 0.9


def test_declare_rejects_what_is_not_a_module_or_an_action() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        eqbench.declare(lambda x: x, in_action=Points(), out_action=Points())
    with pytest.raises(TypeError, match="eqbench action"):
        eqbench.declare(nn.Identity(), in_action="points", out_action=Points())


def test_finite_groups_get_local_errors_and_the_index_weighted_layer_ranks_first() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), IndexWeights(5), nn.Linear(8, 2))
    attribution = explain(model, Symmetric(), CLOUDS, Points(), Points(), n_inputs=2)
    assert attribution.method == METHOD_LOCAL
    assert attribution.top.module == "2"
    assert attribution.top.share > 0.9
    others = [m for m in attribution.modules if m.module != "2"]
    assert all(m.local_error < 1e-12 for m in others)  # per-point layers commute with re-indexing


def test_negative_control_a_per_point_network_has_no_local_error_under_permutations() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    attribution = explain(model, Symmetric(), CLOUDS, Points(), Points(), n_inputs=2)
    assert all(m.local_error < 1e-12 for m in attribution.modules)


def test_explain_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="probes"):
        explain(nn.Identity(), SE3(), CLOUDS, Points(), Points(), probes=0)


def test_cli_explain_writes_records_sorted_by_contribution(tmp_path, capsys) -> None:
    path = tmp_path / "attribution.json"
    assert main(["explain", "axis-reader", "--json", str(path), "--report", str(tmp_path / "report")]) == 0
    records = json.loads(path.read_text())
    modules = [r for r in records if "module" in r]
    assert modules[0]["module"] == f"{CODE_BEFORE} axis_weight" and modules[0]["share"] > 0.9
    assert [r["contribution"] for r in modules] == sorted((r["contribution"] for r in modules), reverse=True)
    assert {"model", "module", "contribution", "share"} <= set(modules[0])
    summary = records[-1]
    assert summary["additivity_residual"] < 1e-8 and summary["total"] > 0.01
    assert (tmp_path / "report" / "explain.md").read_text().count("axis_weight") >= 1
    assert (tmp_path / "report" / "explain-axis-reader.png").stat().st_size > 0
    assert "axis_weight" in capsys.readouterr().out


def test_cli_explain_unknown_group_is_a_usage_error(capsys) -> None:
    assert main(["explain", "axis-reader", "--group", "NoSuchGroup"]) == 2
    assert "unknown group" in capsys.readouterr().err


def test_the_probed_total_estimates_the_lie_derivative_along_every_generator_or_random_directions() -> None:
    """``E <r, L_c f>^2`` over Gaussian probes r (and directions c) is the squared Lie derivative summed over generators."""
    torch.manual_seed(1)
    model = buried(nn.Linear(3, 3))
    _, x = InputSource(CLOUDS, Points()).random(2, 0)
    reference = lie_derivative(model, SE3(), x, Points(), Invariant())
    exact = math.sqrt(sum(reference.squared_norms)) / reference.scale
    every = explain(model, SE3(), CLOUDS, Points(), Invariant(), n_inputs=2, directions=None, probes=16)
    sampled = explain(model, SE3(), CLOUDS, Points(), Invariant(), n_inputs=2, directions=32, probes=2)
    assert every.total == pytest.approx(exact, rel=0.3)
    assert sampled.total == pytest.approx(exact, rel=0.4)
    assert every.top.module == sampled.top.module == "middle"
    assert every.residual < 1e-8 and sampled.residual < 1e-8


def registered_attribution(name: str):
    from eqbench import registry

    registry.load_builtin()
    entry = registry.get_entry(name)
    return explain(registry.build_model(entry), entry.group, entry.inputs, entry.in_action, entry.out_action, n_inputs=2)


@pytest.mark.parametrize("name", ["lieconv-so3", "lieconv-se3", "lieconv-se3-molecule-gigp"])
def test_lieconv_monte_carlo_sampling_error_is_blamed_on_the_lift(name: str) -> None:
    """SO(3)/SE(3) LieConv draws stabiliser samples in its ``lifting`` module, declared Points -> LiftedPoints (``u -> g u``):
    under common random numbers the lift alone breaks invariance; every module after it is exact given its inputs."""
    attribution = registered_attribution(name)
    assert attribution.top.module == "lifting" and attribution.top.share > 0.99
    assert attribution.top.actions == "Points -> LiftedPoints"
    assert attribution.total > 1e-2
    assert all(m.local_error < 1e-9 for m in attribution.modules[1:] if math.isfinite(m.local_error))


def test_negative_control_translation_lieconv_has_no_sampling_error() -> None:
    attribution = registered_attribution("lieconv-t3")
    assert attribution.total < 1e-10
    assert all(m.contribution < 1e-10 for m in attribution.modules)


class KeywordOption(nn.Module):
    """``x`` scaled by a keyword option, plus a coordinate leak when ``leak``: declared Points -> Points."""

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.leak = leak

    def forward(self, x: Tensor, factor: float = 1.0) -> Tensor:
        return factor * x + (0.1 * x[..., :1] if self.leak else 0.0)


class CallsWithOption(nn.Module):
    """An equivariant update, then :class:`KeywordOption` called with ``factor`` by keyword, then an invariant readout."""

    factor: float | Tensor = 2.0

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.first, self.scaled = PositionUpdate(), eqbench.declare(KeywordOption(leak), in_action=Points(), out_action=Points())
        self.readout = RadialReadout()

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.scaled(self.first(x), factor=self.factor))


@pytest.mark.parametrize("leak", [True, False])
def test_a_declared_module_takes_positional_tensors_beside_keyword_options(leak: bool) -> None:
    torch.manual_seed(0)
    attribution = explain(CallsWithOption(leak), SE3(), CLOUDS, Points(), Invariant(), n_inputs=2)
    if leak:
        assert attribution.top.module == "scaled" and attribution.top.share > 0.9
    else:
        assert attribution.total < 1e-9


def test_a_declared_module_refuses_tensors_both_positional_and_by_keyword() -> None:
    torch.manual_seed(0)
    model = CallsWithOption(leak=False)
    model.factor = torch.tensor(2.0, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="positional or as keyword arguments, not both"):
        explain(model, SE3(), CLOUDS, Points(), Invariant(), n_inputs=2)


class InPlaceResidual(nn.Module):
    """An exactly permutation-invariant model that adds into its layer's output in place (``h += 1``), as residual blocks do."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inner(x.norm(dim=-1, keepdim=True))
        h += 1.0
        return h.sum(dim=1)


def test_activations_changed_in_place_after_a_module_are_not_blamed_on_it() -> None:
    """Explain records copies: the in-place add must not read as ``inner``'s own error (it did, ~1, before)."""
    torch.manual_seed(0)
    attribution = explain(InPlaceResidual(), Symmetric(), CLOUDS, Points(), Invariant(), n_inputs=2)
    assert attribution.method == METHOD_LOCAL
    assert attribution.total < 1e-10
    assert all(m.local_error < 1e-9 for m in attribution.modules if math.isfinite(m.local_error))
