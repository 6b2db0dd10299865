"""The reference models compared in the report: one canonical name each, its family, and where its results live.

A model's canonical name is the name ``eqbench train --model`` takes (``lieconv-so2``,
``fa-gnn``); a model that is only checked keeps its registry name (``fa-pointnet``). Each
:class:`ModelLine` lists the registry entries that check it (one entry per group or sampling
configuration: ``fa-gnn-nbody`` is ``fa-gnn`` on n-body inputs), the Monte-Carlo entry swept
against its sample count, the training runs that train it, the asv series that measure it against
a reference implementation, and its papers' figures with their sources (../shared/ANCHORS.md).
Families are the four seed papers' (LieConv, GIGP, L-conv, Frame Averaging) and the baselines
they compare with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FAMILIES = ("LieConv", "GIGP", "L-conv", "Frame Averaging", "Baselines")


@dataclass(frozen=True)
class PaperFigure:
    """A published figure: what it measures (``figure``, with its data set) and where it is printed (``source``)."""

    task: str
    figure: str
    source: str


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
    papers: tuple[PaperFigure, ...] = field(default=())
    sampling: bool = False


#: The main test metric of each training task and whether higher is better.
TASK_METRICS = {
    "digits-rot": ("test_accuracy", True),
    "digits-rot-scrambled": ("test_accuracy", True),
    "nbody": ("test_mse", False),
    "qm9-homo": ("test_mae_meV", False),
}

LIECONV_TIME = "bench_ratios.LieConvReference.track_time"
LIECONV_MEMORY = "bench_ratios.LieConvReferenceMemory.track_peak_memory"
LIECONV_README = "LieConv README (Finzi et al. 2020)"
GIGP_TABLE = "Bujel et al. 2023, Table 1"
FA_TABLE = "Puny et al. 2022, n-body table"

LINEUP: tuple[ModelLine, ...] = (
    ModelLine(
        "lieconv-so2", "LieConv", "LieConv with the SO(2) lift (images as point clouds)",
        checks=("lieconv-so2", "lieconv-so2-image", "lieconv-so2-mc", "lieconv-so2-image-mc", "lieconv-so2-mc-control",
                "lieconv-so2-image-mc-control", "lieconv-trivial"), sweep="lieconv-so2-mc",
        training=(("digits-rot", "lieconv-so2"),),
        speed=(Speed("time fwd+bwd / reference", LIECONV_TIME, "'rotmnist-so2', 'forward+backward'"),
               Speed("peak memory / reference", LIECONV_MEMORY, "'rotmnist-so2'")),
        papers=(PaperFigure("digits-rot", "rotMNIST test error 1.27% (accuracy 0.9873)", LIECONV_README),),
        sampling=True,
    ),
    ModelLine(
        "lieconv-t2", "LieConv", "LieConv with the T(2) lift (translations only)",
        checks=("lieconv-t2", "lieconv-t2-image", "lieconv-t2-rotations"),
        speed=(Speed("time fwd+bwd / reference", LIECONV_TIME, "'rotmnist-t2', 'forward+backward'"),
               Speed("peak memory / reference", LIECONV_MEMORY, "'rotmnist-t2'")),
        papers=(PaperFigure("rotmnist", "rotMNIST test error 1.32% (T(2))", LIECONV_README),),
    ),
    ModelLine(
        "lieconv-rxso2", "LieConv", "LieConv with the R>0 x SO(2) lift (rotations and scalings)",
        checks=("lieconv-rxso2",),
        papers=(PaperFigure("rotmnist", "rotMNIST test error 1.13% (RxSO(2))", LIECONV_README),),
    ),
    ModelLine(
        "lieconv-se2", "LieConv", "LieConv with the SE(2) lift, Monte-Carlo stabiliser samples",
        checks=("lieconv-se2", "lieconv-se2-control"), sampling=True,
        papers=(PaperFigure("rotmnist", "rotMNIST test error 1.13% (SE(2))", LIECONV_README),),
    ),
    ModelLine(
        "lieconv-t3", "LieConv", "molecule LieConv with the T(3) lift (QM9)",
        checks=("lieconv-t3", "lieconv-t3-molecule"), training=(("qm9-homo", "lieconv-t3"),),
        speed=(Speed("time fwd+bwd / reference", LIECONV_TIME, "'qm9-t3-k1536', 'forward+backward'"),
               Speed("peak memory / reference", LIECONV_MEMORY, "'qm9-t3-k1536'")),
        papers=(PaperFigure("qm9-homo", "QM9 HOMO test MAE 30 meV", LIECONV_README),),
    ),
    ModelLine(
        "lieconv-se3", "LieConv", "LieConv with the SE(3) lift, Monte-Carlo stabiliser samples",
        checks=("lieconv-se3", "lieconv-so3", "lieconv-se3-control", "lieconv-so3-control"), sweep="lieconv-se3", sampling=True,
        papers=(PaperFigure("qm9-homo", "QM9 HOMO test MAE 26.8 meV (SE(3))", LIECONV_README),),
    ),
    ModelLine(
        "lieconv-so2-gigp", "GIGP", "image LieConv (SO(2)) with group-invariant global pooling",
        checks=("lieconv-so2-gigp",), training=(("digits-rot", "lieconv-so2-gigp"),),
        papers=(PaperFigure("digits-rot", "rotMNIST test error 1.38% (1.42% with global pooling)", GIGP_TABLE),),
    ),
    ModelLine(
        "lieconv-t3-gigp", "GIGP", "molecule LieConv with GIGP pooling over distances to the centroid",
        checks=("lieconv-t3-molecule-gigp", "lieconv-se3-molecule-gigp", "lieconv-se3-molecule-gigp-control"),
        sweep="lieconv-se3-molecule-gigp",
        training=(("qm9-homo", "lieconv-t3-gigp"),), sampling=True,
        papers=(PaperFigure("qm9-homo", "QM9 HOMO test MAE 29.4 meV (30.6 with global pooling)", GIGP_TABLE),),
    ),
    ModelLine(
        "lconv", "L-conv", "L-conv layers (Lie algebra convolution)",
        checks=("lconv-shift", "lconv-rotation-finite-angles", "lconv-random-generators"), training=(("digits-rot-scrambled", "lconv"),),
        papers=(PaperFigure("digits-rot-scrambled", "rotated-and-scrambled MNIST accuracy about 0.944",
                            "Dehmamy et al. 2021 (their notebooks)"),),
    ),
    ModelLine(
        "fa-gnn", "Frame Averaging", "FA-GNN: PCA frames in every layer (n-body)",
        checks=("fa-gnn-nbody",), training=(("nbody", "fa-gnn"),),
        speed=(Speed("forward time / EGNN (paper 0.66 on GPU)", "bench_ratios.FrameAveragingSpeed.track_fa_gnn_per_egnn"),),
        papers=(PaperFigure("nbody", "n-body test MSE 0.0057, 0.0041 s per forward", FA_TABLE),),
    ),
    ModelLine(
        "fa-pointnet", "Frame Averaging", "FA-PointNet with degeneracy-aware E(3) frames",
        checks=("fa-pointnet", "fa-pointnet-normals", "fa-pointnet-naive"),
    ),
    ModelLine(
        "egnn", "Baselines", "EGNN (Satorras et al. 2021), FA-GNN's n-body baseline",
        checks=("egnn-nbody", "egnn-layer"), training=(("nbody", "egnn"),),
        papers=(PaperFigure("nbody", "n-body test MSE 0.0071, 0.0062 s per forward", FA_TABLE),),
    ),
    ModelLine(
        "gnn", "Baselines", "message-passing GNN on raw coordinates (not rotation equivariant)",
        checks=("gnn-nbody-permutations", "gnn-nbody-rotations"), training=(("nbody", "gnn"),),
        papers=(PaperFigure("nbody", "n-body test MSE 0.0107", FA_TABLE),),
    ),
    ModelLine(
        "pointnet", "Baselines", "PointNet, FA-PointNet's baseline (permutation invariant only)",
        checks=("pointnet", "pointnet-per-point", "pointnet-baseline-permutations", "pointnet-baseline-rotations"),
    ),
    ModelLine(
        "cnn", "Baselines", "CNN, the L-conv paper's baseline", training=(("digits-rot", "cnn"), ("digits-rot-scrambled", "cnn")),
        papers=(PaperFigure("digits-rot-scrambled", "rotated-and-scrambled MNIST accuracy 0.89-0.93",
                            "Dehmamy et al. 2021 (their notebooks)"),),
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
