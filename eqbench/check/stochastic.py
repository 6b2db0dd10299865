"""Stochastic models: equivariance of models that draw random numbers in their forward pass.

A Monte-Carlo model (frame averaging over sampled frames, random subsets of points, random
features) is a different function at every call. We control its randomness through the
global torch RNG: each evaluation runs inside ``torch.random.fork_rng()`` after
``torch.manual_seed(s)`` for a seed ``s`` derived from the check seed (the caller's RNG state
is left untouched). The input batch is laid out the same way for ``f(x)`` and ``f(g.x)``
(each input repeated once per element), so a model that draws its numbers per row sees the
same numbers on both sides when the seeds agree.

* **spread**: the run-to-run RMS deviation of one evaluation of ``f(x)`` around the mean of
  ``repeats`` evaluations with different seeds, relative to the output scale (the RMS row norm
  of the outputs over every repeat);
* **crn** (common random numbers): ``f(x)`` and ``f(g.x)`` under the same seed; the errors are
  judged like a deterministic check (:mod:`eqbench.check.verdict`) against the absolute floor
  ``100 eps(dtype)``, reported as ``noise_floor`` (a float64 twin would draw other numbers, so
  there is no measured floor). With the same draws on both sides no sampling noise enters, so
  ``bias_bound`` is the error itself. A model whose randomness commutes with the group (random
  subsets under rotations) is exact;
* **distribution**: independent seeds. With ``d_r = f_r(g.x) - g.f_r'(x)`` per repeat, the mean
  ``d = mean_r d_r`` has standard error ``se = sqrt(var_r(d_r) / repeats)``, about
  ``sqrt(2 / repeats)`` times the spread; the reported ``noise_floor`` is the RMS of ``se`` over
  the rows (relative). The pooled score ``z = sqrt(mean ||d||^2 / mean se^2)`` is about 1 when
  ``f(g.x)`` and ``g.f(x)`` have the same mean, and grows like ``sqrt(repeats) * bias / spread``
  otherwise. When ``z <= Z_CRITICAL`` (or the mean difference is at the absolute floor) the
  model is equivariant in distribution: ``approximate`` when single draws differ (spread above
  the absolute floor: each draw's error is sampling noise, within tolerance in the mean), and
  ``exact`` only when every draw gives the same output. Otherwise the bias is established, and judged by
  ``bias_bound = max_rows (||d|| - Z_CRITICAL se)``, the smallest relative bias that each row's
  mean difference supports at ``Z_CRITICAL`` standard errors of its own: ``approximate`` when
  ``bias_bound <= tolerance``, else ``violated``. Rows differ in their own spread (a sparse
  input is noisier than a dense one), so judging the bound rather than the largest raw ``||d||``
  keeps a noisy row of an invariant model from reading as a bias, without loosening the
  tolerance for every row; ``max_rel_error`` still reports the largest raw ``||d||``;
* **sweep** (:func:`monte_carlo_sweep`): the mean relative error of single evaluations with
  independent seeds against the model's sample count ``n``, with the least-squares fit
  ``log(err) = a + b log(n)`` (``scipy.stats.linregress``) and a 95% confidence interval for
  the rate ``b`` from Student's t with ``len(n) - 2`` degrees of freedom. Plain Monte-Carlo
  averaging gives ``b = -1/2``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import Tensor

from eqbench.actions.base import Action
from eqbench.check.cases import CheckSetup, InputSource, forward
from eqbench.check.forward import ModelFailure, model_name
from eqbench.check.metrics import TINY, exactly_compared, masked, row_norms
from eqbench.check.result import Verdict, json_safe, meets_expectation
from eqbench.check.verdict import absolute_floor, check_expected, decide
from eqbench.groups.base import Group

if TYPE_CHECKING:
    import pandas as pd

#: Pooled z-score up to which a distribution-mode difference counts as sampling noise; also the
#: number of its own standard errors taken off each row's mean difference in ``bias_bound``.
Z_CRITICAL = 3.0
MODES = ("crn", "distribution")


@dataclass
class StochasticResult:
    """The outcome of :func:`check_stochastic` (relative errors are scale-adjusted; the module docstring defines each).

    It carries the fields of a check record that :class:`~eqbench.check.CheckResult` carries
    (``model, group, verdict, expected, max_rel_error, mean_rel_error, noise_floor, n_elements,
    seed``, ``tolerance``, ``seconds``), so the CLI and reports treat both alike; ``n_elements``
    counts every evaluated row of every repeat.
    """

    model: str
    group: str
    mode: str
    verdict: Verdict
    expected: str | None
    spread: float
    max_rel_error: float
    mean_rel_error: float
    noise_floor: float
    bias_bound: float
    z_score: float
    tolerance: float
    repeats: int
    n_elements: int
    n_inputs: int
    seed: int
    seconds: float
    message: str = ""

    @property
    def matches_expected(self) -> bool | None:
        return meets_expectation(self.verdict, self.expected)

    def to_record(self) -> dict[str, Any]:
        record = {key: getattr(self, key) for key in self.__dataclass_fields__}
        record["verdict"] = self.verdict.value
        record["matches_expected"] = self.matches_expected
        return {key: json_safe(value) for key, value in record.items()}

    def __str__(self) -> str:
        return (
            f"{self.model} under {self.group} ({self.mode}, {self.repeats} repeats): {self.verdict.value}; "
            f"spread {self.spread:.3g}, max rel error {self.max_rel_error:.3g} (mean {self.mean_rel_error:.3g}), "
            f"noise floor {self.noise_floor:.3g}, bias bound {self.bias_bound:.3g}, tolerance {self.tolerance:.3g}, "
            f"z {self.z_score:.3g}; {self.n_elements} evaluated rows on {self.n_inputs} inputs, seed {self.seed}"
            + (f"; {self.message}" if self.message else "")
        )


@dataclass
class SweepResult:
    """Equivariance error against the Monte-Carlo sample count, with the fitted rate.

    ``table`` has one row per sample count: ``samples``, ``mean_rel_error``,
    ``max_rel_error``, ``spread``, ``seconds``. ``rate`` is ``b`` in ``err ~ n^b`` with the
    95% interval ``[rate_low, rate_high]``.
    """

    model: str
    group: str
    table: pd.DataFrame
    rate: float
    rate_low: float
    rate_high: float
    intercept: float
    r_squared: float

    def format(self) -> str:
        from tabulate import tabulate

        body = tabulate(self.table, headers="keys", tablefmt="github", showindex=False, floatfmt=".4g")
        return (
            f"{self.model} under {self.group}: error ~ n^{self.rate:.3f} "
            f"(95% CI [{self.rate_low:.3f}, {self.rate_high:.3f}], R^2 {self.r_squared:.3f})\n{body}"
        )

    def __str__(self) -> str:
        return self.format()


class _Runs:
    """Seeded evaluations of ``f(x)`` (each input repeated per element) and ``f(g.x)``."""

    def __init__(self, setup: CheckSetup, source: InputSource, n_inputs: int, n_elements: int, seed: int) -> None:
        self.setup = setup
        in_action = setup.in_action
        _, x64 = source.random(n_inputs, seed)
        self.n_inputs = in_action.batch_size(x64)
        generator = torch.Generator().manual_seed(seed)
        params = setup.group.sample_params(self.n_inputs * n_elements, generator, in_action.num_points(x64))
        self.g = setup.group.element(params)
        self.x = in_action.index(x64, torch.arange(self.n_inputs).repeat_interleave(n_elements))
        self.gx = in_action.apply(self.g, self.x)
        self.mask = in_action.point_mask(self.gx)
        self.base_mask = in_action.point_mask(self.x)
        self.seed_state = generator.get_state()

    @property
    def rows(self) -> int:
        return self.g.batch_size

    def seeded(self, x: Any, seed: int) -> Any:
        """The model output under ``torch.manual_seed(seed)``, restoring the caller's RNG states after."""
        device = torch.device(self.setup.device)
        accelerators = [] if device.type == "cpu" else [device.index or 0]
        with torch.random.fork_rng(devices=accelerators, device_type=None if device.type == "cpu" else device.type):
            torch.manual_seed(seed)
            return forward(self.setup.model, self.setup, x, self.setup.dtype)

    def leaves(self, value: Any, mask: Tensor | None) -> list[Tensor]:
        """Comparable float64 leaves with padded points zeroed."""
        return [masked(leaf.tensor, mask, leaf.per_point) for leaf in self.setup.out_action.leaves(value) if not exactly_compared(leaf)]

    def seeds(self, count: int) -> list[int]:
        """``count`` evaluation seeds, drawn from the check seed's generator after the group elements."""
        generator = torch.Generator().set_state(self.seed_state)
        return torch.randint(0, 2**62, (count,), generator=generator).tolist()

    def pairs(self, repeats: int, common: bool) -> tuple[list[list[Tensor]], list[list[Tensor]], list[list[Tensor]]]:
        """Per repeat: leaves of ``f(x)``, ``g.f(x)`` and ``f(g.x)`` (same seeds when ``common``)."""
        seeds = self.seeds(2 * repeats)
        fx, gfx, fgx = [], [], []
        for r in range(repeats):
            out_x = self.seeded(self.x, seeds[r])
            out_gx = self.seeded(self.gx, seeds[r] if common else seeds[repeats + r])
            fx.append(self.leaves(out_x, self.base_mask))
            gfx.append(self.leaves(self.setup.out_action.apply(self.g, out_x), self.mask))
            fgx.append(self.leaves(out_gx, self.mask))
        return fx, gfx, fgx


