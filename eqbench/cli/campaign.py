"""``eqbench campaign FILE.toml``: run a declared grid of checks and training runs (see :mod:`eqbench.campaign.spec`).

    eqbench campaign lab.toml                                  # as the file says
    eqbench campaign lab.toml --executor ray --address HOST:6379
    eqbench campaign lab.toml --no-cache                       # recompute everything
    eqbench campaign campaigns/training.toml                   # the runs behind reports/training.md, then that report

Also the campaign options of ``eqbench check`` (:func:`add_campaign_arguments`): ``--seeds``,
``--executor``, ``--workers``, ``--address``, ``--cache``, ``--no-cache``, ``--csv``; with any of
them, ``eqbench check`` fans its model x seed checks out through :mod:`eqbench.campaign`.

A file's ``[training_output]`` table (:mod:`eqbench.campaign.spec`) places the run folders and
checkpoints, keeps finished run folders (``skip_finished``) and names a folder where the training
report (:func:`eqbench.reports.training.write_training_reports`: ``training.md``, ``training.csv``,
comparisons, plots) is rebuilt from the run folders once the runs are done, also when some failed.

Exit status: 0 when every check met its expectation and every training run finished; 1 when
some did not; 2 on a usage error (bad file, unknown model, task, preset or tracked group), one line.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from eqbench.cli import UsageError, int_at_least, load_models, make_console
from eqbench.cli.output import STDOUT, emit, output_target, to_stdout

if TYPE_CHECKING:
    from eqbench.campaign.campaigns import CampaignSettings
    from eqbench.campaign.jobs import TrainJob
    from eqbench.campaign.runner import Outcome
    from eqbench.campaign.spec import CampaignSpec
    from eqbench.registry import ModelEntry

EXECUTOR_CHOICES = ("serial", "process", "ray")


def add_executor_arguments(parser: argparse.ArgumentParser, defaults_from_file: bool = False) -> None:
    """``--executor``, ``--workers``, ``--address``, ``--cache DIR``, ``--no-cache``."""
    suffix = " (default: the campaign file's)" if defaults_from_file else ""
    parser.add_argument("--executor", choices=EXECUTOR_CHOICES, help=f"where checks run: in this process, a local process pool, or Ray (default serial){suffix}")
    parser.add_argument("--workers", type=int_at_least(1, "positive"), metavar="N", help=f"worker processes (process) or CPUs of a local Ray (default: all cores){suffix}")
    parser.add_argument("--address", metavar="ADDR", help="an existing Ray cluster (e.g. HEAD:6379, from `ray start --head`); implies --executor ray")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="result cache folder (default: eqbench/campaign under the user cache directory)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache: recompute everything")


def add_campaign_arguments(parser: argparse.ArgumentParser) -> None:
    """The campaign options of ``eqbench check`` (module docstring)."""
    group = parser.add_argument_group("campaigns", "with any of these, checks fan out over seeds and workers, cached")
    group.add_argument("--seeds", metavar="RANGE", help="seeds to check each model with, e.g. 0-19 or 0,3,5-7 (replaces --seed)")
    add_executor_arguments(group)  # type: ignore[arg-type]
    group.add_argument("--csv", type=output_target, metavar="FILE", help="also write the records as CSV (streamed, atomically; - for stdout)")


def campaign_requested(args: argparse.Namespace) -> bool:
    """Whether ``eqbench check`` was given a campaign option."""
    return any(getattr(args, name) not in (None, False) for name in ("seeds", "executor", "workers", "address", "cache", "no_cache", "csv"))


class CheckView:
    """A check record seen through the attributes ``eqbench check`` prints (those of :class:`~eqbench.check.CheckResult`)."""

    def __init__(self, outcome: Outcome) -> None:
        self.record, self.payload = outcome.record, outcome.payload

    def __getattr__(self, name: str) -> Any:
        if name not in self.record:
            raise AttributeError(name)
        value = self.record[name]
        return float("nan") if value is None and name.endswith(("error", "floor", "seconds")) else value

    def to_record(self) -> dict[str, Any]:
        return dict(self.record)

    def __str__(self) -> str:
        if self.payload is not None:
            return self.payload["text"]
        return f"{self.record['model']} seed {self.record['seed']}: error\n  {self.record['message']}"


def check_campaign(selected: Sequence[ModelEntry], args: argparse.Namespace) -> tuple[list[ModelEntry], list[CheckView]]:
    """Run ``eqbench check``'s models x seeds as a campaign; returns one (entry, result) row per check, model-major."""
    from eqbench.campaign.campaigns import run_checks, summary
    from eqbench.campaign.output import records_csv

    seeds = _seeds(args.seeds) if args.seeds is not None else [args.seed]
    with _interpreted_errors():
        outcomes = run_checks(
            selected, seeds, settings_from(args), examples=args.examples,
            json_path=None if to_stdout(args.json) else args.json,  # stdout gets the final JSON only (eqbench.cli.check)
            csv_path=None if to_stdout(args.csv) else args.csv,
        )
    if to_stdout(args.csv):
        emit(STDOUT, records_csv([outcome.record for outcome in outcomes]), "--csv")
    make_console(stderr=True).print(summary(outcomes), highlight=False)
    rows = [entry for entry in selected for _ in seeds]
    return rows, [CheckView(outcome) for outcome in outcomes]


