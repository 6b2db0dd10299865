"""Reports of training runs: final metrics per (task, dataset, model, preset, configuration, device), mean +- std over seeds.

Input rows come from :func:`~eqbench.reports.records.load_training_rows`. A run is identified
by its ``task, model, preset, seed, device`` (the columns present) and its folder (the
``source`` file's folder), so two runs of one seed with different settings stay apart. Its
final result is its row without an ``epoch`` value when the trainer wrote one, else its last
epoch's row. Rows with an ``epoch`` value also draw the learning curves.

Runs are averaged only with runs of the same configuration: ``configuration`` is ``"preset"``
when the run's epochs, batch size and learning rate are its preset's (and it records no
``overrides`` and lives in the trainer's default folder ``TASK/MODEL-PRESET-seedN``), else what
differs (``"with-epochs-90; epochs=90 (preset 30)"``, the first part the run's parent folder),
so an overridden run is its own row and says so; a run without a final row (still running, or stopped) is ``"unfinished
(N epochs)"``. Beside the tables, :func:`write_training_reports` writes the papers'
comparisons with 95% intervals (:mod:`eqbench.reports.paper_pairs`), the equivariance tracked
through training (:mod:`eqbench.reports.equivariance_tracking`) and, verbatim, a ``NOTES.md``
kept in the training folder (findings written by hand beside the runs they rest on).
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd
from matplotlib.ticker import MaxNLocator

from eqbench.reports.equivariance_tracking import equivariance_summary, plot_equivariance, tracked_history
from eqbench.reports.files import write_text_atomic
from eqbench.reports.paper_pairs import pair_comparisons
from eqbench.reports.plotting import new_figure, save_png
from eqbench.reports.records import load_training_rows, metric_columns
from eqbench.reports.tables import integer, markdown_table, scientific, significant, write_csv

RUN_KEYS = ("task", "model", "preset", "seed", "device", "run_folder")
#: Runs averaged together share these; ``dataset`` (when recorded) keeps e.g. a stand-in apart from the real data.
GROUP_KEYS = ("task", "dataset", "model", "preset", "configuration", "device")
SECONDS = "seconds_per_epoch"
#: Run settings compared with the preset's to name a run's configuration.
CONFIG_FIELDS = ("epochs", "batch_size", "lr")
NOTES = "NOTES.md"


def write_training_reports(directory: Path | str, out: Path, regenerated_by: str | None = None) -> list[Path]:
    """Every training report under ``out`` from the run folders under ``directory``; returns the paths written.

    ``training.md`` (``regenerated_by``, the command that rebuilds it, under its title; tables, paper comparisons,
    equivariance through training, notes),
    ``training.csv`` (the summary, with ``preset``, ``configuration`` and ``runs``),
    ``training_runs.csv``, ``training_comparisons.csv``, ``training_equivariance.csv`` and the plots.
    """
    rows = load_training_rows(directory)
    results = final_results(rows)
    summary = training_summary(results)
    history = epoch_history(rows)
    comparisons = pair_comparisons(results)
    history = _with_configuration(history, results) if history is not None else None
    tracked = tracked_history(history)
    tracking = equivariance_summary(tracked) if tracked is not None else pd.DataFrame()
    notes_file = Path(directory) / NOTES
    notes = notes_file.read_text(encoding="utf-8") if notes_file.is_file() else ""
    written = [
        write_text_atomic(out / "training.md", training_markdown(summary, comparisons, tracking, notes, regenerated_by)),
        write_csv(out / "training.csv", summary),
        write_csv(out / "training_runs.csv", results),
        *plot_training(results, history, out),
    ]
    if len(comparisons):
        written.append(write_csv(out / "training_comparisons.csv", comparisons))
    if tracked is not None:
        written += [write_csv(out / "training_equivariance.csv", tracking), plot_equivariance(tracked, out / "training_equivariance.png")]
    return written


def epoch_history(rows: pd.DataFrame) -> pd.DataFrame | None:
    """The per-epoch rows, one per run and epoch (a history written in two formats counts once)."""
    if "epoch" not in rows.columns:
        return None
    rows = _with_run_folder(rows)
    keys = [k for k in RUN_KEYS if k in rows.columns]
    return rows[rows["epoch"].notna()].drop_duplicates(subset=[*keys, "epoch"]).reset_index(drop=True)


def final_results(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its final-result row, or its last epoch when it has none; with its ``configuration``."""
    rows = _with_run_folder(rows)
    keys = [k for k in RUN_KEYS if k in rows.columns]
    history = epoch_history(rows)
    if history is None:
        return _configured(rows.reset_index(drop=True))
    finals = rows[rows["epoch"].isna()]
    last_epochs = history.sort_values("epoch").groupby(keys, dropna=False).tail(1)
    reported = set(map(tuple, finals[keys].astype(str).itertuples(index=False)))
    unreported = [tuple(row) not in reported for row in last_epochs[keys].astype(str).itertuples(index=False)]
    if "epochs" in rows.columns:
        last_epochs = last_epochs.assign(epochs=last_epochs["epochs"].fillna(last_epochs["epoch"]))
    else:
        last_epochs = last_epochs.assign(epochs=last_epochs["epoch"])
    unfinished = last_epochs[unreported].assign(finished=False)
    return _configured(pd.concat([finals.assign(finished=True), unfinished], ignore_index=True).drop(columns="epoch"))


