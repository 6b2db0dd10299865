"""``eqbench list``: the registered models, their groups, actions and expected verdicts.

    eqbench list                          # the builtin suite and entry points
    eqbench list --plugin my_models.py    # only the models my_models.py registers
    eqbench list --plugin F --all         # those and everything else
    eqbench list --wide                   # also actions, tolerance and suites

The default table fits 80 columns: names never break (the description column wraps by words);
``--wide`` adds the in/out actions, tolerance and suites.
"""
from __future__ import annotations

import argparse

from eqbench.cli import UsageError, add_plugin_argument, load_models, make_console

NARROW = ("model", "group", "expected", "description")
WIDE = ("model", "group", "in action", "out action", "expected", "tolerance", "suites", "description")
#: Columns that never wrap (a name split mid-word cannot be searched for or pasted).
UNBROKEN = ("model", "group", "expected", "tolerance")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list registered models",
        description="List registered models: the builtin suite and eqbench.models entry points, or with --plugin only "
        "the plugins' models (--all: everything).",
    )
    parser.add_argument("--suite", help="only models in this suite (e.g. default)")
    parser.add_argument("--group", help="only models checked under this group or a product with it (e.g. SO3)")
    add_plugin_argument(parser)
    parser.add_argument("--all", action="store_true", help="with --plugin: list every registered model, not only the plugins'")
    parser.add_argument("--wide", action="store_true", help="more columns: actions, tolerance, suites")


def run(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from eqbench import registry

    plugin_entries = load_models(args.plugin)
    try:
        selected = registry.entries(suite=args.suite, group=args.group)
    except registry.RegistryError as error:
        raise UsageError(str(error)) from error
    if args.plugin and not args.all:
        mine = {id(e) for e in plugin_entries}
        selected = [e for e in selected if id(e) in mine]
    columns = WIDE if args.wide else NARROW
    table = Table(title=f"{len(selected)} registered models", title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, no_wrap=column in UNBROKEN, ratio=None if column in UNBROKEN else 1)
    for entry in selected:
        cells = {
            "model": entry.name,
            "group": str(entry.group),
            "in action": repr(entry.in_action),
            "out action": repr(entry.out_action),
            "expected": entry.expected,
            "tolerance": f"{entry.tolerance:g}",
            "suites": ", ".join(entry.suites),
            "description": entry.description,
        }
        table.add_row(*(Text(cells[c]) for c in columns))
    make_console().print(table)
    return 0
