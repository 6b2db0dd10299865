"""Differences of means over seeds: Welch's interval by hand, the bootstrap, conclusions in the metric's direction."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from eqbench.reports.statistics import NO_DIFFERENCE, TOO_FEW, compare_means, higher_is_better

A = [0.91, 0.92, 0.90, 0.93, 0.915]
B = [0.80, 0.82, 0.81, 0.83, 0.79]


def test_welch_interval_matches_the_formula():
    result = compare_means(A, B, names=("a", "b"), higher_is_better=True)
    a, b = np.array(A), np.array(B)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    nu = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, nu) * se
    assert result.difference == pytest.approx(a.mean() - b.mean())
    assert (result.low, result.high) == pytest.approx((result.difference - half, result.difference + half))
    assert result.runs_first == 5 and result.conclusion == "a better" and result.p_value < 1e-4


def test_conclusions_read_the_metric_direction():
    assert higher_is_better("test_accuracy") and not higher_is_better("test_mse") and not higher_is_better("test_mae_meV")
    # the same numbers as errors: the smaller mean wins
    assert compare_means(A, B, names=("a", "b"), higher_is_better=False).conclusion == "b better"
    overlapping = compare_means([0.90, 0.95, 0.85], [0.91, 0.86, 0.93], names=("a", "b"), higher_is_better=True)
    assert overlapping.low < 0 < overlapping.high and overlapping.conclusion == NO_DIFFERENCE
    single = compare_means([0.9], B, names=("a", "b"), higher_is_better=True)
    assert single.conclusion == TOO_FEW and math.isnan(single.low)
    exact = compare_means([1.0, 1.0], [0.5, 0.5], names=("a", "b"), higher_is_better=True)
    assert (exact.low, exact.high, exact.conclusion) == (0.5, 0.5, "a better")


def test_bootstrap_interval_contains_the_difference_and_is_seeded():
    first = compare_means(A, B, names=("a", "b"), higher_is_better=True, method="bootstrap", seed=1)
    again = compare_means(A, B, names=("a", "b"), higher_is_better=True, method="bootstrap", seed=1)
    welch = compare_means(A, B, names=("a", "b"), higher_is_better=True)
    assert first.low < first.difference < first.high and (first.low, first.high) == (again.low, again.high)
    assert welch.low <= first.low and first.high <= welch.high  # with five seeds the percentile bootstrap is the narrower
    assert first.conclusion == "a better"


@pytest.mark.parametrize(
    ("first", "second", "options", "message"),
    [
        ([0.1, float("nan")], B, {}, "must be finite"),
        ([], B, {}, "at least one score"),
        (A, B, {"method": "jackknife"}, "unknown interval method"),
        (A, B, {"confidence": 1.5}, "confidence must be in"),
    ],
)
def test_bad_input_is_an_error(first, second, options, message):
    with pytest.raises(ValueError, match=message):
        compare_means(first, second, higher_is_better=True, **options)