def settings_from(args: argparse.Namespace, base: CampaignSettings | None = None) -> CampaignSettings:
    """Campaign settings from the command line over ``base`` (a campaign file's)."""
    from dataclasses import replace

    from eqbench.campaign.campaigns import CampaignSettings

    settings = base or CampaignSettings(plugins=tuple(getattr(args, "plugin", ()) or ()))
    changes: dict[str, Any] = {}
    if args.executor is not None:
        changes["executor"] = args.executor
    if args.address is not None:
        if args.executor not in (None, "ray"):
            raise UsageError(f"--address is a Ray cluster address: it needs --executor ray, not {args.executor}")
        changes.update(executor="ray", address=args.address)
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.cache is not None:
        changes["cache_dir"] = args.cache
    if args.no_cache:
        changes["use_cache"] = False
    return replace(settings, **changes)


# ------------------------------------------------------------------ eqbench campaign
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="run a TOML grid of checks and training runs on serial, process or Ray executors, cached and resumable",
        description="Run the checks (models x seeds) and training runs (tasks x models x presets x seeds) a campaign file "
        "declares; results stream into OUT/checks.json/.csv and OUT/training.json/.csv as they finish.",
        epilog="Exit status: 0 all verdicts as expected and all runs finished, 1 otherwise, 2 usage error.",
    )
    parser.add_argument("file", type=Path, metavar="FILE.toml", help="the campaign file (see `eqbench.campaign.spec`)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="results folder (default: the file's `output`)")
    add_executor_arguments(parser, defaults_from_file=True)


def run(args: argparse.Namespace) -> int:
    from eqbench.campaign.campaigns import CampaignSettings, run_checks, run_training_jobs, summary
    from eqbench.campaign.spec import SpecError, read_spec
    from eqbench.cli.check import select_entries

    try:
        spec = read_spec(args.file)
    except SpecError as error:
        raise UsageError(str(error)) from error
    out = args.out or spec.output
    base = CampaignSettings(
        executor=spec.executor, workers=spec.workers, address=spec.address, num_cpus=spec.num_cpus, num_gpus=spec.num_gpus,
        plugins=spec.plugins, cache_dir=spec.cache_dir, use_cache=spec.use_cache,
    )
    settings = settings_from(args, base)
    load_models(settings.plugins)
    check_plans = [(select_entries(g.models, suite=g.suite, group=g.group, plugin_entries=None), g) for g in spec.checks]
    runs = spec.training_output.runs or out / "training"
    train_jobs = _training_jobs(spec, runs, spec.training_output.checkpoints or out / "checkpoints")
    console = make_console()
    failures = 0
    with _interpreted_errors(), settings.open_executor() as executor:
        check_outcomes: list[Outcome] = []
        for index, (entries, grid) in enumerate(check_plans):
            name = "checks" if len(check_plans) == 1 else f"checks-{index}"
            check_outcomes += run_checks(entries, grid.seeds, settings, examples=grid.examples,
                                         json_path=out / f"{name}.json", csv_path=out / f"{name}.csv", executor=executor)
        train_outcomes = (
            run_training_jobs(train_jobs, settings, records=out, skip_finished=spec.training_output.skip_finished, executor=executor)
            if train_jobs else []
        )
    for outcome in check_outcomes:
        if outcome.record["verdict"] == "error" or outcome.record.get("matches_expected") is False:
            failures += 1
            console.print(f"[bold red]{outcome.record['model']} seed {outcome.record['seed']}: {outcome.record['verdict']}, "
                          f"expected {outcome.record['expected']}[/] {outcome.record.get('message', '')}", highlight=False)
    for outcome in train_outcomes:
        if outcome.failed:
            failures += 1
            console.print(f"[bold red]{outcome.job.label}: failed[/] {outcome.record['error']}", highlight=False)
    if check_outcomes:
        console.print(f"checks: {summary(check_outcomes)}; records in {out}/checks*.json", highlight=False)
    if train_outcomes:
        console.print(f"training: {summary(train_outcomes)}; records in {out / 'training.json'}, runs in {runs}", highlight=False)
    if spec.training_output.report is not None:
        from eqbench.reports.training import write_training_reports

        written = write_training_reports(runs, spec.training_output.report, regenerated_by=f"eqbench campaign {args.file}")
        console.print(f"training report: {spec.training_output.report / 'training.md'} ({len(written)} files) from {runs}", highlight=False)
    return 1 if failures else 0


def _training_jobs(spec: CampaignSpec, runs: Path, checkpoints: Path) -> list[TrainJob]:
    """Plan every ``[[training]]`` grid; an unknown task, model, preset or tracked group is a usage error naming it."""
    from eqbench.campaign.jobs import plan_training
    from eqbench.groups.names import group_from_name
    from eqbench.tasks.registry import get_task
    from eqbench.tasks.tracking import task_actions
    from eqbench.tasks.trainable import trainable_models

    jobs = []
    for grid in spec.training:
        try:
            for task in grid.tasks:
                get_task(task)
                missing = [m for m in grid.models if m not in trainable_models(task)]
                if missing:
                    raise UsageError(f"model(s) {missing} not trainable on {task!r}; trainable there: {', '.join(trainable_models(task))}")
                if grid.track_equivariance is not None:
                    group_from_name(grid.track_equivariance)
                    task_actions(task)
            jobs += plan_training(grid, runs=runs, checkpoints=checkpoints, checkpoints_by_key=not spec.training_output.skip_finished)
        except (KeyError, ValueError) as error:
            raise UsageError(str(error).strip("'\"")) from error
    return jobs


def _seeds(text: str) -> list[int]:
    from eqbench.campaign.spec import SpecError, parse_seeds

    try:
        return parse_seeds(text, "--seeds")
    except SpecError as error:
        raise UsageError(str(error)) from error


@contextmanager
def _interpreted_errors() -> Iterator[None]:
    """Turn an executor that cannot start (no Ray, no cluster, another eqbench on the workers) into a usage error."""
    from eqbench.campaign.executor import ExecutorError

    try:
        yield
    except ExecutorError as error:
        raise UsageError(str(error)) from error
