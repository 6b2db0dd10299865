"""Reports of equivariance checks: one row per (model, group) over all seeds and files.

A model checked under several seeds (the "no flake over 20 seeds" acceptance runs) gets one
summary row: how many runs gave each verdict, and the *worst* relative error and noise floor
over them. The plot shows, per model, the worst max relative error (bar, log scale) beside
the largest noise floor (marker) and the declared tolerance when the records carry one, so
"exact" reads as "bar at the marker" and "violated" as "bar past the tolerance".
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.patches import Patch

from eqbench.reports.plotting import new_figure, save_png
from eqbench.reports.records import VERDICTS

VERDICT_COLOURS = {"exact": "#2e7d32", "approximate": "#f9a825", "violated": "#c62828", "error": "#6a1b9a"}
#: Log-scale plots cannot show 0: an error or floor of exactly 0 is drawn a decade below the
#: smallest positive value plotted (at this value when there is none).
LOG_FLOOR = 1e-12


def check_summary(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, group, expected): runs, verdict counts, worst errors, mean seconds."""
    frame = records.assign(expected=records["expected"].fillna("-"))
    rows = []
    for (model, group, expected), runs in frame.groupby(["model", "group", "expected"], sort=True):
        counts = runs["verdict"].value_counts()
        verdicts = ", ".join(f"{v} x{counts[v]}" for v in VERDICTS if v in counts)
        worst = _worst_verdict(runs["verdict"])
        rows.append(
            {
                "model": model,
                "group": group,
                "expected": expected,
                "verdicts": verdicts,
                "matches": "-" if expected == "-" else ("yes" if _met(runs, expected).all() else "NO"),
                "runs": len(runs),
                "worst_verdict": worst,
                "max_rel_error": runs["max_rel_error"].max(),
                "mean_rel_error": runs["mean_rel_error"].mean(),
                "noise_floor": runs["noise_floor"].max(),
                "tolerance": runs["tolerance"].max() if "tolerance" in runs else float("nan"),
                "n_elements": int(runs["n_elements"].sum()),
                "seconds": runs["seconds"].mean() if "seconds" in runs else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def plot_check_errors(summary: pd.DataFrame, path: Path) -> Path:
    """Horizontal log-scale bars of the worst relative error per (model, group), coloured by verdict."""
    labels = [f"{m} [{g}]" for m, g in zip(summary["model"], summary["group"])]
    values = pd.concat([summary["max_rel_error"], summary["noise_floor"]])
    positive = values[values > 0]
    zero = positive.min() / 10 if len(positive) else LOG_FLOOR
    errors = summary["max_rel_error"].fillna(zero).clip(lower=zero)
    figure, (axis,) = new_figure(8.0, 1.2 + 0.32 * len(summary))
    positions = range(len(summary))
    axis.barh(positions, errors, color=[VERDICT_COLOURS[v] for v in summary["worst_verdict"]], log=True)
    handles = [Patch(color=VERDICT_COLOURS[v], label=v) for v in VERDICTS if v in set(summary["worst_verdict"])]
    floors = summary["noise_floor"].fillna(zero).clip(lower=zero)
    handles.append(axis.scatter(floors, positions, marker="|", s=200, c="black", label="noise floor", zorder=3))
    if summary["tolerance"].notna().any():
        handles.append(axis.scatter(summary["tolerance"], positions, marker="x", c="grey", label="tolerance", zorder=3))
    axis.set_yticks(list(positions), labels)
    axis.invert_yaxis()
    axis.set_xlabel("worst max relative error (log)")
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return save_png(figure, path)


def _met(runs: pd.DataFrame, expected: str) -> pd.Series:
    """Per run, whether the expectation was met: the checker's ``matches_expected`` when recorded
    (the registry's rule: ``approximate`` is also met by ``exact``), else verdict equality."""
    if "matches_expected" in runs and runs["matches_expected"].notna().all():
        return runs["matches_expected"].astype(bool)
    return runs["verdict"] == expected


def _worst_verdict(verdicts: pd.Series) -> str:
    """The verdict furthest from "exact" in the order exact < approximate < violated < error."""
    return max(verdicts, key=VERDICTS.index)
