"""Training reports over seeds: configurations kept apart, the paper pairs with intervals, equivariance tracking, notes."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from eqbench.reports.paper_pairs import PaperPair, pair_comparisons, paper_ordering
from eqbench.reports.training import configuration, final_results, training_summary, write_training_reports
from eqbench.reports.records import load_training_rows

NBODY = {"task": "nbody", "preset": "small", "device": "cpu", "dataset": "charged n-body", "batch_size": 100, "lr": 1e-3}


def write_run(root: Path, model: str, seed: int, test_mse: float, epochs: int = 30, tracked: list[float] | None = None) -> None:
    folder = root / "nbody" / f"{model}-small-seed{seed}"
    folder.mkdir(parents=True)
    final = {**NBODY, "model": model, "seed": seed, "epochs": epochs, "seconds_per_epoch": 1.0, "test_mse": test_mse}
    (folder / "result.json").write_text(json.dumps([final]))
    history = [{**NBODY, "model": model, "seed": seed, "epoch": e + 1, "seconds_per_epoch": 1.0, "test_mse": test_mse * (2 - e / epochs),
                **({"equivariance_group": "E(3)", "equivariance_mean_rel_error": error, "equivariance_noise_floor": 1e-7,
                    "equivariance_cost": 0.02} if tracked else {})}
               for e, error in enumerate(tracked or [None] * 2)]
    pd.DataFrame(history).to_csv(folder / "history.csv", index=False)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "training"
    for seed, (fa, eg, gn) in enumerate([(0.020, 0.012, 0.060), (0.021, 0.013, 0.062), (0.022, 0.011, 0.061)]):
        write_run(root, "fa-gnn", seed, fa)
        write_run(root, "egnn", seed, eg, tracked=[1e-7, 1.1e-7])
        write_run(root, "gnn", seed, gn, tracked=[0.5, 0.1])
    write_run(root / "with-epochs-120", "fa-gnn", 0, 0.010, epochs=120)  # same seed, another configuration
    write_run(root / "with-epochs-120", "egnn", 0, 0.011, epochs=120)
    write_run(root / "with-data.train-size-100", "fa-gnn", 0, 0.2)  # the preset's epochs, other data: apart too
    (root / "NOTES.md").write_text("## The n-body finding\n\nA hand-written finding.\n")
    return root


def test_runs_of_another_configuration_are_their_own_row_and_flagged(runs):
    summary = training_summary(final_results(load_training_rows(runs))).set_index(["model", "configuration"])
    assert summary.loc[("fa-gnn", "preset"), "runs"] == 3
    assert summary.loc[("fa-gnn", "preset"), "test_mse_mean"] == pytest.approx(0.021)
    longer = summary.loc[("fa-gnn", "with-epochs-120; epochs=120 (preset 30)")]
    assert longer["runs"] == 1 and longer["test_mse_mean"] == pytest.approx(0.010)
    assert summary.loc[("fa-gnn", "with-data.train-size-100"), "test_mse_mean"] == pytest.approx(0.2)
    assert configuration(pd.Series({"task": "nbody", "model": "egnn", "preset": "small", "epochs": 30, "lr": 1e-3, "batch_size": 100})) == "preset"
    assert configuration(pd.Series({"task": "nbody", "model": "egnn", "preset": "small", "epochs": 30, "lr": 1e-3, "overrides": "model.hidden=8"})) == "model.hidden=8"
    assert configuration(pd.Series({"task": "x", "model": "y", "preset": "tiny", "epochs": 3})) == "preset"  # no preset known to compare


def test_paper_pairs_compare_over_seeds_with_an_interval_and_read_the_paper(runs):
    comparisons = pair_comparisons(final_results(load_training_rows(runs))).set_index(["first", "second", "configuration"])
    fa_egnn = comparisons.loc[("fa-gnn", "egnn", "preset")]
    assert fa_egnn["runs_first"] == 3 and fa_egnn["difference"] == pytest.approx(0.009)
    assert 0 < fa_egnn["low"] < 0.009 < fa_egnn["high"]
    assert fa_egnn["conclusion"] == "egnn better" and fa_egnn["paper_says"] == "fa-gnn better" and fa_egnn["agreement"] == "opposite"
    assert comparisons.loc[("egnn", "gnn", "preset"), "agreement"] == "agrees"
    assert comparisons.loc[("fa-gnn", "egnn", "with-epochs-120; epochs=120 (preset 30)"), "conclusion"] == "too few runs"
    assert paper_ordering(PaperPair("digits", "lconv", "mlp", "test_accuracy", 0.9, None, "")) == "-"
    assert paper_ordering(PaperPair("digits", "a", "b", "test_accuracy", 0.9, 0.95, "")) == "b better"


def test_the_written_report_has_statistics_equivariance_and_notes(runs, tmp_path):
    out = tmp_path / "reports"
    names = {path.name for path in write_training_reports(runs, out)}
    assert {"training.md", "training.csv", "training_comparisons.csv", "training_equivariance.csv", "training_equivariance.png"} <= names
    markdown = (out / "training.md").read_text()
    assert "| fa-gnn vs egnn " in markdown and "egnn better" in markdown and "opposite" in markdown
    assert "with-epochs-120; epochs=120 (preset 30)" in markdown and "## Equivariance through training" in markdown
    assert markdown.rstrip().endswith("A hand-written finding.")
    csv = pd.read_csv(out / "training.csv")
    assert {"preset", "runs", "configuration"} <= set(csv.columns)
    tracking = pd.read_csv(out / "training_equivariance.csv").set_index("model")
    assert tracking.loc["gnn", "error_last_epoch"] == pytest.approx(0.1) and tracking.loc["gnn", "error_first_epoch"] == pytest.approx(0.5)
    assert tracking.loc["egnn", "error_last_epoch"] < 1e-6 and tracking.loc["egnn", "runs"] == 3


def test_every_published_figure_is_written_once_and_pairs_and_lineup_read_it(monkeypatch):
    from eqbench.reports import paper_figures
    from eqbench.reports.lineup import LINEUP
    from eqbench.reports.paper_figures import FIGURES, ROTMNIST, paper_figure
    from eqbench.reports.paper_pairs import PAPER_PAIRS

    identities = [(f.model, f.dataset, f.metric, f.source) for f in FIGURES]
    assert len(identities) == len(set(identities))
    published = {(f.model, task, f.metric, f.value) for f in FIGURES for task in f.dataset.tasks}
    for pair in PAPER_PAIRS:
        for model, value in ((pair.first, pair.paper_first), (pair.second, pair.paper_second)):
            assert value is None or (model, pair.task, pair.metric, value) in published, (pair, model)
    so2_gigp = next(p for p in PAPER_PAIRS if (p.task, p.first, p.second) == ("digits-rot", "lieconv-so2-gigp", "lieconv-so2"))
    assert (so2_gigp.paper_first, so2_gigp.paper_second) == pytest.approx((1 - 0.0138, 1 - 0.0142))
    assert {f for line in LINEUP for f in line.papers} == set(FIGURES)  # every figure shows in the leaderboard
    twice = FIGURES + (FIGURES[0],)  # negative control: a figure written twice is refused where it is read
    monkeypatch.setattr(paper_figures, "FIGURES", twice)
    with pytest.raises(ValueError, match="holds each once"):
        paper_figure(FIGURES[0].model, ROTMNIST, FIGURES[0].metric, FIGURES[0].source)
