"""``python -m suites.gpu_smoke --device cpu``: the whole script on the CPU, capped at one batch per epoch."""
from __future__ import annotations

import pytest

from suites import gpu_smoke


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EQBENCH_ROTMNIST", raising=False)
    monkeypatch.delenv("EQBENCH_QM9", raising=False)


@pytest.mark.slow
def test_gpu_smoke_runs_on_cpu_and_writes_its_report(tmp_path, capsys):
    out = tmp_path / "gpu.md"
    assert gpu_smoke.main(["--device", "cpu", "--max-batches", "1", "--out", str(out)]) == 0
    report = out.read_text()
    assert report.startswith("# GPU smoke run") and "Device: **CPU: " in report
    assert "`pytest -m cuda`:" in report and "skipped" in report  # no CUDA here: the cuda tests skip themselves
    for model in gpu_smoke.CHECKED_MODELS:
        assert f"| {model} |" in report
    assert "| NO |" not in report and "FAILED" not in report
    assert "| nbody | fa-gnn | 1 / 30 |" in report and "| digits-rot | lieconv-so2 | 1 / 52 |" in report
    assert "| rotmnist | cnn | 0 / 0 |" in report and "EQBENCH_ROTMNIST" in report  # no data files: said, not failed


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit):
        gpu_smoke.main(["--max-batches", "0", "--device", "cpu"])
    assert "--max-batches must be at least 1" in capsys.readouterr().err
