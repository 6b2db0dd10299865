"""The units of a campaign: one check (model x seed; the model fixes group, actions and inputs) or one training run
(task x model x preset x seed), each with its cache key, the function a worker runs, and its output record.

Check records are what ``eqbench check --json`` writes (:meth:`CheckResult.to_record`, with at least
:data:`~eqbench.check.result.RECORD_FIELDS`) plus ``cached`` and ``key``; a check whose worker died
or raised gets a record with verdict ``error`` and the reason in ``message``. Training records are
the trainer's final row (:mod:`eqbench.tasks.trainer`) plus ``cached`` and ``key``, or the run's
``task, model, preset, seed`` and an ``error`` message.

Cache keys (:mod:`eqbench.campaign.cache`) are SHA-256 digests of, for a check: the model's code
(:func:`~eqbench.campaign.fingerprint.code_digest` of its factory and its classes) and weights (built
with seed 0; the seed itself is in the key too), the group, actions and input generator
(:func:`~eqbench.campaign.fingerprint.describe`), the expectation, tolerance, checker and its
options, the number of search examples, the seed, and the versions of eqbench (its framework
sources), torch, hypothesis and numpy. For a training run: the task, the model builder's code,
the preset (after overrides), the seed, the data path (with file sizes and times), the device, the
group tracked through training and the same versions (not the torch threads: they change the
speed, not the result).
"""
from __future__ import annotations

import importlib.metadata
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from eqbench.campaign.fingerprint import (
    CHECK_FRAMEWORK,
    TRAIN_FRAMEWORK,
    code_digest,
    describe,
    digest_json,
    framework_digest,
    weights_digest,
)

if TYPE_CHECKING:
    from eqbench.campaign.spec import TrainingGrid
    from eqbench.registry import ModelEntry
    from eqbench.tasks.presets import Preset

#: Bump when the meaning of a cached payload changes.
CACHE_SCHEMA = 1


def versions(framework: tuple[str, ...]) -> dict[str, str]:
    """eqbench (version and framework source digest), torch, hypothesis, numpy."""
    import torch

    from eqbench import __version__

    found = {"eqbench": __version__, "eqbench_framework": framework_digest(framework), "torch": torch.__version__}
    for package in ("hypothesis", "numpy"):
        found[package] = importlib.metadata.version(package)
    return found


# ------------------------------------------------------------------ checks
@dataclass(frozen=True)
class CheckJob:
    """Check the registered model ``model`` with ``seed`` (and ``examples`` search examples when given)."""

    model: str
    seed: int
    examples: int | None
    key: str
    group: str = ""
    expected: str | None = None
    tolerance: float = 0.0
    kind: str = field(default="check", init=False)

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed}"

    def record(self, payload: dict[str, Any], cached: bool) -> dict[str, Any]:
        return {**payload["record"], "cached": cached, "key": self.key}

    def error_record(self, message: str) -> dict[str, Any]:
        """A verdict-``error`` record in the ``eqbench check --json`` format (no check ran to completion)."""
        return {
            "model": self.model, "group": self.group, "verdict": "error", "expected": self.expected,
            "matches_expected": False if self.expected is not None else None, "max_rel_error": None, "mean_rel_error": None,
            "noise_floor": None, "n_elements": 0, "tolerance": self.tolerance, "seed": self.seed, "seconds": 0.0,
            "message": message, "cached": False, "key": self.key,
        }


def run_check(job: CheckJob) -> dict[str, Any]:
    """Worker side: run the entry's check; the payload is its record and its text summary."""
    from eqbench import registry

    result = registry.run_entry(registry.get_entry(job.model), seed=job.seed, examples=job.examples)
    return {"record": result.to_record(), "text": str(result)}


def plan_checks(entries: Sequence[ModelEntry], seeds: Sequence[int], examples: int | None) -> list[CheckJob]:
    """One job per (entry, seed), entry-major, each with its cache key (module docstring)."""
    from eqbench import registry

    shared = {"schema": CACHE_SCHEMA, "kind": "check", "examples": examples, "versions": versions(CHECK_FRAMEWORK)}
    jobs = []
    for entry in entries:
        model = registry.build_model(entry, seed=0)
        about = {
            **shared,
            "model": entry.name,
            "code": code_digest([entry.factory, model, entry.group, entry.in_action, entry.out_action, entry.inputs]),
            "weights": weights_digest(model),
            "setting": describe(
                {
                    "group": entry.group, "in_action": entry.in_action, "out_action": entry.out_action, "inputs": entry.inputs,
                    "expected": entry.expected, "tolerance": entry.tolerance, "stochastic": entry.stochastic,
                    "check_options": dict(entry.check_options),
                }
            ),
        }
        expected = None if entry.expected == registry.NO_EXPECTATION else entry.expected
        for seed in seeds:
            key = digest_json({**about, "seed": seed})
            jobs.append(CheckJob(entry.name, seed, examples, key, entry.group.name, expected, entry.tolerance))
    return jobs


