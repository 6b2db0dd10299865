"""From errors to a verdict: one rule for telling rounding from structure.

All errors are *scale-adjusted relative* errors (:mod:`eqbench.check.metrics`):
``e = ||f(g.x) - g.f(x)|| / s`` with ``s`` the RMS output norm of the check (the random
phase's outputs, pooled with a searched example's own; never one example's alone, so an
output that vanishes by symmetry keeps its rounding at rounding size). A *sample* is one
input with one group element.

**The rule: a discrepancy is rounding only if it shrinks with precision.**

1. ``T_exact = max(FLOOR_FACTOR * F, ABS_FLOOR_EPS * eps(dtype))``, with ``F`` the noise
   floor: what rounding alone does to one evaluation of this model on the random phase's
   inputs (:mod:`eqbench.check.noise`). A sample with ``e <= T_exact`` is rounding: it sits
   at the model's measured rounding (an equivariance error compares two rounded evaluations
   and the transformed input is rounded once more, so its rounding can sit a few times above
   ``F``; ``FLOOR_FACTOR = 10`` covers that). ``100 eps`` (1.2e-5 in float32, 2.2e-14 in
   float64) keeps a model whose float32 and float64 outputs agree to the last bit (``F = 0``)
   from being failed by the rounding of the transform itself.
2. A sample with ``e > T_exact`` is re-evaluated in the other precision
   (:mod:`eqbench.check.rounding`: the worst ``REEVALUATED_FIRST`` first, then, when all of
   those were rounding, every other one above ``T_exact``; in the search, before an example
   is accepted or rejected). A float32 (or lower) check re-runs it with the model's float64
   twin; a float64 check with its float32 twin. With ``e_hi`` the sample's error in float64
   and ``e_lo`` in the lower precision, it is rounding when it shrinks with precision:

   a. like rounding does, ``e_hi <= max(T_64, FLOOR_FACTOR * (eps64 / eps_lo) * r_lo)``: a
      rounding error scales with the unit roundoff (to first order it is a sum of roundoffs
      times sensitivities), so in float64 it is the lower precision's rounding ``r_lo`` times
      ``eps64 / eps_lo`` (1.9e-9 from float32); ``T_64`` is the float64 exact threshold (the
      floor scaled by the same ratio). ``r_lo`` is the model's rounding in the lower precision
      on the samples re-evaluated together: the largest of their errors there and of the
      model's own gaps between the two precisions on their inputs (one rounding can cancel by
      luck, so one sample's own float32 error may sit far below what float32 does to the model
      on the same inputs: measured 30 times on a cancelling model); or
   b. (float32 and lower checks only) by at least ``MIN_SHRINK = 100`` to within the checked
      precision's exact threshold: ``e_hi <= min(T_exact, e_lo / MIN_SHRINK)``. A float64 twin
      is only as precise as the model's constants: e3nn's coupling coefficients, made in
      float32, stay float32-accurate after the cast, so its float64 errors stop near 1e-8
      instead of 1e-16, still far below anything the float32 check resolves. (Two orders of
      magnitude: a structural error does not fall at all, and the luck of one rounding spans
      about one, ``FLOOR_FACTOR``.) A float64 check
      has no (b): there ``e_lo`` comes from the float32 twin, and a twin that is discontinuous
      where float64 is not (O(1) ``e_lo``) must not excuse a float64 error.

   A structural error does not shrink at all (``e_hi ~ e_lo``) and fails both; a
   discontinuity of the model gives ``r_lo = O(1)``, a bound of about 2e-8 in (a), while its
   float64 error stays ``O(1)``. A real leak below ``T_exact`` of a float32 check (1e-6 of the
   output) is within float32's rounding and is judged by a float64 check (``dtype``), where
   ``T_exact`` is 1e8 times smaller. A sample that cannot be re-evaluated (no twin) stays
   unexplained.
3. The *unexplained error* is the largest error of a sample that is not rounding (0 when every
   sample is). Verdict: ``exact`` when it is 0; otherwise ``approximate`` when it is at most
   ``tolerance``, else ``violated``. A check in which some element acts only approximately on
   the data (a grid image rotated by a non-multiple of 90 degrees, ``GridImage.is_exact``) caps
   ``exact`` at ``approximate``.

**Discontinuous or ill-posed inputs.** The same re-evaluation compares the model with itself:
when its float32 and float64 outputs on one input differ by more than ``ILL_POSED_GAP = 1e-3``
of the output scale (about 10^4 float32 unit roundoffs; the largest floor of the default
suite is 2e-6), the model is discontinuous or ill-posed there (a frame taken from a repeated
eigenvalue, a neighbour cut-off on a tie). That is reported as a finding of its own
(``CheckResult.ill_posed``), never counted as rounding: such rows are left out of the noise
floor, and a sample there is judged by the rule above like any other.
"""
from __future__ import annotations

