"""The difference of two models' mean scores over seeds, its 95% confidence interval, and what it says in words.

For the final scores ``a_1..a_n`` of model A and ``b_1..b_m`` of model B (one per training
seed), the difference is ``d = mean(a) - mean(b)``. Two intervals:

* **Welch's t interval** (the default): ``d +- t_{(1+c)/2, nu} * se`` with
  ``se = sqrt(s_a^2 / n + s_b^2 / m)`` and the Welch-Satterthwaite degrees of freedom
  ``nu = se^4 / ((s_a^2/n)^2/(n-1) + (s_b^2/m)^2/(m-1))`` (``scipy.stats.ttest_ind`` with
  ``equal_var=False``); it does not assume equal spreads, and needs at least 2 runs per model.
* **percentile bootstrap** (``method="bootstrap"``): resample each model's seeds with
  replacement (``scipy.stats.bootstrap``, seeded), the ``(1-c)/2`` and ``(1+c)/2`` quantiles of
  the resampled ``d``. With 3-5 seeds it is narrower than Welch's (it cannot see beyond the
  observed spread), so tables use Welch's.

The conclusion reads the interval in the metric's direction (:func:`higher_is_better`:
accuracy up, MSE / MAE / loss / error down): an interval that excludes 0 means the model with
the better mean is significantly better (``"A better"``), one that contains 0 means ``"no
significant difference"``, and fewer than 2 runs of either model ``"too few runs"``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
METHODS = ("welch", "bootstrap")
NO_DIFFERENCE = "no significant difference"
TOO_FEW = "too few runs"
#: Metric name fragments whose larger values are better; everything else (mse, mae, loss, error) is better smaller.
HIGHER_IS_BETTER = ("accuracy", "auc", "f1", "r2")


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better: accuracy-like names yes, errors and losses no."""
    return any(fragment in metric.lower() for fragment in HIGHER_IS_BETTER)


@dataclass(frozen=True)
class Difference:
    """``mean(first) - mean(second)`` over seeds, its interval, the Welch p-value and the conclusion in words."""

    first: str
    second: str
    runs_first: int
    runs_second: int
    mean_first: float
    mean_second: float
    difference: float
    low: float
    high: float
    p_value: float
    method: str
    higher_is_better: bool
    conclusion: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_means(
    first: Sequence[float],
    second: Sequence[float],
    *,
    names: tuple[str, str] = ("first", "second"),
    higher_is_better: bool,
    confidence: float = CONFIDENCE,
    method: str = "welch",
    seed: int = 0,
) -> Difference:
    """Compare two samples of final scores (see the module docs); NaN scores are errors, not dropped."""
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; known: {METHODS}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"scores of {names[0]} / {names[1]} must be finite, got {a.tolist()} and {b.tolist()}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"need at least one score of each model, got {len(a)} of {names[0]} and {len(b)} of {names[1]}")
    difference = float(a.mean() - b.mean())
    low = high = p_value = math.nan
    if len(a) >= 2 and len(b) >= 2:
        low, high, p_value = _welch(a, b, difference, confidence)
        if method == "bootstrap":
            low, high = _bootstrap(a, b, difference, confidence, seed)
    conclusion = _conclusion(names, difference, low, high, higher_is_better)
    return Difference(names[0], names[1], len(a), len(b), float(a.mean()), float(b.mean()), difference, low, high, p_value, method, higher_is_better, conclusion)


def _welch(a: np.ndarray, b: np.ndarray, difference: float, confidence: float) -> tuple[float, float, float]:
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:  # identical repeats: the difference is exact
        return difference, difference, 0.0 if difference else 1.0
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return float(interval.low), float(interval.high), float(result.pvalue)


def _bootstrap(a: np.ndarray, b: np.ndarray, difference: float, confidence: float, seed: int) -> tuple[float, float]:
    if a.var() == 0 and b.var() == 0:
        return difference, difference
    result = stats.bootstrap(
        (a, b), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), paired=False, vectorized=True,
        confidence_level=confidence, n_resamples=9999, method="percentile", rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _conclusion(names: tuple[str, str], difference: float, low: float, high: float, higher_better: bool) -> str:
    if math.isnan(low):
        return TOO_FEW
    if low <= 0 <= high:
        return NO_DIFFERENCE
    first_better = (difference > 0) == higher_better
    return f"{names[0] if first_better else names[1]} better"
