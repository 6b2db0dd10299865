"""Two wall-clock goals of the command line, measured the way a user meets them (issue 8).

1. ``threads``: ``eqbench check`` on 17 models x 20 seeds with the default thread setting takes at most
   :data:`THREADS_GOAL` times as long as the same run under ``OMP_NUM_THREADS=1`` (torch's own default, one
   thread per core, took 3.9x as long on a busy 2-core machine). Each arm is one fresh process (the CLI
   in-process, ``eqbench check MODELS --seed S -q`` for S = 0..19); the arms alternate for ``--rounds``
   rounds and the medians are compared; the verdicts of both arms must agree.
2. ``plugin``: ``python -m pytest --eqbench-plugin F`` on a 2-model plugin file, in a folder with no other
   tests, finishes within :data:`PLUGIN_GOAL_SECONDS` (it must not run the 47 built-in checks).

    python -m suites.cli_timings                 # both, 1 round (about 5 minutes on 2 idle cores)
    python -m suites.cli_timings --rounds 3      # medians of 3 alternating rounds
    python -m suites.cli_timings --only plugin   # just the pytest plugin timing

Prints both times and their ratio; exits 0 when the goals hold, 1 otherwise. Run it on a quiet machine of the
target class: on a shared, loaded one both arms measure the neighbours.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS_GOAL = 1.3
PLUGIN_GOAL_SECONDS = 10.0
SEEDS = 20
#: 17 models of the default suite across its kinds: controls, frame averaging, EGNN/GNN, L-conv, LieConv
#: (deterministic and Monte-Carlo), PointNet.
MODELS = (
    "axis-reader", "chiral-o3", "chiral-so3", "coordinate-mlp", "deepsets", "distance-mlp", "egnn-nbody",
    "fa-gnn-nbody", "fa-pointnet", "fa-pointnet-naive", "gnn-nbody-rotations", "index-weighted-pooling",
    "lconv-shift", "lieconv-so2", "lieconv-so2-mc", "lieconv-t3-molecule", "pointnet",
)
PLUGIN = """
from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DeepSets, IndexWeightedPooling
from eqbench.registry import register_model

SETTINGS = dict(group=Symmetric(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs(max_points=8))
register_model("timing-good", **SETTINGS)(DeepSets)
register_model("timing-broken", expected="violated", **SETTINGS)(IndexWeightedPooling)
"""


def child(models: list[str], seeds: int) -> None:
    """One arm: ``eqbench check`` for each seed, in this process; prints the verdicts as JSON."""
    import contextlib
    import io

    from eqbench.cli.main import main

    verdicts = []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "records.json"
            with contextlib.redirect_stdout(io.StringIO()):
                main(["check", *models, "--seed", str(seed), "-q", "--json", str(path)])
            verdicts += [(r["model"], seed, r["verdict"]) for r in json.loads(path.read_text())["records"]]
    print(json.dumps(verdicts))


def run_arm(one_thread: bool, models: list[str], seeds: int) -> tuple[float, list]:
    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if one_thread:
        environment["OMP_NUM_THREADS"] = "1"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "suites.cli_timings", "--child", "--seeds", str(seeds), "--models", *models],
        cwd=ROOT, env=environment, capture_output=True, text=True, check=True,
    )
    return time.perf_counter() - start, json.loads(done.stdout.splitlines()[-1])


def measure_threads(rounds: int, models: list[str], seeds: int) -> bool:
    times: dict[str, list[float]] = {"default": [], "OMP_NUM_THREADS=1": []}
    verdicts: dict[str, list] = {}
    for _ in range(rounds):
        for label in times:
            seconds, found = run_arm(label != "default", models, seeds)
            times[label].append(seconds)
            verdicts[label] = found
    default, single = (statistics.median(times[k]) for k in times)
    ratio = default / single
    same = verdicts["default"] == verdicts["OMP_NUM_THREADS=1"]
    print(f"eqbench check, {len(models)} models x {seeds} seeds, {rounds} round(s), {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  default threads     {default:8.1f} s  (rounds: {', '.join(f'{t:.1f}' for t in times['default'])})")
    print(f"  OMP_NUM_THREADS=1   {single:8.1f} s  (rounds: {', '.join(f'{t:.1f}' for t in times['OMP_NUM_THREADS=1'])})")
    print(f"  ratio {ratio:.2f} (goal <= {THREADS_GOAL}); verdicts {'identical' if same else 'DIFFER'}")
    return ratio <= THREADS_GOAL and same


def measure_plugin() -> bool:
    with tempfile.TemporaryDirectory() as folder:
        plugin = Path(folder) / "two_models.py"
        plugin.write_text(PLUGIN)
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--eqbench-plugin", str(plugin), "-q", "-p", "no:cacheprovider"],
            cwd=folder, env=environment, capture_output=True, text=True,
        )
        seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    print(f"pytest --eqbench-plugin (2 models): {seconds:.1f} s (goal < {PLUGIN_GOAL_SECONDS:g} s): {summary}")
    return done.returncode == 0 and "2 passed" in summary and seconds < PLUGIN_GOAL_SECONDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per arm (default 1)")
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds per arm (default {SEEDS})")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="models (default: the 17 of MODELS)")
    parser.add_argument("--only", choices=("threads", "plugin"), help="run one of the two measurements")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.models, args.seeds)
        return 0
    ok = True
    if args.only in (None, "plugin"):
        ok &= measure_plugin()
    if args.only in (None, "threads"):
        ok &= measure_threads(args.rounds, args.models, args.seeds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
