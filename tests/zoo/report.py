"""Write ``reports/self_evaluation.md``: every zoo model checked on seeds 0..19 with default settings.

Run from the repository root::

    PYTHONPATH=tests python -m zoo.report [--seeds 20] [--out reports/self_evaluation.md]

A verdict is wrong when it does not meet the model's truth (``exact`` -> ``exact``; broken ->
``approximate`` or ``violated``; ``error`` -> ``error``); a crash is an exception out of
:func:`eqbench.registry.run_entry` (there should be none: it turns every failure into ``error``).
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

from eqbench.atomic import write_text_atomic
from eqbench.registry import entries, run_entry
from zoo.plugin import SUITE, TRUTH

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "PYTHONPATH=tests python -m zoo.report"


#: What the table counts for a check that raised out of ``run_entry`` (a crash: it must never happen).
CRASH = "crash"


def sweep(seeds: int) -> list[tuple[str, str, str, collections.Counter, int, float]]:
    """Per zoo entry: name, truth, why, verdict counts (``crash`` for an exception), wrong verdicts, seconds per check."""
    rows = []
    for entry in entries(suite=SUITE):
        truth, why = TRUTH[entry.name]
        counts: collections.Counter = collections.Counter()
        wrong = 0
        start = time.perf_counter()
        for seed in range(seeds):
            try:
                verdict = str(run_entry(entry, seed=seed).verdict)
            except Exception:  # noqa: BLE001 - a crash is what this report counts
                verdict = CRASH
            counts[verdict] += 1
            wrong += not entry.matches(verdict)
        rows.append((entry.name, truth, why, counts, wrong, (time.perf_counter() - start) / seeds))
    return rows


def render(rows: list, seeds: int) -> str:
    lines = [
        "# Checker self-evaluation: the adversarial zoo",
        "",
        f"Every model of `tests/zoo` (truth known by construction; each model's docstring says why it is hard) checked "
        f"by `eqbench.registry.run_entry` with default settings on seeds 0..{seeds - 1}. A verdict is wrong when it does "
        "not meet the truth: `exact` -> `exact`; `broken` -> `approximate` or `violated`; `error` -> `error`.",
        "",
        f"Regenerate: `{COMMAND}` (from the repository root). The same sweep runs in CI as `tests/test_zoo.py` (marked slow).",
        "",
        "| model | truth | why it is hard | verdicts over seeds | wrong | s per check |",
        "|---|---|---|---|---:|---:|",
    ]
    for name, truth, why, counts, wrong, seconds in rows:
        verdicts = ", ".join(f"{verdict} {count}" for verdict, count in sorted(counts.items()))
        lines.append(f"| {name} | {truth} | {why} | {verdicts} | {wrong} | {seconds:.2f} |")
    wrong = sum(row[4] for row in rows)
    crashes = sum(row[3][CRASH] for row in rows)
    lines += [
        "",
        f"{len(rows)} models, {len(rows) * seeds} checks, {wrong} wrong verdicts, {crashes} crashes. Seconds per check "
        "were measured on the machine that wrote this file, one torch thread, and vary with its load.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "self_evaluation.md")
    args = parser.parse_args()
    text = render(sweep(args.seeds), args.seeds)
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
