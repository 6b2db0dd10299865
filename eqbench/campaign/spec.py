"""Campaign files (TOML) and seed ranges.

A campaign file declares where results go, how to run, and grids of checks and training runs::

    output = "runs/campaign"        # folder: checks.json/.csv, training.json/.csv, training/, checkpoints/
    plugins = ["my_models.py"]      # files (relative to this file) or module names

    [executor]
    kind = "process"                # serial | process | ray
    workers = 2
    # address = "10.0.0.1:6379"    # ray: an existing cluster
    # num_cpus = 1                  # resources per task
    # num_gpus = 0

    [cache]
    dir = "~/.cache/eqbench/campaign"   # default: the user cache directory
    enabled = true

    [training_output]               # optional; every key has a default
    runs = "reports/training"       # run folders RUNS/TASK/MODEL-PRESET-seedN<suffix>/ (default OUTPUT/training)
    checkpoints = "runs/checkpoints"    # default OUTPUT/checkpoints
    skip_finished = true            # a run folder holding result.json is kept as it is, not re-run (default false)
    report = "reports"              # afterwards, the training report of RUNS here (default: none)

    [[checks]]                      # models x seeds (each model fixes its group, actions, inputs)
    suite = "default"               # or models = ["distance-mlp", ...]; group = "SO3" filters
    seeds = "0-19"
    examples = 20                   # hypothesis search examples (default: per model)

    [[training]]                    # tasks x models x presets x seeds
    tasks = ["digits-rot"]
    models = ["cnn", "lconv"]
    presets = ["small"]
    seeds = [0, 1, 2]
    options = ["epochs=2"]          # preset overrides, as `eqbench train --option`
    track_equivariance = "C4"       # as `eqbench train --track-equivariance`
    threads = 1                     # torch threads per run (default: the executor's, one per process worker)
    # device = "cpu"; data = "path/to/data"

Relative paths are taken from the campaign file's folder; ``data`` is such a path when it exists
there, else it is given to the task as written (a name the task knows, such as ``qm9pack``).
Unknown keys, wrong types and bad seed ranges raise :class:`SpecError` naming the key.

Two ways a training run counts as done. By default the cache decides (its key covers the
model's code, the preset, the seed and the versions, :mod:`eqbench.campaign.jobs`): a changed
model re-trains, into the same run folder, and each key keeps its own checkpoints
(``CHECKPOINTS/KEY/TASK/RUN/``). With ``skip_finished`` the run folders are the record: a run
whose ``result.json`` exists is read from it and never re-run (to re-run it, delete its folder;
with the cache on, an unchanged run is then written back from the cache), and a run cut mid-way resumes from ``CHECKPOINTS/TASK/RUN/checkpoint.pt`` (``eqbench train
--checkpoints``'s layout), whatever changed in the code since. The training campaign of the
report (``campaigns/training.toml``) runs that way, so the committed runs stay as they are.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from eqbench.campaign.executor import EXECUTORS


class SpecError(ValueError):
    """A campaign file or seed range that cannot be used; the message names the key."""


def parse_seeds(value: Any, what: str = "seeds") -> list[int]:
    """Seeds from ``"0-19"``, ``"0,3,5-7"``, an integer or a list of integers (sorted, without repeats)."""
    if isinstance(value, bool):
        raise SpecError(f"{what}: expected seeds such as 0-19, 0,3,5 or a list of integers, got {value!r}")
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value:
        return sorted(set(value))
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{what}: expected seeds such as 0-19, 0,3,5 or a list of integers, got {value!r}")
    seeds: set[int] = set()
    for part in value.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise SpecError(f"{what}: {part!r} is not a seed or a range FIRST-LAST (e.g. 0-19)") from None
        if first < 0 or last < first:
            raise SpecError(f"{what}: range {part!r} must have 0 <= FIRST <= LAST")
        seeds.update(range(first, last + 1))
    return sorted(seeds)


@dataclass(frozen=True)
class CheckGrid:
    """A ``[[checks]]`` table: which models (names, else the suite), the group filter, seeds and search examples."""

    models: tuple[str, ...] = ()
    suite: str | None = None
    group: str | None = None
    seeds: tuple[int, ...] = (0,)
    examples: int | None = None


@dataclass(frozen=True)
class TrainingGrid:
    """A ``[[training]]`` table: tasks x models x presets x seeds, with preset overrides, device, data path, the group
    whose equivariance is tracked through training, and torch threads per run."""

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    presets: tuple[str, ...] = ("small",)
    seeds: tuple[int, ...] = (0,)
    options: tuple[str, ...] = ()
    device: str | None = None
    data: Path | None = None
    track_equivariance: str | None = None
    threads: int | None = None

    def runs(self) -> list[tuple[str, str, str, int]]:
        return [(t, m, p, s) for t in self.tasks for m in self.models for p in self.presets for s in self.seeds]


@dataclass(frozen=True)
class TrainingOutput:
    """The ``[training_output]`` table: run folders, checkpoints (``None``: under the campaign's output), whether finished
    run folders are kept instead of asking the cache (module docstring), and where the training report goes."""

    runs: Path | None = None
    checkpoints: Path | None = None
    skip_finished: bool = False
    report: Path | None = None


@dataclass(frozen=True)
class CampaignSpec:
    """A parsed campaign file."""

    output: Path
    plugins: tuple[str, ...] = ()
    executor: str = "serial"
    workers: int | None = None
    address: str | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    cache_dir: Path | None = None
    use_cache: bool = True
    checks: tuple[CheckGrid, ...] = ()
    training: tuple[TrainingGrid, ...] = field(default_factory=tuple)
    training_output: TrainingOutput = TrainingOutput()


def read_spec(path: Path) -> CampaignSpec:
    """Parse a campaign file (module docstring); raises :class:`SpecError` naming the file and key at fault."""
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"campaign file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None
    base = Path(path).resolve().parent
    try:
        return _spec(table, base)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None


def _spec(table: Mapping[str, Any], base: Path) -> CampaignSpec:
    _known(table, {"output", "plugins", "executor", "cache", "training_output", "checks", "training"}, "the top level")
    executor = _table(table, "executor")
    _known(executor, {"kind", "workers", "address", "num_cpus", "num_gpus"}, "[executor]")
    cache = _table(table, "cache")
    _known(cache, {"dir", "enabled"}, "[cache]")
    kind = _get(executor, "kind", str, "serial", "executor.kind")
    if kind not in EXECUTORS:
        raise SpecError(f"executor.kind must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    workers = _get(executor, "workers", int, None, "executor.workers")
    if workers is not None and workers < 1:
        raise SpecError(f"executor.workers must be positive, got {workers}")
    if "checks" not in table and "training" not in table:
        raise SpecError("declares neither [[checks]] nor [[training]]: nothing to run")
    plugins = tuple(_plugin(p, base) for p in _list(table, "plugins", str, "plugins"))
    cache_dir = _get(cache, "dir", str, None, "cache.dir")
    return CampaignSpec(
        output=_path(_get(table, "output", str, "campaign", "output"), base),
        plugins=plugins,
        executor=kind,
        workers=workers,
        address=_get(executor, "address", str, None, "executor.address"),
        num_cpus=_get(executor, "num_cpus", (int, float), 1, "executor.num_cpus"),
        num_gpus=_get(executor, "num_gpus", (int, float), 0, "executor.num_gpus"),
        cache_dir=_path(cache_dir, base) if cache_dir else None,
        use_cache=_get(cache, "enabled", bool, True, "cache.enabled"),
        checks=tuple(_check_grid(t, f"checks[{i}]") for i, t in enumerate(_tables(table, "checks"))),
        training=tuple(_training_grid(t, f"training[{i}]", base) for i, t in enumerate(_tables(table, "training"))),
        training_output=_training_output(_table(table, "training_output"), base),
    )


def _training_output(table: Mapping[str, Any], base: Path) -> TrainingOutput:
    _known(table, {"runs", "checkpoints", "skip_finished", "report"}, "[training_output]")
    paths = {key: _get(table, key, str, None, f"training_output.{key}") for key in ("runs", "checkpoints", "report")}
    return TrainingOutput(
        **{key: _path(text, base) if text else None for key, text in paths.items()},
        skip_finished=_get(table, "skip_finished", bool, False, "training_output.skip_finished"),
    )


def _check_grid(table: Mapping[str, Any], where: str) -> CheckGrid:
    _known(table, {"models", "suite", "group", "seeds", "examples"}, where)
    examples = _get(table, "examples", int, None, f"{where}.examples")
    if examples is not None and examples < 0:
        raise SpecError(f"{where}.examples must be non-negative, got {examples}")
    return CheckGrid(
        models=tuple(_list(table, "models", str, f"{where}.models")),
        suite=_get(table, "suite", str, None, f"{where}.suite"),
        group=_get(table, "group", str, None, f"{where}.group"),
        seeds=tuple(parse_seeds(table.get("seeds", 0), f"{where}.seeds")),
        examples=examples,
    )


def _training_grid(table: Mapping[str, Any], where: str, base: Path) -> TrainingGrid:
    _known(table, {"tasks", "models", "presets", "seeds", "options", "device", "data", "track_equivariance", "threads"}, where)
    for required in ("tasks", "models"):
        if not table.get(required):
            raise SpecError(f"{where}.{required} is required (a non-empty list)")
    device = _get(table, "device", str, None, f"{where}.device")
    if device not in (None, "cpu", "cuda"):
        raise SpecError(f"{where}.device must be 'cpu' or 'cuda', got {device!r}")
    data = _get(table, "data", str, None, f"{where}.data")
    threads = _get(table, "threads", int, None, f"{where}.threads")
    if threads is not None and threads < 1:
        raise SpecError(f"{where}.threads must be positive, got {threads}")
    return TrainingGrid(
        tasks=tuple(_list(table, "tasks", str, f"{where}.tasks")),
        models=tuple(_list(table, "models", str, f"{where}.models")),
        presets=tuple(_list(table, "presets", str, f"{where}.presets")) or ("small",),
        seeds=tuple(parse_seeds(table.get("seeds", 0), f"{where}.seeds")),
        options=tuple(_list(table, "options", str, f"{where}.options")),
        device=device,
        data=_data(data, base) if data else None,
        track_equivariance=_get(table, "track_equivariance", str, None, f"{where}.track_equivariance"),
        threads=threads,
    )


# ------------------------------------------------------------------ helpers
def _known(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise SpecError(f"unknown key(s) {unknown} in {where} (known: {', '.join(sorted(known))})")


def _get(table: Mapping[str, Any], key: str, kind: Any, default: Any, name: str) -> Any:
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise SpecError(f"{name} must be a {expected}, got {value!r}")
    return value


def _list(table: Mapping[str, Any], key: str, kind: type, name: str) -> list[Any]:
    value = table.get(key, [])
    if isinstance(value, kind):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise SpecError(f"{name} must be a list of {kind.__name__}, got {value!r}")
    return value


def _table(table: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"[{key}] must be a table, got {value!r}")
    return value


def _tables(table: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = table.get(key, [])
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SpecError(f"{key} must be [[{key}]] tables")
    return value


def _path(text: str, base: Path) -> Path:
    """``text`` as a path, relative ones from ``base`` (``..`` folded: ``campaigns/../reports`` is ``reports``)."""
    path = Path(text).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _data(text: str, base: Path) -> Path:
    """A data path relative to the campaign file when it exists there, else as written (e.g. ``qm9pack``, a name the task knows)."""
    candidate = _path(text, base)
    return candidate if candidate.exists() else Path(text).expanduser()


def _plugin(text: str, base: Path) -> str:
    """A plugin file relative to the campaign file, or a module name as given."""
    candidate = _path(text, base)
    return str(candidate) if text.endswith(".py") or candidate.is_file() else text