def training_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each metric and of seconds per epoch, per (task, dataset, model, preset, configuration, device).

    Columns: the keys present, ``runs`` (seeds averaged), ``epochs``, then ``<metric>_mean`` and
    ``<metric>_std`` for seconds per epoch and every metric (std blank for one run).
    """
    results = results if "configuration" in results.columns else _configured(results)
    keys = [k for k in GROUP_KEYS if k in results.columns]
    values = [c for c in (SECONDS, *metric_columns(results)) if c in results.columns and pd.api.types.is_numeric_dtype(results[c])]
    grouped = results.groupby(keys, dropna=False, sort=True)
    summary = grouped[values].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary.insert(0, "runs", grouped.size())
    if "epochs" in results.columns:
        summary.insert(1, "epochs", grouped["epochs"].max())
    return summary.reset_index()


def training_markdown(
    summary: pd.DataFrame,
    comparisons: pd.DataFrame | None = None,
    tracking: pd.DataFrame | None = None,
    notes: str = "",
    regenerated_by: str | None = None,
) -> str:
    """One markdown table per task; each metric shown as ``mean +- std`` (std over seeds, blank for one run).

    Under the title, when given, the command that regenerates the report (``regenerated_by``).
    A task trained on one recorded data set names it under its heading; a task with several
    gets a ``dataset`` column instead. Then the paper comparisons, the equivariance tracked
    through training, and ``notes`` (markdown), when given.
    """
    regenerated = f"Regenerated by `{regenerated_by}`. " if regenerated_by else ""
    sections = [
        f"# Training results\n\n{regenerated}Mean +- std over seeds (`runs` of them); metrics at the final epoch. A run whose "
        "settings differ from its preset's is its own row, named in `configuration`, never averaged with the preset's runs.\n"
    ]
    for task, frame in summary.groupby("task", sort=True):
        datasets = list(frame["dataset"].dropna().unique()) if "dataset" in frame.columns else []
        labels = ("model", "preset", "configuration", "device", "runs", "epochs")
        labels = ("dataset", *labels) if len(datasets) > 1 else labels
        bases = [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean") and frame[c].notna().any()]
        shown = frame[[c for c in labels if c in frame.columns]].copy()
        for base in bases:
            shown[base] = [_mean_std(m, s) for m, s in zip(frame[f"{base}_mean"], frame[f"{base}_std"])]
        data_line = f"Data: {datasets[0]}.\n\n" if len(datasets) == 1 else ""
        sections.append(f"## {task}\n\n{data_line}{markdown_table(shown, {'runs': integer, 'epochs': integer})}\n")
    if comparisons is not None and len(comparisons):
        sections.append(_comparisons_markdown(comparisons))
    if tracking is not None and len(tracking):
        sections.append(_tracking_markdown(tracking))
    if notes.strip():
        sections.append(notes.strip() + "\n")
    return "\n".join(sections)


def _comparisons_markdown(comparisons: pd.DataFrame) -> str:
    """The paper pairs: ours (mean per model, runs, difference with Welch's 95% interval, conclusion) beside the paper's figures."""
    digits = significant(4)
    shown = pd.DataFrame({
        "task": comparisons["task"],
        "preset": comparisons.get("preset", "-"),
        "configuration": comparisons.get("configuration", "preset"),
        "pair (A vs B)": comparisons["first"] + " vs " + comparisons["second"],
        "metric": comparisons["metric"],
        "A (runs)": [f"{digits(m)} ({n})" for m, n in zip(comparisons["mean_first"], comparisons["runs_first"])],
        "B (runs)": [f"{digits(m)} ({n})" for m, n in zip(comparisons["mean_second"], comparisons["runs_second"])],
        "A - B [95% CI]": [_interval(d, lo, hi) for d, lo, hi in zip(comparisons["difference"], comparisons["low"], comparisons["high"])],
        "ours": comparisons["conclusion"],
        "paper A / B": [f"{digits(a)} / {digits(b)}" for a, b in zip(comparisons["paper_first"], comparisons["paper_second"])],
        "paper": comparisons["paper_says"],
        "agreement": comparisons["agreement"],
        "source": comparisons["source"],
    })
    return (
        "## The papers' comparisons\n\nDifference of the means over seeds with Welch's 95% confidence interval "
        "(`eqbench.reports.statistics`); the conclusion reads it in the metric's direction (accuracy: higher is better; "
        "MSE, MAE: lower is better). Published figures are single numbers on the papers' data and schedules; only their "
        "ordering is compared. Image error rates are shown as accuracies.\n\n" + markdown_table(shown) + "\n"
    )


def _tracking_markdown(tracking: pd.DataFrame) -> str:
    """The equivariance-through-training table: error after the first and last epoch, the floor, and the probe's cost."""
    shown = tracking.rename(columns={"equivariance_group": "group"}).copy()
    shown["error, last epoch"] = [_mean_std(m, s) for m, s in zip(shown.pop("error_last_epoch"), shown.pop("error_last_epoch_std"))]
    shown["probe cost (mean / max of epochs)"] = [f"{100 * m:.1f}% / {100 * x:.1f}%" for m, x in zip(shown.pop("cost_mean"), shown.pop("cost_max"))]
    formats = {"runs": integer, "epochs": integer, "error_first_epoch": scientific, "noise_floor": scientific}
    return (
        "## Equivariance through training\n\n`eqbench train ... --track-equivariance G` runs the checker after every epoch "
        "on a fixed probe set (the first 8 test examples; every element of C4, or 4 fixed random elements of a continuous "
        "group; no search) and records the mean relative error and the probe's time as a fraction of the epoch (training "
        "pass plus evaluation, measured in the same run). Plot: `training_equivariance.png`.\n\n"
        + markdown_table(shown, formats) + "\n"
    )


def _interval(difference: float, low: float, high: float) -> str:
    digits = significant(3)
    return f"{digits(difference)} [-]" if pd.isna(low) else f"{digits(difference)} [{digits(low)}, {digits(high)}]"


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
        if (history[column].dropna() > 0).all():  # losses and errors span decades
            axis.set_yscale("log")
        axis.set_title(column)
    axes[-1].legend(fontsize="x-small", loc="upper right")
    figure.suptitle(f"{task}: mean over seeds")
    return save_png(figure, path)


def _run_labels(runs: pd.DataFrame) -> list[str]:
    """``model`` plus the preset, configuration and device when a task mixes several."""
    parts = [runs["model"].astype(str)]
    for column in ("preset", "configuration", "device"):
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


# ------------------------------------------------------------------ configurations
def _with_run_folder(rows: pd.DataFrame) -> pd.DataFrame:
    """``run_folder``: the folder of each row's ``source`` file (one run's history and result share it)."""
    if "source" not in rows.columns or "run_folder" in rows.columns:
        return rows
    return rows.assign(run_folder=[str(Path(str(source)).parent) for source in rows["source"]])


def _configured(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with a ``configuration`` column: ``"preset"`` or how the run's settings differ from its preset's."""
    return results.assign(configuration=[configuration(row) for _, row in results.iterrows()])


def configuration(run: pd.Series) -> str:
    """``"preset"`` when the run's :data:`CONFIG_FIELDS` match its preset's and it records no overrides, else the differences."""
    from eqbench.tasks.presets import get_preset

    differences = []
    overrides = run.get("overrides")
    if isinstance(overrides, str) and overrides.strip():
        differences.append(overrides.strip())
    folder = _folder_difference(run)
    if folder:
        differences.append(folder)
    if not bool(run.get("finished", True)):  # no final row: only the epochs reached are known (the history's lr is the schedule's)
        return "; ".join([*differences, f"unfinished ({run.get('epochs'):g} epochs)"])
    try:
        preset = get_preset(str(run.get("task")), str(run.get("model")), str(run.get("preset")))
    except KeyError:  # a preset defined outside eqbench (tests, plugins): nothing to compare with
        preset = None
    for field in CONFIG_FIELDS if preset is not None else ():
        value = run.get(field)
        if value is not None and not pd.isna(value) and float(value) != float(getattr(preset, field)):
            differences.append(f"{field}={value:g} (preset {getattr(preset, field):g})")
    return "; ".join(differences) or "preset"


def _folder_difference(run: pd.Series) -> str:
    """What the run's folder says beyond ``TASK/MODEL-PRESET-seedN``: a parent folder (e.g. ``with-<overrides>``,
    a user's grouping of runs), and a name beyond the trainer's default, such as its ``-epochsN-o<hash>`` suffix of a
    changed preset (:meth:`eqbench.tasks.presets.Preset.run_suffix`); the seed is masked as ``seed*``, so the seeds
    of one configuration are averaged together. Empty when the folder is the trainer's default."""
    folder = run.get("run_folder")
    if not isinstance(folder, str) or folder in ("", "."):
        return ""
    path = PurePosixPath(folder.replace(f"-seed{run.get('seed')}", "-seed*", 1))
    if path.parent.name != str(run.get("task")):
        return ""
    base = f"{run.get('model')}-{run.get('preset')}-seed*"
    prefix = str(path.parent.parent)
    parts = [] if prefix in ("", ".") else [prefix]
    if path.name != base:
        parts.append(path.name[len(base):] if path.name.startswith(base) else f"folder {path.name}")
    return "; ".join(parts)


def _with_configuration(history: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Each epoch row with its run's ``configuration`` (from the run's final row)."""
    keys = [k for k in RUN_KEYS if k in history.columns and k in results.columns]
    return history.merge(results[[*keys, "configuration"]].drop_duplicates(subset=keys), on=keys, how="left")
