"""Rounding or structure: samples above the exact threshold re-evaluated in the other precision.

This is step 2 of the rule in :mod:`eqbench.check.verdict`. Given a batch of samples already
evaluated in the checked dtype (their errors ``e`` and the exact threshold ``T_exact``), the
samples with ``e > T_exact`` are re-run through the model's twin in the other precision
(float64 for a float32 check, float32 for a float64 check), worst first: the worst
``REEVALUATED_FIRST`` in one stacked forward pass, then, only when every one of them was
rounding, all the others in one more. A sample that does not shrink with precision is
*unexplained*; the search stops re-evaluating at the first one (every sample below it is at
most as large, so the verdict does not depend on them). A model with nothing above
``T_exact`` (the usual exact model) costs nothing here.

The same passes give the model's own float32-vs-float64 gap on the re-evaluated inputs and
transformed inputs (relative to the check's output scale): above
:data:`~eqbench.check.verdict.ILL_POSED_GAP` it marks an input where the model is
discontinuous or ill-posed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from eqbench.check.cases import CaseEvaluation, CheckSetup, TwinPass, case_errors, forward, sample_errors
from eqbench.check.forward import ModelFailure
from eqbench.check.metrics import ErrorTable, output_gaps
from eqbench.check.verdict import REEVALUATED_FIRST, shrinks_with_precision
from eqbench.groups.element import Element


@dataclass
class Judgement:
    """Which of ``R`` samples are unexplained by rounding, and what the re-evaluation saw."""

    unexplained: Tensor  # (R,) bool
    #: (R,) error of each sample in the other precision (NaN where it was not re-evaluated).
    other_error: Tensor
    #: Largest float32-vs-float64 gap of the model on a re-evaluated sample's rows, and that sample (-1: none).
    gap: float = 0.0
    gap_sample: int = -1
    #: Why samples above the threshold could not be re-evaluated ("" when they could).
    problem: str = ""
    #: True when no sample was above ``T_exact`` (nothing re-evaluated, nothing unexplained).
    below_threshold: bool = False

    def worst(self, rel: Tensor) -> int:
        """The worst sample: the largest error among the unexplained ones, else the largest error."""
        if self.below_threshold:
            return int(rel.argmax())
        return int(torch.where(self.unexplained, rel + rel.max() + 1.0, rel).argmax())

    def unexplained_error(self, rel: Tensor) -> float:
        """The largest error of an unexplained sample (0 when every sample is rounding).

        Only samples above ``T_exact > 0`` are ever unexplained, so zeroing the others leaves that maximum.
        """
        if self.below_threshold:
            return 0.0
        return float(torch.where(self.unexplained, rel, 0.0).max())


def judge_samples(
    setup: CheckSetup,
    g: Element,
    owner: Tensor,
    evaluation: CaseEvaluation,
    table: ErrorTable,
    threshold: float,
    thresholds: tuple[float, float],
    first: int | None = None,
    twin_pass: TwinPass | None = None,
) -> Judgement:
    """Judge every sample of an evaluated case batch by the rule of :mod:`eqbench.check.verdict`.

    ``table`` holds the samples' errors relative to the check's scales (``evaluation.table``
    may be relative to the batch's own); ``threshold`` is ``T_exact``, ``thresholds`` is
    ``(T_lo, T_64)`` (:func:`~eqbench.check.verdict.precision_thresholds`). Sample ``first``
    (the search's drawn element), when above ``T_exact``, is re-evaluated in the first pass
    whatever its rank, so that it is always judged itself. ``twin_pass``, the twin on every row of
    ``evaluation`` (:class:`~eqbench.check.cases.TwinPass`) when the caller has it: the
    re-evaluation then reads its rows instead of running the twin.
    """
    rel = table.rel
    samples = rel.shape[0]
    judgement = Judgement(torch.zeros(samples, dtype=torch.bool), torch.full((samples,), math.nan, dtype=torch.float64))
    count = int((rel > threshold).sum())
    if count == 0:  # the usual exact model: nothing to re-evaluate
        judgement.below_threshold = True
        return judgement
    above = torch.argsort(rel, descending=True)[:count]
    if first is not None and bool((above == first).any()):
        above = torch.cat([above[above == first], above[above != first]])
    twin = setup.other_model

    if twin_pass is None:

        def other_precision(batch: Tensor) -> tuple[Tensor, Tensor]:
            """The samples' errors in the other precision and the model's own gaps between the precisions."""
            other = _reevaluate(setup, g, owner, batch, table, evaluation)
            return other.table.rel, _gaps(setup, evaluation, other, owner, batch, table)

    else:  # every sample's other-precision error and gap at once, read per batch below
        every_rel, every_gap = _every_sample(setup, evaluation, g, owner, table, twin_pass)

        def other_precision(batch: Tensor) -> tuple[Tensor, Tensor]:
            return every_rel[batch], every_gap[batch]
    start = 0
    for stop in (REEVALUATED_FIRST, above.numel()):
        batch = above[start:stop]
        if batch.numel() == 0:
            break
        if not twin.problem:
            try:
                other_rel, gaps = other_precision(batch)
            except ModelFailure as failure:
                twin.refuse(failure)
        if twin.problem:  # no re-evaluation: what is above T_exact stays unexplained
            judgement.problem = twin.problem
            judgement.unexplained[above[start:]] = True
            break
        judgement.other_error[batch] = other_rel
        low, high = (other_rel, rel[batch]) if setup.dtype == torch.float64 else (rel[batch], other_rel)
        low_rounding = float(torch.maximum(low, gaps).max())  # r_lo: the model's lower-precision rounding here
        rounding = shrinks_with_precision(
            low, high, low_rounding, thresholds, setup.low_dtype, checked_low=setup.dtype != torch.float64
        )
        judgement.unexplained[batch] = ~rounding
        largest_gap, worst = gaps.max(dim=0)
        if float(largest_gap) > judgement.gap:
            judgement.gap, judgement.gap_sample = float(largest_gap), int(batch[worst])
        if not bool(rounding.all()):
            judgement.unexplained[above[stop:]] = True
            break
        start = stop
    return judgement


def _reevaluate(
    setup: CheckSetup, g: Element, owner: Tensor, batch: Tensor, table: ErrorTable, checked: CaseEvaluation
) -> CaseEvaluation:
    """The samples ``batch`` evaluated by the twin, errors relative to ``table``'s scales.

    The twin gets the very float64 rows the checked pass got (``checked.stacked``: the inputs, then
    the samples' transformed inputs), not a second transformation of them.
    """
    inputs, local_owner = torch.unique(owner[batch], return_inverse=True)
    stacked = setup.in_action.index(checked.stacked, torch.cat([inputs, checked.base_rows + batch]))
    twin = setup.other_model
    other = forward(twin, setup, stacked, twin.dtype)
    evaluation = case_errors(setup, stacked, other, g.index(batch), local_owner, inputs.numel())
    evaluation.table = evaluation.table.rescaled(table.scales)
    return evaluation


def _every_sample(
    setup: CheckSetup, checked: CaseEvaluation, g: Element, owner: Tensor, table: ErrorTable, twin: TwinPass
) -> tuple[Tensor, Tensor]:
    """What :func:`_reevaluate` and :func:`_gaps` give, for every sample at once, read from ``twin``."""
    other = sample_errors(setup, checked.stacked, twin.outputs, g, owner, checked.base_rows, table.scales)
    base, transformed = twin.row_gaps[: checked.base_rows], twin.row_gaps[checked.base_rows :]
    return other, torch.maximum(transformed, base[owner])


def _gaps(
    setup: CheckSetup, checked: CaseEvaluation, other: CaseEvaluation, owner: Tensor, batch: Tensor, table: ErrorTable
) -> Tensor:
    """``(len(batch),)`` the model's own gap between the two precisions on each sample's input and transformed input."""
    in_action, out_action = setup.in_action, setup.out_action
    inputs, local_owner = torch.unique(owner[batch], return_inverse=True)
    # rows of the checked pass matching the twin's stacked rows [x_inputs; g_batch . x]
    rows = torch.cat([inputs, checked.base_rows + batch])
    mine = out_action.index(checked.outputs, rows)
    gaps = output_gaps(out_action, mine, other.outputs, in_action.point_mask(other.stacked), table.scales)
    base, transformed = gaps[: inputs.numel()], gaps[inputs.numel() :]
    return torch.maximum(transformed, base[local_owner])
