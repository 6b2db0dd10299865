"""Side-by-side timing for the ratio scripts: interleaved rounds, medians.

The machine's run-to-run spread is about +-30% (see ../shared/ANCHORS.md), so two things
are only compared when timed in the same run, alternately: each round calls every candidate
once, in an order that rotates from round to round, and each candidate's time is the median
over rounds. Ratios of such medians are stable where absolute times are not.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import time
from typing import Callable, Mapping

#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`pin_allocator` gives them.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
PINNED = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 256 * 2**20}


def pin_allocator() -> str:
    """Keep freed memory in the process (glibc ``mallopt``), so timings do not pay page faults by chance.

    With glibc's defaults a forward pass's activations of a few MB go back to the OS after the
    call, and whether the next call pays the page faults again depends on the heap's layout:
    two sides of a ratio then pay them by chance (measured on the checker's overhead: ratios
    from 0.94 to 1.26 for the same code). Allocations up to 32 MB come from the heap, which is
    never trimmed and grows by 256 MB at a time. Returns what was set, or why nothing was.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return f"glibc malloc not found ({name}): allocator left as it is"
    refused = [parameter for parameter, value in PINNED.items() if mallopt(parameter, value) != 1]
    if refused:
        return f"mallopt refused parameter(s) {refused}: allocator partly pinned"
    return "glibc malloc pinned (mmap threshold 32 MB, no trimming, top pad 256 MB)"


def interleaved_samples(
    candidates: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall seconds of one call of each candidate in each of ``rounds`` interleaved rounds (after ``warmup``).

    Round ``r`` calls every candidate once, the order rotated by ``r``; sample ``r`` of two
    candidates were taken back to back, so their ratio shares the machine's state of that moment.
    """
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
    return samples


def interleaved_medians(candidates: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of one call of each candidate over ``rounds`` interleaved rounds (after ``warmup``)."""
    return {name: statistics.median(values) for name, values in interleaved_samples(candidates, rounds, warmup).items()}


def paired_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """Round-by-round ratios of two candidates' samples from :func:`interleaved_samples`."""
    return [a / b for a, b in zip(numerator, denominator)]
