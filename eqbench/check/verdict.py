"""From errors to a verdict: the thresholds and why they are what they are.

All errors here are *scale-adjusted relative* errors (see :mod:`eqbench.check.metrics`):
``||f(g.x) - g.f(x)||`` over the RMS norm of the output across every input and element tried.

* **noise floor** ``F``: the relative discrepancy between the model evaluated in the checked
  dtype and in float64 on the same float64 inputs (:mod:`eqbench.check.noise`); for a float64
  check, the float32 discrepancy scaled by ``eps64 / eps32``. It is what rounding alone does to
  one evaluation of *this* model on *these* inputs.
* **exact threshold** ``T_exact = max(FLOOR_FACTOR * F, ABS_FLOOR_EPS * eps(dtype))``.
  An equivariance error compares two rounded evaluations, ``f(g.x)`` and ``g.f(x)``, whose
  rounding errors add (a factor up to 2); the transformed inputs ``g.x`` are rounded to the
  dtype once more, and the floor is measured on a handful of inputs, so the rounding of the
  worst of many elements can sit a few times above it. ``FLOOR_FACTOR = 10`` covers these
  with margin while staying far below any structural error (a broken model misses by
  ``O(1)``). The absolute part, ``100 eps`` (1.2e-5 in float32, 2.2e-14 in float64), keeps a
  model whose float64 and float32 outputs agree to the last bit (floor 0) from being failed
  by the rounding of the transform itself and of reductions over many points.
* verdict: ``exact`` when ``max_rel_error <= T_exact``; otherwise ``approximate`` when
  ``max_rel_error <= tolerance``; otherwise ``violated``. When the exact threshold exceeds the
  tolerance (a model so noisy its rounding is above the tolerance) an error at the floor is
  still ``exact``: the check cannot see below its own rounding.
* searched inputs (:mod:`eqbench.check.search`) are each judged against their own floor as
  well (an input whose outputs vanish by symmetry has a floor of order 1); an error within
  its own exact threshold counts as rounding and enters ``max_rel_error`` clipped to
  ``T_exact``, so the rule above still reads off the reported numbers.
* a check whose group elements act only approximately on the data (a grid image rotated by
  a non-multiple of 90 degrees needs interpolation, ``GridImage.is_exact(g)`` is False) can
  at best be ``approximate``: an ``exact`` verdict is capped.
* float64 diagnosis of a violated low-precision check: the error is ``numerical`` when the
  float64 re-run brings it to the float64 exact threshold, or to at most
  ``NUMERICAL_DROP = 1e-4`` times the low-precision error (about ``sqrt(eps64 / eps32)``:
  rounding errors shrink by ``eps64 / eps32 = 2e-9``, structural ones do not shrink at all;
  the square root splits the two by four orders of magnitude either way); ``structural``
  otherwise.
"""
from __future__ import annotations

import torch

from eqbench.check.result import Verdict

FLOOR_FACTOR = 10.0
ABS_FLOOR_EPS = 100.0
NUMERICAL_DROP = 1e-4


def absolute_floor(dtype: torch.dtype) -> float:
    """``ABS_FLOOR_EPS * eps(dtype)``: the smallest exact threshold for a dtype."""
    return ABS_FLOOR_EPS * torch.finfo(dtype).eps


def exact_threshold(noise_floor: float, dtype: torch.dtype) -> float:
    """``max(FLOOR_FACTOR * noise_floor, ABS_FLOOR_EPS * eps(dtype))`` (see the module docstring)."""
    return max(FLOOR_FACTOR * noise_floor, absolute_floor(dtype))


def decide(max_rel_error: float, threshold: float, tolerance: float, exact_action: bool = True) -> Verdict:
    """The verdict for an error against the exact threshold and the tolerance.

    ``exact_action=False`` (some element acts only approximately, e.g. by interpolation)
    caps ``exact`` at ``approximate``.
    """
    if max_rel_error <= threshold:
        return Verdict.EXACT if exact_action else Verdict.APPROXIMATE
    if max_rel_error <= tolerance:
        return Verdict.APPROXIMATE
    return Verdict.VIOLATED


def failure_threshold(expected: str | None, threshold: float, tolerance: float) -> float:
    """The error a search example must exceed to count as a failure of the expectation.

    Expecting ``exact``: the exact threshold. Otherwise (``approximate``, ``violated`` or no
    expectation): the tolerance, so the search hunts for (and shrinks) real violations.
    """
    if expected == Verdict.EXACT.value:
        return threshold
    return max(tolerance, threshold)


def is_numerical(float64_error: float, low_precision_error: float) -> bool:
    """Whether a violation is rounding (see ``NUMERICAL_DROP`` in the module docstring)."""
    return float64_error <= max(absolute_floor(torch.float64), NUMERICAL_DROP * low_precision_error)


def check_expected(expected: str | None) -> str | None:
    """``expected`` as a verdict string, or a ``ValueError`` naming the allowed values."""
    if expected is None:
        return None
    value = expected.value if isinstance(expected, Verdict) else str(expected)
    allowed = [v.value for v in Verdict]
    if value not in allowed:
        raise ValueError(f"expected must be one of {allowed} or None, got {expected!r}")
    return value
