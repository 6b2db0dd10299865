"""`eqbench bench record` / `compare` on a fresh clone: two commits give a history of both; a planted 1.5x slowdown fails compare.

asv runs for real, kept tiny: ``--quick`` (one sample) and one benchmark (SO(2) Haar sampling).
The slowdown is planted by scaling the second commit's recorded values by 1.5 in its result file,
so the test does not depend on the machine's timing noise.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_BENCH = r"GroupSampling.time_sample"


def eqbench(clone: Path, history: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(clone), "EQBENCH_HISTORY": str(history)}
    return subprocess.run([sys.executable, "-m", "eqbench.cli.main", *args], cwd=clone, env=environment,
                          capture_output=True, text=True, timeout=600)


def commit_empty(clone: Path, message: str) -> None:
    subprocess.run(["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", message], check=True)


def head(clone: Path) -> str:
    return subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def scale_results(history: Path, commit: str, factor: float) -> None:
    """Multiply every recorded value of ``commit`` by ``factor`` (the planted slowdown)."""
    (path,) = history.glob(f"results/*/{commit[:8]}-*.json")
    data = json.loads(path.read_text())
    for entry in data["results"].values():
        entry[0] = [None if value is None else value * factor for value in entry[0]]
        for index, column in enumerate(data["result_columns"]):
            if column.startswith("stats_") and entry[index] is not None:
                entry[index] = [None if s is None else s * factor for s in entry[index]]
    path.write_text(json.dumps(data))


@pytest.mark.slow
def test_history_of_two_commits_and_a_planted_regression(tmp_path):
    clone, history = tmp_path / "clone", tmp_path / "history"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    first = head(clone)
    recorded = eqbench(clone, history, "bench", "record", "--quick", "--bench", TINY_BENCH, "--machine", "testbox")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    commit_empty(clone, "second commit")
    second = head(clone)
    recorded = eqbench(clone, history, "bench", "record", "--quick", "--bench", TINY_BENCH, "--machine", "testbox")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr

    files = sorted(p.name for p in (history / "results" / "testbox").glob("*.json"))
    # one stable environment name, whatever the interpreter's path
    assert files == sorted([f"{first[:8]}-eqbench-py{sys.version_info[0]}.{sys.version_info[1]}.json",
                            f"{second[:8]}-eqbench-py{sys.version_info[0]}.{sys.version_info[1]}.json", "machine.json"])
    assert json.loads((history / "machine.json").read_text())["testbox"]["machine"] == "testbox"

    scale_results(history, second, 1.0)
    same = eqbench(clone, history, "bench", "compare", first, "HEAD")
    assert "Benchmark (Parameter)" in same.stdout and "GroupSampling.time_sample('SO(2)')" in same.stdout
    # real timings of two runs may differ by chance; a generous factor keeps this half deterministic
    assert eqbench(clone, history, "bench", "compare", first, "HEAD", "--factor", "100").returncode == 0

    scale_results(history, second, 1.5 * 100)  # far beyond any timing noise
    slowed = eqbench(clone, history, "bench", "compare", first, "HEAD", "--factor", "100")
    assert slowed.returncode == 1, slowed.stdout + slowed.stderr
    assert "regression" in slowed.stdout and "+" in slowed.stdout

    report = eqbench(clone, history, "report", "--asv-results", str(history / "results"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert f"2 commits in git-ancestry order (oldest first): {first[:8]}, {second[:8]}" in page


def test_compare_errors_name_the_problem(tmp_path):
    from eqbench.cli.main import main

    assert main(["bench", "compare", "HEAD", "HEAD", "--history", str(tmp_path)]) == 2
    assert main(["bench", "compare", "HEAD", "HEAD", "--factor", "0.9", "--history", str(tmp_path)]) == 2


def test_compare_exit_code_follows_the_factor(tmp_path, capsys):
    """A recorded 1.5x slowdown (asv's own table) exits 1 at the default 1.10 and 0 at --factor 2."""
    from eqbench.cli.main import main
    from test_reports_history import git_repo, write_benchmarks, write_result

    repo = tmp_path / "repo"
    commits = git_repo(repo, 2)
    (repo / "asv.conf.json").write_text((ROOT / "asv.conf.json").read_text())
    history = tmp_path / "history"
    write_benchmarks(history / "results")
    for commit, value in zip(commits, (0.010, 0.015)):
        write_result(history / "results", commit, 0, {"bench.peakmem_sample": [[1e6], []],
                                                      "bench.Check.time_check": [[value, 0.002], [["'mlp'", "'egnn'"]]]})
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        assert main(["bench", "compare", "HEAD~1", "HEAD", "--history", str(history)]) == 1
        out = capsys.readouterr().out
        assert "bench.Check.time_check('mlp')" in out and "1.5" in out and "regression" in out
        assert main(["bench", "compare", "HEAD~1", "HEAD", "--factor", "2", "--history", str(history)]) == 0
        assert main(["bench", "compare", "HEAD~1", "nonexistent", "--history", str(history)]) == 2
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_plain_asv_validates_the_suites_with_the_stable_environment():
    """`asv check` (asv's own command, the plugin loaded from asv.conf.json) imports and validates every benchmark."""
    environment = {**os.environ, "ASV_PYTHONPATH": str(ROOT)}
    completed = subprocess.run([sys.executable, "-m", "asv", "check", "-E", "eqbench:same"], cwd=ROOT, env=environment,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0 and "No problems found" in completed.stdout, completed.stdout + completed.stderr
