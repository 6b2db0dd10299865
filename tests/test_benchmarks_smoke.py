"""The ratio scripts under suites/ run end to end in their --quick mode and print their ratios.

No timing is asserted (speed goals live in the scripts themselves); these tests only guard
against the scripts rotting as the checker, groups and actions change. Each script runs as
``python -m suites.<name>`` from the repository root, as its docstring tells users to.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RATIO = r"\d+\.\d+"


def run_script(module: str, *args: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, f"{module} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


@pytest.mark.slow
def test_checker_overhead_prints_ratios():
    out = run_script("suites.checker_overhead", "--threads", "1")
    rows = re.findall(rf"\| search_examples=(\d+) +\| exact .*\| ({RATIO}) +\|", out)
    assert [examples for examples, _ in rows] == ["0", "2"], out
    assert all(float(ratio) > 0 for _, ratio in rows)
    assert re.search(rf"worst overhead ratio {RATIO}", out), out
    # the replayed baseline includes the noise floor's float64 pass over the 4 inputs
    assert "4xfloat64, 68xfloat32" in out, out


@pytest.mark.slow
def test_e3nn_comparison_prints_ratios_and_writes_report(tmp_path):
    report = tmp_path / "e3nn.md"
    out = run_script("suites.e3nn_comparison", "--threads", "1", "--out", str(report))
    throughput = re.findall(rf"\| (TensorProduct|Gate network|cartesian_points)[^|]*\|.*\| ({RATIO})x +\| ({RATIO})x +\|", out)
    assert [name for name, _, _ in throughput] == ["TensorProduct", "Gate network", "cartesian_points"], out
    # e3nn's per-call element counts, as its source says: 2 parities, x2 translations for cartesian_points
    assert re.search(r"\| TensorProduct[^|]*\| 2 / 4 / ", out) and re.search(r"\| cartesian_points[^|]*\| 4 / 8 / ", out), out
    # neither tool raises a false alarm on the unperturbed models; both flag the largest perturbation
    assert len(re.findall(r"\| 0\.0e\+00 +\| 0/1 +\| 0/1 +\|", out)) == 3, out
    assert len(re.findall(r"\| 1\.0e\+00 +\| 1/1 +\| 1/1 +\|", out)) == 3, out
    text = report.read_text()
    assert text.startswith("# eqbench vs e3nn") and "## Sensitivity" in text