# ------------------------------------------------------------------ training
@dataclass(frozen=True)
class TrainJob:
    """Train ``model`` on ``task`` with ``preset`` and ``seed``: the run folder ``runs/TASK/RUN`` (the trainer's own name,
    :attr:`eqbench.tasks.trainer.TrainConfig.run_name`), checkpoints under ``checkpoints/TASK/RUN``, resumed when present."""

    task: str
    model: str
    preset: Preset
    seed: int
    key: str
    runs: str
    checkpoints: str
    data: str | None = None
    device: str | None = None
    track_equivariance: str | None = None
    threads: int | None = None
    kind: str = field(default="train", init=False)

    @property
    def label(self) -> str:
        return f"{self.task} {self.model} {self.preset.name} seed {self.seed}"

    def config(self) -> Any:
        from eqbench.tasks.trainer import TrainConfig

        return TrainConfig(
            task=self.task, model=self.model, preset=self.preset, seed=self.seed, device=self.device,
            out=Path(self.runs), checkpoints=Path(self.checkpoints), resume=True, data=Path(self.data) if self.data else None,
            progress=False, track_equivariance=self.track_equivariance,
        )

    def record(self, payload: dict[str, Any], cached: bool) -> dict[str, Any]:
        return {**payload["final"], "cached": cached, "key": self.key}

    def error_record(self, message: str) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "preset": self.preset.name, "seed": self.seed, "error": message, "cached": False, "key": self.key}


def run_training(job: TrainJob) -> dict[str, Any]:
    """Worker side: train (resuming the run's checkpoint if one exists) with ``job.threads`` torch threads when given;
    the payload is the final row and the history."""
    import torch

    from eqbench.tasks.trainer import train

    threads = torch.get_num_threads()
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    try:
        result = train(job.config())
    finally:
        torch.set_num_threads(threads)
    return {"final": result.final, "history": result.history}


def finished_run(job: TrainJob) -> dict[str, Any] | None:
    """The payload of a run whose folder already holds ``result.json`` (its final row; the history stays on disk), else ``None``."""
    from eqbench.tasks.results import RESULT_JSON

    path = job.config().run_dir / RESULT_JSON
    if not path.is_file():
        return None
    return {"final": json.loads(path.read_text(encoding="utf-8"))[0], "history": None}


def write_training_files(job: TrainJob, payload: dict[str, Any]) -> Path:
    """Write the run's ``history.csv/json`` and ``result.json`` where ``eqbench report --training RUNS`` reads them (a worker
    on another machine wrote them there; a cached result is written out again)."""
    from eqbench.tasks.results import write_history, write_result

    run_dir = job.config().run_dir
    write_history(run_dir, payload["history"])
    write_result(run_dir, payload["final"])
    return run_dir


def plan_training(
    grid: TrainingGrid,
    *,
    runs: Path,
    checkpoints: Path,
    checkpoints_by_key: bool = True,
) -> list[TrainJob]:
    """One job per (task, model, preset name, seed) of ``grid``, with its ``options`` (``KEY=VALUE`` preset overrides)
    applied; run folders under ``runs``; checkpoints under ``checkpoints/KEY`` (``checkpoints_by_key``) or ``checkpoints``."""
    from eqbench.tasks.presets import get_preset, with_overrides
    from eqbench.tasks.registry import get_task
    from eqbench.tasks.trainable import TRAINABLE

    shared = {
        "schema": CACHE_SCHEMA, "kind": "train", "device": grid.device, "data": _data_fingerprint(grid.data),
        "track_equivariance": grid.track_equivariance, "versions": versions(TRAIN_FRAMEWORK),
    }
    jobs = []
    for task, model, preset_name, seed in grid.runs():
        preset = with_overrides(get_preset(task, model, preset_name), grid.options)
        about = {
            **shared, "task": describe(get_task(task)), "model": model, "preset": preset.as_dict(), "seed": seed,
            "code": code_digest([TRAINABLE[(task, model)]]),
        }
        key = digest_json(about)
        jobs.append(TrainJob(
            task, model, preset, seed, key, str(runs), str(checkpoints / key[:16] if checkpoints_by_key else checkpoints),
            str(grid.data) if grid.data else None, grid.device, grid.track_equivariance, grid.threads,
        ))
    return jobs


def _data_fingerprint(data: Path | None) -> Any:
    """The data path with each file's relative name, size and modification time (``None`` for built-in data)."""
    if data is None:
        return None
    files = sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else [data]
    return {"path": str(data.resolve()), "files": [[str(p.relative_to(data) if data.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.exists()]}


def failure_message(error: BaseException) -> str:
    """One line naming an executor-level failure: its type, message and innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"
