"""The noise floor: the relative error that rounding alone gives for this model on these inputs.

Measured once per check on the ``B`` untransformed inputs of the random phase, relative to
each output's scale (the same normalisation as the errors, :mod:`eqbench.check.metrics`):

* ``"float64"`` (checks in float32 and below): ``max_r ||f_dtype(x_r) - f_64(x_r)|| / scale``,
  with ``f_64`` the model run in float64 (:class:`~eqbench.check.forward.TwinModel`) on the
  same float64 inputs. It is the rounding error of one evaluation in the checked dtype, the
  input's own rounding to that dtype included. One extra forward pass over ``B`` rows.
* ``"float32-scaled"`` (checks in float64): there is no wider dtype to compare with, so the
  float32 twin stands in: ``max_r ||f_32(x_r) - f_64(x_r)|| / scale * eps64 / eps32``. To first
  order a rounding error is the sum of the unit roundoff times the computation's sensitivities
  to each rounding, so the same computation in float64 errs by the float32 error scaled by the
  ratio of unit roundoffs (2^-29 = 1.9e-9). This is what carries the model's conditioning into
  a float64 check: an ill-conditioned step (an eigenvector of a nearly repeated eigenvalue, a
  difference of nearly equal numbers) shows in float32 with the same amplification. A model
  that branches on its data (a neighbour cut-off, an eigenvector sign) may take another branch
  in float32 and differ by ``O(1)``; scaled, that is a floor of about ``2e-9``: harmless next
  to the ``O(1)`` errors of a broken symmetry. One extra forward pass over ``B`` rows, with
  TF32 off (on Ampere and later GPUs cuDNN convolutions default to TF32, whose 2^-11 rounding
  would inflate the scaled floor some 8000 times). Its blind spot: an input that is *exactly*
  degenerate in float64 (a symmetric point set whose covariance has an exactly repeated
  eigenvalue) is no longer exactly degenerate once rounded to float32, so the float32 twin
  does not see how ill-conditioned the float64 evaluation is there, and the floor stays small
  (measured on frame averaging over symmetric clouds: floor ~6e-16 where the equivariant
  vectors' rounding reaches a few hundred eps, read ``approximate``).
* ``"batch-order"`` (when the model cannot run in the other dtype): ``max_r ||f(x_r) - f'(x_r)||
  / scale`` between the stacked pass and a pass over the same ``B`` rows in reverse order,
  which reorders the reductions inside batched kernels. It is a lower bound on rounding
  (often exactly 0; 0 without a pass when ``B = 1``), so the absolute part of the exact
  threshold (:mod:`eqbench.check.verdict`) matters most there.

The floor deliberately ignores the transformed inputs: a model whose rounding grows with
the transformation (cancellation far from the origin) shows errors above the exact threshold,
which the re-evaluation in the other precision (:mod:`eqbench.check.rounding`) then explains as
rounding.

A row whose float32-vs-float64 gap (before the ``eps64 / eps32`` scaling) exceeds
:data:`~eqbench.check.verdict.ILL_POSED_GAP` is not rounding: the model is discontinuous or
ill-posed on that input. Such rows are left out of the floor and reported (``gap``,
``gap_row``) as a finding; a floor is never raised by them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from eqbench.check.cases import CaseEvaluation, CheckSetup, TwinPass, forward
from eqbench.check.forward import ModelFailure
from eqbench.check.metrics import output_gaps
from eqbench.check.verdict import ILL_POSED_GAP

EPS64, EPS32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps


@dataclass
class NoiseFloor:
    value: float
    method: str
    detail: str = ""
    #: Largest float32-vs-float64 gap of the model on one input (relative, unscaled; 0 for batch-order) and its row.
    gap: float = 0.0
    gap_row: int = -1


def noise_floor(setup: CheckSetup, evaluation: CaseEvaluation, twin_pass: TwinPass | None = None) -> NoiseFloor:
    """The floor for a case batch already evaluated in the checked dtype (see the module docstring).

    ``twin_pass``, the twin on every row of ``evaluation`` when the caller has it
    (:class:`~eqbench.check.cases.TwinPass`), gives the input rows' gaps instead of the floor's
    own pass over the inputs.
    Raises :class:`~eqbench.check.forward.ModelFailure` when the reverse-order pass fails.
    """
    in_action, out_action = setup.in_action, setup.out_action
    rows = evaluation.base_rows
    if setup.dtype == torch.float64:
        twin, method, factor = setup.float32_model, "float32-scaled", EPS64 / EPS32
    else:
        twin, method, factor = setup.float64_model, "float64", 1.0
    if twin_pass is not None:
        gaps = twin_pass.row_gaps[:rows]
    else:
        inputs = in_action.index(evaluation.stacked, slice(0, rows))
        observed = out_action.index(evaluation.outputs, slice(0, rows))
        reference = None
        if not twin.problem:
            try:
                reference = forward(twin, setup, inputs, twin.dtype)
            except ModelFailure as failure:
                twin.refuse(failure)
        if reference is None:
            method = "batch-order"
            if rows == 1:  # one row has one order: nothing to compare
                return NoiseFloor(0.0, method, twin.problem)
            order = torch.arange(rows - 1, -1, -1)
            reversed_out = forward(setup.model, setup, in_action.index(inputs, order), setup.dtype)
            reference = out_action.index(reversed_out, order)
        gaps = output_gaps(out_action, observed, reference, in_action.point_mask(inputs), evaluation.table.scales)
    problem = twin.problem
    if method == "batch-order":
        return NoiseFloor(factor * float(gaps.max()), method, problem)
    largest, worst_row = gaps.max(dim=0)
    gap, row = float(largest), int(worst_row)
    floor = gap
    if not gap <= ILL_POSED_GAP:
        # rows whose gap is above ILL_POSED_GAP are findings, not rounding: the floor is the largest other gap
        floor = float(torch.where(gaps > ILL_POSED_GAP, torch.zeros_like(gaps), gaps).max())
    return NoiseFloor(factor * floor, method, problem, gap, row)
