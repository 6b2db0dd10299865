"""Verdicts users can trust on hard cases (issue 13): vanishing outputs, discontinuities, randomness, odd models.

The 20-seed sweep of the adversarial zoo is ``tests/test_zoo.py``; these are the fast, direct checks
of each mechanism (one or a few seeds), each with a negative control that it catches.
"""
from __future__ import annotations

import json
import threading

import pytest
import torch
from torch import nn

from eqbench.actions import DataError, Invariant, Vectors
from eqbench.check import Verdict, check_equivariance
from eqbench.check.forward import TwinModel, cast_in_place
from eqbench.check.verdict import MIN_SHRINK, precision_thresholds, shrinks_with_precision
from eqbench.cli.main import main
from eqbench.groups import E3, SO3, Symmetric
from eqbench.inputs import InputStructure, PointCloudInputs
from eqbench.inputs.configurations import CONFIGURATIONS, degenerate_options
from eqbench.models.controls import mlp, pairwise_distances

CLOUDS = PointCloudInputs(max_points=10)
FAST = dict(n_inputs=2, n_elements=8, search_examples=15)
E3_SN = E3() * Symmetric()


def centroid_vector(pos: torch.Tensor) -> torch.Tensor:
    c = pos - pos.mean(dim=1, keepdim=True)
    r = c.norm(dim=-1, keepdim=True)
    return (c * torch.exp(-r) * (1 + r.square())).sum(dim=1)


def reads_z(pos: torch.Tensor) -> torch.Tensor:
    return centroid_vector(pos) + 0.1 * pos[:, :1, :].square().sum(-1) * torch.tensor([0.0, 0.0, 1.0], dtype=pos.dtype)


