"""The leaderboard's columns, one function per kind of result, all keyed by the canonical names of :mod:`~eqbench.reports.lineup`.

* equivariance (:func:`equivariance_rows`): per registry entry and group, the verdicts over
  seeds, the worst relative error beside the largest noise floor and the tolerance, and why an
  ``approximate`` verdict shows an error above its tolerance (:func:`explain_above_tolerance`);
* Monte-Carlo convergence: :func:`eqbench.reports.sweeps.sweep_rows`, the error against the
  sample count ``n`` with the fitted rate ``b`` of ``err ~ n^b`` and its 95% interval;
* training (:func:`training_rows`): the final test metric, mean +- std over seeds, one row per
  configuration: runs that differ in epochs, preset, data set or device are never averaged
  together, and a model with several configurations on one task is flagged;
* speed and memory (:func:`speed_cells`): the newest value of each asv ratio series of the model.
"""
from __future__ import annotations

import math

import pandas as pd

from eqbench.check.stochastic import Z_CRITICAL
from eqbench.reports.checks import check_summary
from eqbench.reports.history import newest_value
from eqbench.reports.lineup import LINEUP, TASK_METRICS, ModelLine, canonical_name
from eqbench.reports.training import final_results, training_summary

def explain_above_tolerance(record: pd.Series) -> str:
    """Why one check record is ``approximate`` with ``max_rel_error`` above its tolerance ('' when it is not).

    A stochastic check in ``distribution`` mode judges the *mean* difference of ``repeats``
    independent draws against its standard error (score ``z``) and, past ``Z_CRITICAL``, the bias
    bound; its ``max_rel_error`` is the largest raw row of that mean difference, which holds the
    sampling noise of single draws (``spread``) and is not the judged quantity. Any other case is
    not explained by the checker's rules and says so.
    """
    error, tolerance = record.get("max_rel_error"), record.get("tolerance")
    if record.get("verdict") != "approximate" or _missing(error) or _missing(tolerance) or error <= tolerance:
        return ""
    if record.get("mode") == "distribution":
        z, bound, spread = record.get("z_score"), record.get("bias_bound"), record.get("spread")
        if not _missing(z) and z <= Z_CRITICAL:
            return (f"in distribution: the mean of {int(record.get('repeats') or 0)} draws differs by z = {z:.2f} "
                    f"<= {Z_CRITICAL:g} standard errors; {error:.3g} is the largest raw row, single-draw noise "
                    f"(spread {spread:.3g}), not the judged quantity")
        if not _missing(bound) and bound <= tolerance:
            return f"bias established (z = {z:.2f}) but its bound {bound:.3g} <= tolerance {tolerance:.3g}"
    return f"UNEXPLAINED: approximate with error {error:.3g} above tolerance {tolerance:.3g}"


def equivariance_rows(records: pd.DataFrame) -> pd.DataFrame:
    """:func:`~eqbench.reports.checks.check_summary` rows with ``canonical`` (model name) and ``explanation`` columns."""
    summary = check_summary(records)
    explained = records.assign(explanation=records.apply(explain_above_tolerance, axis=1))
    notes = {}
    for (model, group), runs in explained.groupby(["model", "group"]):
        texts = [text for text in runs["explanation"] if text]
        worst = "; ".join(dict.fromkeys(t for t in texts if t.startswith("UNEXPLAINED"))) or (texts[0] if texts else "")
        notes[(model, group)] = f"{len(texts)} of {len(runs)} runs: {worst}" if texts else ""
    summary["canonical"] = [canonical_name(model) for model in summary["model"]]
    summary["explanation"] = [notes.get((m, g), "") for m, g in zip(summary["model"], summary["group"])]
    return summary


