"""One ``concurrent.futures``-style interface over three backends: serial, a local process pool, and Ray.

    with make_executor("process", workers=2, setup=WorkerSetup(plugins=("my_models.py",))) as executor:
        futures = [executor.submit(run_check, job) for job in jobs]
        for future in executor.as_completed(futures):
            ...  # future.result() or future.exception()

* ``serial``: runs each task in this process when :meth:`Executor.as_completed` reaches it (this
  process is already set up: its registry holds the plugins).
* ``process``: a ``concurrent.futures.ProcessPoolExecutor`` of ``spawn``ed workers, each set up
  once by :class:`WorkerSetup` (``torch.set_num_threads(1)``, the registry and its plugins). When
  a worker dies (killed, out of memory, a crash in native code) the pool breaks; the tasks that
  had not started are resubmitted to a fresh pool, and each task that was running then is run
  again alone: the one that kills its worker again fails with :class:`WorkerDied`, the others
  complete.
* ``ray``: Ray tasks (``num_cpus``/``num_gpus`` each; one retry after a worker crash, none after an
  exception), on a local Ray started here (``ray.init(num_cpus=workers)``), a Ray already
  initialised by the caller, or an existing cluster (``address``). Plugin files travel by value
  with each task (name and source text; the worker loads them from its temporary folder), so
  nodes need not share a file system; plugin modules travel by importable name (installed on
  the nodes, or in the job's runtime environment: ``ray job submit --runtime-env-json
  '{"py_modules": [...]}'``). Ray does the scheduling; a crashed task fails with :class:`WorkerDied`.

Tasks and their arguments must be picklable (module-level functions, plain data).
"""
from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eqbench.atomic import write_text_atomic

EXECUTORS = ("serial", "process", "ray")


class WorkerDied(RuntimeError):
    """The process running a task died (killed by a signal, out of memory, a crash in native code)."""


class ExecutorError(RuntimeError):
    """An executor that cannot start (Ray not installed, no cluster at the address, mismatched eqbench)."""


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process does once before its first task: ``threads`` intra-op threads for torch,
    then register the builtin models, the entry points and ``plugins`` (files or module names)."""

    plugins: tuple[str, ...] = ()
    threads: int = 1
    #: Plugin files shipped by value: (file name, source text), written to a temporary folder and loaded from there.
    sources: tuple[tuple[str, str], ...] = ()

    def apply(self) -> None:
        import torch

        from eqbench import registry

        torch.set_num_threads(self.threads)
        registry.load_all(self.plugins + tuple(str(_materialise(name, text)) for name, text in self.sources))


def _materialise(name: str, text: str) -> Path:
    """Write a shipped plugin file under the temporary folder, in a subfolder named by its content digest."""
    folder = Path(tempfile.gettempdir()) / "eqbench-plugins" / hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path


class Executor(ABC):
    """Submit callables, collect their futures as they complete; a context manager that shuts down on exit."""

    kind: str = ""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        """Schedule ``fn(*args)``; returns its future."""

    @abstractmethod
    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        """Yield ``futures`` as they complete (result or exception).

        Collect results here, not by blocking on ``future.result()``: the serial executor runs
        its tasks while this is iterated, and the process executor relays results (and
        resubmits after a worker death) here.
        """

    def shutdown(self, cancel: bool = False) -> None:
        """Release the workers; ``cancel`` drops tasks that have not finished."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.shutdown(cancel=kind is not None)


# ------------------------------------------------------------------ serial
class SerialExecutor(Executor):
    """Runs each task in this process, in submission order, when :meth:`as_completed` reaches it."""

    kind = "serial"

    def __init__(self) -> None:
        self._calls: dict[Future, tuple[Callable[..., Any], tuple[Any, ...]]] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        future: Future = Future()
        self._calls[future] = (fn, args)
        return future

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        for future in futures:
            fn, args = self._calls.pop(future, (None, ()))
            if fn is not None and future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except Exception as error:  # the task's failure belongs to its future, as in a pool
                    future.set_exception(error)
            yield future

    def shutdown(self, cancel: bool = False) -> None:
        for future in self._calls:
            future.cancel()
        self._calls.clear()