def _scales(*runs: list[list[Tensor]]) -> list[float]:
    """RMS row norm of each leaf over every repeat and every list of runs given."""
    count = len(runs[0][0])
    return [float(torch.sqrt(torch.cat([row_norms(r[i]) for run in runs for r in run]).square().mean())) for i in range(count)]


def _spread(fx: list[list[Tensor]], scales: list[float]) -> float:
    """Largest (over leaves) RMS run-to-run deviation of one evaluation, relative to scale."""
    spreads = []
    for i, scale in enumerate(scales):
        values = torch.stack([run[i] for run in fx])
        deviation = (values - values.mean(dim=0)).reshape(len(fx), values.shape[1], -1)
        variance = deviation.square().sum(dim=(0, 2)) / max(len(fx) - 1, 1)
        spreads.append(float(torch.sqrt(variance.mean())) / (scale + TINY))
    return max(spreads)


def _run_errors(gfx: list[list[Tensor]], fgx: list[list[Tensor]], scales: list[float]) -> Tensor:
    """``(repeats, rows)`` worst relative error over the leaves of each run."""
    per_run = []
    for g_run, f_run in zip(gfx, fgx):
        per_run.append(torch.stack([row_norms(b - a) / (s + TINY) for a, b, s in zip(g_run, f_run, scales)]).amax(dim=0))
    return torch.stack(per_run)


