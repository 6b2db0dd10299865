"""The comparisons the seed papers make, their published figures, and ours with a 95% interval.

Each :class:`PaperPair` names a task, two models, the metric (our column) and the papers'
figures for both models in that metric's units, with the source. :func:`pair_comparisons`
takes one row per training run (final results, with a ``configuration`` column as
:func:`eqbench.reports.training.final_results` gives it) and compares the two models' scores
over seeds for every (preset, configuration, device) where both ran, with
:func:`eqbench.reports.statistics.compare_means` (Welch's interval). ``paper_says`` is the
papers' ordering and ``agreement`` reads ours against it: ``agrees`` (same model significantly
better), ``opposite`` (the other one significantly better) or ``unresolved`` (no significant
difference, or too few runs). Published figures are single numbers (no spread), so only their
ordering is compared, not their size: our data (a 1,797-image stand-in for MNIST, our own
n-body simulator, shortened schedules) differs from the papers'.

Published figures (the error rates of image papers are turned into accuracies):

* GIGP vs mean pooling (Bujel et al. 2023, Table 1): rotMNIST test error 1.38% vs 1.42%;
  QM9 HOMO MAE 29.4 vs 30.6 meV.
* LieConv SO(2) vs T(2) on rotMNIST (Finzi et al. 2020, README): test error 1.27% vs 1.32%.
* FA-GNN vs EGNN vs GNN on charged n-body (Puny et al. 2022, Table 4; EGNN and GNN as reported
  by Satorras et al. 2021): test MSE 0.0057, 0.0071, 0.0107.
* L-conv vs CNN on rotated-and-scrambled MNIST (Dehmamy et al. 2021, their notebooks): about
  94.4% vs 89-93% accuracy (the CNN's range's middle, 91%, stands for it); no figure for the
  fully connected baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from eqbench.reports.statistics import NO_DIFFERENCE, TOO_FEW, compare_means, higher_is_better

#: Columns that keep different training set-ups apart in a comparison (those present are used).
SETUP_KEYS = ("task", "dataset", "preset", "configuration", "device")


@dataclass(frozen=True)
class PaperPair:
    """Two models a paper compares on a task, by ``metric`` (our column), with the paper's figures."""

    task: str
    first: str
    second: str
    metric: str
    paper_first: float | None
    paper_second: float | None
    source: str


GIGP = "Bujel et al. 2023, Table 1"
LIECONV = "Finzi et al. 2020, LieConv README"
FRAME_AVERAGING = "Puny et al. 2022, Table 4 (EGNN, GNN: Satorras et al. 2021)"
LCONV = "Dehmamy et al. 2021, notebooks (CNN 89-93%)"

PAPER_PAIRS: tuple[PaperPair, ...] = (
    PaperPair("digits-rot", "lieconv-so2-gigp", "lieconv-so2", "test_accuracy", 1 - 0.0138, 1 - 0.0142, GIGP),
    PaperPair("rotmnist", "lieconv-so2-gigp", "lieconv-so2", "test_accuracy", 1 - 0.0138, 1 - 0.0142, GIGP),
    PaperPair("qm9-homo", "lieconv-t3-gigp", "lieconv-t3", "test_mae_meV", 29.4, 30.6, GIGP),
    PaperPair("digits-rot", "lieconv-so2", "lieconv-t2", "test_accuracy", 1 - 0.0127, 1 - 0.0132, LIECONV),
    PaperPair("rotmnist", "lieconv-so2", "lieconv-t2", "test_accuracy", 1 - 0.0127, 1 - 0.0132, LIECONV),
    PaperPair("nbody", "fa-gnn", "egnn", "test_mse", 0.0057, 0.0071, FRAME_AVERAGING),
    PaperPair("nbody", "fa-gnn", "gnn", "test_mse", 0.0057, 0.0107, FRAME_AVERAGING),
    PaperPair("nbody", "egnn", "gnn", "test_mse", 0.0071, 0.0107, FRAME_AVERAGING),
    PaperPair("digits-rot-scrambled", "lconv", "cnn", "test_accuracy", 0.944, 0.91, LCONV),
    PaperPair("digits-rot-scrambled", "lconv", "mlp", "test_accuracy", 0.944, None, LCONV),
    PaperPair("digits-rot-scrambled", "cnn", "mlp", "test_accuracy", 0.91, None, LCONV),
    PaperPair("rotmnist-scrambled", "lconv", "cnn", "test_accuracy", 0.944, 0.91, LCONV),
)


def paper_ordering(pair: PaperPair) -> str:
    """``"<model> better"`` by the published figures, ``"-"`` when a figure is missing."""
    if pair.paper_first is None or pair.paper_second is None:
        return "-"
    first_better = (pair.paper_first > pair.paper_second) == higher_is_better(pair.metric)
    return f"{pair.first if first_better else pair.second} better"


def pair_comparisons(results: pd.DataFrame, pairs: tuple[PaperPair, ...] = PAPER_PAIRS) -> pd.DataFrame:
    """One row per pair and training set-up where both models ran: ours (means, runs, difference, 95% CI, conclusion) beside the paper's."""
    rows = []
    keys = [k for k in SETUP_KEYS if k in results.columns]
    for pair in pairs:
        if pair.metric not in results.columns:
            continue
        runs = results[(results["task"] == pair.task) & results["model"].isin([pair.first, pair.second]) & results[pair.metric].notna()]
        for setup, group in runs.groupby(keys[1:], dropna=False, sort=True):
            scores = {model: group.loc[group["model"] == model, pair.metric].to_numpy() for model in (pair.first, pair.second)}
            if any(len(values) == 0 for values in scores.values()):
                continue
            difference = compare_means(scores[pair.first], scores[pair.second], names=(pair.first, pair.second), higher_is_better=higher_is_better(pair.metric))
            said = paper_ordering(pair)
            rows.append({
                "task": pair.task,
                **dict(zip(keys[1:], setup if isinstance(setup, tuple) else (setup,))),
                "first": pair.first,
                "second": pair.second,
                "metric": pair.metric,
                **{k: v for k, v in difference.as_dict().items() if k not in ("first", "second", "higher_is_better")},
                "paper_first": pair.paper_first,
                "paper_second": pair.paper_second,
                "paper_says": said,
                "agreement": _agreement(difference.conclusion, said),
                "source": pair.source,
            })
    return pd.DataFrame(rows)


def _agreement(ours: str, paper: str) -> str:
    if paper == "-" or ours in (NO_DIFFERENCE, TOO_FEW):
        return "unresolved"
    return "agrees" if ours == paper else "opposite"
