"""suites/lieconv_ratios runs end to end in --quick mode, prints consistent ratios and writes its report.

No timing is asserted (the speed and memory targets live in the script). The script runs as
``python -m suites.lieconv_ratios`` from the repository root, as its docstring tells users to;
one torch thread keeps the smoke run fast on a shared 2-core machine.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"\d+\.\d+"
WORKLOADS = ["rotmnist-so2", "rotmnist-t2", "qm9-t3-k1536", "qm9-t3-k256"]


def table_row(numbers: int) -> str:
    """A markdown row: a workload's name, ``numbers`` decimals, then the target verdict."""
    return r"\| (" + "|".join(WORKLOADS) + r") +" + "".join(rf"\| ({NUMBER}) +" for _ in range(numbers)) + r"\| (yes|no) +\|"



@pytest.mark.slow
def test_lieconv_ratios_quick_prints_ratios_and_writes_report(tmp_path):
    report = tmp_path / "lieconv.md"
    completed = subprocess.run(
        [sys.executable, "-m", "suites.lieconv_ratios", "--quick", "--threads", "1", "--out", str(report)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=240, check=False,
    )
    out = completed.stdout
    assert completed.returncode == 0, f"{out}\n{completed.stderr}"
    time_section, memory_section = out.split("## Peak memory")
    time_rows = re.findall(table_row(8), time_section)
    memory_rows = re.findall(table_row(5), memory_section)
    assert [row[0] for row in time_rows] == WORKLOADS and [row[0] for row in memory_rows] == WORKLOADS, out
    for _, forward, forward_cpu, ref_forward, forward_ratio, both, both_cpu, ref_both, both_ratio, met in time_rows:
        assert float(forward_cpu) > 0 and float(both_cpu) > 0
        # each ratio is the measured figure over the reference's, and the verdict follows the 0.5 target
        assert float(forward_ratio) == pytest.approx(float(forward) / float(ref_forward), abs=0.01)
        assert float(both_ratio) == pytest.approx(float(both) / float(ref_both), abs=0.01)
        assert (met == "yes") == (float(both) / float(ref_both) <= 0.5)
    assert [float(row[3]) for row in time_rows] == [0.87, 0.85, 1.30, 0.23]  # the reference's forward seconds
    for _, before, forward_peak, both_peak, ref_peak, ratio, met in memory_rows:
        assert 0 < float(before) <= float(forward_peak) <= float(both_peak)
        assert float(ratio) == pytest.approx(float(both_peak) / float(ref_peak), abs=0.01)
    assert re.search(rf"T\(2\) / SO\(2\): forward {NUMBER}, forward \+ backward {NUMBER} here \(reference 0\.98, 1\.06\)", out), out
    assert re.search(r"targets met: time \d/4, memory \d/4", out) and "quick mode" in out, out
    text = report.read_text()
    assert text.startswith("# LieConv vs the reference LieConv") and "--quick" in text and "## Time" in text