def _mean_gaps(gfx: list[list[Tensor]], fgx: list[list[Tensor]], scales: list[float]) -> tuple[Tensor, Tensor, Tensor]:
    """Per row, worst over the leaves: relative mean difference ``||d||``, its standard error ``se``,
    and the bias bound ``max(||d|| - Z_CRITICAL se, 0)`` (module docstring)."""
    gaps, errors, bounds = [], [], []
    repeats = len(gfx)
    for i, scale in enumerate(scales):
        diffs = torch.stack([f_run[i] - g_run[i] for g_run, f_run in zip(gfx, fgx)])
        mean = diffs.mean(dim=0)
        se2 = (diffs - mean).reshape(repeats, mean.shape[0], -1).square().sum(dim=(0, 2)) / ((repeats - 1) * repeats)
        gap, error = row_norms(mean) / (scale + TINY), torch.sqrt(se2) / (scale + TINY)
        gaps.append(gap)
        errors.append(error)
        bounds.append((gap - Z_CRITICAL * error).clamp(min=0.0))
    return torch.stack(gaps).amax(dim=0), torch.stack(errors).amax(dim=0), torch.stack(bounds).amax(dim=0)


def check_stochastic(
    model: Callable[..., Any],
    group: Group,
    inputs: Any,
    in_action: Action,
    out_action: Action,
    *,
    mode: str = "crn",
    repeats: int = 8,
    expected: str | None = None,
    tolerance: float = 1e-2,
    seed: int = 0,
    n_inputs: int = 4,
    n_elements: int = 8,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    name: str | None = None,
) -> StochasticResult:
    """Check a model that samples inside its forward pass, in ``"crn"`` or ``"distribution"`` mode.

    See the module docstring for the spread, both modes and their verdicts. Model
    misbehaviour gives the verdict ``error`` with the message.
    """
    start = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(repeats, int) or repeats < 2:
        raise ValueError(f"repeats must be an integer >= 2 (the spread needs two runs), got {repeats!r}")
    expected = check_expected(expected)
    setup = CheckSetup(model, group, in_action, out_action, dtype, device)
    runs = _Runs(setup, InputSource(inputs, in_action), n_inputs, n_elements, seed)
    result = StochasticResult(
        model=name or model_name(model),
        group=group.name,
        mode=mode,
        verdict=Verdict.ERROR,
        expected=expected,
        spread=float("nan"),
        max_rel_error=float("nan"),
        mean_rel_error=float("nan"),
        noise_floor=float("nan"),
        bias_bound=float("nan"),
        z_score=float("nan"),
        tolerance=tolerance,
        repeats=repeats,
        n_elements=runs.rows * repeats,
        n_inputs=runs.n_inputs,
        seed=seed,
        seconds=0.0,
    )
    try:
        fx, gfx, fgx = runs.pairs(repeats, common=mode == "crn")
    except ModelFailure as failure:
        result.message = str(failure)
        result.seconds = time.perf_counter() - start
        return result
    scales = _scales(gfx, fgx)
    result.spread = _spread(fx, scales)
    floor = absolute_floor(dtype)
    if mode == "crn":
        errors = _run_errors(gfx, fgx, scales)
        result.max_rel_error, result.mean_rel_error = float(errors.max()), float(errors.mean())
        result.noise_floor, result.z_score, result.bias_bound = floor, float("nan"), result.max_rel_error
        result.verdict = decide(result.max_rel_error if result.max_rel_error > floor else 0.0, tolerance)
    else:
        mean_gap, noise, bound = _mean_gaps(gfx, fgx, scales)
        result.max_rel_error, result.mean_rel_error = float(mean_gap.max()), float(mean_gap.mean())
        result.noise_floor, result.bias_bound = float(torch.sqrt(noise.square().mean())), float(bound.max())
        result.z_score = float(torch.sqrt(mean_gap.square().mean()) / (result.noise_floor + TINY))
        consistent = result.z_score <= Z_CRITICAL or result.max_rel_error <= floor
        if not consistent:
            result.verdict = decide(result.bias_bound, tolerance)
            result.message = f"z = {result.z_score:.3g}: a bias beyond sampling noise (equivariant in distribution up to z = {Z_CRITICAL})"
        elif result.spread <= floor:
            result.verdict = Verdict.EXACT
            result.message = f"z = {result.z_score:.3g}, and every draw gives the same output: exact"
        else:
            result.verdict = Verdict.APPROXIMATE
            result.message = (
                f"z = {result.z_score:.3g}: equivariant in distribution; single draws differ by the sampling spread "
                f"{result.spread:.3g}, so the verdict is approximate"
            )
    result.seconds = time.perf_counter() - start
    return result


