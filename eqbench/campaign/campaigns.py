"""Check and training campaigns: plan the jobs, open the executor, run them with the cache, stream the records.

    outcomes = run_checks(entries, seeds=range(20), settings=CampaignSettings(executor="process", workers=2),
                          json_path=Path("checks.json"))

Check records stream into ``json_path`` / ``csv_path`` (the ``eqbench check --json`` format);
training records into ``RECORDS/training.json`` / ``training.csv``, and each run into its folder
``RUNS/TASK/MODEL-PRESET-seedSEED<suffix>/`` (the trainer's layout, which ``eqbench report
--training RUNS`` and :func:`eqbench.reports.training.write_training_reports` read). Both files are
written in job order when the campaign ends, and in completion order while it runs (also when
it is interrupted).

Workers of the ``process`` and ``ray`` executors register the builtin models, the entry points
and the campaign's plugins themselves, so a model registered only inside the calling Python
session (not in a plugin file or module) can be checked by the ``serial`` executor alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from eqbench.campaign.cache import ResultCache, default_cache_dir
from eqbench.campaign.executor import Executor, WorkerSetup, make_executor
from eqbench.campaign.jobs import TrainJob, finished_run, plan_checks, run_check, run_training, write_training_files
from eqbench.campaign.output import RecordStream
from eqbench.campaign.runner import Job, Outcome, run_jobs


@dataclass(frozen=True)
class CampaignSettings:
    """How to run: the executor (``serial``, ``process``, ``ray``), its workers, a Ray ``address``, resources per task,
    the plugins workers load, and the cache folder (``None`` with ``use_cache=False``: no cache)."""

    executor: str = "serial"
    workers: int | None = None
    address: str | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    plugins: tuple[str, ...] = ()
    cache_dir: Path | None = None
    use_cache: bool = True
    progress: bool = True

    def cache(self) -> ResultCache | None:
        if not self.use_cache:
            return None
        return ResultCache(self.cache_dir or default_cache_dir())

    def open_executor(self) -> Executor:
        setup = WorkerSetup(plugins=tuple(str(Path(p).expanduser().resolve()) if p.endswith(".py") else p for p in self.plugins))
        return make_executor(self.executor, workers=self.workers, setup=setup, address=self.address, num_cpus=self.num_cpus, num_gpus=self.num_gpus)


def run_checks(
    entries: Sequence[Any],
    seeds: Sequence[int],
    settings: CampaignSettings,
    *,
    examples: int | None = None,
    json_path: Path | None = None,
    csv_path: Path | None = None,
    executor: Executor | None = None,
) -> list[Outcome]:
    """Check every entry with every seed (entry-major order); returns the outcomes in that order."""
    jobs = plan_checks(entries, list(seeds), examples)
    return _run(jobs, run_check, settings, RecordStream(json_path, csv_path), executor, "checking")


def run_training_jobs(
    jobs: Sequence[TrainJob], settings: CampaignSettings, *, records: Path, skip_finished: bool = False, executor: Executor | None = None
) -> list[Outcome]:
    """Run training jobs; records stream to ``records/training.json`` and ``.csv``, each run trains in its own folder.

    With ``skip_finished`` a run whose folder already holds ``result.json`` is kept as it is (not re-run, not rewritten)
    and its record read from there (:mod:`eqbench.campaign.spec`)."""
    stream = RecordStream(records / "training.json", records / "training.csv")

    def write(outcome: Outcome) -> None:
        if outcome.payload is not None and not outcome.reused:
            write_training_files(outcome.job, outcome.payload)

    reuse = finished_run if skip_finished else None
    return _run(jobs, run_training, settings, stream, executor, "training", on_outcome=write, reuse=reuse)


def _run(
    jobs: Sequence[Job],
    function: Callable[[Any], dict[str, Any]],
    settings: CampaignSettings,
    stream: RecordStream,
    executor: Executor | None,
    description: str,
    on_outcome: Callable[[Outcome], None] | None = None,
    reuse: Callable[[Any], dict[str, Any] | None] | None = None,
) -> list[Outcome]:
    """Run ``jobs`` on ``executor`` (else one opened from ``settings`` and shut down here), streaming records to ``stream``."""
    order = {job.key: index for index, job in enumerate(jobs)}

    def handle(outcome: Outcome) -> None:
        if on_outcome is not None:
            on_outcome(outcome)
        stream.add(outcome.record)

    own = executor is None
    executor = executor or settings.open_executor()
    try:
        outcomes = run_jobs(jobs, function, executor, settings.cache(), on_outcome=handle, reuse=reuse, progress=settings.progress,
                            description=description)
    except BaseException:
        stream.close()
        if own:
            executor.shutdown(cancel=True)
        raise
    if own:
        executor.shutdown()
    stream.close(order=lambda record: order.get(record.get("key"), len(order)))
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
    """``N results: C computed, K cached (R already in their run folders), F failed`` (failed: the worker died or the job raised)."""
    cached = sum(o.cached for o in outcomes)
    reused = sum(o.reused for o in outcomes)
    failed = sum(o.failed for o in outcomes)
    line = f"{len(outcomes)} results: {len(outcomes) - cached - failed} computed, {cached} cached"
    line += f" ({reused} already in their run folders)" if reused else ""
    return line + (f", {failed} failed" if failed else "")
