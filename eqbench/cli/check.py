"""``eqbench check``: check registered models and compare each verdict with its expectation.

    eqbench check                              # the default suite (builtin + entry points)
    eqbench check distance-mlp chiral-o3       # named models
    eqbench check --group SO3 --seed 3         # models checked under SO(3) or a product with it
    eqbench check --plugin my_models.py        # only the models a user's file registers
    eqbench check --json results.json          # also write the records as JSON (``-``: stdout)
    eqbench check --save-counterexamples cx/   # a standalone script per verdict that is not exact
    eqbench check --seeds 0-19 --executor process --workers 2   # model x seed campaign, cached (eqbench.cli.campaign)

Which models: the named ones; else, with ``--plugin``, only the plugins' models; else the suite
given by ``--suite`` (default: ``default``). ``--group`` and ``--suite`` filter any of these.
Output files are checked before any model runs (:mod:`eqbench.cli.output`); ``--json -``
writes the JSON to stdout and the table to stderr. In a campaign (``--seeds`` and the other
campaign options) the ``--json``/``--csv`` files are the campaign's record stream, written by it
alone: every finished check is on disk after an interruption, and a re-run rewrites the file
whole (no record twice). ``-q`` prints only the mismatches and the
summary, ``-v`` every result in full. ``--threads`` sets torch's intra-op threads
(:mod:`eqbench.cli.threads`: by default the free CPUs, at most 4).
Exit status: 0 when every verdict meets its expectation, 1 when any does not, 2 on a usage
error (unknown model, group or plugin, bad arguments), reported on one line. A model that
fails in any way gets its own ``error`` line; the others are still checked. Ctrl-C stops
after the models done so far, writes their table (and JSON) and exits with 130.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from eqbench.cli import (
    SEED,
    UsageError,
    add_plugin_argument,
    int_at_least,
    load_models,
    make_console,
)
from eqbench.cli.campaign import add_campaign_arguments, campaign_requested, check_campaign
from eqbench.cli.output import emit, output_folder, output_target, to_stdout
from eqbench.provenance import run_header
from eqbench.cli.threads import add_threads_argument, apply_threads

#: The most hypothesis search examples per model ``--examples`` takes.
MAX_EXAMPLES = 100_000

if TYPE_CHECKING:
    from rich.table import Table

    from eqbench.registry import EntryResult, ModelEntry


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check registered models and compare verdicts with expectations",
        description="Check registered models and compare each verdict with its expectation. Models: the named ones; "
        "else, with --plugin, the plugins' models; else the suite given by --suite (default: 'default').",
        epilog="Exit status: 0 all verdicts as expected, 1 some verdict not as expected, 2 usage error.",
    )
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registered model names (default: a whole suite)")
    parser.add_argument("--group", help="only models checked under this group or a product with it (e.g. SO3, 'S_n')")
    parser.add_argument("--suite", help="run this suite instead of 'default' (filters named models too)")
    add_plugin_argument(parser)
    parser.add_argument("--seed", type=SEED, default=0, help="seed of inputs, group elements and model weights (default 0)")
    parser.add_argument(
        "--examples",
        type=int_at_least(0, "non-negative", MAX_EXAMPLES),
        metavar="N",
        help="hypothesis search examples per model (default: per model)",
    )
    parser.add_argument(
        "--json", type=output_target, metavar="FILE", help="write the records as JSON to FILE (atomically; - for stdout)"
    )
    parser.add_argument(
        "--save-counterexamples",
        type=output_folder,
        metavar="DIR",
        help="write DIR/<model>-<group>.py (+ .pt) for every verdict that is not exact: a standalone script that reproduces it",
    )
    add_threads_argument(parser)
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="print every result in full, not only the mismatches")
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the mismatches and the summary")
    add_campaign_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from rich.text import Text

    plugin_entries = load_models(args.plugin)
    selected = select_entries(args.models, suite=args.suite, group=args.group, plugin_entries=plugin_entries if args.plugin else None)
    apply_threads(args.threads)
    if campaign_requested(args):  # model x seed checks through eqbench.campaign: executors, cache, streamed records
        try:
            selected, results = check_campaign(selected, args)
        except KeyboardInterrupt:  # finished checks are already streamed to --json/--csv and cached
            make_console(stderr=True).print("[bold red]interrupted: finished checks are kept; run again to resume[/]")
            return INTERRUPTED
    else:
        results = check_entries(selected, seed=args.seed, examples=args.examples)
    interrupted = len(results) < len(selected)
    selected = selected[: len(results)]
    if args.save_counterexamples is not None:
        save_scripts(args.save_counterexamples, selected, results)
    console = make_console(stderr=to_stdout(args.json))
    if not args.quiet:
        console.print(results_table(selected, results))
    mismatches = [(e, r) for e, r in zip(selected, results) if not e.matches(r.verdict)]
    shown = list(zip(selected, results)) if args.verbose else mismatches
    for entry, result in shown:
        console.rule(Text(f"{entry.name}: verdict {str(result.verdict)}, expected {entry.expected}"))
        console.print(str(result), markup=False, highlight=False)
    if args.json is not None and not streamed_json(args):
        write_records(args.json, [result.to_record() for result in results])
    summary = f"{len(selected) - len(mismatches)} of {len(selected)} verdicts as expected"
    console.print(summary if not mismatches else f"[bold red]{summary}[/]")
    if interrupted:
        console.print(f"[bold red]interrupted: {len(results)} model(s) checked, the rest not[/]")
        return INTERRUPTED
    return 1 if mismatches else 0


#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def streamed_json(args: argparse.Namespace) -> bool:
    """Whether the ``--json`` file is a campaign's record stream (:class:`eqbench.campaign.output.RecordStream`), which
    rewrites it whole and atomically as checks finish and, last, in model x seed order: nothing else writes it then.
    ``--json -`` is never streamed (standard output gets the JSON once, at the end)."""
    return campaign_requested(args) and args.json is not None and not to_stdout(args.json)


def save_scripts(directory: Path, selected: Sequence[ModelEntry], results: Sequence[EntryResult]) -> list[Path]:
    """:func:`~eqbench.check.scripts.save_counterexample` for every result whose verdict is not ``exact`` (and not ``error``)."""
    from eqbench.check.scripts import save_counterexample

    return [
        save_counterexample(result, directory, entry=entry)
        for entry, result in zip(selected, results)
        if str(result.verdict) not in ("exact", "error")
    ]


def select_entries(
    names: Sequence[str],
    *,
    suite: str | None,
    group: str | None,
    plugin_entries: Sequence[ModelEntry] | None,
) -> list[ModelEntry]:
    """The entries to check (see the module docstring); unknown names or groups, or none left, are usage errors."""
    from eqbench import registry

    try:
        if names:
            chosen = [registry.get_entry(name) for name in dict.fromkeys(names)]
        elif plugin_entries is not None:
            if not plugin_entries:
                raise UsageError("the --plugin file(s) or module(s) registered no model (see register_model)")
            chosen = sorted(plugin_entries, key=lambda e: e.name)
        else:
            chosen = registry.entries(suite=suite or registry.DEFAULT_SUITE)
        if suite is not None:
            chosen = [e for e in chosen if suite in e.suites]
        if group is not None:
            in_group = {e.name for e in registry.entries(group=group)}
            chosen = [e for e in chosen if e.name in in_group]
    except registry.RegistryError as error:
        raise UsageError(str(error)) from error
    if not chosen:
        filters = ", ".join(f"--{k} {v}" for k, v in (("suite", suite), ("group", group)) if v is not None)
        raise UsageError(f"no registered model to check{' with ' + filters if filters else ''} (see `eqbench list`)")
    return chosen


def check_entries(selected: Sequence[ModelEntry], seed: int, examples: int | None) -> list[EntryResult]:
    """Run each entry's check in turn, with a progress bar on stderr when it is a terminal.

    Ctrl-C stops the loop: the results of the entries done so far are returned (fewer than selected).
    """
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from eqbench.registry import run_entry

    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=make_console(stderr=True), transient=True) as progress:
        task = progress.add_task("checking", total=len(selected))
        try:
            for entry in selected:
                progress.update(task, description=f"checking {escape(entry.name)}")
                results.append(run_entry(entry, seed=seed, examples=examples))
                progress.advance(task)
        except KeyboardInterrupt:
            pass
    return results


def results_table(selected: Sequence[ModelEntry], results: Sequence[EntryResult]) -> Table:
    """A rich table: model, group, verdict, expected, max rel error, noise floor, seconds."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    several_seeds = len({result.seed for result in results}) > 1
    for column in ("model", "seed" if several_seeds else "", "group", "verdict", "expected", "max rel error", "noise floor", "seconds"):
        if column:
            numeric = column in ("seed", "max rel error", "noise floor", "seconds")
            table.add_column(column, justify="right" if numeric else "left", no_wrap=column in ("model", "verdict"))
    for entry, result in zip(selected, results):
        style = "green" if entry.matches(result.verdict) else "bold red"
        table.add_row(
            Text(entry.name),
            *([str(result.seed)] if several_seeds else []),
            Text(result.group),
            Text(str(result.verdict), style=style),
            entry.expected,
            f"{result.max_rel_error:.2e}",
            f"{result.noise_floor:.2e}",
            f"{result.seconds:.2f}",
        )
    return table


def write_records(target: str | Path, records: list[dict]) -> None:
    """Write ``records`` under the run header (:mod:`eqbench.cli.output`) as indented JSON, to stdout or a file atomically."""
    from eqbench.check.result import RECORD_FIELDS

    missing = [f for f in RECORD_FIELDS if any(f not in r for r in records)]
    if missing:
        raise RuntimeError(f"check records lack the field(s) {missing}")
    emit(target, json.dumps({**run_header(), "records": records}, indent=2) + "\n", "--json")
