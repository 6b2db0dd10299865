"""``eqbench explain``: which module breaks equivariance, and by how much.

    eqbench explain axis-reader                    # one registered model under its own group
    eqbench explain lieconv-se3 --group SO3        # under another group
    eqbench explain --plugin my_models.py --json attribution.json --report reports/attribution

Models: the named ones; else, with ``--plugin``, the plugins' models; else the default suite.
Per model, a table of modules ranked by their contribution to the Lie derivative (Lie groups)
or by their local error (finite groups), with the share of the total
(:func:`eqbench.check.explain`). ``--json`` writes ``{"model", "module", "contribution",
"share", ...}`` records sorted by contribution, then one summary record per model
(``total``, ``additivity_residual``). Exit status: 0, 1 when a model could not be explained,
2 on a usage error.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from eqbench.cli import UsageError, add_plugin_argument, int_at_least, load_models, make_console, write_output

if TYPE_CHECKING:
    from eqbench.check.attribution import Attribution
    from eqbench.registry import ModelEntry

#: Largest rows of the per-model table (rows with a zero contribution are left out).
SHOWN = 8


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="attribute a model's equivariance error to its modules",
        description=__doc__.split("\n\n")[0],
    )
    add_model_arguments(parser)
    parser.add_argument("--group", help="explain under this group instead of the model's own (e.g. SO3, E3)")
    parser.add_argument("--probes", type=int_at_least(1, "positive"), default=1, help="random output probes per row (default 1)")
    parser.add_argument(
        "--directions", type=int_at_least(0, "non-negative"), default=1,
        help="random Lie algebra directions per input (default 1; 0: along every generator, k times the cost)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL..., --plugin, --seed, --json FILE and --report DIR (shared with ``eqbench profile``)."""
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registered model names (default: the default suite)")
    add_plugin_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs, probes and model weights (default 0)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the JSON records to FILE (atomically)")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write a Markdown section with plots to DIR")


def selected_entries(args: argparse.Namespace) -> list[ModelEntry]:
    """The entries named on the command line, the plugins' entries, or the default suite."""
    from eqbench.cli.check import select_entries

    plugin_entries = load_models(args.plugin)
    return select_entries(args.models, suite=None, group=None, plugin_entries=plugin_entries or None)


def run_each(
    args: argparse.Namespace, verb: str, compute: Callable[[ModelEntry], Any], show: Callable[[ModelEntry, Any], None]
) -> tuple[list[Any], int]:
    """``compute`` and ``show`` each selected entry; writes ``--json`` (each result's records with ``model``).

    One model's failure is printed on one line and the others still run. Returns the results and the exit status.
    """
    import json

    from rich.markup import escape

    console = make_console()
    results, records, failed = [], [], 0
    for entry in selected_entries(args):
        try:
            result = compute(entry)
        except Exception as error:  # noqa: BLE001 - one model's failure is reported and the others still run
            console.print(f"[bold red]{escape(entry.name)}: {verb} failed: {escape(f'{type(error).__name__}: {error}')}[/]")
            failed += 1
            continue
        results.append(result)
        records += [{"model": entry.name, **record} for record in result.to_records()]
        show(entry, result)
    if args.json is not None:
        write_output(args.json, json.dumps(records, indent=2) + "\n", "--json")
    return results, 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    from eqbench.check.attribution import explain
    from eqbench.groups import group_from_name
    from eqbench.registry import build_model

    group = None
    if args.group is not None:
        try:
            group = group_from_name(args.group)
        except (KeyError, ValueError) as error:
            raise UsageError(f"unknown group {args.group!r} ({error.args[0] if error.args else error})") from None

    def compute(entry: ModelEntry) -> Attribution:
        model = build_model(entry, args.seed)
        return explain(
            model, group or entry.group, entry.inputs, entry.in_action, entry.out_action,
            probes=args.probes, directions=args.directions or None, seed=args.seed, name=entry.name,
        )

    attributions, status = run_each(args, "explain", compute, show)
    if args.report is not None and attributions:
        from eqbench.reports.attribution import write_attribution_report

        make_console().print(f"report: {write_attribution_report(args.report, attributions)}")
    return status


def show(entry: ModelEntry, attribution: Attribution) -> None:
    """The ranked table (rows with a contribution), the total and residual, and the notes."""
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    table = Table(title=f"{entry.name} under {attribution.group}: {attribution.method}", title_justify="left")
    for column in ("module", "contribution", "share", "local error", "actions"):
        table.add_column(column, justify="left" if column in ("module", "actions") else "right")
    shown = [m for m in attribution.modules if m.contribution > 0][:SHOWN] or attribution.modules[:1]
    for module in shown:
        table.add_row(escape(module.module), f"{module.contribution:.3g}", f"{module.share:.1%}", f"{module.local_error:.3g}", escape(module.actions))
    console.print(table)
    if len(attribution.modules) > len(shown):
        console.print(f"({len(attribution.modules) - len(shown)} more rows, smaller or zero; all in --json)")
    if attribution.method.startswith("lie"):
        console.print(f"total relative Lie derivative {attribution.total:.3g}, additivity residual {attribution.residual:.3g}")
    else:
        console.print(f"the model's own relative error on these elements {attribution.total:.3g}")
    for note in attribution.notes:
        console.print(f"note: {escape(note)}")
