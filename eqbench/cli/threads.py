"""How many intra-op threads torch uses for a command: ``--threads``, else a default that does not oversubscribe.

torch's default (one thread per physical core) assumes the machine is idle. OpenMP worker
threads spin while they wait, so on a machine that is already busy every extra thread takes a
core from another process and gets it back late: on two shared cores the same 17-model x
20-seed ``eqbench check`` took 726 s with torch's default and 185 s with one thread (issue 8).
The checks' tensors are small (the reference models check in about a second on one core), so a
thread only pays where a core would otherwise sit idle. The default is therefore the number of
*free* CPUs: those this process may run on (``os.sched_getaffinity``) less the load the other
processes put on them (the one-minute load average), at least 1 and at most
:data:`MAX_DEFAULT_THREADS`. When several checks run at once (one process each, as under
``pytest -n N --eqbench``), each runs on one thread (the pytest plugin sets it). ``OMP_NUM_THREADS`` set in the environment is
honoured as the user's choice when ``--threads`` is not given.
"""
from __future__ import annotations

import argparse
import os

#: The default never exceeds this: beyond a few threads, small forward passes only lose time to synchronisation.
MAX_DEFAULT_THREADS = 4


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch intra-op threads (default: :func:`default_threads`)."""
    from eqbench.cli import int_at_least

    parser.add_argument(
        "--threads",
        type=int_at_least(1, "positive"),
        metavar="N",
        help="torch intra-op threads (default: the free CPUs, at most 4; OMP_NUM_THREADS if set)",
    )


def available_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Free CPUs: ``cpus`` (default :func:`available_cpus`) less the rounded one-minute ``load``, clipped to ``[1, MAX_DEFAULT_THREADS]``."""
    cpus = available_cpus() if cpus is None else cpus
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(MAX_DEFAULT_THREADS, cpus - round(load)))


def choose_threads(requested: int | None) -> int | None:
    """``requested``; else ``None`` (keep torch's setting) when ``OMP_NUM_THREADS`` is set; else :func:`default_threads`."""
    if requested is not None:
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return default_threads()


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op threads by :func:`choose_threads`; returns the number in use."""
    import torch

    chosen = choose_threads(requested)
    if chosen is not None:
        torch.set_num_threads(chosen)
    return torch.get_num_threads()