def training_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean +- std over seeds of each configuration, canonical names, ``flag`` on mixed configurations.

    :func:`~eqbench.reports.training.training_summary` averages each part of the final results
    that shares an epoch count, so runs of different lengths stay in different rows.
    """
    results = final_results(rows)
    if "epochs" not in results.columns:
        results = results.assign(epochs=float("nan"))
    parts = [training_summary(part).assign(epochs=epochs) for epochs, part in results.groupby("epochs", dropna=False)]
    summary = pd.concat(parts, ignore_index=True)
    summary["canonical"] = [canonical_name(model) for model in summary["model"]]
    counts = summary.groupby(["task", "model"])["task"].transform("size")
    summary["flag"] = ["several configurations: not averaged together" if n > 1 else "" for n in counts]
    return summary.sort_values(["task", "model", "epochs"], ignore_index=True)


def metric_text(summary_row: pd.Series, task: str) -> str:
    """``0.906 +- 0.004 (3 seeds, 10 epochs, small)`` for the task's main metric; ``-`` when it is missing."""
    metric, _ = TASK_METRICS.get(task, ("", True))
    mean, std = summary_row.get(f"{metric}_mean"), summary_row.get(f"{metric}_std")
    if _missing(mean):
        return "-"
    runs = int(summary_row.get("runs", 1))
    spread = f" +- {std:.3g}" if not _missing(std) else " +- n/a"
    epochs = summary_row.get("epochs")
    detail = [f"{runs} seed{'s' if runs != 1 else ''}", *([f"{int(epochs)} epochs"] if not _missing(epochs) else []),
              str(summary_row.get("preset", ""))]
    flag = f" [{summary_row['flag']}]" if summary_row.get("flag") else ""
    return f"{metric} {mean:.4g}{spread} ({', '.join(d for d in detail if d)}){flag}"


def speed_cells(line: ModelLine, history: pd.DataFrame | None) -> list[str]:
    """``label: value`` for each asv series of the model (``not recorded`` when the history lacks it)."""
    cells = []
    for speed in line.speed:
        value = float("nan") if history is None else newest_value(history, speed.key, speed.params)
        cells.append(f"{speed.label}: {'not recorded' if math.isnan(value) else f'{value:.2f}'}")
    return cells


def leaderboard(checks: pd.DataFrame | None, sweeps: pd.DataFrame | None, training: pd.DataFrame | None,
                history: pd.DataFrame | None) -> pd.DataFrame:
    """One row per :data:`~eqbench.reports.lineup.LINEUP` model, families side by side; cells are lists of lines."""
    rows = []
    for line in LINEUP:
        equivariance = []
        if checks is not None:
            for _, row in checks[checks["canonical"] == line.name].iterrows():
                note = " (!)" if row["explanation"] else ""
                equivariance.append(
                    f"{row['group']} [{row['model']}]: {row['verdicts']} of {row['expected']}, err {row['max_rel_error']:.1e}, "
                    f"floor {row['noise_floor']:.1e}{note}"
                )
        monte_carlo = []
        if sweeps is not None and len(sweeps):
            for _, sweep in sweeps[sweeps["canonical"] == line.name].iterrows():
                monte_carlo.append(f"{sweep['model']}: err ~ {sweep['param']}^{sweep['rate']:.2f} "
                                   f"[{sweep['rate_low']:.2f}, {sweep['rate_high']:.2f}] over {sweep['param']} {sweep['samples']}")
        trained = []
        if training is not None:
            for task, model in line.training:
                for _, summary_row in training[(training["task"] == task) & (training["model"] == model)].iterrows():
                    trained.append(f"{task}: {metric_text(summary_row, task)}")
        rows.append({
            "family": line.family, "model": line.name,
            "equivariance (worst over seeds)": equivariance or ["not checked"],
            "Monte-Carlo error vs samples": monte_carlo or (["Monte-Carlo; not swept"] if line.sampling else ["deterministic (no sampling)"]),
            "training (mean +- std over seeds)": trained or (["not trained"] if line.training else ["no training task"]),
            "paper": [f"{p.text} ({p.source})" for p in line.papers] or ["-"],
            "speed / memory vs reference": speed_cells(line, history) or ["no reference benchmark"],
        })
    return pd.DataFrame(rows)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
