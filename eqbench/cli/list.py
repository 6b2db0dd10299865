"""``eqbench list``: the registered models, their groups, actions and expected verdicts."""
from __future__ import annotations

import argparse

from eqbench.cli import UsageError, add_plugin_argument, load_models, make_console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list registered models",
        description="List registered models (builtin suite, eqbench.models entry points and --plugin files).",
    )
    parser.add_argument("--suite", help="only models in this suite (e.g. default)")
    parser.add_argument("--group", help="only models checked under this group or a product with it (e.g. SO3)")
    add_plugin_argument(parser)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from eqbench import registry

    load_models(args.plugin)
    try:
        selected = registry.entries(suite=args.suite, group=args.group)
    except registry.RegistryError as error:
        raise UsageError(str(error)) from error
    table = Table(title=f"{len(selected)} registered models", title_justify="left")
    for column in ("model", "group", "in action", "out action", "expected", "tolerance", "suites", "description"):
        table.add_column(column, overflow="fold")
    for entry in selected:
        cells = (
            entry.name,
            str(entry.group),
            repr(entry.in_action),
            repr(entry.out_action),
            entry.expected,
            f"{entry.tolerance:g}",
            ", ".join(entry.suites),
            entry.description,
        )
        table.add_row(*map(Text, cells))
    make_console().print(table)
    return 0
