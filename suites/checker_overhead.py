"""The checker's overhead: ``check_equivariance`` against the bare forward passes it needs.

Run from the repository root (``--quick`` for a seconds-long smoke run)::

    python -m suites.checker_overhead [--quick] [--points 32] [--hidden 256] [--rounds 7] [--threads N] [--profile]
                                     [--out reports/checker_overhead.md]

Model: :class:`~eqbench.models.controls.DistanceMLP` (an MLP on all pairwise distances,
E(3) x S_n invariant), by default 256 hidden units (~134k parameters) on 32 points, so the
forward pass dominates. Group ``E(3) x S_n``, input ``Points``, output ``Invariant``.

"Bare forward passes" are measured, not guessed: one check per configuration runs first
with a forward pre-hook that records every model call (its input tensors and their dtype);
the baseline then replays exactly those calls (same inputs, batch sizes and dtypes: the
stacked float32 pass over inputs and transformed inputs, the float64 noise-floor pass over
the inputs, the search's batches) through the plain model, and through a float64 copy for
the float64 calls, under ``torch.no_grad()`` as the checker runs them. Everything else the
checker does (sampling, transforming in float64, casting, validating, error tables, the
hypothesis machinery, the float64 parameter swap) is the overhead.

Timing: check and baseline alternate in the same run (:mod:`suites.timing`), so each round's
check and replay run back to back on the same machine state. Two ratios per configuration:

* **check / in model** (the target's measure): each timed check also records, through the same
  hooks, the wall seconds spent inside the model's calls (its float64 twin's included); the ratio
  is the check's time over that part of it, the median over rounds (range beside it). Everything
  the checker does outside the model's forward passes is the overhead, and both times come from
  the same call, so load that drifts between calls cancels.
* **check / replay**: the check's time over the bare replay's in the same round, the median of the
  per-round ratios. It also catches a model running slower inside the check than alone (cache,
  thread wake-up after the checker's Python), which the split cannot see; "in model / replay"
  shows that factor by itself. Between calls a second apart the shared host's load moves the
  replay ratio by tens of percent (measured 2026-12-06: 0.76 to 1.08 over consecutive runs of the
  same code, per-round 0.6 to 1.8), so it is printed as a cross-check, not judged.

Target 1.1x on the split; above 1.3x is a defect, and the script then profiles one check (cProfile)
and prints where the time outside the model goes.

Allocator: a search batch (17 rows) allocates about 17 MB of activations per layer; glibc
may hand them back to the OS after the call (heap trimming), and whether the next call pays the
page faults again depends on what else sits on the heap, so the bare replay and the check's own
passes pay them by chance (measured: bare medians from 1.2 s to 2.5 s between runs of the same
configuration, ratios from 0.94 to 1.26). By default the script therefore pins the allocator
(:mod:`suites.runs`, ``mallopt`` keeps freed memory in the process), so that both
sides run without page faults and the ratio measures the checker's CPU work; ``--allocator
default`` leaves glibc as it is (the header then names any ``MALLOC_*`` environment settings).
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tabulate import tabulate
from torch import nn

from eqbench.actions import Invariant
from eqbench.check import check_equivariance
from eqbench.groups import E3, Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DistanceMLP
from suites.runs import add_allocator_option, apply_allocator, write_report
from suites.timing import interleaved_samples, paired_ratios

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.1
DEFECT = 1.3


@dataclass
class RecordedCall:
    """One forward call of the model as the checker made it: positional inputs and their dtype."""

    args: tuple[torch.Tensor, ...]
    dtype: torch.dtype


@dataclass
class Instrument:
    """Hooks on the model: record each call's inputs while ``recording``; pause ``profiler`` inside the model.

    Installed with :meth:`attach` through plain functions: the checker's float64 twin is a
    ``deepcopy`` of the model, which shares functions (so the twin reports here too) but would
    copy an object hook and lose what it records.
    """

    calls: list[RecordedCall] = field(default_factory=list)
    recording: bool = False
    profiler: cProfile.Profile | None = None
    #: While ``timing``, the wall seconds spent inside the model's calls accumulate in ``inside``.
    timing: bool = False
    inside: float = 0.0
    entered: float = 0.0

    def attach(self, model: nn.Module) -> None:
        model.register_forward_pre_hook(lambda module, args: self.before(args))
        model.register_forward_hook(lambda module, args, output: self.after())

    def before(self, args: tuple[Any, ...]) -> None:
        if self.profiler is not None:
            self.profiler.disable()
        if self.recording:
            tensors = tuple(a.detach().clone() for a in args)
            self.calls.append(RecordedCall(tensors, tensors[0].dtype))
        if self.timing:
            self.entered = time.perf_counter()

    def after(self) -> None:
        if self.timing:
            self.inside += time.perf_counter() - self.entered
        if self.profiler is not None:
            self.profiler.enable()

    def timed(self, check: Callable[[], Any], inside: list[float]) -> Callable[[], Any]:
        """``check``, appending the seconds it spent inside the model to ``inside`` at each call."""

        def call() -> Any:
            self.inside, self.timing = 0.0, True
            try:
                return check()
            finally:
                self.timing = False
                inside.append(self.inside)

        return call


def replay(model: nn.Module, model64: nn.Module, calls: list[RecordedCall]) -> None:
    """The bare forward passes: every recorded call through the plain model (float64 copy for float64 calls)."""
    with torch.no_grad():
        for call in calls:
            (model64 if call.dtype == torch.float64 else model)(*call.args)


def instrumented_model(hidden: int) -> tuple[nn.Module, nn.Module, Instrument]:
    """The seeded DistanceMLP (``hidden`` units, 8 outputs), its float64 copy and the recording hooks on it."""
    torch.manual_seed(0)
    model = DistanceMLP(hidden=hidden, out_features=8).eval()
    model64 = copy.deepcopy(model).double()
    instrument = Instrument()
    instrument.attach(model)
    return model, model64, instrument


def measure_overhead(check: Callable[[], Any], model: nn.Module, model64: nn.Module, instrument: Instrument,
                     rounds: int) -> tuple[Any, list[RecordedCall], dict[str, list[float]]]:
    """Record one check's model calls, then time the check and the bare replay of those calls side by side.

    Returns the check's result, the recorded calls and the per-round seconds
    ``{"check": [...], "bare": [...], "inside": [...]}`` (:func:`suites.timing.interleaved_samples`;
    ``inside`` is the part of each timed check spent inside the model's calls, its float64 twin's
    included): the replay ratio of round ``r`` is ``check[r] / bare[r]``, the in-check split
    ``check[r] / inside[r]``.
    """
    instrument.calls, instrument.recording = [], True
    result = check()
    instrument.recording = False
    calls = instrument.calls
    inside: list[float] = []
    samples = interleaved_samples(
        {"check": instrument.timed(check, inside), "bare": lambda: replay(model, model64, calls)}, rounds=rounds
    )
    return result, calls, {**samples, "inside": inside[-rounds:]}


def build_checks(model: nn.Module, points: int, examples: list[int]) -> dict[str, Callable[[], Any]]:
    """One check per ``search_examples`` value, same seed and inputs (4 inputs x 16 elements)."""
    group = E3() * Symmetric()
    inputs = PointCloudInputs(min_points=points, max_points=points, degenerate=())

    def check(search: int) -> Callable[[], Any]:
        return lambda: check_equivariance(
            model, group, inputs, inputs.action, Invariant(), expected="exact", seed=0, search_examples=search
        )

    return {f"search_examples={n}": check(n) for n in examples}


def profile_overhead(check: Callable[[], Any], instrument: Instrument, limit: int = 20) -> str:
    """cProfile of one check with the profiler paused inside the model: where the overhead goes.

    Returns a table of own time per area (hypothesis, eqbench.check, eqbench.actions, ...) and
    the ``limit`` functions with the most own time.
    """
    profiler = instrument.profiler = cProfile.Profile()
    profiler.enable()
    check()
    profiler.disable()
    instrument.profiler = None
    stats = pstats.Stats(profiler)
    areas: dict[str, float] = {}
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("site-packages/")[-1].removeprefix(str(ROOT) + "/")
        area = area_of(where, function)
        areas[area] = areas.get(area, 0.0) + own
        rows.append((own, cumulative, calls, f"{where}:{line}({function})"))
    rows.sort(reverse=True)
    total = sum(areas.values())
    by_area = sorted(areas.items(), key=lambda item: -item[1])
    area_table = [[name, f"{own * 1e3:.1f}", f"{own / total:.0%}"] for name, own in by_area]
    top = [[f"{own * 1e3:.2f}", f"{cum * 1e3:.2f}", calls, where] for own, cum, calls, where in rows[:limit]]
    return (
        f"time outside the model: {total * 1e3:.1f} ms\n"
        + tabulate(area_table, headers=["area", "own ms", "share"], tablefmt="github", disable_numparse=True)
        + "\n\n"
        + tabulate(top, headers=["own ms", "cumulative ms", "calls", "function"], tablefmt="github", disable_numparse=True)
    )


def area_of(where: str, function: str) -> str:
    """Who spent the time: ``hypothesis``, ``eqbench/check``, ``torch ops``, ``python stdlib``, ..."""
    if where == "~":
        return "torch ops" if "torch" in function else "python builtins"
    if where.startswith("/"):
        return "python stdlib"
    parts = where.split("/")
    return "/".join(parts[:2]).removesuffix(".py") if parts[0] == "eqbench" else parts[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and few rounds: checks the script runs")
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--search-examples", type=int, default=40, help="search size of the second configuration")
    parser.add_argument("--profile", action="store_true", help="profile even when the ratio is below the defect line")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="also write the output as markdown here")
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.points, args.hidden, args.rounds, args.search_examples = 8, 8, 1, 2

    model, model64, instrument = instrumented_model(args.hidden)
    parameters = sum(p.numel() for p in model.parameters())
    header = (f"DistanceMLP hidden={args.hidden} ({parameters:,} parameters), {args.points} points, "
              f"E(3) x S_n, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds, "
              f"{allocator}")

    checks = build_checks(model, args.points, [0, args.search_examples])
    rows, worst = [], (0.0, "")
    for label, check in checks.items():
        result, calls, samples = measure_overhead(check, model, model64, instrument, args.rounds)
        replayed = paired_ratios(samples["check"], samples["bare"])
        split = paired_ratios(samples["check"], samples["inside"])
        in_check = paired_ratios(samples["inside"], samples["bare"])
        check_ms, bare_ms, inside_ms = (statistics.median(samples[side]) * 1e3 for side in ("check", "bare", "inside"))
        batches = sorted({(c.args[0].shape[0], str(c.dtype).removeprefix("torch.")) for c in calls})
        rows.append([
            label, result.verdict.value, result.n_elements, len(calls), ", ".join(f"{b}x{d}" for b, d in batches),
            f"{check_ms:.1f}", f"{inside_ms:.1f}", f"{bare_ms:.1f}",
            f"{statistics.median(split):.3f} ({min(split):.3f}-{max(split):.3f})",
            f"{statistics.median(replayed):.3f} ({min(replayed):.3f}-{max(replayed):.3f})",
            f"{statistics.median(in_check):.3f}",
        ])
        worst = max(worst, (statistics.median(split), label))
    table = tabulate(rows, headers=["config", "verdict", "elements", "forwards", "batch sizes x dtype", "check ms",
                                    "in model ms", "bare ms", "ratio: check / in model (range)",
                                    "ratio: check / replay (range)", "in model / replay"],
                     tablefmt="github", disable_numparse=True)
    lines = [header, "", table, ""]
    ratio, label = worst
    if args.quick:
        lines.append(f"worst overhead ratio {ratio:.3f} ({label}): quick mode times a tiny model, so this ratio is "
                     "fixed per-check cost, not the overhead on a mid-size model (run without --quick)")
    else:
        status = "meets the target" if ratio <= TARGET else ("within the defect line" if ratio <= DEFECT else "DEFECT")
        lines.append(f"worst overhead ratio {ratio:.3f} ({label}): target {TARGET}x, defect above {DEFECT}x -> {status}")
    if (ratio > DEFECT and not args.quick) or args.profile:
        lines += ["", (f"Profile of one check ({label}), profiler paused inside the model "
                       "(cProfile inflates call-heavy Python such as hypothesis relative to torch kernels):"), "",
                  profile_overhead(checks[label], instrument)]
    print("\n".join(lines))
    if args.out is not None:
        write_report(args.out, "Checker overhead", "suites.checker_overhead", argv, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
