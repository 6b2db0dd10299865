"""The hypothesis search: rare-input bugs, shrinking, reproduce snippets, model failures, float64 diagnosis."""
from __future__ import annotations

import inspect

import torch
from hypothesis import Phase, Verbosity, settings
from hypothesis.database import InMemoryExampleDatabase

from eqbench.actions import Invariant, Points, Vectors
from eqbench.check import Verdict, check_equivariance, register_hypothesis_profiles
from eqbench.check.search import search_settings
from eqbench.groups import SE3, SO2, SO3
from eqbench.inputs import PointCloudInputs

CLOUDS = PointCloudInputs(dim=3, max_points=24)
FAST = dict(n_inputs=2, n_elements=4)
RARE_SIZE = 16


def distance_sum(x: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, x).sum(dim=(1, 2)).unsqueeze(-1)


def breaks_on_large_clouds(x: torch.Tensor) -> torch.Tensor:
    """Invariant, except that clouds of more than RARE_SIZE points are scaled by a function of the first point's x."""
    out = distance_sum(x)
    if x.shape[1] > RARE_SIZE:
        out = out * (1 + 0.5 * torch.tanh(x[:, :1, 0]))
    return out


def breaks_on_dense_clusters(x: torch.Tensor) -> torch.Tensor:
    """Invariant, except when more than 3 points sit within 0.05 of the first point (a neighbour cap gone wrong)."""
    out = distance_sum(x)
    crowded = (torch.cdist(x[:, :1], x)[:, 0] < 0.05).sum(dim=1, keepdim=True) > 3
    return out * (1 + 0.5 * crowded * torch.tanh(x[:, :1, 0]))


def replay(snippet: str, model, group, inputs, out_action) -> float:
    namespace = {"model": model, "group": group, "inputs": inputs, "in_action": inputs.action, "out_action": out_action}
    exec(snippet, namespace)  # noqa: S102 - the snippet is ours, under test
    return namespace["error"]


# ------------------------------------------------------------------------ search
def test_rare_input_bug_is_found_only_by_the_search_and_shrunk_to_the_boundary() -> None:
    group = SE3()
    random_only = check_equivariance(breaks_on_large_clouds, group, CLOUDS, CLOUDS.action, Invariant(), search_examples=0, **FAST)
    assert random_only.verdict is Verdict.EXACT  # default clouds have 8 points
    result = check_equivariance(
        breaks_on_large_clouds, group, CLOUDS, CLOUDS.action, Invariant(), expected="exact", search_examples=40, **FAST
    )
    assert result.verdict is Verdict.VIOLATED
    example = result.counterexample
    assert example.source == "search"
    assert example.structure["num_points"] == RARE_SIZE + 1  # shrunk to the smallest failing size
    assert example.structure["seed"] == 0
    reproduced = replay(example.reproduce, breaks_on_large_clouds, group, CLOUDS, Invariant())
    assert reproduced == example.rel_error and reproduced > result.exact_threshold


def test_dense_cluster_bug_is_found_by_the_search() -> None:
    inputs = PointCloudInputs(dim=3, max_points=16, min_scale=0.01, max_scale=1.0)
    random_only = check_equivariance(breaks_on_dense_clusters, SE3(), inputs, inputs.action, Invariant(), search_examples=0, **FAST)
    assert random_only.verdict is Verdict.EXACT
    result = check_equivariance(breaks_on_dense_clusters, SE3(), inputs, inputs.action, Invariant(), expected="exact", search_examples=60, **FAST)
    assert result.verdict is Verdict.VIOLATED
    example = result.counterexample
    assert replay(example.reproduce, breaks_on_dense_clusters, SE3(), inputs, Invariant()) == example.rel_error


def test_random_phase_violation_is_shrunk_by_the_search() -> None:
    def reads_x_axis(x: torch.Tensor) -> torch.Tensor:
        return x[..., 0].sum(dim=1, keepdim=True)

    result = check_equivariance(reads_x_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), expected="exact", search_examples=20, **FAST)
    example = result.counterexample
    assert result.verdict is Verdict.VIOLATED and example.source == "search"
    assert example.structure == {"seed": 0, "batch": 1, "num_points": CLOUDS.min_points, "scale": example.structure["scale"],
                                 "num_padded": 0, "degenerate": ""}
    assert replay(example.reproduce, reads_x_axis, SO3(), CLOUDS, Invariant()) == example.rel_error


def test_search_is_reproducible_for_a_seed_whatever_the_active_profile() -> None:
    def reads_x_axis(x: torch.Tensor) -> torch.Tensor:
        return x[..., 0].sum(dim=1, keepdim=True)

    def run() -> dict:
        record = check_equivariance(reads_x_axis, SO3(), CLOUDS, CLOUDS.action, Invariant(), seed=11, search_examples=10, **FAST).to_record()
        record.pop("seconds")
        return record

    first = run()
    settings.register_profile("eqbench-test-other", max_examples=3, derandomize=True)
    previous = settings.get_current_profile_name()
    settings.load_profile("eqbench-test-other")
    try:
        assert run() == first
    finally:
        settings.load_profile(previous)


#: Every hypothesis setting (the keyword parameters of ``hypothesis.settings``).
SETTINGS_FIELDS = [name for name in inspect.signature(settings.__init__).parameters if name not in ("self", "parent")]


def built_settings() -> list[settings]:
    """The search's settings and the two profiles, built under whatever profile is active."""
    quick, thorough = register_hypothesis_profiles()
    return [search_settings(25), settings.get_profile(quick), settings.get_profile(thorough)]


