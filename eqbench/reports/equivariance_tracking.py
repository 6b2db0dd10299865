"""Equivariance through training: tables and plots of the ``equivariance_*`` history columns.

``eqbench train ... --track-equivariance G`` (:mod:`eqbench.tasks.tracking`) records after every
epoch the checker's mean scale-adjusted relative error ``|f(g.x) - g.f(x)| / scale`` on a fixed
probe set, and the probe's cost as a fraction of the epoch. A non-equivariant baseline's
curve shows how much of the symmetry it learns from (augmented, rotated) data; an equivariant
model's stays at the float32 noise floor (about 1e-7), whatever it learns.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from eqbench.reports.plotting import new_figure, save_png

ERROR = "equivariance_mean_rel_error"
COST = "equivariance_cost"
GROUP = "equivariance_group"
SETUP = ("task", "model", "preset", "configuration", GROUP)


def tracked_history(history: pd.DataFrame | None) -> pd.DataFrame | None:
    """The epoch rows that carry an equivariance measurement (``None`` when there are none)."""
    if history is None or ERROR not in history.columns:
        return None
    tracked = history[history[ERROR].notna()]
    return tracked if len(tracked) else None


def equivariance_summary(tracked: pd.DataFrame) -> pd.DataFrame:
    """Per tracked set-up: runs, the error after the first and the last epoch (mean +- std over seeds), the floor, and the cost."""
    keys = [k for k in SETUP if k in tracked.columns]
    rows = []
    for setup, runs in tracked.groupby(keys, dropna=False, sort=True):
        first_epoch, last_epoch = runs["epoch"].min(), runs["epoch"].max()
        first, last = runs.loc[runs["epoch"] == first_epoch, ERROR], runs.loc[runs["epoch"] == last_epoch, ERROR]
        rows.append({
            **dict(zip(keys, setup)),
            "runs": int(last.size),
            "epochs": int(last_epoch),
            "error_first_epoch": first.mean(),
            "error_last_epoch": last.mean(),
            "error_last_epoch_std": last.std(),
            "noise_floor": runs["equivariance_noise_floor"].mean() if "equivariance_noise_floor" in runs else float("nan"),
            "cost_mean": runs[COST].mean() if COST in runs else float("nan"),
            "cost_max": runs[COST].max() if COST in runs else float("nan"),
        })
    return pd.DataFrame(rows)


def plot_equivariance(tracked: pd.DataFrame, path: Path) -> Path:
    """One panel per task: the error against the epoch per model (mean over seeds; band: min to max), log scale."""
    tasks = sorted(tracked["task"].unique())
    figure, axes = new_figure(5.0 * len(tasks), 3.8, ncols=len(tasks))
    for axis, task in zip(axes, tasks):
        runs = tracked[tracked["task"] == task]
        labels = [k for k in ("model", "preset", "configuration", GROUP) if k in runs.columns]
        for setup, curve in runs.groupby(labels, dropna=False, sort=True):
            parts = dict(zip(labels, setup))
            label = f"{parts['model']} ({parts.get('preset', '')}{'' if parts.get('configuration', 'preset') == 'preset' else ', ' + str(parts['configuration'])})"
            by_epoch = curve.groupby("epoch")[ERROR]
            mean = by_epoch.mean()
            line, = axis.plot(mean.index, mean.values, marker=".", label=f"{label}, {by_epoch.size().max()} seeds")
            axis.fill_between(mean.index, by_epoch.min().values, by_epoch.max().values, color=line.get_color(), alpha=0.2)
        group = ", ".join(sorted(runs[GROUP].dropna().astype(str).unique())) if GROUP in runs else "?"
        axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_ylabel("mean relative equivariance error")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"{task} under {group}")
        axis.legend(fontsize="small")
    figure.suptitle("Equivariance error through training (fixed probe set; band: min to max over seeds)")
    return save_png(figure, path)
