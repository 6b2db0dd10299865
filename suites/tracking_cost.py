"""The cost of ``--track-equivariance``: the probe's time as a share of the epoch, on the runs the report tracks.

    python -m suites.tracking_cost [--seeds 2] [--epochs N] [--out reports/tracking_cost.md]

Trains the tracked set-ups of ``campaigns/training.toml`` (its ``track_equivariance`` blocks: CNN and MLP on rotated digits under
C4, GNN and EGNN on n-body under E(3), ``small`` presets, one thread) in this process and prints
the median, 90th percentile and maximum over epochs of ``equivariance_cost = probe seconds /
epoch seconds`` (training pass plus evaluation, both measured in the same run). The goal is a
median of at most 5%. Run it on a quiet machine: the digits epochs take about 50 ms, so a busy
machine's scheduling hiccups swing single epochs' shares.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from eqbench.tasks.presets import get_preset, with_overrides
from eqbench.tasks.trainer import TrainConfig, train
from suites.runs import write_report

SETUPS = (("digits-rot", "cnn", "C4"), ("digits-rot", "mlp", "C4"), ("nbody", "gnn", "E3"), ("nbody", "egnn", "E3"))
GOAL = 0.05


def measure(task: str, model: str, group: str, seeds: int, out: Path, epochs: int | None = None) -> list[tuple[float, float]]:
    """``(equivariance_cost, probe seconds)`` of every epoch of ``seeds`` tracked ``small`` runs (``epochs`` overrides the preset's)."""
    rows = []
    preset = with_overrides(get_preset(task, model, "small"), epochs=epochs)
    for seed in range(seeds):
        config = TrainConfig(task, model, preset, seed=seed, device="cpu", out=out, progress=False, track_equivariance=group)
        rows += [(row["equivariance_cost"], row["equivariance_seconds"]) for row in train(config).history]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="runs per set-up (default 2)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the small preset's)")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.seeds < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--seeds and --epochs must be at least 1")
    torch.set_num_threads(1)
    lines = [
        f"| task | model | group | epochs | probe ms (median) | epoch ms (median) | median | p90 | max | median <= {GOAL:.0%} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for task, model, group in SETUPS:
            rows = measure(task, model, group, args.seeds, Path(scratch), args.epochs)
            costs = sorted(cost for cost, _ in rows)
            probe = statistics.median(seconds for _, seconds in rows)
            epoch = statistics.median(seconds / cost for cost, seconds in rows if cost > 0)
            median, p90 = statistics.median(costs), costs[int(0.9 * (len(costs) - 1))]
            lines.append(
                f"| {task} | {model} | {group} | {len(costs)} | {probe * 1e3:.1f} | {epoch * 1e3:.0f} | {median:.1%} | "
                f"{p90:.1%} | {costs[-1]:.1%} | {'yes' if median <= GOAL else 'NO'} |"
            )
            print(lines[-1], flush=True)
    if args.out:
        write_report(args.out, "Cost of --track-equivariance", "suites.tracking_cost", argv, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
