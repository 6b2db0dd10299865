"""The reference models compared in the report: one canonical name each, its family, and where its results live.

A model's canonical name is the name ``eqbench train --model`` takes (``lieconv-so2``,
``fa-gnn``); a model that is only checked keeps its registry name (``fa-pointnet``). Each
:class:`ModelLine` lists the registry entries that check it (one entry per group or sampling
configuration: ``fa-gnn-nbody`` is ``fa-gnn`` on n-body inputs), the Monte-Carlo entry swept
against its sample count, the training runs that train it, the asv series that measure it against
a reference implementation; its papers' figures, with their sources, are those
:mod:`eqbench.reports.paper_figures` holds for its name.
Families are the four seed papers' (LieConv, GIGP, L-conv, Frame Averaging) and the baselines
they compare with.
"""
from __future__ import annotations

from dataclasses import dataclass

from eqbench.reports.paper_figures import CHARGED_NBODY, FA_TABLE, FORWARD_SECONDS, PaperFigure, figures_of, paper_figure

FAMILIES = ("LieConv", "GIGP", "L-conv", "Frame Averaging", "Baselines")


@dataclass(frozen=True)
class Speed:
    """An asv series measuring the model against a reference implementation (a ratio: lower is better)."""

    label: str
    key: str
    params: str = ""


@dataclass(frozen=True)
class ModelLine:
    """One row of the leaderboard."""

    name: str
    family: str
    description: str
    checks: tuple[str, ...] = ()
    sweep: str | None = None
    training: tuple[tuple[str, str], ...] = ()
    speed: tuple[Speed, ...] = ()
    sampling: bool = False

    @property
    def papers(self) -> tuple[PaperFigure, ...]:
        """The published figures of this model (:func:`eqbench.reports.paper_figures.figures_of`)."""
        return figures_of(self.name)


#: The main test metric of each training task and whether higher is better.
TASK_METRICS = {
    "digits-rot": ("test_accuracy", True),
    "digits-rot-scrambled": ("test_accuracy", True),
    "nbody": ("test_mse", False),
    "qm9-homo": ("test_mae_meV", False),
}

LIECONV_TIME = "bench_ratios.LieConvReference.track_time"
LIECONV_MEMORY = "bench_ratios.LieConvReferenceMemory.track_peak_memory"


def _paper_speed_ratio(model: str, baseline: str) -> float:
    """``model``'s forward time over ``baseline``'s as Puny et al. 2022 (Table 4) print them."""
    times = [paper_figure(name, CHARGED_NBODY, FORWARD_SECONDS, FA_TABLE) for name in (model, baseline)]
    return times[0].value / times[1].value  # type: ignore[union-attr]  (both are in FIGURES)


