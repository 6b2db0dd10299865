"""``eqbench bench``: record asv benchmark history per commit and compare two commits.

    eqbench bench record [--quick] [--bench REGEX ...] [--machine NAME] [--history DIR]
    eqbench bench compare A B [--factor 1.10] [--machine NAME] [--history DIR]

``record`` runs the asv benchmarks of suites/ on the checkout's ``HEAD`` commit and appends them
to the history (default ``$EQBENCH_HISTORY`` or ``~/.local/share/eqbench/benchmarks``; see
:mod:`eqbench.bench.history`), under a machine file written without questions and an environment
named after the Python version only, so any checkout appends to the same history.
``compare`` prints asv's own comparison table of commit ``A`` (before) and ``B`` (after).

Exit status: ``record`` asv's (0 when every benchmark ran); ``compare`` 1 when a benchmark of
``B`` is slower or larger than ``A``'s by more than ``--factor`` (or fails where it ran), else 0;
2 on usage errors (unknown commit, no results, bad factor).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from eqbench.cli import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``bench`` subcommand and its ``record`` / ``compare`` verbs."""
    from eqbench.bench.history import DEFAULT_FACTOR

    parser = subparsers.add_parser("bench", help="record asv benchmark history per commit; compare two commits",
                                   description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    record = verbs.add_parser("record", help="run the asv benchmarks on HEAD and add them to the history")
    record.add_argument("--quick", action="store_true", help="run each benchmark once (asv --quick)")
    record.add_argument("--bench", action="append", default=[], metavar="REGEX",
                        help="only benchmarks matching this regular expression (repeatable)")
    compare = verbs.add_parser("compare", help="asv's table of commit A against commit B; exit 1 on a regression")
    compare.add_argument("before", metavar="A", help="the reference commit (a hash, branch or HEAD~1)")
    compare.add_argument("after", metavar="B", help="the commit compared with A")
    compare.add_argument("--factor", type=float, default=DEFAULT_FACTOR,
                         help=f"a ratio B / A above this is a regression (default {DEFAULT_FACTOR})")
    for verb in (record, compare):
        verb.add_argument("--machine", default=None, help="machine name in the history (default: the host name / the only one)")
        verb.add_argument("--history", type=Path, default=None, metavar="DIR",
                          help="history folder (default $EQBENCH_HISTORY or ~/.local/share/eqbench/benchmarks)")


def run(args: argparse.Namespace) -> int:
    """Record or compare; returns the exit status of the module docstring."""
    from asv.util import UserError as AsvError

    from eqbench.bench.history import History, HistoryError, compare, default_history_dir, record, repository_root

    history = History((args.history or default_history_dir()).expanduser().resolve())
    try:
        repo = repository_root()
        if args.verb == "record":
            return record(repo, history, quick=args.quick, bench=args.bench, machine=args.machine)
        worsened = compare(repo, history, args.before, args.after, factor=args.factor, machine=args.machine)
    except (HistoryError, AsvError) as error:
        raise UsageError(f"eqbench bench {args.verb}: {error}") from error
    if worsened:
        print(f"\nregression: a benchmark of {args.after} is worse than {args.before} by more than {args.factor}x")
    return 1 if worsened else 0
