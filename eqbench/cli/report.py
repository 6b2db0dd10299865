"""``eqbench report``: one comparison report (index.html, report.md, CSV) from checks, sweeps, training and asv history.

    eqbench report --checks seed-0.json seed-1.json --sweeps so2.json --training runs/training \\
                   --asv-results ~/.local/share/eqbench/benchmarks/results --out runs/report

Without any input option it renders the committed example inputs of the checkout
(:data:`EXAMPLE_INPUTS`, under ``reports/``). The default output folder ``runs/report`` is
outside the tracked ``reports/``; the committed example is regenerated with
``eqbench report --out reports/example`` (see README). Commits of the asv history are ordered
by the git ancestry of ``--repo`` (default: the current folder).

Exit status: 0 when the report was written; a missing input or a missing or malformed file is
a :class:`~eqbench.cli.UsageError` (exit 2), whose message names the file and the line or record.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from eqbench.cli import UsageError

#: The committed example inputs, relative to the repository root.
EXAMPLE_INPUTS = {
    "checks": "reports/inputs/checks/*.json",
    "sweeps": "reports/inputs/sweeps/*.json",
    "training": "reports/training",
    "asv_results": "reports/inputs/history/results",
}
DEFAULT_OUT = Path("runs/report")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``report`` subcommand."""
    from eqbench.bench.history import DEFAULT_FACTOR

    parser = subparsers.add_parser(
        "report",
        help="one comparison report (HTML, Markdown, CSV) from check, sweep, training and asv results",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--checks", nargs="+", action="extend", default=[], type=Path, metavar="FILE.json",
                        help="record files written by `eqbench check --json` (one per seed, merged)")
    parser.add_argument("--sweeps", nargs="+", action="extend", default=[], type=Path, metavar="FILE.json",
                        help="records written by `eqbench sweep --json` (Monte-Carlo error vs sample count)")
    parser.add_argument("--training", type=Path, metavar="DIR", help="folder of training result tables (CSV/JSON rows)")
    parser.add_argument("--asv-results", type=Path, metavar="DIR",
                        help="asv results folder (eqbench bench record writes ~/.local/share/eqbench/benchmarks/results)")
    parser.add_argument("--repo", type=Path, default=Path("."), metavar="DIR",
                        help="git checkout whose ancestry orders the history's commits (default: .)")
    parser.add_argument("--factor", type=float, default=DEFAULT_FACTOR,
                        help=f"a benchmark worse than its previous commit by more than this is marked (default {DEFAULT_FACTOR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT}/)")


def run(args: argparse.Namespace) -> int:
    """Build the report; print the index page's path and the number of files written."""
    from eqbench.reports import ReportInputError, build_report

    inputs = {"checks": args.checks, "sweeps": args.sweeps, "training": args.training, "asv_results": args.asv_results}
    if not any(inputs.values()):
        inputs = example_inputs(args.repo)
        print(f"no inputs given: rendering the committed example inputs of {args.repo.resolve()}")
    try:
        written = build_report(args.out, repo=args.repo, factor=args.factor, **inputs)
    except ReportInputError as error:
        raise UsageError(f"eqbench report: {error}") from error
    print(f"{args.out / 'index.html'} ({len(written)} files under {args.out})")
    return 0


def example_inputs(root: Path) -> dict:
    """:data:`EXAMPLE_INPUTS` under ``root``; a :class:`UsageError` when the checkout has none."""
    checks = sorted(root.glob(EXAMPLE_INPUTS["checks"]))
    if not checks:
        raise UsageError(f"eqbench report: give --checks, --sweeps, --training or --asv-results "
                         f"(no example inputs under {root.resolve() / 'reports'})")
    return {
        "checks": checks,
        "sweeps": sorted(root.glob(EXAMPLE_INPUTS["sweeps"])),
        "training": root / EXAMPLE_INPUTS["training"],
        "asv_results": root / EXAMPLE_INPUTS["asv_results"],
    }
