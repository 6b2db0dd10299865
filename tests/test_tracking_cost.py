"""``python -m suites.tracking_cost`` (the tracked set-ups, one short epoch here, and its table) and ``python -m suites.probe_time``."""
from __future__ import annotations

import pytest

from suites import probe_time, tracking_cost


@pytest.mark.slow
def test_tracking_cost_runs_and_reports_each_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cost.md"
    assert tracking_cost.main(["--seeds", "1", "--epochs", "1", "--out", str(out)]) == 0
    table = out.read_text()
    for task, model, group in tracking_cost.SETUPS:
        assert f"| {task} | {model} | {group} | 1 |" in table
    with pytest.raises(SystemExit):
        tracking_cost.main(["--seeds", "0"])


def test_probe_time_times_the_warm_probe_of_each_digits_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    assert probe_time.main(["--models", "mlp", "--repeats", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("digits-rot mlp: warm probe median ") and line.endswith("(3 probes)")
    with pytest.raises(SystemExit):
        probe_time.main(["--repeats", "0"])