# ------------------------------------------------------------------ process pool
def _start_worker(setup: WorkerSetup) -> None:
    """Pool initializer: leave Ctrl-C to the driver (it cancels and terminates), exit with the driver, then set up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    setup.apply()


def _exit_with_parent(parent: int) -> None:
    """Exit once the driver process is gone (killed before it could stop its pool), instead of waiting forever for work."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _tracked_call(markers: str, task_id: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run ``fn(*args)`` with a marker file present while it runs: a marker left behind names a task whose worker died."""
    marker = Path(markers) / str(task_id)
    marker.write_text(str(os.getpid()))
    try:
        return fn(*args)
    finally:
        marker.unlink(missing_ok=True)


@dataclass
class _Submission:
    task_id: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    outer: Future
    inner: Future | None = None
    pool: ProcessPoolExecutor | None = None
    alone: bool = False  # re-run alone after its pool broke


class ProcessExecutor(Executor):
    """A local process pool (module docstring): ``workers`` spawned processes, each set up by ``setup``."""

    kind = "process"

    def __init__(self, workers: int, setup: WorkerSetup) -> None:
        import multiprocessing

        self.workers, self.setup = workers, setup
        self._context = multiprocessing.get_context("spawn")
        self._markers = tempfile.mkdtemp(prefix="eqbench-tasks-")
        self._ids = itertools.count()
        self._pool = self._new_pool(workers)
        self._pools: list[ProcessPoolExecutor] = [self._pool]
        self._running: dict[Future, _Submission] = {}  # inner future -> submission
        self._by_outer: dict[Future, _Submission] = {}
        self._suspects: deque[_Submission] = deque()

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=self._context, initializer=_start_worker, initargs=(self.setup,))

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        submission = _Submission(next(self._ids), fn, args, Future())
        submission.outer.set_running_or_notify_cancel()
        self._by_outer[submission.outer] = submission
        self._dispatch(submission, self._pool)
        return submission.outer

    def _dispatch(self, submission: _Submission, pool: ProcessPoolExecutor) -> None:
        submission.pool = pool
        submission.inner = pool.submit(_tracked_call, self._markers, submission.task_id, submission.fn, submission.args)
        self._running[submission.inner] = submission

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        waiting = set(futures)
        for future in [f for f in waiting if f.done()]:
            waiting.discard(future)
            yield future
        while waiting:
            self._start_next_suspect()
            if not self._running:
                raise RuntimeError("as_completed: futures that this executor does not run")
            done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
            for inner in done:
                submission = self._running.pop(inner)
                error = inner.exception()
                if isinstance(error, BrokenProcessPool) and not self._broken(submission, error):
                    continue  # resubmitted
                if error is None:
                    submission.outer.set_result(inner.result())
                elif not submission.outer.done():  # (a task that died alone already holds WorkerDied)
                    submission.outer.set_exception(error)
                if submission.alone:
                    submission.pool.shutdown(wait=False)  # type: ignore[union-attr]
                if submission.outer in waiting:
                    waiting.discard(submission.outer)
                    yield submission.outer

    def _broken(self, submission: _Submission, error: BrokenProcessPool) -> bool:
        """One task of a broken pool: fail it (returns True) if it ran alone; else re-run it alone (it was running
        when the pool broke) or in a fresh pool (it had not started), and return False."""
        started = (Path(self._markers) / str(submission.task_id)).exists()
        if submission.alone:
            submission.outer.set_exception(WorkerDied(f"the worker process running this task died (twice, the second time running it alone): {error}"))
            return True
        if self._pool is submission.pool:  # the first task seen from this broken pool replaces it
            self._pool = self._new_pool(self.workers)
            self._pools.append(self._pool)
        if started:
            (Path(self._markers) / str(submission.task_id)).unlink(missing_ok=True)
            submission.alone = True
            self._suspects.append(submission)
        else:
            self._dispatch(submission, self._pool)
        return False

    def _start_next_suspect(self) -> None:
        """Run the next suspect of a worker death alone in a one-worker pool, one at a time."""
        if not self._suspects or any(s.alone for s in self._running.values()):
            return
        suspect = self._suspects.popleft()
        pool = self._new_pool(1)
        self._pools.append(pool)
        self._dispatch(suspect, pool)

    def shutdown(self, cancel: bool = False) -> None:
        for pool in self._pools:
            if cancel:
                _terminate(pool)
            pool.shutdown(wait=not cancel, cancel_futures=cancel)
        for submission in self._by_outer.values():
            if not submission.outer.done():
                submission.outer.cancel() or submission.outer.set_exception(RuntimeError("cancelled: the executor shut down"))
        shutil.rmtree(self._markers, ignore_errors=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (Python >= 3.14 has ``terminate_workers``; before, its process table)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


# ------------------------------------------------------------------ Ray
_READY: set[WorkerSetup] = set()


def _ray_call(setup: WorkerSetup, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """A Ray task: set this worker process up once per :class:`WorkerSetup`, then run ``fn(*args)``."""
    if setup not in _READY:
        setup.apply()
        _READY.add(setup)
    return fn(*args)


def _worker_identity() -> tuple[str, str]:
    """(eqbench version, framework source digest) where this runs: the driver and the workers must agree."""
    from eqbench import __version__
    from eqbench.campaign.fingerprint import TRAIN_FRAMEWORK, framework_digest

    return __version__, framework_digest(TRAIN_FRAMEWORK)


class RayExecutor(Executor):
    """Ray tasks (module docstring); ``workers`` is the CPU count of a Ray started here (default: all cores)."""

    kind = "ray"

    def __init__(self, workers: int | None, setup: WorkerSetup, *, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0) -> None:
        try:
            import ray
        except ImportError as error:
            raise ExecutorError("the ray executor needs Ray: pip install 'eqbench[ray]'") from error
        self._ray = ray
        self._started_here = False
        if not ray.is_initialized():
            import logging

            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
            try:
                if address is None:
                    ray.init(num_cpus=workers, **options)
                else:
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                hint = " (a Ray >= 2.59 cluster also needs its token: RAY_AUTH_TOKEN from `ray get-auth-token` on the head)" if address else ""
                raise ExecutorError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {error}{hint}") from error
            self._started_here = True
        self.setup = _ship_plugins(setup)
        self._remote = ray.remote(_ray_call).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=1, retry_exceptions=False)
        self._refs: dict[Future, Any] = {}
        self._check_workers()

    def _check_workers(self) -> None:
        """Refuse a cluster whose workers import another eqbench (cached keys are computed from the driver's code)."""
        ray = self._ray
        theirs = ray.get(ray.remote(_worker_identity).options(num_cpus=0).remote())
        ours = _worker_identity()
        if tuple(theirs) != ours:
            raise ExecutorError(
                f"Ray workers import eqbench {theirs[0]} (source {theirs[1][:12]}), this process {ours[0]} (source {ours[1][:12]}): "
                "install the same eqbench on every node"
            )

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        ref = self._remote.remote(self.setup, fn, args)
        outer: Future = Future()
        outer.set_running_or_notify_cancel()
        ref.future().add_done_callback(lambda inner: self._settle(outer, inner))
        self._refs[outer] = ref
        return outer

    def _settle(self, outer: Future, inner: Future) -> None:
        error = inner.exception()
        if error is None:
            outer.set_result(inner.result())
            return
        crashed = (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.NodeDiedError, self._ray.exceptions.OutOfMemoryError)
        if isinstance(error, crashed):
            error = WorkerDied(f"the Ray worker running this task died (after one retry): {type(error).__name__}: {error}")
        elif isinstance(error, self._ray.exceptions.RayTaskError):
            error = error.as_instanceof_cause()
        outer.set_exception(error)

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        from concurrent.futures import as_completed

        return as_completed(list(futures))

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for outer, ref in self._refs.items():
                if not outer.done():
                    self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started_here:
            self._ray.shutdown()


def _ship_plugins(setup: WorkerSetup) -> WorkerSetup:
    """The setup with each plugin *file* replaced by its name and source text, which travel with every Ray task
    (a few kilobytes) to nodes that do not share this file system; plugin modules stay importable names."""
    files = [p for p in setup.plugins if p.endswith(".py") or Path(p).expanduser().is_file()]
    sources = tuple((Path(p).name, Path(p).expanduser().read_text(encoding="utf-8")) for p in files)
    return replace(setup, plugins=tuple(p for p in setup.plugins if p not in files), sources=setup.sources + sources)


# ------------------------------------------------------------------ factory
def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    setup: WorkerSetup = WorkerSetup(),
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
) -> Executor:
    """The executor ``kind`` (one of :data:`EXECUTORS`); ``workers`` defaults to the CPU count."""
    if kind == "serial":
        return SerialExecutor()
    if kind == "process":
        return ProcessExecutor(workers or os.cpu_count() or 1, setup)
    if kind == "ray":
        return RayExecutor(workers, replace(setup, threads=max(1, int(num_cpus))), address=address, num_cpus=num_cpus, num_gpus=num_gpus)
    raise ValueError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
