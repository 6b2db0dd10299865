"""Reports of training runs: final metrics per (task, dataset, model, preset, device), mean +- std over seeds.

Input rows come from :func:`~eqbench.reports.records.load_training_rows`. A run is identified
by its ``task, model, preset, seed, device`` (the columns present). Its final result is its
row without an ``epoch`` value when the trainer wrote one, else its last epoch's row. Rows
with an ``epoch`` value also draw the learning curves.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from eqbench.reports.plotting import new_figure, save_png
from eqbench.reports.records import metric_columns
from eqbench.reports.tables import integer, markdown_table, significant

RUN_KEYS = ("task", "model", "preset", "seed", "device")
#: Runs averaged together share these; ``dataset`` (when recorded) keeps e.g. a stand-in apart from the real data.
GROUP_KEYS = ("task", "dataset", "model", "preset", "device")
SECONDS = "seconds_per_epoch"


def epoch_history(rows: pd.DataFrame) -> pd.DataFrame | None:
    """The per-epoch rows, one per run and epoch (a history written in two formats counts once)."""
    if "epoch" not in rows.columns:
        return None
    keys = [k for k in RUN_KEYS if k in rows.columns]
    return rows[rows["epoch"].notna()].drop_duplicates(subset=[*keys, "epoch"]).reset_index(drop=True)


def final_results(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its final-result row, or its last epoch when it has none."""
    keys = [k for k in RUN_KEYS if k in rows.columns]
    history = epoch_history(rows)
    if history is None:
        return rows.reset_index(drop=True)
    finals = rows[rows["epoch"].isna()]
    last_epochs = history.sort_values("epoch").groupby(keys, dropna=False).tail(1)
    reported = set(map(tuple, finals[keys].astype(str).itertuples(index=False)))
    unreported = [tuple(row) not in reported for row in last_epochs[keys].astype(str).itertuples(index=False)]
    if "epochs" in rows.columns:
        last_epochs = last_epochs.assign(epochs=last_epochs["epochs"].fillna(last_epochs["epoch"]))
    else:
        last_epochs = last_epochs.assign(epochs=last_epochs["epoch"])
    return pd.concat([finals, last_epochs[unreported]], ignore_index=True).drop(columns="epoch")


def training_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each metric and of seconds per epoch, per (task, model, preset, device)."""
    keys = [k for k in GROUP_KEYS if k in results.columns]
    values = [c for c in (SECONDS, *metric_columns(results)) if c in results.columns]
    grouped = results.groupby(keys, dropna=False, sort=True)
    summary = grouped[values].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary.insert(0, "runs", grouped.size())
    if "epochs" in results.columns:
        summary.insert(1, "epochs", grouped["epochs"].max())
    return summary.reset_index()


def training_markdown(summary: pd.DataFrame) -> str:
    """One markdown table per task; each metric shown as ``mean +- std`` (std over seeds, blank for one run).

    A task trained on one recorded data set names it under its heading; a task with several
    gets a ``dataset`` column instead.
    """
    sections = ["# Training results\n\nMean +- std over seeds; metrics at the final epoch.\n"]
    for task, frame in summary.groupby("task", sort=True):
        datasets = list(frame["dataset"].dropna().unique()) if "dataset" in frame.columns else []
        labels = ("dataset", "model", "preset", "device", "runs", "epochs") if len(datasets) > 1 else ("model", "preset", "device", "runs", "epochs")
        bases = [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean") and frame[c].notna().any()]
        shown = frame[[c for c in labels if c in frame.columns]].copy()
        for base in bases:
            shown[base] = [_mean_std(m, s) for m, s in zip(frame[f"{base}_mean"], frame[f"{base}_std"])]
        data_line = f"Data: {datasets[0]}.\n\n" if len(datasets) == 1 else ""
        sections.append(f"## {task}\n\n{data_line}{markdown_table(shown, {'runs': integer, 'epochs': integer})}\n")
    return "\n".join(sections)


def plot_training(results: pd.DataFrame, history: pd.DataFrame | None, out: Path) -> list[Path]:
    """Per task: bars of the final test metrics (dashed: the trivial baseline) and seconds per epoch per model;
    learning curves when history exists."""
    written = []
    for task, runs in results.groupby("task", sort=True):
        written.append(_plot_final(task, runs, out / f"training_{_slug(task)}.png"))
        if history is not None:
            curves = history[history["task"] == task]
            if len(curves):
                written.append(_plot_curves(task, curves, out / f"training_{_slug(task)}_curves.png"))
    return written


def _plot_final(task: str, runs: pd.DataFrame, path: Path) -> Path:
    columns = [c for c in metric_columns(runs) if runs[c].notna().any() and not c.startswith("baseline_")]
    shown = [c for c in columns if c.startswith("test_")] or columns
    if SECONDS in runs.columns and runs[SECONDS].notna().any():
        shown.append(SECONDS)
    labels = _run_labels(runs)
    figure, axes = new_figure(4.0 * max(len(shown), 1), 3.6, ncols=max(len(shown), 1))
    for axis, column in zip(axes, shown):
        stats = runs.assign(label=labels).groupby("label", sort=True)[column].agg(["mean", "std"])
        axis.bar(range(len(stats)), stats["mean"], yerr=stats["std"].fillna(0.0), capsize=3, color="#1565c0")
        axis.set_xticks(range(len(stats)), stats.index, rotation=30, ha="right")
        axis.set_title(column)
        baseline = f"baseline_{column}"
        if baseline in runs.columns and runs[baseline].notna().any():
            axis.axhline(runs[baseline].mean(), color="#c62828", linestyle="--", label="trivial baseline")
            axis.legend(fontsize="small")
    figure.suptitle(task)
    return save_png(figure, path)


def _plot_curves(task: str, history: pd.DataFrame, path: Path) -> Path:
    columns = [c for c in metric_columns(history) if history[c].notna().any() and not c.startswith("baseline_")]
    figure, axes = new_figure(4.5 * max(len(columns), 1), 3.6, ncols=max(len(columns), 1))
    labelled = history.assign(label=_run_labels(history))
    for axis, column in zip(axes, columns):
        for label, curve in labelled.groupby("label", sort=True):
            mean = curve.groupby("epoch")[column].mean()
            axis.plot(mean.index, mean.values, marker=".", label=label)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(column)
        axis.legend(fontsize="small")
    figure.suptitle(f"{task}: mean over seeds")
    return save_png(figure, path)


def _run_labels(runs: pd.DataFrame) -> list[str]:
    """``model`` plus the preset and device when a task mixes several."""
    parts = [runs["model"].astype(str)]
    for column in ("preset", "device"):
        if column in runs.columns and runs[column].nunique(dropna=False) > 1:
            parts.append(runs[column].astype(str))
    return [" / ".join(p) for p in zip(*parts)]


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    digits = significant(4)
    return digits(mean) if pd.isna(std) else f"{digits(mean)} +- {digits(std)}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-") or "task"
