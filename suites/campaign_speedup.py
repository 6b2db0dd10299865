"""Campaign speed: a local process pool against serial, and a cached re-run against the run that filled the cache.

Run from the repository root on a quiet machine (the ratios compare wall-clock times)::

    python -m suites.campaign_speedup [--models 17] [--seeds 0-19] [--workers 2] [--out reports/campaign_speedup.md]

Campaign: the first ``--models`` models of the default suite by name (17: the controls, the
frame-averaging models and two L-conv models) x ``--seeds``, each check as ``eqbench check``
runs it. Three runs, in one process, each timed from planning (building each model once for its
cache key) to the last record:

1. ``serial`` in this process with one intra-op thread (the fastest serial setting on a small
   machine: the issue measured 726 s with torch's default threads against 185 s with one), no cache;
2. ``process`` with ``--workers`` spawned workers (one thread each), into an empty cache;
3. the same ``process`` run again: every result should come from the cache.

Printed: the three times, ``serial / process`` (target >= 1.7 with 2 workers on 2 cores) and
``process / cached`` (target >= 20), whether run 3 was all cached, and whether the three runs
gave the same verdicts; the load average before and after, to judge how quiet the machine was.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from eqbench import registry
from eqbench.campaign.campaigns import CampaignSettings, run_checks
from eqbench.campaign.spec import parse_seeds
from suites.runs import write_report

SERIAL_TARGET = 1.7
CACHED_TARGET = 20.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=17, help="how many default-suite models, by name (default 17)")
    parser.add_argument("--seeds", default="0-19", help="seed range (default 0-19)")
    parser.add_argument("--workers", type=int, default=2, help="process-pool workers (default 2)")
    parser.add_argument("--out", type=Path, help="also write the printed lines to this markdown file")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    registry.load_all()
    entries = registry.entries(suite=registry.DEFAULT_SUITE)[: args.models]
    seeds = parse_seeds(args.seeds)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="eqbench-speedup-") as cache:
        runs = {
            "serial": CampaignSettings(executor="serial", use_cache=False, progress=False),
            "process": CampaignSettings(executor="process", workers=args.workers, cache_dir=Path(cache), progress=False),
            "cached": CampaignSettings(executor="process", workers=args.workers, cache_dir=Path(cache), progress=False),
        }
        seconds, outcomes = {}, {}
        for name, settings in runs.items():
            started = time.perf_counter()
            outcomes[name] = run_checks(entries, seeds, settings)
            seconds[name] = time.perf_counter() - started
    load_after = os.getloadavg()

    verdicts = {name: [(o.record["model"], o.record["seed"], o.record["verdict"]) for o in found] for name, found in outcomes.items()}
    serial_ratio = seconds["serial"] / seconds["process"]
    cached_ratio = seconds["process"] / seconds["cached"]
    lines = [
        f"{len(entries)} models x {len(seeds)} seeds = {len(entries) * len(seeds)} checks; {os.cpu_count()} cores; torch {torch.__version__}",
        f"models: {', '.join(e.name for e in entries)}",
        f"load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}; after {', '.join(f'{x:.2f}' for x in load_after)}",
        "",
        f"serial (1 thread):          {seconds['serial']:8.1f} s",
        f"process ({args.workers} workers):        {seconds['process']:8.1f} s",
        f"process again, cached:      {seconds['cached']:8.1f} s",
        "",
        f"serial / process = {serial_ratio:.2f}x (target >= {SERIAL_TARGET}x)",
        f"process / cached = {cached_ratio:.1f}x (target >= {CACHED_TARGET:.0f}x)",
        f"every result of the re-run cached: {all(o.cached for o in outcomes['cached'])}",
        f"same verdicts in all three runs: {verdicts['serial'] == verdicts['process'] == verdicts['cached']}",
        f"failed checks (worker died or raised): {sum(o.failed for found in outcomes.values() for o in found)}",
    ]
    print("\n".join(lines))
    if args.out is not None:
        write_report(args.out, "Campaign speed-up", "suites.campaign_speedup", argv, lines)
    ok = serial_ratio >= SERIAL_TARGET and cached_ratio >= CACHED_TARGET and verdicts["serial"] == verdicts["process"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
