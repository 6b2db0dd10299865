"""Run a training campaign file with plain ``eqbench train`` calls, then rebuild the training report.

    python -m campaigns.run_training [campaigns/training.toml] [--workers 2] [--dry-run] [--only TASK]

The fallback for ``eqbench campaign FILE.toml``: the same grid (see ``campaigns/training.toml``),
expanded to one ``eqbench train TASK --model M --preset P --seed S`` process per run, ``workers``
at a time, each with ``OMP_NUM_THREADS=threads`` and ``--threads threads``. A run whose
``result.json`` already exists is skipped, so an interrupted campaign resumes where it stopped
(checkpoints go to the ``[campaign]`` table's ``checkpoints`` folder, default
``runs/checkpoints``, git-ignored, and ``--resume`` continues a run cut mid-way). Afterwards :func:`eqbench.reports.training.write_training_reports` (OUT -> REPORT)
rewrites ``training.md``, ``training.csv`` and the plots. Exit status 1 when a run failed
(the others still run; the report is built from what finished).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_FILE = Path(__file__).with_name("training.toml")
RUN_KEYS = {"task", "models", "preset", "seeds", "track_equivariance", "data", "options"}


@dataclass(frozen=True)
class Run:
    """One ``eqbench train`` call of the grid."""

    task: str
    model: str
    preset: str
    seed: int
    track_equivariance: str | None = None
    data: str | None = None
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The run's folder under the campaign's ``out``: runs with overrides live apart, under ``with-<overrides>/``."""
        folder = f"{self.task}/{self.run_name}"
        if not self.options:
            return folder
        return "with-" + "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", option) for option in self.options) + "/" + folder

    @property
    def run_name(self) -> str:
        """The trainer's own folder name for this run (:attr:`eqbench.tasks.trainer.TrainConfig.run_name`: the preset
        changed by :attr:`options` adds ``-epochsN-o<hash>``)."""
        from eqbench.tasks.presets import get_preset, with_overrides
        from eqbench.tasks.trainer import TrainConfig

        preset = with_overrides(get_preset(self.task, self.model, self.preset), self.options)
        return TrainConfig(self.task, self.model, preset, self.seed).run_name

    @property
    def out_root(self) -> str:
        """What ``eqbench train --out`` gets relative to the campaign's ``out`` (the part of :attr:`name` above ``TASK/``)."""
        return self.name.rpartition(f"{self.task}/")[0]

    def command(self, out: Path, checkpoints: Path, threads: int, resume: bool) -> list[str]:
        command = [
            sys.executable, "-m", "eqbench.cli.main", "train", self.task, "--model", self.model, "--preset", self.preset,
            "--seed", str(self.seed), "--out", str(out / self.out_root), "--checkpoints", str(checkpoints / self.out_root), "--threads", str(threads), "--quiet",
        ]
        if self.track_equivariance:
            command += ["--track-equivariance", self.track_equivariance]
        if self.data:
            command += ["--data", self.data]
        for option in self.options:
            command += ["--option", option]
        return command + (["--resume"] if resume else [])


def load_campaign(path: Path) -> tuple[dict[str, Any], list[Run]]:
    """The ``[campaign]`` settings and the expanded runs of a campaign file; unknown keys are errors."""
    with path.open("rb") as handle:
        spec = tomllib.load(handle)
    settings = {"out": "reports/training", "report": "reports", "checkpoints": "runs/checkpoints", "workers": 2, "threads": 1, **spec.get("campaign", {})}
    runs: list[Run] = []
    for index, block in enumerate(spec.get("runs", [])):
        unknown = sorted(set(block) - RUN_KEYS)
        missing = sorted({"task", "models", "preset", "seeds"} - set(block))
        if unknown or missing:
            raise ValueError(f"{path}: [[runs]] block {index + 1}: unknown keys {unknown}, missing keys {missing}")
        runs += list(_expand(block))
    return settings, runs


def _expand(block: Mapping[str, Any]) -> Iterator[Run]:
    for model in block["models"]:
        for seed in block["seeds"]:
            yield Run(block["task"], model, block["preset"], int(seed), block.get("track_equivariance"), block.get("data"), tuple(block.get("options", ())))


def execute(runs: Sequence[Run], out: Path, checkpoints: Path, workers: int, threads: int) -> list[str]:
    """Run every unfinished run, ``workers`` at a time; returns the names of the runs that failed."""
    pending = [run for run in runs if not (out / run.name / "result.json").exists()]
    print(f"{len(runs) - len(pending)} of {len(runs)} runs already done; running {len(pending)} with {workers} worker(s)", flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def one(run: Run) -> str | None:
        resume = (checkpoints / run.name / "checkpoint.pt").exists()
        started = time.perf_counter()
        done = subprocess.run(run.command(out, checkpoints, threads, resume), env=environment, capture_output=True, text=True)
        minutes = (time.perf_counter() - started) / 60
        status = "ok" if done.returncode == 0 else f"FAILED ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})"
        print(f"{run.name}: {status}, {minutes:.1f} min", flush=True)
        return None if done.returncode == 0 else run.name

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [name for name in pool.map(one, pending) if name is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE, help="campaign file (default campaigns/training.toml)")
    parser.add_argument("--workers", type=int, help="runs at a time (default: the file's, 2)")
    parser.add_argument("--only", action="append", default=[], metavar="TASK", help="run only this task's blocks (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    parser.add_argument("--no-report", action="store_true", help="do not rebuild the report afterwards")
    args = parser.parse_args(argv)
    try:
        settings, runs = load_campaign(args.file)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runs = [run for run in runs if not args.only or run.task in args.only]
    out, checkpoints = Path(settings["out"]), Path(settings["checkpoints"])
    workers, threads = args.workers or int(settings["workers"]), int(settings["threads"])
    if workers < 1:
        print(f"error: --workers must be at least 1, got {workers}", file=sys.stderr)
        return 2
    if args.dry_run:
        for run in runs:
            print(" ".join(run.command(out, checkpoints, threads, resume=False)))
        return 0
    failed = execute(runs, out, checkpoints, workers, threads)
    if not args.no_report:
        from eqbench.reports.training import write_training_reports

        write_training_reports(out, Path(settings["report"]))  # training.md, training.csv, comparisons, plots
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
