"""Reports: markdown/CSV tables and PNG plots of check records, training results and asv benchmarks.

``build_reports(out, checks=[...], training=DIR, asv_results=DIR)`` writes everything; the
pieces (loaders, summaries, renderers) are exported for notebooks and scripts.
"""
from eqbench.reports.asv_results import asv_html, asv_markdown, format_quantity, latest_comparison, load_asv_results
from eqbench.reports.build import build_reports
from eqbench.reports.checks import check_markdown, check_summary, plot_check_errors
from eqbench.reports.files import ReportInputError, read_json, write_atomic, write_text_atomic
from eqbench.reports.records import load_check_records, load_training_rows, metric_columns
from eqbench.reports.tables import markdown_table, write_csv
from eqbench.reports.equivariance_tracking import equivariance_summary, plot_equivariance
from eqbench.reports.paper_pairs import PAPER_PAIRS, pair_comparisons
from eqbench.reports.statistics import compare_means
from eqbench.reports.training import epoch_history, final_results, plot_training, training_markdown, training_summary, write_training_reports

__all__ = [
    "PAPER_PAIRS",
    "ReportInputError",
    "asv_html",
    "asv_markdown",
    "build_reports",
    "check_markdown",
    "check_summary",
    "compare_means",
    "epoch_history",
    "equivariance_summary",
    "final_results",
    "format_quantity",
    "latest_comparison",
    "load_asv_results",
    "load_check_records",
    "load_training_rows",
    "markdown_table",
    "metric_columns",
    "pair_comparisons",
    "plot_check_errors",
    "plot_equivariance",
    "plot_training",
    "read_json",
    "training_markdown",
    "training_summary",
    "write_atomic",
    "write_csv",
    "write_text_atomic",
    "write_training_reports",
]
