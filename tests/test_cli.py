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


def table_rows(out: str) -> dict[str, str]:
    """The rows of a printed table by their first cell (a model name: never wrapped)."""
    rows = (line for line in out.splitlines() if line.startswith("  ") and line.strip() and not line[2].isspace())
    return {line.split()[0]: line for line in rows if line.split()[0] != "model"}


def test_list_shows_models_groups_actions_and_expectations(fresh_registry, capsys):
    assert main(["list", "--wide"]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
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
    document = json.loads(path.read_text())
    assert set(document) == {"eqbench_version", "torch_version", "git_commit", "machine", "created", "records"}
    records = document["records"]
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
    records = json.loads(path.read_text())["records"]
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
    records = json.loads(path.read_text())["records"]
    assert {r["model"]: r["verdict"] for r in records} == {
        "user-centroid-spring": "exact", "user-flat-baseline": "violated", "user-nbody-drift": "exact"
    }


def test_group_filter_applies_to_named_models_and_to_the_default_suite(fresh_registry, tmp_path):
    path = tmp_path / "o3.json"
    assert main(["check", "deepsets", "chiral-so3", "chiral-o3", "--group", "O3", "--examples", "3", "--json", str(path)]) == 0
    assert [r["model"] for r in json.loads(path.read_text())["records"]] == ["chiral-o3"]
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
        (["check", "--seed", "abc"], "argument --seed: expected a non-negative integer, got 'abc'"),
        (["check", "--seed", "99999999999999999999"], "--seed: expected a non-negative integer at most 4294967295"),
        (["check", "--seed", "-3"], "--seed: expected a non-negative integer at most 4294967295, got -3"),
        (["check", "--examples", "-1"], "expected a non-negative integer at most 100000, got -1"),
        (["check", "--threads", "0"], "--threads: expected a positive integer, got 0"),
        (["check", "--json", "/etc/passwd/out.json"], "cannot write /etc/passwd/out.json: /etc/passwd is not a writable folder"),
        (["check", "--json", "/"], "cannot write /: it is a folder"),
        (["check", "--save-counterexamples", "/etc/passwd"], "cannot write into /etc/passwd: it is a file"),
        (["check", "-v", "-q"], "not allowed with argument"),
        (["sweep", "lieconv-so2-mc", "--param", "nbhd", "--values", "2", "4", "8", "--json", "-", "--csv", "-"],
         "--json - and --csv - cannot both write to stdout"),
        (["train", "nbody", "--model", "egnn", "--epochs", "0"], "--epochs: expected a positive integer, got 0"),
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
    assert json.loads(path.read_text())["records"][0]["verdict"] == "exact"


IMPORTING_PLUGIN = """
from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import IndexWeightedPooling   # a class defined in another module
from eqbench.registry import register_model

register_model("imported-pooling", group=Symmetric(), in_action=Points(), out_action=Invariant(),
               inputs=PointCloudInputs(max_points=6), expected="violated",
               check_options={"n_inputs": 1, "n_elements": 4, "search_examples": 0})(IndexWeightedPooling)
"""


def test_a_plugin_owns_what_it_registers_even_when_imported_and_is_checked_and_listed_alone(fresh_registry, tmp_path, capsys):
    plugin = tmp_path / "imports.py"
    plugin.write_text(IMPORTING_PLUGIN)
    assert main(["list", "--plugin", str(plugin)]) == 0
    listed = capsys.readouterr().out
    assert "1 registered models" in listed and set(table_rows(listed)) == {"imported-pooling"}
    assert main(["list", "--plugin", str(plugin), "--all"]) == 0
    everything = table_rows(capsys.readouterr().out)
    assert {"imported-pooling", "deepsets", "chiral-o3"} <= set(everything)
    assert main(["check", "--plugin", str(plugin)]) == 0  # only the plugin's model: not the default suite
    assert "1 of 1 verdicts as expected" in capsys.readouterr().out
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["check", "--plugin", str(empty)]) == 2
    assert "registered no model" in capsys.readouterr().err


def test_json_dash_writes_pure_json_to_stdout_and_the_table_to_stderr(fresh_registry, capsys):
    assert main(["check", "deepsets", "--examples", "0", "--json", "-"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert [r["model"] for r in document["records"]] == ["deepsets"]
    assert document["torch_version"] and document["created"].endswith("+00:00") and document["machine"]["cpus"] >= 1
    assert "1 of 1 verdicts as expected" in captured.err and "max rel error" in captured.err
    assert not Path("-").exists()


def test_quiet_prints_only_mismatches_and_the_summary_and_verbose_every_result(fresh_registry, capsys):
    assert main(["check", "deepsets", "chiral-o3", "--examples", "0", "-q"]) == 0
    quiet = capsys.readouterr().out
    assert quiet.strip() == "2 of 2 verdicts as expected"
    assert main(["check", "deepsets", "chiral-o3", "--examples", "0", "-v"]) == 0
    verbose = capsys.readouterr().out
    assert "deepsets under S_n: exact" in verbose and "chiral-o3 under O(3): violated" in verbose


def test_threads_option_and_a_default_that_leaves_busy_cores_alone(fresh_registry, monkeypatch):
    import torch

    from eqbench.cli.threads import MAX_DEFAULT_THREADS, choose_threads, default_threads

    assert default_threads(cpus=2, load=5.0) == 1  # a busy 2-core machine: one thread
    assert default_threads(cpus=4, load=1.2) == 3
    assert default_threads(cpus=64, load=0.0) == MAX_DEFAULT_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads(None) is None and choose_threads(2) == 2  # the user's OMP_NUM_THREADS stands unless --threads
    before = torch.get_num_threads()
    try:
        assert main(["check", "deepsets", "--examples", "0", "--threads", "2", "-q"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_python_dash_m_eqbench_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "eqbench", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("eqbench "), done.stdout + done.stderr
