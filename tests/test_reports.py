"""Reports from fake check records and training tables: aggregation, rendering, errors (asv history: test_reports_history.py)."""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from eqbench.cli import UsageError
from eqbench.cli import report as report_cli
from eqbench.reports import (
    ReportInputError,
    build_report,
    check_summary,
    epoch_history,
    final_results,
    load_check_records,
    load_training_rows,
    training_markdown,
    training_summary,
    write_text_atomic,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_record(model: str, verdict: str, expected: str | None, error: float, seed: int, **extra) -> dict:
    return {
        "model": model, "group": "SO(3)", "verdict": verdict, "expected": expected, "max_rel_error": error,
        "mean_rel_error": error / 2, "noise_floor": 1e-7, "n_elements": 16, "seed": seed, "seconds": 0.5, **extra,
    }


@pytest.fixture
def check_files(tmp_path: Path) -> list[Path]:
    first = [
        check_record("mlp-distances", "exact", "exact", 2e-7, 0, tolerance=1e-2),
        check_record("mlp-raw", "violated", "violated", 0.8, 0, counterexample={"angle": 0.3}),
        check_record("flaky", "exact", "exact", 1e-7, 0),
        check_record("unregistered", "approximate", None, 1e-3, 0),
    ]
    second = [
        check_record("mlp-distances", "exact", "exact", 5e-7, 1, tolerance=1e-2),
        check_record("mlp-raw", "violated", "violated", 0.6, 1),
        check_record("flaky", "violated", "exact", 0.2, 1),
    ]
    paths = [tmp_path / "seed0.json", tmp_path / "seed1.json"]
    for path, records in zip(paths, (first, second)):
        path.write_text(json.dumps(records))
    return paths


def test_check_summary_aggregates_seeds_and_flags_mismatches(check_files):
    summary = check_summary(load_check_records(check_files)).set_index("model")
    assert summary.loc["mlp-distances", "runs"] == 2
    assert summary.loc["mlp-distances", "max_rel_error"] == pytest.approx(5e-7)
    assert summary.loc["mlp-distances", "mean_rel_error"] == pytest.approx((1e-7 + 2.5e-7) / 2)
    assert summary.loc["mlp-distances", "n_elements"] == 32
    assert summary.loc["mlp-distances", "matches"] == "yes"
    # negative control: one violated run out of two is a mismatch, and the worst verdict wins
    assert summary.loc["flaky", "matches"] == "NO"
    assert summary.loc["flaky", "verdicts"] == "exact x1, violated x1"
    assert summary.loc["flaky", "worst_verdict"] == "violated"
    assert summary.loc["unregistered", "matches"] == "-"


def test_check_summary_uses_recorded_matches_expected(tmp_path):
    """The checker's own rule wins: ``approximate`` is met by ``exact``, which equality would call a mismatch."""
    path = tmp_path / "checks.json"
    records = [
        check_record("mc-lieconv", "exact", "approximate", 1e-7, 0, matches_expected=True),
        check_record("broken", "exact", "violated", 1e-7, 0, matches_expected=False),
    ]
    path.write_text(json.dumps(records))
    summary = check_summary(load_check_records([path])).set_index("model")
    assert summary.loc["mc-lieconv", "matches"] == "yes"
    assert summary.loc["broken", "matches"] == "NO"


def test_check_records_reach_the_report_csv(check_files, tmp_path):
    out = tmp_path / "report"
    build_report(out, checks=check_files)
    table = pd.read_csv(out / "checks.csv")
    assert len(table) == 7 and "counterexample" not in table.columns
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"model": "m",\n "group": ', "bad.json:2: malformed JSON"),
        ('{"model": "m"}', "expected check records (an object with a 'records' list, or a list)"),
        (json.dumps([{"model": "m", "group": "SO(2)"}]), "record 0 (m) lacks the field(s) ['verdict'"),
        (json.dumps([check_record("m", "fine", "exact", 0.1, 0)]), "verdict 'fine' is not one of"),
        (json.dumps([{**check_record("m", "exact", "exact", 0.1, 0), "max_rel_error": "small"}]), "max_rel_error must be a number"),
    ],
)
def test_malformed_check_records_name_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ReportInputError, match=re.escape(message)):
        load_check_records([path])


@pytest.fixture
def training_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "training"
    directory.mkdir()
    results = pd.DataFrame(
        {
            "model": ["lieconv", "lieconv", "cnn"],
            "task": ["digits", "digits", "digits"],
            "preset": "small",
            "seed": [0, 1, 0],
            "device": "cpu",
            "epochs": 3,
            "seconds_per_epoch": [2.0, 4.0, 1.0],
            "train_loss": [0.1, 0.3, 0.5],
            "test_accuracy": [0.9, 0.8, 0.6],
            "baseline_test_accuracy": 0.1,
        }
    )
    results.to_csv(directory / "results.csv", index=False)
    history = [
        {"model": m, "task": "nbody", "preset": "small", "seed": 0, "device": "cpu", "epoch": e,
         "seconds_per_epoch": 1.0, "train_mse": loss, "test_mse": 2 * loss}
        for m, scale in (("egnn", 1.0), ("fa-gnn", 0.5))
        for e, loss in ((1, scale), (2, scale / 2), (3, scale / 4))
    ]
    (directory / "nbody").mkdir()
    (directory / "nbody" / "history.jsonl").write_text("\n".join(json.dumps(r) for r in history) + "\n")
    pd.DataFrame(history).to_csv(directory / "nbody" / "history.csv", index=False)  # the same rows again
    return directory


