"""Run a campaign's jobs through an executor, with the cache, a progress bar and a callback per finished result.

:func:`run_jobs` first asks ``reuse`` whether a job's result is already where it belongs (a
finished training run folder: reported at once, ``cached`` and ``reused``, and neither cached
again nor written again), then the cache (a hit is reported at once, ``cached``), submits the
rest, and handles each result as it completes: cache it (only a result the job's
function returned; an executor-level failure such as a dead worker is not cached, so the next
run retries it), then pass the :class:`Outcome` to ``on_outcome`` (the caller streams it to its
files). Interrupting (Ctrl-C) cancels the executor's pending work and re-raises; everything
finished before is already in the cache and has been passed to ``on_outcome``, so re-running
the same campaign resumes where it stopped.
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from eqbench.campaign.cache import ResultCache
from eqbench.campaign.executor import Executor
from eqbench.campaign.jobs import failure_message


class Job(Protocol):
    kind: str
    key: str

    @property
    def label(self) -> str: ...

    def record(self, payload: dict[str, Any], cached: bool) -> dict[str, Any]: ...

    def error_record(self, message: str) -> dict[str, Any]: ...


@dataclass
class Outcome:
    """One job's result: its ``record``, the worker's ``payload`` (``None`` after a failure), whether it was not computed
    now (``cached``: from the cache, or ``reused`` as it already was on disk)."""

    job: Any
    record: dict[str, Any]
    payload: dict[str, Any] | None
    cached: bool
    reused: bool = False

    @property
    def failed(self) -> bool:
        return self.payload is None


def run_jobs(
    jobs: Sequence[Job],
    function: Callable[[Any], dict[str, Any]],
    executor: Executor,
    cache: ResultCache | None,
    *,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    reuse: Callable[[Any], dict[str, Any] | None] | None = None,
    progress: bool = True,
    description: str = "campaign",
) -> list[Outcome]:
    """Run ``function(job)`` for every job that ``reuse`` does not find done and ``cache`` does not hold; returns the
    outcomes in the order of ``jobs``."""
    outcomes: dict[int, Outcome] = {}
    with _Progress(len(jobs), description, enabled=progress) as bar:

        def finish(index: int, outcome: Outcome) -> None:
            outcomes[index] = outcome
            on_outcome(outcome)
            bar.advance(outcome)

        submitted: dict[Future, int] = {}
        for index, job in enumerate(jobs):
            payload = reuse(job) if reuse is not None else None
            if payload is not None:
                finish(index, Outcome(job, job.record(payload, cached=True), payload, cached=True, reused=True))
                continue
            payload = cache.get(job.key) if cache is not None else None
            if payload is not None:
                finish(index, Outcome(job, job.record(payload, cached=True), payload, cached=True))
            else:
                submitted[executor.submit(function, job)] = index
        for future in executor.as_completed(list(submitted)):
            index = submitted[future]
            job = jobs[index]
            error = future.exception()
            if error is not None:
                finish(index, Outcome(job, job.error_record(failure_message(error)), None, cached=False))
                continue
            payload = future.result()
            if cache is not None:
                cache.put(job.key, job.kind, payload)
            finish(index, Outcome(job, job.record(payload, cached=False), payload, cached=False))
    return [outcomes[index] for index in range(len(jobs))]


class _Progress:
    """A rich progress bar on stderr (when it is a terminal and ``enabled``): done / total, elapsed, ETA, cached and failed counts."""

    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self.total, self.description, self.enabled = total, description, enabled
        self.cached = self.failed = 0
        self.started = time.monotonic()
        self.progress: Any = None

    def __enter__(self) -> _Progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        if self.enabled and console.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
            self.progress = Progress(*columns, console=console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total, note="")
        return self

    def advance(self, outcome: Outcome) -> None:
        self.cached += outcome.cached
        self.failed += outcome.failed
        if self.progress is not None:
            from rich.markup import escape

            note = f"{self.cached} cached" + (f", {self.failed} failed" if self.failed else "") + f"  last: {escape(outcome.job.label)}"
            self.progress.update(self.task, advance=1, note=note)

    def __exit__(self, *_: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
