"""The seed papers' published figures, each written once here with its source (paper and table).

Every other place that shows or compares a published figure reads it from :data:`FIGURES`: the
leaderboard's ``paper`` column (:mod:`eqbench.reports.lineup`), the papers' pairs of the training
report (:mod:`eqbench.reports.paper_pairs`) and the FA-GNN / EGNN speed ratio (``suites/fa_ratios.py``).

A :class:`PaperFigure` is one number for one model on one data set, in the units of the column
of ours it compares with: image papers print test *error* rates, stored here as accuracies
(``1 - error``) with the printed text beside them; QM9 errors are MAE in meV; n-body errors are
test MSE; forward times are seconds per forward pass on the paper's GPU. The figures come from:

* Finzi et al. 2020 (LieConv), the results table of the authors' README: rotMNIST and QM9.
* Bujel et al. 2023 (GIGP), Table 1: LieConv with GIGP against LieConv with global mean pooling.
* Puny et al. 2022 (Frame Averaging), Table 4: charged n-body test MSE and forward time; its EGNN
  and GNN rows are the figures Satorras et al. 2021 (EGNN) report.
* Dehmamy et al. 2021 (L-conv), the authors' notebooks: rotated-and-scrambled MNIST accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    """A paper's data set as it prints its name, and our training tasks that stand for it."""

    name: str
    tasks: tuple[str, ...]


ROTMNIST = Dataset("rotMNIST", ("digits-rot", "rotmnist"))
ROTATED_SCRAMBLED = Dataset("rotated-and-scrambled MNIST", ("digits-rot-scrambled", "rotmnist-scrambled"))
QM9_HOMO = Dataset("QM9 HOMO", ("qm9-homo",))
CHARGED_NBODY = Dataset("charged n-body", ("nbody",))

LIECONV_README = "Finzi et al. 2020, LieConv README"
GIGP_TABLE = "Bujel et al. 2023, Table 1"
FA_TABLE = "Puny et al. 2022, Table 4"
LCONV_NOTEBOOKS = "Dehmamy et al. 2021, their notebooks"

ACCURACY = "test_accuracy"
MAE_MEV = "test_mae_meV"
MSE = "test_mse"
FORWARD_SECONDS = "forward_seconds"


@dataclass(frozen=True)
class PaperFigure:
    """One published number: ``model`` on ``dataset``, as our column ``metric`` measures it (``value``), as printed (``printed``)."""

    model: str
    dataset: Dataset
    metric: str
    value: float
    printed: str
    source: str

    @property
    def text(self) -> str:
        """``"<data set> <as printed>"``, e.g. ``"rotMNIST test error 1.27%"``."""
        return f"{self.dataset.name} {self.printed}"


def _error_rate(model: str, percent: float, source: str, note: str = "") -> PaperFigure:
    """A rotMNIST test error rate (percent) as the accuracy our image tasks report."""
    return PaperFigure(model, ROTMNIST, ACCURACY, 1 - percent / 100, f"test error {percent:g}%{note}", source)


def _homo_mae(model: str, mev: float, source: str, note: str = "") -> PaperFigure:
    return PaperFigure(model, QM9_HOMO, MAE_MEV, mev, f"test MAE {mev:g} meV{note}", source)


def _nbody_mse(model: str, mse: float, note: str = "") -> PaperFigure:
    return PaperFigure(model, CHARGED_NBODY, MSE, mse, f"test MSE {mse:g}{note}", FA_TABLE)


def _forward_seconds(model: str, seconds: float) -> PaperFigure:
    return PaperFigure(model, CHARGED_NBODY, FORWARD_SECONDS, seconds, f"{seconds:g} s per forward (GPU)", FA_TABLE)


GLOBAL_POOLING = " (global mean pooling)"
FROM_EGNN = " (Satorras et al. 2021's figure)"

FIGURES: tuple[PaperFigure, ...] = (
    _error_rate("lieconv-so2", 1.27, LIECONV_README),
    _error_rate("lieconv-t2", 1.32, LIECONV_README),
    _error_rate("lieconv-rxso2", 1.13, LIECONV_README),
    _error_rate("lieconv-se2", 1.13, LIECONV_README),
    _homo_mae("lieconv-t3", 30, LIECONV_README),
    _homo_mae("lieconv-se3", 26.8, LIECONV_README),
    _error_rate("lieconv-so2-gigp", 1.38, GIGP_TABLE),
    _error_rate("lieconv-so2", 1.42, GIGP_TABLE, GLOBAL_POOLING),
    _homo_mae("lieconv-t3-gigp", 29.4, GIGP_TABLE),
    _homo_mae("lieconv-t3", 30.6, GIGP_TABLE, GLOBAL_POOLING),
    _nbody_mse("fa-gnn", 0.0057),
    _nbody_mse("egnn", 0.0071, FROM_EGNN),
    _nbody_mse("gnn", 0.0107, FROM_EGNN),
    _forward_seconds("fa-gnn", 0.0041),
    _forward_seconds("egnn", 0.0062),
    PaperFigure("lconv", ROTATED_SCRAMBLED, ACCURACY, 0.944, "accuracy about 0.944", LCONV_NOTEBOOKS),
    # the notebooks give the CNN a range, 0.89-0.93; its middle stands for it in comparisons
    PaperFigure("cnn", ROTATED_SCRAMBLED, ACCURACY, 0.91, "accuracy 0.89-0.93", LCONV_NOTEBOOKS),
)


def figures_of(model: str) -> tuple[PaperFigure, ...]:
    """Every published figure of ``model`` (a canonical name: ``eqbench train --model``'s, else the registry's)."""
    return tuple(figure for figure in FIGURES if figure.model == model)


def paper_figure(model: str, dataset: Dataset, metric: str, source: str) -> PaperFigure | None:
    """The one figure ``source`` prints for ``model`` on ``dataset`` in ``metric``; ``None`` when it prints none."""
    found = [f for f in FIGURES if (f.model, f.dataset, f.metric, f.source) == (model, dataset, metric, source)]
    if len(found) > 1:
        raise ValueError(f"{source} has {len(found)} figures of {model} on {dataset.name} in {metric}; FIGURES holds each once")
    return found[0] if found else None
