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

The pairs and the published figures they read (:mod:`eqbench.reports.paper_figures`, where
each figure is written once with its source): GIGP vs mean pooling (Bujel et al. 2023) on
rotMNIST and QM9 HOMO; LieConv SO(2) vs T(2) on rotMNIST (Finzi et al. 2020); FA-GNN vs EGNN vs
GNN on charged n-body (Puny et al. 2022); L-conv vs CNN vs the fully connected baseline on
rotated-and-scrambled MNIST (Dehmamy et al. 2021, no figure for the fully connected net). A pair
on a paper's data set is compared on each of our tasks that stand for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from eqbench.reports.paper_figures import (
    ACCURACY,
    CHARGED_NBODY,
    FA_TABLE,
    GIGP_TABLE,
    LCONV_NOTEBOOKS,
    LIECONV_README,
    MAE_MEV,
    MSE,
    QM9_HOMO,
    ROTATED_SCRAMBLED,
    ROTMNIST,
    Dataset,
    paper_figure,
)
from eqbench.reports.statistics import NO_DIFFERENCE, TOO_FEW, compare_means, higher_is_better

#: Columns that keep different training set-ups apart in a comparison (those present are used).
SETUP_KEYS = ("task", "dataset", "preset", "configuration", "device")


@dataclass(frozen=True)
class PaperPair:
    """Two models a paper compares on a task, by ``metric`` (our column), with the paper's figures (``None``: not published)."""

    task: str
    first: str
    second: str
    metric: str
    paper_first: float | None
    paper_second: float | None
    source: str


def _pairs(first: str, second: str, dataset: Dataset, metric: str, source: str) -> tuple[PaperPair, ...]:
    """``first`` vs ``second`` as ``source`` compares them on ``dataset``, once per task of ours that stands for it."""
    figures = [paper_figure(model, dataset, metric, source) for model in (first, second)]
    printed = ", ".join(f"{figure.model} {figure.printed}" for figure in figures if figure is not None)
    values = [None if figure is None else figure.value for figure in figures]
    return tuple(PaperPair(task, first, second, metric, *values, f"{source}: {printed}") for task in dataset.tasks)


PAPER_PAIRS: tuple[PaperPair, ...] = (
    *_pairs("lieconv-so2-gigp", "lieconv-so2", ROTMNIST, ACCURACY, GIGP_TABLE),
    *_pairs("lieconv-t3-gigp", "lieconv-t3", QM9_HOMO, MAE_MEV, GIGP_TABLE),
    *_pairs("lieconv-so2", "lieconv-t2", ROTMNIST, ACCURACY, LIECONV_README),
    *_pairs("fa-gnn", "egnn", CHARGED_NBODY, MSE, FA_TABLE),
    *_pairs("fa-gnn", "gnn", CHARGED_NBODY, MSE, FA_TABLE),
    *_pairs("egnn", "gnn", CHARGED_NBODY, MSE, FA_TABLE),
    *_pairs("lconv", "cnn", ROTATED_SCRAMBLED, ACCURACY, LCONV_NOTEBOOKS),
    *_pairs("lconv", "mlp", ROTATED_SCRAMBLED, ACCURACY, LCONV_NOTEBOOKS),
    *_pairs("cnn", "mlp", ROTATED_SCRAMBLED, ACCURACY, LCONV_NOTEBOOKS),
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