def test_search_settings_and_profiles_set_every_field() -> None:
    """Nothing is inherited from the active profile: built under odd profiles, every field is unchanged.

    Two odd profiles, because hypothesis refuses ``derandomize=True`` (what CI's ``ci`` profile sets) with a database.
    """
    odd = dict(max_examples=3, derandomize=True, database=None, verbosity=Verbosity.verbose, phases=(Phase.generate,),
               stateful_step_count=99, report_multiple_bugs=True, suppress_health_check=(), deadline=1234,
               print_blob=True, backend="hypothesis")
    assert set(odd) == set(SETTINGS_FIELDS)
    settings.register_profile("eqbench-test-odd", **odd)
    settings.register_profile("eqbench-test-odd-database", **{**odd, "derandomize": False, "database": InMemoryExampleDatabase()})
    previous = settings.get_current_profile_name()
    baseline = built_settings()
    for name in ("eqbench-test-odd", "eqbench-test-odd-database"):
        settings.load_profile(name)
        try:
            under_odd = built_settings()
        finally:
            settings.load_profile(previous)
        for ours, theirs in zip(baseline, under_odd):
            assert {f: getattr(ours, f) for f in SETTINGS_FIELDS} == {f: getattr(theirs, f) for f in SETTINGS_FIELDS}, name
    search, quick, thorough = under_odd
    assert (search.max_examples, search.derandomize, search.deadline, search.database, search.print_blob) == (25, False, None, None, False)
    assert Phase.shrink in search.phases and Phase.target in search.phases and search.verbosity == Verbosity.quiet
    assert [p.max_examples for p in (quick, thorough)] == [20, 1000]
    assert [p.report_multiple_bugs for p in (quick, thorough)] == [False, True]
    assert Phase.explain in thorough.phases and Phase.explain not in quick.phases
    assert all(p.database is None and p.deadline is None for p in under_odd)


# ---------------------------------------------------------------- model failures
def test_model_failures_give_the_error_verdict_with_a_message() -> None:
    def raises(x):
        raise ValueError("no can do")

    def returns_nan(x):
        return distance_sum(x) * float("nan")

    def wrong_batch(x):
        return distance_sum(x).sum(dim=0)

    def wrong_shape(x):
        return x.mean(dim=1)[:, :2]

    def mutates(x):
        x.mul_(2.0)
        return distance_sum(x)

    cases = [
        (raises, Invariant(), "model raised ValueError: no can do"),
        (returns_nan, Invariant(), "NaN"),
        (wrong_batch, Invariant(), "batch"),
        (wrong_shape, Vectors(per_point=False, dim=3), "shape"),
        (mutates, Invariant(), "changed its input in place"),
    ]
    for model, out_action, words in cases:
        result = check_equivariance(model, SO3(), CLOUDS, CLOUDS.action, out_action, search_examples=5, **FAST)
        assert result.verdict is Verdict.ERROR, model.__name__
        assert words in result.message, (model.__name__, result.message)
        assert "error" in str(result)


def test_model_failing_only_on_rare_inputs_is_found_and_shrunk() -> None:
    def nan_on_large_clouds(x):
        out = distance_sum(x)
        return out * float("nan") if x.shape[1] > RARE_SIZE else out

    result = check_equivariance(nan_on_large_clouds, SO3(), CLOUDS, CLOUDS.action, Invariant(), search_examples=40, **FAST)
    assert result.verdict is Verdict.ERROR and "NaN" in result.message
    assert result.counterexample.structure["num_points"] == RARE_SIZE + 1
    assert "NaN" in result.counterexample.failure


# ---------------------------------------------------------------- float64 diagnosis
def norm_with_cancellation(x: torch.Tensor) -> torch.Tensor:
    """|v|^2 as ((1+K) v1)^2 - (2K + K^2) v1^2 + v2^2: exact in real arithmetic, cancels badly when v1 != 0."""
    k = 1e3
    v1, v2 = x[..., 0], x[..., 1]
    return (((1 + k) * v1) ** 2 - (2 * k + k**2) * v1**2 + v2**2).sum(dim=1, keepdim=True)


def norm_plus_x(x: torch.Tensor) -> torch.Tensor:
    return (x.square().sum(dim=-1) + 0.1 * x[..., 0]).sum(dim=1, keepdim=True)


def test_float64_rerun_tells_rounding_from_structure() -> None:
    """On the y axis the cancellation is harmless (floor 0); rotated, float32 breaks the symmetry by up to ~0.1,
    float64 by ~1e-11: the error shrinks with precision, so it is rounding and the model is exact. The model is
    so ill-conditioned there that float32 cannot evaluate it: that is reported as an ill-posed input."""
    on_axis = torch.tensor([[[0.0, 1.0]], [[0.0, 2.0]]], dtype=torch.float64)
    numerical = check_equivariance(norm_with_cancellation, SO2(), on_axis, Points(dim=2), Invariant(), search_examples=10, **FAST)
    assert numerical.verdict is Verdict.EXACT and numerical.max_rel_error > 1e-2, str(numerical)
    assert numerical.ill_posed is not None and numerical.ill_posed.gap > 1e-2
    structural = check_equivariance(norm_plus_x, SO2(), on_axis, Points(dim=2), Invariant(), search_examples=10, **FAST)
    assert structural.verdict is Verdict.VIOLATED and structural.float64.kind == "structural"
    assert structural.float64.max_rel_error > 1e-3
    in_float64 = check_equivariance(norm_with_cancellation, SO2(), on_axis, Points(dim=2), Invariant(), dtype=torch.float64, **FAST)
    assert in_float64.max_rel_error < 1e-8 and in_float64.float64 is None
