"""Benchmark history: asv result files read by asv, commits placed by git ancestry (never by date), regressions marked."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from eqbench.reports import ReportInputError, format_quantity, load_history, mark_regressions, newest_vs_previous
from eqbench.reports.history import newest_value, plot_benchmark

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAME_DATE = "2026-12-01T12:00:00+00:00"


def git_repo(root: Path, commits: int) -> list[str]:
    """A repository of ``commits`` commits, each child of the previous, all with the same author and commit date."""
    root.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "GIT_AUTHOR_DATE": SAME_DATE, "GIT_COMMITTER_DATE": SAME_DATE,
                   "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    hashes = []
    for index in range(commits):
        (root / "file.txt").write_text(str(index))
        subprocess.run(["git", "-C", str(root), "add", "file.txt"], check=True, env=environment)
        subprocess.run(["git", "-C", str(root), "commit", "-qm", f"c{index}"], check=True, env=environment)
        hashes.append(subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True,
                                     text=True).stdout.strip())
    return hashes


def write_result(results: Path, commit: str, date_ms: int, values: dict[str, list], machine: str = "box") -> None:
    """One asv result file (format version 2) of ``values[name] = [result list, params]`` for ``commit``."""
    folder = results / machine
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "machine.json").write_text(json.dumps({"machine": machine, "version": 1}))
    data = {
        "commit_hash": commit, "env_name": "eqbench-py3.11", "date": date_ms, "python": "3.11",
        "params": {"machine": machine, "python": "3.11"}, "requirements": {}, "env_vars": {},
        "result_columns": ["result", "params", "version", "started_at", "duration"], "durations": {}, "version": 2,
        "results": {name: [result, params, "v1", date_ms, 1.0] for name, (result, params) in values.items()},
    }
    (folder / f"{commit[:8]}-eqbench-py3.11.json").write_text(json.dumps(data))


def write_benchmarks(results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    described = {
        "bench.Check.time_check": ("time", "seconds", ["model"], [["'mlp'", "'egnn'"]]),
        "bench.peakmem_sample": ("peakmemory", "bytes", [], []),
        "bench_ratios.FrameAveragingSpeed.track_fa_gnn_per_egnn": ("track", "ratio", [], []),
    }
    (results / "benchmarks.json").write_text(json.dumps({
        **{name: {"name": name, "type": kind, "unit": unit, "param_names": names, "params": params, "version": "v1"}
           for name, (kind, unit, names, params) in described.items()},
        "version": 2,
    }))


@pytest.fixture
def history_repo(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Three commits sharing one timestamp; the result files' dates run backwards (newest commit, oldest date)."""
    repo = tmp_path / "repo"
    commits = git_repo(repo, 3)
    results = tmp_path / "history" / "results"
    write_benchmarks(results)
    for index, (commit, scale) in enumerate(zip(commits, (1.0, 1.0, 1.5))):
        write_result(results, commit, date_ms=3000 - 1000 * index, values={
            "bench.Check.time_check": [[0.010 * scale, 0.002 * (1.05 if index == 2 else 1.0)], [["'mlp'", "'egnn'"]]],
            "bench.peakmem_sample": [[2.0**20 * 300], []],
            "bench_ratios.FrameAveragingSpeed.track_fa_gnn_per_egnn": [[7.5 + index], []],
        })
    return repo, results, commits


def test_history_follows_ancestry_not_dates(history_repo):
    repo, results, commits = history_repo
    history = load_history(results, repo)
    positions = history.drop_duplicates("commit").set_index("commit")["position"]
    assert [positions[c] for c in commits] == [0, 1, 2]
    assert set(history["env"]) == {"eqbench-py3.11"}
    names = set(history["benchmark"])
    assert "bench.Check.time_check('mlp')" in names and "bench.peakmem_sample" in names
    assert newest_value(history, "bench_ratios.FrameAveragingSpeed.track_fa_gnn_per_egnn") == pytest.approx(9.5)


def test_regressions_are_marked_against_the_previous_commit(history_repo):
    repo, results, commits = history_repo
    newest = newest_vs_previous(mark_regressions(load_history(results, repo), factor=1.10)).set_index("benchmark")
    slowed = newest.loc["bench.Check.time_check('mlp')"]
    assert slowed["commit"] == commits[2] and slowed["ratio"] == pytest.approx(1.5) and slowed["regressed"]
    within = newest.loc["bench.Check.time_check('egnn')"]
    assert within["ratio"] == pytest.approx(1.05) and not within["regressed"]
    assert not newest.loc["bench.peakmem_sample", "regressed"]


def test_history_plot_is_a_png(history_repo):
    repo, results, _ = history_repo
    marked = mark_regressions(load_history(results, repo))
    assert plot_benchmark(marked, "bench.Check.time_check")[:8] == PNG_MAGIC


def test_a_commit_unknown_to_git_is_named(history_repo, tmp_path):
    repo, results, _ = history_repo
    write_result(results, "f" * 40, 0, {"bench.peakmem_sample": [[1.0], []]})
    with pytest.raises(ReportInputError, match="commit ffffffffffff of the history is not in the repository"):
        load_history(results, repo)


def test_missing_or_empty_results_folder(tmp_path):
    with pytest.raises(ReportInputError, match="asv results folder does not exist"):
        load_history(tmp_path / "missing", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="no asv result files"):
        load_history(tmp_path / "empty", tmp_path)


def test_format_quantity_picks_readable_units():
    assert format_quantity(0.0031, "seconds") == "3.1 ms"
    assert format_quantity(4.2e-8, "seconds") == "42 ns"
    assert format_quantity(3 * 2.0**30, "bytes") == "3 GiB"
    assert format_quantity(0.712, "ratio") == "0.712 ratio"
    assert format_quantity(float("nan"), "seconds") == "-"
