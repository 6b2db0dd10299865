"""Provenance of a results file: eqbench and torch versions, the git commit, the machine and the creation time.

Every JSON results file eqbench writes (``eqbench check --json``, campaign outputs) starts with
these fields, as pytest-benchmark records them, so a result can be traced to the code and the
machine that produced it (the shape is documented in :mod:`eqbench.cli.output`).
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def run_header() -> dict[str, Any]:
    """The provenance fields of a results file: versions, git commit, machine and creation time (module docstring)."""
    import torch

    from eqbench import __version__

    return {
        "eqbench_version": __version__,
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "machine": {
            "node": platform.node(),
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(),
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def git_commit(folder: Path | None = None) -> str | None:
    """``HEAD`` of the git repository around ``folder`` (default: the current folder), ``None`` outside one or without git."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
