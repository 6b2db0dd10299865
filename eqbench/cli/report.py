"""``eqbench report``: tables and plots under reports/ from check records, training results and asv results.

    eqbench report --checks checks.json [more.json ...] --training reports/training \\
                   --asv-results .asv/results --out reports/

Exit status: 0 when the reports were written; a missing input or a missing or malformed file is
a :class:`~eqbench.cli.UsageError` (exit 2), whose message names the file and the line or record.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from eqbench.cli import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="build markdown/CSV tables and PNG plots from check, training and asv results",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--checks", nargs="+", action="extend", default=[], type=Path, metavar="FILE.json",
        help="record files written by `eqbench check --json` (several files are merged, e.g. one per seed)",
    )
    parser.add_argument("--training", type=Path, metavar="DIR", help="folder of training result tables (CSV/JSON rows)")
    parser.add_argument("--asv-results", type=Path, metavar="DIR", help="asv results folder (.asv/results)")
    parser.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="output folder (default: reports/)")


def run(args: argparse.Namespace) -> int:
    """Build the requested reports; print one line per file written."""
    from eqbench.reports import ReportInputError, build_reports

    if not args.checks and args.training is None and args.asv_results is None:
        raise UsageError("eqbench report: give at least one of --checks, --training, --asv-results")
    try:
        written = build_reports(args.out, checks=args.checks, training=args.training, asv_results=args.asv_results)
    except ReportInputError as error:
        raise UsageError(f"eqbench report: {error}") from error
    for path in written:
        print(path)
    return 0
