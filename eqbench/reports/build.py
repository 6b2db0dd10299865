"""Build every report under one folder from whichever results are given.

| input | files written under ``out`` |
|---|---|
| ``eqbench check --json`` files | ``checks.md`` (per model, over seeds), ``checks.csv`` (every record), ``checks.png`` |
| training result folder | ``training.md``, ``training.csv`` (per task/model/preset/configuration/device), ``training_runs.csv``, ``training_comparisons.csv``, ``training_equivariance.{csv,png}``, ``training_<task>[_curves].png`` (:func:`~eqbench.reports.training.write_training_reports`) |
| asv results folder | ``benchmarks.md``, ``benchmarks.html`` (self-contained), ``benchmarks.csv`` |
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from eqbench.reports.asv_results import asv_html, asv_markdown, latest_comparison, load_asv_results
from eqbench.reports.checks import check_markdown, check_summary, plot_check_errors
from eqbench.reports.files import write_text_atomic
from eqbench.reports.records import load_check_records
from eqbench.reports.tables import write_csv
from eqbench.reports.training import write_training_reports


def build_reports(
    out: Path | str,
    *,
    checks: Sequence[Path | str] = (),
    training: Path | str | None = None,
    asv_results: Path | str | None = None,
) -> list[Path]:
    """Write the reports for the given inputs under ``out``; returns the paths written."""
    if not checks and training is None and asv_results is None:
        raise ValueError("nothing to report: give check records, a training results folder or an asv results folder")
    out = Path(out)
    written: list[Path] = []
    if checks:
        written += build_check_reports(checks, out)
    if training is not None:
        written += build_training_reports(training, out)
    if asv_results is not None:
        written += build_asv_reports(asv_results, out)
    return written


def build_check_reports(paths: Sequence[Path | str], out: Path) -> list[Path]:
    records = load_check_records(paths)
    summary = check_summary(records)
    return [
        write_text_atomic(out / "checks.md", check_markdown(summary)),
        write_csv(out / "checks.csv", _scalar_columns(records)),
        plot_check_errors(summary, out / "checks.png"),
    ]


def build_training_reports(directory: Path | str, out: Path) -> list[Path]:
    return write_training_reports(directory, out)


def build_asv_reports(results_dir: Path | str, out: Path) -> list[Path]:
    rows = load_asv_results(results_dir)
    comparison = latest_comparison(rows)
    return [
        write_text_atomic(out / "benchmarks.md", asv_markdown(comparison)),
        write_text_atomic(out / "benchmarks.html", asv_html(comparison)),
        write_csv(out / "benchmarks.csv", rows),
    ]


def _scalar_columns(records: pd.DataFrame) -> pd.DataFrame:
    """Drop nested fields (counterexamples, per-output breakdowns) that do not fit a CSV cell."""
    nested = [c for c in records.columns if records[c].map(lambda v: isinstance(v, (dict, list))).any()]
    return records.drop(columns=nested)
