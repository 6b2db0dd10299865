"""suites/lieconv_ratios runs end to end in --quick mode against the STORED reference figures and says so.

No timing is asserted (the speed and memory targets live in the script). The script runs as
``python -m suites.lieconv_ratios`` from the repository root, as its docstring tells users to;
one torch thread keeps the smoke run fast on a shared 2-core machine. The live-reference
mode is tested with a fake reference in ``test_lieconv_live_reference.py``.
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
STORED_SECONDS = {"forward": [0.87, 0.85, 1.30, 0.23], "forward+backward": [1.30, 1.38, 3.43, 0.43]}
#: the stored peaks 2.3, 2.3, 2.8, 1.35 were written as MiB / 1000: in GB (10^9 bytes) they are
STORED_PEAKS_GB = [2.41, 2.41, 2.94, 1.42]


@pytest.mark.slow
def test_lieconv_ratios_quick_against_stored_figures(tmp_path):
    report = tmp_path / "lieconv.md"
    completed = subprocess.run(
        [sys.executable, "-m", "suites.lieconv_ratios", "--quick", "--rounds", "1", "--threads", "1", "--out", str(report)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300, check=False,
    )
    out = completed.stdout
    assert completed.returncode == 0, f"{out}\n{completed.stderr}"
    assert "STORED figures of ../shared/ANCHORS.md" in out and "NOT a live run" in out
    time_section, rest = out.split("## Peak memory (GB")
    memory_section, above_section = rest.split("## Peak memory above the imports")
    row = rf"\| ({'|'.join(WORKLOADS)}) +\| (forward|forward\+backward) +\| ({NUMBER}) +"
    time_rows = re.findall(row + rf"\| ({NUMBER}) +\| ({NUMBER}) +\| ({NUMBER}) +\| (yes|no) +\|", time_section)
    memory_rows = re.findall(row + r"\| ([0-9.]+|n/a) +\| ([0-9.]+|n/a) +\| (yes|no|n/a) +\|", memory_section)
    assert [r[:2] for r in time_rows] == [(w, m) for w in WORKLOADS for m in STORED_SECONDS], out
    for name, mode, ours, cpu, stored, ratio, met in time_rows:
        assert float(cpu) > 0 and float(stored) == STORED_SECONDS[mode][WORKLOADS.index(name)]
        assert float(ratio) == pytest.approx(float(ours) / float(stored), abs=0.01)
        assert (met == "yes") == (float(ratio) <= 0.5)
    assert [r[:2] for r in memory_rows] == [r[:2] for r in time_rows], out
    for name, mode, ours, stored, ratio, met in memory_rows:
        if mode == "forward":  # no stored forward peak
            assert (stored, ratio, met) == ("n/a", "n/a", "n/a")
            continue
        assert float(stored) == STORED_PEAKS_GB[WORKLOADS.index(name)]
        assert float(ratio) == pytest.approx(float(ours) / float(stored), abs=0.01)
    assert re.search(rf"T\(2\) / SO\(2\) seconds: forward ours {NUMBER}; forward\+backward ours {NUMBER}", out), out
    above_rows = re.findall(row + r"\| (n/a) +\| (n/a) +\| (n/a) +\|", above_section)  # nothing stored to compare with
    assert [r[:2] for r in above_rows] == [r[:2] for r in time_rows], out
    assert re.search(r"targets met \(median ratio <= 0.5\): time \d/8, peak memory \d/4, peak memory above the imports 0/0", out), out
    assert "quick mode" in out
    text = report.read_text()
    assert text.startswith("# LieConv vs the reference LieConv") and "--quick" in text and "## Time" in text