# ------------------------------------------------------------------ the rule
def test_the_rule_separates_rounding_from_structure_by_how_errors_shrink() -> None:
    low, high = precision_thresholds(1e-7, torch.float32)
    assert low == pytest.approx(1.19e-5, rel=0.01) and high == pytest.approx(2.2e-14, rel=0.01)
    e32 = torch.tensor([1e-3, 1e-3, 1e-3, 1e-3])
    e64 = torch.tensor([1e-12, 1e-6, 5e-4, 1e-3])  # like rounding; fell 1000x below T_lo; fell 2x; did not fall
    rounding = shrinks_with_precision(e32, e64, 1e-3, (low, high), torch.float32)
    assert rounding.tolist() == [True, True, False, False]
    assert not bool(shrinks_with_precision(e32, e32 / (MIN_SHRINK / 2), 1e-3, (low, high), torch.float32)[0])
    # a float64 check has no rule (b): a float32 twin that errs O(1) does not excuse a 1e-6 float64 error
    in_float64 = shrinks_with_precision(torch.tensor([1.0]), torch.tensor([1e-6]), 1.0, (low, high), torch.float32, checked_low=False)
    assert not bool(in_float64[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outputs_that_vanish_by_symmetry_read_exact_and_a_real_break_on_them_does_not(seed: int) -> None:
    two_points = PointCloudInputs(min_points=2, max_points=2)
    for inputs in (two_points, PointCloudInputs(min_points=3, max_points=8, degenerate=("polygon", "polyhedron", "lattice"))):
        result = check_equivariance(centroid_vector, E3_SN, inputs, inputs.action, Vectors(per_point=False), seed=seed, **FAST)
        assert result.verdict is Verdict.EXACT and result.unexplained_error == 0, str(result)
    broken = check_equivariance(reads_z, E3_SN, CLOUDS, CLOUDS.action, Vectors(per_point=False), seed=seed, **FAST)
    assert broken.verdict is Verdict.VIOLATED and broken.float64.kind == "structural", str(broken)


def test_a_discontinuous_frame_is_violated_and_reported_ill_posed_in_both_precisions() -> None:
    from eqbench.models.frame_averaging import fa_pointnet

    torch.manual_seed(0)
    naive = fa_pointnet(normals=True, widths=(8, 8), degeneracy="naive")
    symmetric = PointCloudInputs(min_points=6, max_points=8, degenerate=("polyhedron",))
    for dtype in (torch.float32, torch.float64):
        result = check_equivariance(naive.to(dtype), E3_SN, symmetric, symmetric.action, Vectors(), dtype=dtype, **FAST)
        assert result.verdict is Verdict.VIOLATED, str(result)
        assert result.ill_posed is not None and result.ill_posed.gap > 1e-3, str(result)
        record = result.to_record()
        assert record["ill_posed_gap"] > 1e-3 and "discontinuous or ill-posed" in record["ill_posed"]


# ------------------------------------------------------------------ randomness
class Counting(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 8), nn.Dropout(dropout), nn.Linear(8, 2))
        self.calls = 0

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(pairwise_distances(pos).unsqueeze(-1)).sum(dim=(1, 2))


def test_a_model_with_dropout_in_training_mode_is_an_error_naming_the_stochastic_modes() -> None:
    result = check_equivariance(Counting(dropout=0.3), E3_SN, CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert result.verdict is Verdict.ERROR
    assert "stochastic='crn'" in result.message and "stochastic='distribution'" in result.message


def test_a_deterministic_model_pays_one_extra_forward_pass_for_the_determinism_check() -> None:
    model = Counting().eval()
    result = check_equivariance(model, E3_SN, CLOUDS, CLOUDS.action, Invariant(), n_inputs=2, n_elements=8, search_examples=0)
    assert result.verdict is Verdict.EXACT and model.calls == 2  # the stacked pass and the inputs alone (the twin is a copy)


def test_an_item_that_depends_on_its_batch_is_an_error() -> None:
    def scaled_by_batch_size(pos: torch.Tensor) -> torch.Tensor:
        """Invariant for a fixed batch, but each item's output depends on how many items share its batch."""
        return pairwise_distances(pos).mean(dim=(1, 2)).unsqueeze(-1) * (1 + 0.01 * len(pos))

    result = check_equivariance(scaled_by_batch_size, E3_SN, CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert result.verdict is Verdict.ERROR and "independent items" in result.message


# ------------------------------------------------------------------ integer outputs, copies, shapes
def test_integer_outputs_are_compared_exactly() -> None:
    def close_pairs(pos: torch.Tensor) -> torch.Tensor:
        return (pairwise_distances(pos) < 1.3).sum(dim=(1, 2)).unsqueeze(-1)

    def widest_axis(pos: torch.Tensor) -> torch.Tensor:
        return (pos - pos.mean(dim=1, keepdim=True)).square().sum(dim=1).argmax(dim=-1)

    assert check_equivariance(close_pairs, E3_SN, CLOUDS, CLOUDS.action, Invariant(), **FAST).verdict is Verdict.EXACT
    broken = check_equivariance(widest_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert broken.verdict is Verdict.VIOLATED and broken.max_rel_error == 1.0


class Locked(nn.Module):
    def __init__(self, read_axis: bool = False) -> None:
        super().__init__()
        self.lock, self.net, self.read_axis = threading.Lock(), mlp(1, 8, 2), read_axis

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        with self.lock:
            out = self.net(pairwise_distances(pos).unsqueeze(-1)).sum(dim=(1, 2))
        return out + pos[:, :, :1].var(dim=1) if self.read_axis else out


def test_a_module_that_cannot_be_deep_copied_gets_a_twin_cast_in_place() -> None:
    model = Locked()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    result = check_equivariance(model, E3_SN, CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert result.verdict is Verdict.EXACT and "float64" in result.message and result.noise_floor > 0, str(result)
    after = model.state_dict()
    assert all(after[name].dtype == torch.float32 and torch.equal(after[name], value) for name, value in before.items())
    broken = check_equivariance(Locked(read_axis=True), E3_SN, CLOUDS, CLOUDS.action, Invariant(), **FAST)
    assert broken.verdict is Verdict.VIOLATED and broken.float64.kind == "structural", str(broken)


def test_cast_in_place_restores_float64_values_bit_for_bit() -> None:
    model = nn.Linear(3, 3).double()
    weight = model.weight.detach().clone() + 1e-12  # not representable in float32
    with torch.no_grad():
        model.weight.copy_(weight)
    with cast_in_place(model, torch.float32):
        assert model.weight.dtype == torch.float32
    assert model.weight.dtype == torch.float64 and torch.equal(model.weight, weight)
    twin = TwinModel(Locked(), torch.float64)
    twin(torch.randn(1, 4, 3, dtype=torch.float64))
    assert twin.in_place and not twin.problem


def test_a_declared_output_size_turns_a_wrong_shape_into_an_error() -> None:
    with pytest.raises(DataError, match="size=4"):
        Invariant(size=4).validate(torch.zeros(2, 5, 3))
    Invariant(size=4).validate(torch.zeros(2, 4))
    Vectors(size=2).validate(torch.zeros(2, 5, 2, 3))

    def per_point(pos: torch.Tensor) -> torch.Tensor:
        return pos - pos.mean(dim=1, keepdim=True)

    result = check_equivariance(per_point, SO3(), CLOUDS, CLOUDS.action, Invariant(size=4), **FAST)
    assert result.verdict is Verdict.ERROR and "size=4" in result.message
    assert check_equivariance(per_point, SO3(), CLOUDS, CLOUDS.action, Invariant(), **FAST).verdict is Verdict.VIOLATED


# ------------------------------------------------------------------ degenerate inputs
@pytest.mark.parametrize("name", ["polygon", "polyhedron", "lattice"])
def test_new_degenerate_configurations_have_repeated_eigenvalues(name: str) -> None:
    assert name in degenerate_options(3)
    for n in (4, 8, 12):
        x = CONFIGURATIONS[name](2, n, 3, 1.5, torch.Generator().manual_seed(n))
        c = x - x.mean(dim=1, keepdim=True)
        eigenvalues = torch.linalg.eigvalsh(c.transpose(1, 2) @ c / n)
        gaps = (eigenvalues[:, 1:] - eigenvalues[:, :-1]) / eigenvalues[:, -1:]
        assert bool((gaps.min(dim=1).values < 1e-12).all()) and bool((eigenvalues[:, -1] > 0.1).all()), (name, n, eigenvalues)
    lattice = CONFIGURATIONS["lattice"](1, 8, 3, 0.7, torch.Generator().manual_seed(0))
    assert torch.equal(lattice.float().double(), lattice)  # exact in float32: still exactly isotropic there


def test_searched_structures_draw_scale_extremes_and_degenerate_clouds() -> None:
    from hypothesis import given, settings

    seen: list[InputStructure] = []

    @settings(max_examples=60, database=None, derandomize=True)
    @given(PointCloudInputs(min_scale=0.1, max_scale=10.0).structure_strategy())
    def draw(structure: InputStructure) -> None:
        seen.append(structure)

    draw()
    assert sum(s.scale in (0.1, 10.0) for s in seen) >= 10
    assert sum(s.degenerate in ("symmetric", "polygon", "polyhedron", "lattice") for s in seen) >= 15


# ------------------------------------------------------------------ registry and CLI
PLUGIN = """
import torch
from torch import nn
from eqbench.actions import Invariant, Points
from eqbench.groups import SO3
from eqbench.inputs import PointCloudInputs
from eqbench.registry import register_model

FAST = {"n_inputs": 1, "n_elements": 4, "search_examples": 5}
CLOUDS = PointCloudInputs(max_points=6)

def radius(pos):
    return (pos - pos.mean(dim=1, keepdim=True)).norm(dim=-1).mean(dim=1, keepdim=True)

def leaky(pos):
    c = pos - pos.mean(dim=1, keepdim=True)
    return radius(pos) * (1 + 1e-4 * c[:, 0, :1] / c[:, 0].norm(dim=-1, keepdim=True))

@register_model("trust-good", group=SO3(), in_action=Points(), out_action=Invariant(), inputs=CLOUDS, check_options=FAST)
def good():
    return radius

@register_model("trust-factory-raises", group=SO3(), in_action=Points(), out_action=Invariant(), inputs=CLOUDS,
                expected="error", check_options=FAST)
def factory_raises():
    return MyModel()

@register_model("trust-integer-crash", group=SO3(), in_action=Points(), out_action=Points(), inputs=CLOUDS,
                check_options=FAST)
def action_on_integers():
    return lambda pos: pos.round().long()

@register_model("trust-small-leak", group=SO3(), in_action=Points(), out_action=Invariant(), inputs=CLOUDS,
                expected="violated", check_options=FAST)
def small_leak():
    return leaky

class Radius64(nn.Module):
    # built in float32; the registration casts it to float64

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, pos):
        return radius(pos) * self.scale

@register_model("trust-float64", group=SO3(), in_action=Points(), out_action=Invariant(size=1), inputs=CLOUDS,
                check_options={**FAST, "dtype": torch.float64})
def in_float64():
    return Radius64()
"""


def test_every_model_gets_its_own_line_and_errors_name_the_problem(fresh_registry, tmp_path, capsys) -> None:
    plugin = tmp_path / "trust_models.py"
    plugin.write_text(PLUGIN)
    out_json = tmp_path / "out.json"
    code = main(["check", "--plugin", str(plugin), "--json", str(out_json)])
    records = {r["model"]: r for r in json.loads(out_json.read_text())["records"]}
    assert set(records) == {"trust-good", "trust-factory-raises", "trust-integer-crash", "trust-small-leak", "trust-float64"}
    assert records["trust-good"]["verdict"] == "exact"
    assert records["trust-factory-raises"]["verdict"] == "error" and records["trust-factory-raises"]["matches_expected"]
    assert "NameError" in records["trust-factory-raises"]["message"] and "\n" not in records["trust-factory-raises"]["message"]
    assert records["trust-integer-crash"]["verdict"] == "error" and records["trust-integer-crash"]["message"]
    assert records["trust-small-leak"]["verdict"] == "approximate" and records["trust-small-leak"]["matches_expected"]
    assert records["trust-float64"]["verdict"] == "exact" and records["trust-float64"]["dtype"] == "float64"
    assert code == 1  # trust-integer-crash expected exact


def test_ctrl_c_writes_the_models_done_and_exits_130(fresh_registry, tmp_path, monkeypatch) -> None:
    from eqbench import registry

    real = registry.run_entry
    calls = []

    def interrupted(entry, **kwargs):
        calls.append(entry.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(entry, **kwargs)

    monkeypatch.setattr(registry, "run_entry", interrupted)
    out_json = tmp_path / "partial.json"
    code = main(["check", "distance-mlp", "deepsets", "pointnet", "chiral-o3", "--examples", "2", "--json", str(out_json)])
    assert code == 130
    assert [r["model"] for r in json.loads(out_json.read_text())["records"]] == calls[:2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_naive_frame_is_found_on_default_settings_and_shrinks_to_a_regular_triangle(dtype: torch.dtype) -> None:
    """Default inputs and settings: the search draws exactly symmetric clouds and shrinks to the smallest one."""
    from eqbench.models.frame_averaging import fa_pointnet

    torch.manual_seed(0)
    naive = fa_pointnet(normals=True, widths=(8, 8), degeneracy="naive").to(dtype)
    inputs = PointCloudInputs()
    result = check_equivariance(naive, E3_SN, inputs, inputs.action, Vectors(), dtype=dtype, seed=1)
    assert result.verdict is Verdict.VIOLATED and result.counterexample.source == "search", str(result)
    shrunk = result.counterexample.structure
    assert shrunk["num_points"] == 3 and shrunk["degenerate"] in ("symmetric", "polygon", "polyhedron", "lattice"), shrunk
