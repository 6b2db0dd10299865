"""Work a check saves without changing what it finds: the prepared random phase, one twin pass, wider search passes.

* :mod:`eqbench.check.random_phase`: a check repeated on the same unchanged concrete inputs reuses
  their cast, elements and transformed inputs; an input changed in place is prepared afresh.
* ``twin_rows="all"``: the twin in the other precision runs once on every row; the floor, the
  errors and the verdict are those of the default (``"worst"``), on exact, broken and
  discontinuous models and on a model with no float64 twin.
* ``search_elements``: each searched input meets ``2 * n_elements`` elements by default.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from eqbench.actions import Invariant, Mask, Points, Scalars, Tuple, Vectors
from eqbench.check import Verdict, check_equivariance
from eqbench.check.cases import CaseEvaluation, CheckSetup, TwinPass, case_errors, sample_errors
from eqbench.check.metrics import ErrorTable, LeafErrors
from eqbench.check.noise import noise_floor
from eqbench.check.random_phase import prepare_random_phase
from eqbench.groups import E3, SO3, Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import AxisReader, DistanceMLP

E3_SN = E3() * Symmetric()


def clouds(seed: int, batch: int = 3, points: int = 7) -> torch.Tensor:
    return torch.randn(batch, points, 3, generator=torch.Generator().manual_seed(seed))


def masked_clouds(batch: int = 3, points: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Point clouds with per-point features and a mask that pads the last point of every other cloud."""
    generator = torch.Generator().manual_seed(7)
    mask = torch.ones(batch, points, dtype=torch.bool)
    mask[::2, -1] = False
    return torch.randn(batch, points, 3, generator=generator), torch.randn(batch, points, 2, generator=generator), mask


def pca_frame_vector(pos: torch.Tensor) -> torch.Tensor:
    """The first principal axis times the spread along it: its sign is arbitrary, so O(3) breaks it."""
    centred = pos - pos.mean(dim=1, keepdim=True)
    _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)
    axis = vectors[..., -1]
    return axis * (centred @ axis.unsqueeze(-1)).square().sum(dim=1)


class Float32Only(nn.Module):
    """An invariant that keeps float32 whatever its input: its float64 twin is refused (no float64 evaluation)."""

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return (pos - pos.mean(dim=1, keepdim=True)).float().norm(dim=-1).sum(dim=1, keepdim=True)


def test_a_repeated_check_on_unchanged_inputs_reuses_the_prepared_phase_and_an_inplace_change_does_not() -> None:
    group, action, x = SO3(), Points(), clouds(0)
    options = dict(n_inputs=4, n_elements=5, exhaustive=None, seed=3)
    first = prepare_random_phase(x, group, action, **options)
    assert prepare_random_phase(x, group, action, **options) is first
    assert prepare_random_phase(x.clone(), group, action, **options) is not first  # another object
    assert prepare_random_phase(x, group, action, **{**options, "seed": 4}) is not first
    x.mul_(2.0)  # the same object changed in place: its version counter moves
    again = prepare_random_phase(x, group, action, **options)
    assert again is not first
    assert torch.allclose(again.x64, 2.0 * first.x64) and torch.allclose(again.stacked, 2.0 * first.stacked)


def test_a_check_sees_an_input_changed_in_place_between_two_checks() -> None:
    model = DistanceMLP(hidden=8, out_features=2).eval()
    x = clouds(1)
    options = dict(search_examples=0, n_elements=4, seed=0)
    before = check_equivariance(model, E3_SN, x, Points(), Invariant(), **options)
    with torch.no_grad():
        x.mul_(3.0)
    after = check_equivariance(model, E3_SN, x, Points(), Invariant(), **options)
    fresh = check_equivariance(model, E3_SN, x.clone(), Points(), Invariant(), **options)
    assert after.max_abs_error == fresh.max_abs_error and after.noise_floor == fresh.noise_floor
    assert after.per_output["<value>"].scale != before.per_output["<value>"].scale


@pytest.mark.parametrize(
    ("model", "group", "out_action", "verdict"),
    [
        (DistanceMLP(hidden=8, out_features=3).eval(), E3_SN, Invariant(), Verdict.EXACT),
        (AxisReader(hidden=8, out_features=3).eval(), E3_SN, Invariant(), Verdict.VIOLATED),
        (pca_frame_vector, E3(), Vectors(per_point=False), Verdict.VIOLATED),
        (Float32Only(), E3_SN, Invariant(), Verdict.EXACT),
    ],
    ids=["exact", "broken", "sign-ambiguous-frame", "no-float64-twin"],
)
def test_one_twin_pass_over_every_row_gives_the_default_check_s_numbers(model, group, out_action, verdict) -> None:
    x = clouds(2, batch=4)
    options = dict(search_examples=0, n_elements=6, seed=5, counterexamples=False)
    worst = check_equivariance(model, group, x, Points(), out_action, **options)
    every = check_equivariance(model, group, x, Points(), out_action, twin_rows="all", **options)
    assert worst.verdict is verdict and every.verdict is verdict, (str(worst), str(every))
    for field in ("noise_floor", "exact_threshold", "max_rel_error", "mean_rel_error", "unexplained_error"):
        a, b = getattr(worst, field), getattr(every, field)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-300), field
    assert (worst.float64 is None) == (every.float64 is None)
    if worst.float64 is not None:
        assert worst.float64.kind == every.float64.kind