def test_training_summary_means_over_seeds_and_final_epochs(training_dir):
    rows = load_training_rows(training_dir)
    results = final_results(rows)
    assert len(results) == 5  # three result rows and the last epoch of the two n-body runs
    assert len(epoch_history(rows)) == 6  # the history written twice (JSON lines and CSV) counts once
    summary = training_summary(results).set_index(["task", "model"])
    lieconv = summary.loc[("digits", "lieconv")]
    assert lieconv["runs"] == 2
    assert lieconv["test_accuracy_mean"] == pytest.approx(0.85)
    assert lieconv["test_accuracy_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert lieconv["seconds_per_epoch_mean"] == pytest.approx(3.0)
    assert summary.loc[("nbody", "fa-gnn"), "test_mse_mean"] == pytest.approx(0.25)
    assert summary.loc[("nbody", "egnn"), "epochs"] == 3
    assert lieconv["baseline_test_accuracy_mean"] == pytest.approx(0.1)


def test_training_reaches_the_report(training_dir, tmp_path):
    out = tmp_path / "report"
    build_report(out, training=training_dir)
    table = pd.read_csv(out / "training.csv")
    assert set(table["model"]) == set(final_results(load_training_rows(training_dir))["model"])
    assert (out / "index.html").is_file() and (out / "report.md").is_file()


def test_training_pages_reach_the_report(training_dir, tmp_path):
    out = tmp_path / "report"
    names = {p.relative_to(out).as_posix() for p in build_report(out, training=training_dir)}
    assert {"training/training.md", "training/training.csv", "training/training_runs.csv", "training/training_comparisons.csv",
            "training/training_digits.png", "training/training_nbody.png", "training/training_nbody_curves.png"} <= names
    markdown = (out / "training" / "training.md").read_text()
    assert "## digits" in markdown and "## nbody" in markdown
    assert "0.85 +- 0.07071" in markdown
    for name in names:
        if name.startswith("training/") and name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_training_report_names_the_data_set_and_keeps_data_sets_apart(tmp_path):
    rows = pd.DataFrame({"task": "qm9-homo", "model": "lieconv-t3", "preset": "small", "device": "cpu", "seed": 0,
                         "dataset": ["QM9 (qm9pack)", "QM9 (qm9pack)", "QM9 (xyz)"], "test_mae_meV": [30.0, 32.0, 50.0]})
    summary = training_summary(rows)
    assert sorted(summary["runs"]) == [1, 2]
    markdown = training_markdown(summary)
    assert "| dataset " in markdown and "31 +- 1.414" in markdown and "| QM9 (xyz) " in markdown
    single = training_markdown(training_summary(rows.iloc[:2]))
    assert "Data: QM9 (qm9pack).\n" in single and "| dataset " not in single


def test_training_files_without_model_column_are_rejected(tmp_path):
    (tmp_path / "runs.csv").write_text("task,test_accuracy\ndigits,0.9\n")
    with pytest.raises(ReportInputError, match=r"runs.csv: training rows lack the column\(s\) \['model'\]"):
        load_training_rows(tmp_path)
    (tmp_path / "runs.csv").unlink()
    (tmp_path / "log.jsonl").write_text('{"model": "a", "task": "t"}\nnot json\n')
    with pytest.raises(ReportInputError, match=r"log.jsonl:2: malformed JSON line"):
        load_training_rows(tmp_path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "table.md", "old")
    finally:
        os.umask(previous)

    def broken(stream):
        stream.write(b"half")
        raise RuntimeError("disk full")

    from eqbench.reports import write_atomic

    with pytest.raises(RuntimeError):
        write_atomic(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]
    assert path.stat().st_mode & 0o044 == 0o044  # readable by others, like a plain open() (umask 022)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="eqbench")
    report_cli.add_parser(parser.add_subparsers(dest="command"))
    return report_cli.run(parser.parse_args(["report", *argv]))


def test_cli_report_writes_files_and_rejects_bad_input(check_files, training_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("--checks", *map(str, check_files), "--training", str(training_dir), "--out", str(out)) == 0
    assert f"{out / 'index.html'} (" in capsys.readouterr().out
    assert {"index.html", "report.md", "leaderboard.csv", "checks.csv", "training.csv"} <= {p.name for p in out.iterdir()}
    with pytest.raises(UsageError, match="give --checks, --sweeps, --training or --asv-results"):
        run_cli("--out", str(out), "--repo", str(tmp_path))
    with pytest.raises(UsageError, match="missing.json: cannot read"):
        run_cli("--checks", str(tmp_path / "missing.json"))


def test_eqbench_command_dispatches_report(capsys):
    from eqbench.cli.main import main

    assert main(["report", "--help"]) == 0
    assert "--training DIR" in capsys.readouterr().out