import torch

from eqbench.check.result import Verdict

FLOOR_FACTOR = 10.0
ABS_FLOOR_EPS = 100.0
ILL_POSED_GAP = 1e-3
MIN_SHRINK = 100.0
#: Samples above the exact threshold re-evaluated first (the rest only when all of these were rounding).
REEVALUATED_FIRST = 4
EPS64, EPS32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps


def absolute_floor(dtype: torch.dtype) -> float:
    """``ABS_FLOOR_EPS * eps(dtype)``: the smallest exact threshold for a dtype."""
    return ABS_FLOOR_EPS * torch.finfo(dtype).eps


def exact_threshold(noise_floor: float, dtype: torch.dtype) -> float:
    """``max(FLOOR_FACTOR * noise_floor, ABS_FLOOR_EPS * eps(dtype))`` (rule, step 1)."""
    return max(FLOOR_FACTOR * noise_floor, absolute_floor(dtype))


def precision_thresholds(noise_floor: float, dtype: torch.dtype) -> tuple[float, float]:
    """``(T_lo, T_64)``: the exact thresholds of the lower precision and of float64 for a check in ``dtype``.

    The floor is scaled between the two by the ratio of unit roundoffs (a float64 check's floor
    already is the float32 one scaled by ``eps64 / eps32``; :mod:`eqbench.check.noise`).
    """
    if dtype == torch.float64:
        return exact_threshold(noise_floor * EPS32 / EPS64, torch.float32), exact_threshold(noise_floor, torch.float64)
    return exact_threshold(noise_floor, dtype), exact_threshold(noise_floor * EPS64 / torch.finfo(dtype).eps, torch.float64)


def shrinks_with_precision(
    low_error: torch.Tensor,
    high_error: torch.Tensor,
    low_rounding: float,
    thresholds: tuple[float, float],
    low_dtype: torch.dtype,
    checked_low: bool = True,
) -> torch.Tensor:
    """Which samples are rounding by (a) or, when the checked dtype is the lower one, (b) of the rule's step 2.

    ``low_error``/``high_error`` are ``e_lo``/``e_hi`` per sample, ``low_rounding`` is ``r_lo``
    (over the samples judged together), ``thresholds`` is ``(T_lo, T_64)``, ``low_dtype`` the
    lower precision; ``checked_low`` is False for a float64 check (no rule (b)).
    """
    low_threshold, high_threshold = thresholds
    like_rounding = high_error <= max(FLOOR_FACTOR * EPS64 / torch.finfo(low_dtype).eps * low_rounding, high_threshold)
    if checked_low:
        return like_rounding | ((high_error <= low_threshold) & (high_error * MIN_SHRINK <= low_error))
    return like_rounding


def is_ill_posed(gap: float) -> bool:
    """Whether a float32-vs-float64 discrepancy of the model itself is a finding rather than rounding."""
    return gap > ILL_POSED_GAP


def decide(unexplained_error: float, tolerance: float, exact_action: bool = True) -> Verdict:
    """The verdict from the largest unexplained error (rule, step 3).

    ``exact_action=False`` (some element acts only approximately, e.g. by interpolation)
    caps ``exact`` at ``approximate``.
    """
    if unexplained_error <= 0.0:
        return Verdict.EXACT if exact_action else Verdict.APPROXIMATE
    if unexplained_error <= tolerance:
        return Verdict.APPROXIMATE
    return Verdict.VIOLATED


def failure_threshold(expected: str | None, tolerance: float) -> float:
    """The unexplained error a search example must exceed to count as a failure of the expectation.

    Expecting ``exact``: any (> 0). Otherwise (``approximate``, ``violated`` or no expectation):
    the tolerance, so the search hunts for (and shrinks) real violations.
    """
    return 0.0 if expected == Verdict.EXACT.value else tolerance


def check_expected(expected: str | None) -> str | None:
    """``expected`` as a verdict string, or a ``ValueError`` naming the allowed values."""
    if expected is None:
        return None
    value = expected.value if isinstance(expected, Verdict) else str(expected)
    allowed = [v.value for v in Verdict]
    if value not in allowed:
        raise ValueError(f"expected must be one of {allowed} or None, got {expected!r}")
    return value