def test_twin_rows_is_checked() -> None:
    with pytest.raises(ValueError, match="twin_rows"):
        check_equivariance(DistanceMLP(), E3_SN, clouds(0), Points(), Invariant(), search_examples=0, twin_rows="some")


def test_each_searched_input_meets_twice_the_random_phase_s_elements_unless_told_otherwise() -> None:
    inputs = PointCloudInputs(min_points=4, max_points=6)
    model = DistanceMLP(hidden=8, out_features=2).eval()
    common = dict(n_inputs=2, n_elements=5, search_examples=6, seed=0)
    default = check_equivariance(model, E3_SN, inputs, inputs.action, Invariant(), **common)
    narrow = check_equivariance(model, E3_SN, inputs, inputs.action, Invariant(), search_elements=5, **common)
    random_phase = 2 * 5
    assert default.n_elements == random_phase + 10 * default.search_examples
    assert narrow.n_elements == random_phase + 5 * narrow.search_examples
    assert default.verdict is narrow.verdict is Verdict.EXACT
    with pytest.raises(ValueError, match="search_elements"):
        check_equivariance(model, E3_SN, inputs, inputs.action, Invariant(), search_elements=0, **common)


def test_a_twin_s_errors_read_against_the_check_s_scales_are_those_of_the_rescaled_full_table() -> None:
    """``sample_errors`` (no own scales, no ratios) gives ``case_errors(...).table.rescaled(scales).rel``, bit for bit."""
    setup = CheckSetup(None, E3_SN, Tuple(Points(), Scalars(), Mask()), Tuple(Vectors(), Scalars(), Mask()))
    phase = prepare_random_phase(masked_clouds(), E3_SN, setup.in_action, n_inputs=3, n_elements=4, exhaustive=None, seed=1)
    rows = phase.batch * (1 + phase.per_input)
    generator = torch.Generator().manual_seed(2)
    outputs = (torch.randn(rows, 5, 3, generator=generator, dtype=torch.float64),
               torch.randn(rows, 5, 2, generator=generator, dtype=torch.float64), phase.stacked[2])
    scales = [0.5, 3.0, 1.0]
    table = case_errors(setup, phase.stacked, outputs, phase.g, phase.owner, phase.batch).table
    light = sample_errors(setup, phase.stacked, outputs, phase.g, phase.owner, phase.batch, scales)
    assert torch.equal(light, table.rescaled(scales).rel)
    assert not torch.equal(light, table.rel)  # negative control: the table's own scales give other numbers


def test_the_error_summary_read_in_one_pass_matches_each_column_s_own_reductions() -> None:
    generator = torch.Generator().manual_seed(3)
    leaves = [
        LeafErrors(name, *(torch.rand(6, generator=generator, dtype=torch.float64) for _ in range(3)), scale=float(k + 1))
        for k, name in enumerate(("a", "b", "c"))
    ]
    for table in (ErrorTable(leaves[:1]), ErrorTable(leaves)):
        per_output, (max_rel, mean_rel, max_abs, mean_abs) = table.summary()
        assert (max_rel, mean_rel, max_abs, mean_abs) == (
            float(table.rel.max()), float(table.rel.mean()), float(table.abs.max()), float(table.abs.mean())
        )
        for leaf in table.leaves:
            summary = per_output[leaf.name]
            assert (summary.max_rel_error, summary.mean_rel_error, summary.max_abs_error, summary.mean_abs_error) == (
                float(leaf.rel.max()), float(leaf.rel.mean()), float(leaf.abs.max()), float(leaf.abs.mean())
            )
            assert summary.max_sample_ratio == float(leaf.ratio.max()) and summary.scale == leaf.scale
    assert ErrorTable(leaves).summary()[1][1] > float(leaves[0].rel.mean())  # the worst of three leaves per sample, not the first's


def test_the_noise_floor_leaves_out_ill_posed_rows_and_reports_the_largest_gap() -> None:
    """The floor read from the largest gap alone, and from the other rows when that one is above ILL_POSED_GAP."""
    evaluation = CaseEvaluation(ErrorTable([]), None, None, base_rows=3)
    setup = CheckSetup(None, None, Points(), Invariant())
    for gaps, floor, row in (([1e-7, 3e-7, 2e-7], 3e-7, 1), ([1e-7, 0.5, 2e-7], 2e-7, 1), ([0.2, 0.5, 0.3], 0.0, 1)):
        twin = TwinPass(None, torch.tensor(gaps + [9.0], dtype=torch.float64))  # the transformed row is not an input
        found = noise_floor(setup, evaluation, twin)
        assert (found.value, found.gap, found.gap_row) == (floor, max(gaps), row)
