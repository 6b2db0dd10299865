"""Side-by-side timing for the ratio scripts: interleaved rounds, medians.

The machine's run-to-run spread is about +-30% (see ../shared/ANCHORS.md), so two things
are only compared when timed in the same run, alternately: each round calls every candidate
once, in an order that rotates from round to round, and each candidate's time is the median
over rounds. Ratios of such medians are stable where absolute times are not.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping


def interleaved_medians(candidates: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of one call of each candidate over ``rounds`` interleaved rounds (after ``warmup``)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            candidates[name]()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}
