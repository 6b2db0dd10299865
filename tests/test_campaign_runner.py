"""The training campaign file and its fallback runner: the grid is valid, bad files are errors, a tiny campaign runs and reports."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.run_training import DEFAULT_FILE, load_campaign, main
from eqbench.groups.names import group_from_name
from eqbench.tasks.presets import get_preset
from eqbench.tasks.trainable import trainable_models
from eqbench.tasks.tracking import task_actions


def test_the_training_campaign_is_a_valid_grid_with_five_seeds_per_small_pair():
    settings, runs = load_campaign(DEFAULT_FILE)
    assert settings["workers"] == 2 and settings["threads"] == 1 and settings["out"] == "reports/training"
    for run in runs:
        assert run.model in trainable_models(run.task), run
        get_preset(run.task, run.model, run.preset)
        if run.track_equivariance:
            group_from_name(run.track_equivariance)
            task_actions(run.task)
    seeds = {}
    for run in runs:
        seeds.setdefault((run.task, run.model, run.preset, run.options), set()).add(run.seed)
    for model in ("fa-gnn", "egnn", "gnn"):
        assert len(seeds[("nbody", model, "small", ())]) >= 5
    for model in ("egnn", "fa-gnn"):
        assert len(seeds[("nbody", model, "medium", ())]) >= 3
    for model in ("lconv", "cnn", "mlp"):
        assert len(seeds[("digits-rot-scrambled", model, "small", ())]) >= 5
    overridden = [run for run in runs if run.options]
    assert overridden and all(run.name.startswith("with-") for run in overridden)  # never in the preset's own folders


def test_bad_campaign_files_are_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[runs]]\ntask = "nbody"\nmodel = "egnn"\npreset = "small"\nseeds = [0]\n')
    with pytest.raises(ValueError, match=r"unknown keys \['model'\], missing keys \['models'\]"):
        load_campaign(bad)
    assert main([str(bad), "--dry-run"]) == 2 and "unknown keys" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_campaign_runs_skips_what_is_done_and_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    spec = tmp_path / "tiny.toml"
    spec.write_text(
        '[campaign]\nout = "out/training"\nreport = "out"\nworkers = 2\n'
        '[[runs]]\ntask = "digits-rot"\nmodels = ["mlp"]\npreset = "small"\nseeds = [0, 1]\ntrack_equivariance = "C4"\n'
        'options = ["epochs=1", "data.train_size=64"]\n'
    )
    done = subprocess.run([sys.executable, "-m", "campaigns.run_training", str(spec)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "out" / "training" / "with-epochs-1_data.train-size-64" / "digits-rot").glob("mlp-small-seed1-epochs1-o*")
    assert json.loads((run_dir / "result.json").read_text())[0]["equivariance_group"] == "C4"
    markdown = (tmp_path / "out" / "training.md").read_text()
    assert "| mlp     | small    | with-epochs-1_data.train-size-64; -epochs1-o" in markdown and "## Equivariance through training" in markdown
    again = subprocess.run([sys.executable, "-m", "campaigns.run_training", str(spec), "--no-report"], capture_output=True, text=True)
    assert "2 of 2 runs already done; running 0" in again.stdout
