"""``python -m suites.tracking_cost``: runs the tracked set-ups (one short epoch here) and writes its table."""
from __future__ import annotations

import pytest

from suites import tracking_cost


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
