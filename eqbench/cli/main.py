"""``eqbench`` (also ``python -m eqbench``): dispatch to one module per subcommand.

Each module in :data:`SUBCOMMANDS` exposes ``add_parser(subparsers) -> None`` (adds its
argparse subparser) and ``run(args) -> int`` (the exit code). Exit codes: 0 success, 1 a
check that did not meet its expectation (or a subcommand's own failure), 2 a usage error
(bad arguments, unknown model, group or plugin) reported on one line.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from eqbench.cli import UsageError

SUBCOMMANDS: tuple[str, ...] = (
    "eqbench.cli.list",
    "eqbench.cli.check",
    "eqbench.cli.sweep",
    "eqbench.cli.train",
    "eqbench.cli.report",
    "eqbench.cli.discover",
    "eqbench.cli.explain",
    "eqbench.cli.profile",
    "eqbench.cli.bench",
    "eqbench.cli.campaign",
)
USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> Parser:
    """The ``eqbench`` parser with every subcommand of :data:`SUBCOMMANDS` added."""
    from eqbench import __version__

    parser = Parser(prog="eqbench", description="Verify and benchmark the symmetries of PyTorch models.")
    parser.add_argument("--version", action="version", version=f"eqbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        known = set(subparsers.choices)
        module.add_parser(subparsers)
        for name in set(subparsers.choices) - known:
            subparsers.choices[name].set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``eqbench`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
