"""The ``eqbench`` command: ``list`` and ``check`` in-process (exit codes, tables, JSON), and the installed script once."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eqbench.check.result import RECORD_FIELDS
from eqbench.cli.check import select_entries
from eqbench.cli.main import main

USER_MODELS = Path(__file__).resolve().parents[1] / "examples" / "user_models.py"
BROKEN_PLUGIN = """
from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import IndexWeightedPooling
from eqbench.registry import register_model

@register_model("cli-secretly-broken", group=Symmetric(), in_action=Points(), out_action=Invariant(),
                inputs=PointCloudInputs(max_points=8), expected="exact",
                check_options={"n_inputs": 1, "n_elements": 4, "search_examples": 5})
def secretly_broken():
    return IndexWeightedPooling()
"""


def test_list_shows_models_groups_actions_and_expectations(fresh_registry, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert {"distance-mlp", "chiral-o3", "truncated-neighbourhood"} <= set(rows)
    assert "violated" in rows["chiral-o3"] and "O(3)" in rows["chiral-o3"] and "Invariant" in rows["chiral-o3"]
    assert "exact" in rows["distance-mlp"] and "Points" in rows["distance-mlp"] and "default" in rows["distance-mlp"]


def test_list_with_a_plugin_and_a_group(fresh_registry, capsys):
    assert main(["list", "--plugin", str(USER_MODELS), "--group", "SE3"]) == 0
    out = capsys.readouterr().out
    assert "user-centroid-spring" in out and "user-flat-baseline" in out
    assert "deepsets" not in out  # deepsets is checked under S_n only


def test_check_named_models_prints_a_table_and_writes_json_records(fresh_registry, tmp_path, capsys):
    path = tmp_path / "results" / "check.json"
    assert main(["check", "deepsets", "chiral-o3", "--seed", "3", "--examples", "5", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 verdicts as expected" in out and "max rel error" in out and "noise floor" in out
    records = json.loads(path.read_text())
    assert [r["model"] for r in records] == ["deepsets", "chiral-o3"]
    assert all(set(RECORD_FIELDS) <= set(r) and r["seed"] == 3 for r in records)
    deepsets, chiral = records
    assert (deepsets["verdict"], deepsets["expected"], chiral["verdict"], chiral["expected"]) == (
        "exact", "exact", "violated", "violated"
    )
    assert chiral["group"] == "O(3)" and chiral["max_rel_error"] > chiral["noise_floor"] > 0
    assert deepsets["max_rel_error"] <= deepsets["exact_threshold"] and deepsets["n_elements"] > 0
    assert [p.name for p in path.parent.iterdir()] == ["check.json"]  # written atomically, no temporary left


def test_check_writes_the_same_record_fields_for_stochastic_entries(fresh_registry, tmp_path, capsys):
    from eqbench.reports.records import load_check_records

    path = tmp_path / "mc.json"
    assert main(["check", "lieconv-so2-mc", "lieconv-so2-mc-control", "deepsets", "--examples", "2", "--json", str(path)]) == 0
    assert "3 of 3 verdicts as expected" in capsys.readouterr().out
    records = json.loads(path.read_text())
    assert all(set(RECORD_FIELDS) <= set(r) for r in records)
    assert [r.get("mode") for r in records] == ["crn", "crn", None]  # stochastic entries say how they were checked
    assert [r["verdict"] for r in records] == ["exact", "violated", "exact"]
    assert list(load_check_records([path])["model"]) == ["lieconv-so2-mc", "lieconv-so2-mc-control", "deepsets"]


def test_check_mismatch_exits_1_and_prints_the_counterexample(fresh_registry, tmp_path, capsys):
    plugin = tmp_path / "broken_models.py"
    plugin.write_text(BROKEN_PLUGIN)
    assert main(["check", "--plugin", str(plugin)]) == 1
    out = capsys.readouterr().out
    assert "cli-secretly-broken: verdict violated, expected exact" in out
    assert "reproduce with" in out and "0 of 1 verdicts as expected" in out


def test_check_user_plugin_file_runs_only_its_models(fresh_registry, tmp_path):
    path = tmp_path / "user.json"
    assert main(["check", "--plugin", str(USER_MODELS), "--json", str(path)]) == 0
    records = json.loads(path.read_text())
    assert {r["model"]: r["verdict"] for r in records} == {
        "user-centroid-spring": "exact", "user-flat-baseline": "violated", "user-nbody-drift": "exact"
    }


def test_group_filter_applies_to_named_models_and_to_the_default_suite(fresh_registry, tmp_path):
    path = tmp_path / "o3.json"
    assert main(["check", "deepsets", "chiral-so3", "chiral-o3", "--group", "O3", "--examples", "3", "--json", str(path)]) == 0
    assert [r["model"] for r in json.loads(path.read_text())] == ["chiral-o3"]
    default = select_entries([], suite=None, group=None, plugin_entries=None)
    assert default == fresh_registry.entries(suite="default") and len(default) >= 12
    so3 = select_entries([], suite=None, group="so3", plugin_entries=None)
    assert {"chiral-so3", "coordinate-mlp"} <= {e.name for e in so3} <= {e.name for e in default}
    assert all("SO(3)" in e.group.name or "SE(3)" in e.group.name for e in so3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "distance-mpl"], "unknown model 'distance-mpl'; did you mean distance-mlp"),
        (["check", "--group", "SO(7)"], "unknown group 'SO(7)'"),
        (["check", "--plugin", "no/such/models.py"], "plugin file not found: no/such/models.py"),
        (["check", "--plugin", "no_such_plugin_module"], "plugin module 'no_such_plugin_module' not found"),
        (["check", "--suite", "nonexistent"], "no registered model to check with --suite nonexistent"),
        (["check", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
        (["check", "--examples", "-1"], "expected a non-negative integer, got -1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(fresh_registry, capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1, captured.err


def test_installed_script_checks_a_model(tmp_path):
    script = Path(sys.executable).with_name("eqbench")
    path = tmp_path / "script.json"
    done = subprocess.run(
        [str(script), "check", "pointnet", "--examples", "3", "--json", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of 1 verdicts as expected" in done.stdout
    assert json.loads(path.read_text())[0]["verdict"] == "exact"