def monte_carlo_sweep(
    make_model: Callable[[int], Callable[..., Any]],
    sample_counts: Sequence[int],
    group: Group,
    inputs: Any,
    in_action: Action,
    out_action: Action,
    *,
    repeats: int = 4,
    seed: int = 0,
    n_inputs: int = 4,
    n_elements: int = 8,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    name: str | None = None,
) -> SweepResult:
    """Equivariance error against the sample count ``n`` with the fitted rate (module docstring).

    ``make_model(n)`` returns the model with ``n`` Monte-Carlo samples: a factory, or a
    setter that sets the count on one model and returns it. Needs at least three distinct
    sample counts (for a confidence interval); raises ``ModelFailure`` if the model fails.
    """
    import pandas as pd
    from scipy import stats

    counts = sorted({int(n) for n in sample_counts})
    if len(counts) < 3 or counts[0] < 1:
        raise ValueError(f"monte_carlo_sweep needs at least 3 distinct positive sample counts, got {list(sample_counts)}")
    source = InputSource(inputs, in_action)
    rows, label = [], name
    for n in counts:
        start = time.perf_counter()
        model = make_model(n)
        label = label or model_name(model)
        setup = CheckSetup(model, group, in_action, out_action, dtype, device)
        runs = _Runs(setup, source, n_inputs, n_elements, seed)
        fx, gfx, fgx = runs.pairs(repeats, common=False)
        scales = _scales(gfx, fgx)
        errors = _run_errors(gfx, fgx, scales)
        rows.append(
            {
                "samples": n,
                "mean_rel_error": float(errors.mean()),
                "max_rel_error": float(errors.max()),
                "spread": _spread(fx, scales),
                "seconds": time.perf_counter() - start,
            }
        )
    table = pd.DataFrame(rows)
    errors = table["mean_rel_error"].to_numpy()
    if not (errors > 0).all():
        raise ValueError(f"cannot fit a rate: some mean errors are zero (is the model deterministic?): {errors.tolist()}")
    fit = stats.linregress([math.log(n) for n in counts], [math.log(e) for e in errors])
    half_width = stats.t.ppf(0.975, len(counts) - 2) * fit.stderr
    return SweepResult(
        model=label or "model",
        group=group.name,
        table=table,
        rate=float(fit.slope),
        rate_low=float(fit.slope - half_width),
        rate_high=float(fit.slope + half_width),
        intercept=float(fit.intercept),
        r_squared=float(fit.rvalue**2),
    )
