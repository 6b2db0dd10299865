"""The tracker's probe timed in a warm loop: what one ``--track-equivariance`` probe costs without an epoch around it.

    python -m suites.probe_time [--models mlp cnn] [--repeats 1000]

For each model of the digits set-up of :mod:`suites.tracking_cost` (``digits-rot`` under C4,
``small`` preset, one thread) it builds the run's data, model and tracker as the trainer does,
puts the model in eval mode (as the trainer's evaluation leaves it) and times ``repeats`` probes,
each after an in-place nudge of every parameter (as an optimiser step does, so that the float64
twin is refreshed every time, as after an epoch). Prints the median and the minimum in
milliseconds. Right after a real epoch the probe runs slower (cold caches);
:mod:`suites.tracking_cost` measures that share.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import torch

from eqbench.tasks.checkpoint import seed_everything
from eqbench.tasks.presets import get_preset
from eqbench.tasks.registry import get_task
from eqbench.tasks.trainable import build_model
from eqbench.tasks.tracking import EquivarianceTracker

TASK = "digits-rot"


def probe_seconds(model_name: str, repeats: int) -> list[float]:
    """Seconds of ``repeats`` warm probes of ``model_name`` on ``digits-rot`` under C4 (the tracked run's data, model and tracker)."""
    preset = get_preset(TASK, model_name, "small")
    seed_everything(0)
    data = get_task(TASK).build(preset.data, None)
    model = build_model(TASK, model_name, preset.model, data, torch.Generator().manual_seed(0)).eval()
    tracker = EquivarianceTracker.for_task(TASK, data, "C4", torch.device("cpu"))
    tracker.measure(model, 1.0)  # the first probe also repeats the forward pass and copies the twin
    seconds = []
    for _ in range(repeats):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1e-6)
        started = time.perf_counter()
        tracker.measure(model, 1.0)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], help="digits models to probe (default: mlp cnn)")
    parser.add_argument("--repeats", type=int, default=1000, help="timed probes per model (default 1000)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(1)
    for model_name in args.models:
        seconds = probe_seconds(model_name, args.repeats)
        print(f"{TASK} {model_name}: warm probe median {statistics.median(seconds) * 1e3:.3f} ms, "
              f"min {min(seconds) * 1e3:.3f} ms ({args.repeats} probes)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
