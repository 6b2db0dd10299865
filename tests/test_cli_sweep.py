"""``eqbench sweep``: the error-versus-samples table, the fitted rate, JSON/CSV files and exit codes."""
from __future__ import annotations

import csv
import json

import pytest

from eqbench.cli.main import main

#: A fast ball-sampling sweep: 128-point clouds (balls of about 64 points), nbhd 2 to 32.
NBHD_SWEEP = ["sweep", "lieconv-so2-mc", "--param", "nbhd", "--values", "2", "4", "8", "16", "32", "--points", "128",
              "--inputs", "4", "--elements", "4", "--repeats", "3"]


def test_sweep_prints_the_table_and_a_falling_rate_and_writes_files(fresh_registry, tmp_path, capsys):
    json_path, csv_path = tmp_path / "out" / "sweep.json", tmp_path / "out" / "sweep.csv"
    assert main([*NBHD_SWEEP, "--json", str(json_path), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "lieconv-so2-mc under SO(2): error ~ n^-" in out and "95% CI" in out and "mean_rel_error" in out
    record = json.loads(json_path.read_text())
    assert record["model"] == "lieconv-so2-mc" and record["param"] == "nbhd" and record["group"] == "SO(2)"
    assert record["rate_low"] <= record["rate"] <= record["rate_high"] < 0
    assert [row["samples"] for row in record["rows"]] == [2, 4, 8, 16, 32]
    with csv_path.open() as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["nbhd"]) for row in rows] == [2, 4, 8, 16, 32]
    errors = [float(row["mean_rel_error"]) for row in rows]
    assert errors[-1] < errors[0] and f"{errors[0]:.4g}" in out
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["sweep.csv", "sweep.json"]  # atomic: no temporaries


def test_a_sweep_whose_error_does_not_fall_exits_1(fresh_registry, capsys):
    # lieconv-so2 on its default 8-point clouds: nbhd >= the number of points keeps every ball point, no sampling
    assert main(["sweep", "lieconv-so2", "--param", "nbhd", "--values", "8", "16", "32", "--inputs", "2", "--elements", "2",
                 "--repeats", "2"]) == 1
    out = capsys.readouterr().out
    assert "does not fall" in out or "cannot fit a rate" in out


def test_a_sample_count_the_model_rejects_fails_the_sweep_with_its_message(fresh_registry, capsys):
    # the SO(2) lift has trivial stabilisers: one lift per point, so liftsamples above 1 is refused by the network
    assert main(["sweep", "lieconv-so2-mc", "--param", "liftsamples", "--values", "1", "2", "4", "--inputs", "2",
                 "--elements", "2", "--repeats", "2"]) == 1
    out = capsys.readouterr().out
    assert "the sweep over liftsamples failed" in out and "liftsamples must be 1, got 2" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["lieconv-so2-mcc", "--param", "nbhd", "--values", "2", "4", "8"], "unknown model 'lieconv-so2-mcc'; did you mean lieconv-so2-mc"),
        (["lieconv-so2", "--param", "width", "--values", "1", "2", "4"], "no Monte-Carlo sample-count parameter 'width'"),
        (["lieconv-so2-mc", "--param", "nbhd", "--values", "2", "4", "4"], "at least 3 distinct sample counts"),
        (["lieconv-so2-mc", "--param", "nbhd", "--values", "0", "2", "4"], "expected a positive integer, got 0"),
        (["lieconv-so2-image-mc", "--param", "nbhd", "--values", "2", "4", "8", "--points", "30"], "fixed number of points"),
        (["lieconv-so2-mc", "--param", "nbhd", "--values", "2", "4", "8", "--repeats", "1"], "--repeats must be at least 2"),
        (["lieconv-so2-mc", "--values", "2", "4", "8"], "--param"),
    ],
)
def test_usage_errors_exit_2_with_one_line(fresh_registry, capsys, arguments, message):
    assert main(["sweep", *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
