"""Reports: one comparison report (HTML, Markdown, CSV) of check records, Monte-Carlo sweeps, training results and asv history.

``build_report(out, checks=[...], sweeps=[...], training=DIR, asv_results=DIR)`` writes it
(:mod:`eqbench.reports.build`); the pieces (loaders, leaderboard columns, history) are exported
for notebooks and scripts.
"""
from eqbench.reports.build import build_report
from eqbench.reports.checks import check_summary, plot_check_errors
from eqbench.reports.files import ReportInputError, read_json, write_atomic, write_text_atomic
from eqbench.reports.history import format_quantity, load_history, mark_regressions, newest_vs_previous
from eqbench.reports.leaderboard import equivariance_rows, explain_above_tolerance, leaderboard, training_rows
from eqbench.reports.lineup import LINEUP, canonical_name
from eqbench.reports.records import load_check_records, load_training_rows, metric_columns
from eqbench.reports.sweeps import load_sweeps, sweep_rows
from eqbench.reports.tables import markdown_table, write_csv
from eqbench.reports.equivariance_tracking import equivariance_summary, plot_equivariance
from eqbench.reports.paper_pairs import PAPER_PAIRS, pair_comparisons
from eqbench.reports.statistics import compare_means
from eqbench.reports.training import epoch_history, final_results, plot_training, training_markdown, training_summary, write_training_reports

__all__ = [
    "LINEUP",
    "PAPER_PAIRS",
    "ReportInputError",
    "build_report",
    "canonical_name",
    "check_summary",
    "compare_means",
    "epoch_history",
    "equivariance_rows",
    "explain_above_tolerance",
    "equivariance_summary",
    "final_results",
    "format_quantity",
    "leaderboard",
    "load_check_records",
    "load_history",
    "load_sweeps",
    "load_training_rows",
    "mark_regressions",
    "markdown_table",
    "metric_columns",
    "newest_vs_previous",
    "pair_comparisons",
    "plot_check_errors",
    "plot_equivariance",
    "plot_training",
    "read_json",
    "sweep_rows",
    "training_markdown",
    "training_rows",
    "training_summary",
    "write_atomic",
    "write_csv",
    "write_text_atomic",
    "write_training_reports",
]
