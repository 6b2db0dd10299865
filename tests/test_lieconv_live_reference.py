"""The live-reference harness of suites/lieconv_ratios, without the reference: a fake ``lie_conv`` checkout stands in.

What is checked: the children of the two sides run back to back in every round, the first
alternating and the (workload, mode) pairs rotating; ratios pair the sides round by round;
the stored peaks are converted from the MiB / 1000 they were written in; a wrong
``--reference`` path is refused in one line; and one end-to-end run with the fake reference
reports a live column whose ratios are its figures' quotients (the fake reference sleeps
50 ms per call, which its figures must show).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from suites import lieconv_ratios
from suites.lieconv_ratios import MODES, Sides, measure_rounds, ratios, workloads

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"\d+\.\d+"

FAKE_MODULES = {
    "__init__.py": "",
    "lieGroups.py": "class SO2:\n    def __init__(self, alpha): self.alpha = alpha\n\n"
                    "class T:\n    def __init__(self, k): self.k = k\n",
    "datasets.py": "import torch\n\nclass RandomRotateTranslate(torch.nn.Module):\n"
                   "    def __init__(self, max_trans): super().__init__()\n    def forward(self, x): return x\n",
    "lieConv.py": "import time, torch\n\nclass ImgLieResnet(torch.nn.Module):\n"
                  "    def __init__(self, chin, num_targets, group, **options):\n"
                  "        super().__init__(); self.linear = torch.nn.Linear(chin, num_targets)\n"
                  "    def forward(self, images):\n        time.sleep(0.05); return self.linear(images.mean((2, 3)))\n",
    "moleculeTrainer.py": "import time, torch\n\nclass MolecLieResNet(torch.nn.Module):\n"
                          "    def __init__(self, species, charge_scale, aug, group, **options):\n"
                          "        super().__init__(); self.linear = torch.nn.Linear(species, 1)\n"
                          "    def forward(self, mb):\n        time.sleep(0.05); return self.linear(mb['one_hot'].mean(1)).squeeze(-1)\n",
}


@pytest.fixture
def fake_reference(tmp_path: Path) -> Path:
    package = tmp_path / "fake-lieconv" / "lie_conv"
    package.mkdir(parents=True)
    for name, text in FAKE_MODULES.items():
        (package / name).write_text(text)
    return package.parent


def test_sides_alternate_within_rounds_and_pairs_rotate(monkeypatch, tmp_path):
    calls: list[tuple[str, str, str]] = []

    def fake_child(sides, side, request, timeout=0):
        calls.append((request["workload"]["name"], request["mode"], side))
        return {"seconds": [1.0 if side == "ours" else 4.0], "cpu": [1.0], "peak": 1e9, "before": 1e8}

    monkeypatch.setattr(lieconv_ratios, "run_child", fake_child)
    chosen = workloads(quick=True)[:2]
    batches = {w.name: tmp_path / "batch.pt" for w in chosen}
    results = measure_rounds(chosen, Sides(tmp_path), 3, 1, 0, 1, batches)
    pairs = [(w.name, m) for w in chosen for m in MODES]
    per_round = [calls[i : i + 2 * len(pairs)] for i in range(0, len(calls), 2 * len(pairs))]
    assert len(per_round) == 3
    for index, round_calls in enumerate(per_round):
        firsts = round_calls[0::2]
        assert [(a, b) for a, b, _ in firsts] == pairs[index:] + pairs[:index]  # the pairs rotate
        for first, second in zip(round_calls[0::2], round_calls[1::2]):
            assert first[:2] == second[:2]  # both sides of a pair back to back
            assert first[2] == ("ours" if index % 2 == 0 else "reference") and second[2] != first[2]
    assert all(len(figures) == 3 for figures in results.values()) and len(results) == 2 * len(pairs)
    # without a reference only ours runs
    calls.clear()
    measure_rounds(chosen, Sides(None), 1, 1, 0, 1, batches)
    assert {side for _, _, side in calls} == {"ours"}


def test_ratios_pair_rounds_and_stored_peaks_are_converted():
    ours = [{"seconds": 1.0}, {"seconds": 3.0}]
    reference = [{"seconds": 2.0}, {"seconds": 4.0}]
    assert ratios(ours, reference, "seconds") == [0.5, 0.75]
    assert ratios(ours, reference[::-1], "seconds") != [0.5, 0.75]  # negative control: the pairing is by round
    assert ratios(ours, 2.0, "seconds") == [0.5, 1.5]
    stored = lieconv_ratios.STORED["rotmnist-so2"]
    assert stored.peak_bytes == pytest.approx(2.3 * 1000 * 2**20) and stored.peak_bytes / 1e9 == pytest.approx(2.41, abs=0.005)


def test_a_reference_path_without_lieconv_is_refused(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "suites.lieconv_ratios", "--quick", "--reference", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 2 and "no lie_conv/lieConv.py there" in completed.stderr


def test_live_run_against_a_fake_reference(fake_reference, tmp_path):
    report = tmp_path / "live.md"
    completed = subprocess.run(
        [sys.executable, "-m", "suites.lieconv_ratios", "--quick", "--rounds", "1", "--threads", "1", "--workloads",
         "rotmnist-so2", "--reference", str(fake_reference), "--out", str(report)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=240, check=False,
    )
    out = completed.stdout
    assert completed.returncode == 0, f"{out}\n{completed.stderr}"
    assert "reference: live from" in out and "STORED" not in out
    time_section, rest = out.split("## Peak memory (GB")
    memory_section, above_section = rest.split("## Peak memory above the imports")
    time_rows = re.findall(rf"\| rotmnist-so2 +\| (forward|forward\+backward) +\| ({NUMBER}) +\| {NUMBER} +\| ({NUMBER}) +\| ({NUMBER}) +\| (yes|no)", time_section)
    memory_rows = re.findall(rf"\| rotmnist-so2 +\| (forward|forward\+backward) +\| ({NUMBER}) +\| ({NUMBER}) +\| ({NUMBER}) +\| (yes|no)", memory_section)
    assert [row[0] for row in time_rows] == list(MODES) and [row[0] for row in memory_rows] == list(MODES), out
    for _, ours, reference, ratio, met in time_rows:
        assert float(reference) >= 0.05  # the fake reference's sleep
        # Times are printed to 3 decimals and the ratio (of the unrounded times) to 2: compare within that rounding.
        low = (float(ours) - 5e-4) / (float(reference) + 5e-4) - 5e-3
        high = (float(ours) + 5e-4) / (float(reference) - 5e-4) + 5e-3
        assert low <= float(ratio) <= high
        assert (met == "yes") == (float(ratio) <= 0.5)
    above_rows = re.findall(rf"\| rotmnist-so2 +\| (forward|forward\+backward) +\| ({NUMBER}) +\| ({NUMBER}) +\| ({NUMBER}) +\| (yes|no)", above_section)
    assert [row[0] for row in above_rows] == list(MODES), out
    for (_, ours, reference, ratio, _), (_, above, above_reference, _, _) in zip(memory_rows, above_rows):
        assert float(ours) > 0 and float(reference) > 0
        # GB printed to 2 decimals, the ratio (of the unrounded peaks) to 2.
        assert (float(ours) - 5e-3) / (float(reference) + 5e-3) - 5e-3 <= float(ratio) <= (float(ours) + 5e-3) / (float(reference) - 5e-3) + 5e-3
        assert 0 <= float(above) < float(ours) and 0 <= float(above_reference) < float(reference)
    assert re.search(rf"resident set after the imports \(median over the children\): ours {NUMBER} GB, reference {NUMBER} GB", out), out
    floor = re.search(rf"imports torch and nothing else holds ({NUMBER}) GB, as a share of the reference's median peak: "
                      rf"rotmnist-so2 forward ({NUMBER}), rotmnist-so2 forward\+backward ({NUMBER});", out)
    assert floor, out
    # The floor is under every peak, ours and the reference's, and its shares are the floor over the reference's peaks.
    assert all(float(floor.group(1)) < float(row[1]) + 5e-3 and float(floor.group(1)) < float(row[2]) + 5e-3 for row in memory_rows)
    for (_, _, reference, _, _), share in zip(memory_rows, floor.groups()[1:]):
        assert abs(float(share) - float(floor.group(1)) / float(reference)) <= 0.01 + float(share) * 5e-3 / float(reference)
    assert report.read_text().startswith("# LieConv vs the reference LieConv")
