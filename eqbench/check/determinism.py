"""Nondeterminism detected, not assumed: the model run twice on the same inputs.

Before anything is judged, the random phase's ``B`` untransformed inputs go through the model
once more, alone, in the checked dtype, and the outputs are compared with those rows of the
stacked pass (relative to the check's output scale, like every error). A deterministic model
agrees up to the rounding that another batch composition gives (reductions in batched kernels
may run in another order), which is at most the exact threshold. Only when they differ by
more is a third pass run, the same ``B`` rows alone again: if the two lone passes differ as
well, the model draws random numbers in its forward pass (dropout left in training mode,
sampled frames or subsets) and checking it as a deterministic function would compare two
different functions. A seeded deterministic model pays one forward pass over ``B`` rows.
If the lone passes agree with each other but not with the stacked one, an item's output
depends on the other items of its batch (batch statistics, e.g. batch norm in training mode),
which breaks the checker's (and the equivariance property's) premise too.
"""
from __future__ import annotations

from eqbench.check.cases import CaseEvaluation, CheckSetup, forward
from eqbench.check.metrics import output_gaps


def repeat_gap(setup: CheckSetup, evaluation: CaseEvaluation, first: object, second: object) -> float:
    """The largest relative difference between two outputs of the same ``B`` inputs (exact leaves: 1 when any differ)."""
    mask = setup.in_action.point_mask(setup.in_action.index(evaluation.stacked, slice(0, evaluation.base_rows)))
    return float(output_gaps(setup.out_action, first, second, mask, evaluation.table.scales).max())


def nondeterminism(setup: CheckSetup, evaluation: CaseEvaluation, threshold: float) -> str:
    """A one-line problem when the model is not a deterministic function of each item, else ``""``.

    Raises :class:`~eqbench.check.forward.ModelFailure` when a pass fails.
    """
    rows = evaluation.base_rows
    inputs = setup.in_action.index(evaluation.stacked, slice(0, rows))
    stacked = setup.out_action.index(evaluation.outputs, slice(0, rows))
    alone = forward(setup.model, setup, inputs, setup.dtype)
    gap = repeat_gap(setup, evaluation, stacked, alone)
    if gap <= threshold:
        return ""
    again = forward(setup.model, setup, inputs, setup.dtype)
    repeat = repeat_gap(setup, evaluation, alone, again)
    if repeat > threshold:
        return (
            f"the model gives different outputs on the same inputs (relative difference {repeat:.3g} between two runs): "
            "it draws random numbers in its forward pass. Put it in eval mode if that is a mistake (dropout), or "
            "register it with stochastic='crn' (its randomness commutes with the group) or stochastic='distribution' "
            "(only its output distribution is equivariant), i.e. check it with check_stochastic(..., mode=...)"
        )
    return (
        f"an item's output depends on the other items of its batch (relative difference {gap:.3g} between the item "
        "alone and in a larger batch; batch statistics such as batch norm in training mode?): the batch axis must hold "
        "independent items"
    )
