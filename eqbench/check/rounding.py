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
from typing import Any

import torch
from torch import Tensor

from eqbench.check.cases import CaseEvaluation, CheckSetup, TwinPass, forward, sample_errors
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
            return _reevaluate(setup, g, owner, batch, table, evaluation)

    else:  # every sample's other-precision error and gap at once, read per batch below
        every_rel, every_gap = _other_precision(
            setup, evaluation.stacked, twin_pass.outputs, twin_pass.row_gaps, g, owner, evaluation.base_rows, table.scales
        )

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
) -> tuple[Tensor, Tensor]:
    """The samples ``batch`` evaluated by the twin: their errors relative to ``table``'s scales, and their gaps.

    The twin gets the very float64 rows the checked pass got (``checked.stacked``: the samples'
    inputs, then their transformed inputs), not a second transformation of them; each row's gap
    is the model's own difference between the two precisions on it.
    """
    inputs, local_owner = torch.unique(owner[batch], return_inverse=True)
    rows = torch.cat([inputs, checked.base_rows + batch])
    stacked = setup.in_action.index(checked.stacked, rows)
    twin = setup.other_model
    other = forward(twin, setup, stacked, twin.dtype)
    mine = setup.out_action.index(checked.outputs, rows)
    row_gaps = output_gaps(setup.out_action, mine, other, setup.in_action.point_mask(stacked), table.scales)
    return _other_precision(setup, stacked, other, row_gaps, g.index(batch), local_owner, inputs.numel(), table.scales)


def _other_precision(
    setup: CheckSetup, stacked: Any, outputs: Any, row_gaps: Tensor, g: Element, owner: Tensor, base_rows: int, scales: list[float]
) -> tuple[Tensor, Tensor]:
    """``(R,)`` each sample's error in the twin's precision and its gap, from the twin's ``outputs`` on ``stacked``.

    ``stacked`` is ``[x; g_r . x_{owner[r]}]`` (``base_rows`` inputs first) and ``row_gaps`` each
    row's gap between the precisions; a sample's gap is the larger of its input's and its
    transformed input's.
    """
    errors = sample_errors(setup, stacked, outputs, g, owner, base_rows, scales)
    return errors, torch.maximum(row_gaps[base_rows:], row_gaps[:base_rows][owner])