LINEUP: tuple[ModelLine, ...] = (
    ModelLine(
        "lieconv-so2", "LieConv", "LieConv with the SO(2) lift (images as point clouds)",
        checks=("lieconv-so2", "lieconv-so2-image", "lieconv-so2-mc", "lieconv-so2-image-mc", "lieconv-so2-mc-control",
                "lieconv-so2-image-mc-control", "lieconv-trivial"), sweep="lieconv-so2-mc",
        training=(("digits-rot", "lieconv-so2"),),
        speed=(Speed("time fwd+bwd / reference", LIECONV_TIME, "'rotmnist-so2', 'forward+backward'"),
               Speed("peak memory / reference", LIECONV_MEMORY, "'rotmnist-so2'")),
        sampling=True,
    ),
    ModelLine(
        "lieconv-t2", "LieConv", "LieConv with the T(2) lift (translations only)",
        checks=("lieconv-t2", "lieconv-t2-image", "lieconv-t2-rotations"),
        speed=(Speed("time fwd+bwd / reference", LIECONV_TIME, "'rotmnist-t2', 'forward+backward'"),
               Speed("peak memory / reference", LIECONV_MEMORY, "'rotmnist-t2'")),
    ),
    ModelLine(
        "lieconv-rxso2", "LieConv", "LieConv with the R>0 x SO(2) lift (rotations and scalings)",
        checks=("lieconv-rxso2",),
    ),
    ModelLine(
        "lieconv-se2", "LieConv", "LieConv with the SE(2) lift, Monte-Carlo stabiliser samples",
        checks=("lieconv-se2", "lieconv-se2-control"), sampling=True,
    ),
    ModelLine(
        "lieconv-t3", "LieConv", "molecule LieConv with the T(3) lift (QM9)",
        checks=("lieconv-t3", "lieconv-t3-molecule"), training=(("qm9-homo", "lieconv-t3"),),
        speed=(Speed("time fwd+bwd / reference", LIECONV_TIME, "'qm9-t3-k1536', 'forward+backward'"),
               Speed("peak memory / reference", LIECONV_MEMORY, "'qm9-t3-k1536'")),
    ),
    ModelLine(
        "lieconv-se3", "LieConv", "LieConv with the SE(3) lift, Monte-Carlo stabiliser samples",
        checks=("lieconv-se3", "lieconv-so3", "lieconv-se3-control", "lieconv-so3-control"), sweep="lieconv-se3", sampling=True,
    ),
    ModelLine(
        "lieconv-so2-gigp", "GIGP", "image LieConv (SO(2)) with group-invariant global pooling",
        checks=("lieconv-so2-gigp",), training=(("digits-rot", "lieconv-so2-gigp"),),
    ),
    ModelLine(
        "lieconv-t3-gigp", "GIGP", "molecule LieConv with GIGP pooling over distances to the centroid",
        checks=("lieconv-t3-molecule-gigp", "lieconv-se3-molecule-gigp", "lieconv-se3-molecule-gigp-control"),
        sweep="lieconv-se3-molecule-gigp",
        training=(("qm9-homo", "lieconv-t3-gigp"),), sampling=True,
    ),
    ModelLine(
        "lconv", "L-conv", "L-conv layers (Lie algebra convolution)",
        checks=("lconv-shift", "lconv-rotation-finite-angles", "lconv-random-generators"), training=(("digits-rot-scrambled", "lconv"),),
    ),
    ModelLine(
        "fa-gnn", "Frame Averaging", "FA-GNN: PCA frames in every layer (n-body)",
        checks=("fa-gnn-nbody",), training=(("nbody", "fa-gnn"),),
        speed=(Speed(f"forward time / EGNN (paper {_paper_speed_ratio('fa-gnn', 'egnn'):.2f} on GPU)", "bench_ratios.FrameAveragingSpeed.track_fa_gnn_per_egnn"),),
    ),
    ModelLine(
        "fa-pointnet", "Frame Averaging", "FA-PointNet with degeneracy-aware E(3) frames",
        checks=("fa-pointnet", "fa-pointnet-normals", "fa-pointnet-naive"),
    ),
    ModelLine(
        "egnn", "Baselines", "EGNN (Satorras et al. 2021), FA-GNN's n-body baseline",
        checks=("egnn-nbody", "egnn-layer"), training=(("nbody", "egnn"),),
    ),
    ModelLine(
        "gnn", "Baselines", "message-passing GNN on raw coordinates (not rotation equivariant)",
        checks=("gnn-nbody-permutations", "gnn-nbody-rotations"), training=(("nbody", "gnn"),),
    ),
    ModelLine(
        "pointnet", "Baselines", "PointNet, FA-PointNet's baseline (permutation invariant only)",
        checks=("pointnet", "pointnet-per-point", "pointnet-baseline-permutations", "pointnet-baseline-rotations"),
    ),
    ModelLine(
        "cnn", "Baselines", "CNN, the L-conv paper's baseline", training=(("digits-rot", "cnn"), ("digits-rot-scrambled", "cnn")),
    ),
    ModelLine("mlp", "Baselines", "MLP on flattened pixels", training=(("digits-rot", "mlp"), ("digits-rot-scrambled", "mlp"))),
)


def canonical_name(registry_or_training_name: str) -> str | None:
    """The canonical model name of a registry entry or training model name, None if no line claims it."""
    for line in LINEUP:
        if registry_or_training_name == line.name or registry_or_training_name in line.checks \
                or registry_or_training_name == line.sweep \
                or any(model == registry_or_training_name for _, model in line.training):
            return line.name
    return None
