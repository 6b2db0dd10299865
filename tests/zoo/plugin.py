"""Registrations of the zoo (suite ``zoo``): ``eqbench check --plugin zoo.plugin --seed S`` with ``tests`` on the path.

Every entry uses the checker's default settings (no ``check_options`` but a ``dtype`` where the
case is about float64); ``expected`` is the truth: ``exact``, ``violated`` (broken: met by any
verdict but ``exact`` and ``error``) or ``error``. :data:`TRUTH` names each entry's truth and
why it is hard (the model's docstring says more).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from eqbench.actions import Action, Invariant, Scalars, Vectors
from eqbench.groups import E3, O3, SO3, Group, Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.registry import register_model
from zoo import models
from zoo.molecules import MoleculeInputs

SUITE = "zoo"
E3_SN = E3() * Symmetric()
CLOUDS = PointCloudInputs()
#: Frame averaging costs a forward pass per frame: clouds of up to 12 points keep the 20-seed sweep short.
FRAME_CLOUDS = PointCloudInputs(max_points=12)
TWO_POINTS = PointCloudInputs(min_points=2, max_points=2)
SYMMETRIC = PointCloudInputs(min_points=3, max_points=12, degenerate=("symmetric", "polygon", "polyhedron", "lattice"))
DENSE = PointCloudInputs(min_points=4, max_points=12, min_scale=0.01, max_scale=0.1)
MOLECULES = MoleculeInputs()
VECTOR = Vectors(per_point=False)
FLOAT64 = {"dtype": torch.float64}

#: name -> (truth, why it is hard), filled by :func:`zoo`.
TRUTH: dict[str, tuple[str, str]] = {}


class FarClouds(PointCloudInputs):
    """Point clouds shifted 100 units along (1, 1, 1) / sqrt(3), far from the origin relative to their size."""

    def __call__(self, structure: Any) -> Any:
        return super().__call__(structure) + 100.0 / 3**0.5


def zoo(name: str, truth: str, why: str, group: Group, out_action: Action, inputs: Any = CLOUDS, **settings: Any) -> Callable:
    """``register_model`` for a zoo entry: ``expected`` from the truth, suite ``zoo``, default checker settings."""
    TRUTH[name] = (truth, why)
    expected = {"exact": "exact", "broken": "violated", "error": "error"}[truth]
    return register_model(
        name, group=group, in_action=inputs.action, out_action=out_action, inputs=inputs, expected=expected,
        suites=(SUITE,), description=why, **settings,
    )


# ------------------------------------------------------------------ vanishing outputs
@zoo("zoo-centroid-vector", "exact", "vanishes on 2-point and symmetric clouds", E3_SN, VECTOR)
def centroid_vector() -> models.CentroidVector:
    return models.CentroidVector()


@zoo("zoo-centroid-vector-2pt", "exact", "2-point clouds only: the output is always zero", E3_SN, VECTOR, TWO_POINTS)
def centroid_vector_two_points() -> models.CentroidVector:
    return models.CentroidVector()


@zoo("zoo-centroid-vector-symmetric-f64", "exact", "symmetric clouds only, float64", E3_SN, VECTOR, SYMMETRIC, check_options=FLOAT64)
def centroid_vector_symmetric() -> models.CentroidVector:
    return models.CentroidVector()


@zoo("zoo-cubic-moment-symmetric", "exact", "zero on every symmetric cloud", E3_SN, VECTOR, SYMMETRIC)
def cubic_moment() -> models.CubicMoment:
    return models.CubicMoment()


@zoo("zoo-dipole-molecules", "exact", "dipole of methane, SF6, benzene is zero", E3_SN, VECTOR, MOLECULES)
def dipole() -> models.Dipole:
    return models.Dipole()


# ------------------------------------------------------------------ discontinuous frames
@zoo("zoo-naive-frame-averaging", "broken", "PCA frame, repeated eigenvalues ignored (float32)", E3_SN, Vectors(), FRAME_CLOUDS)
def naive_fa() -> Any:
    return models.naive_frame_averaging()


@zoo(
    "zoo-naive-frame-averaging-f64", "broken", "PCA frame, repeated eigenvalues ignored (float64)", E3_SN, Vectors(), FRAME_CLOUDS,
    check_options=FLOAT64,
)
def naive_fa_64() -> Any:
    return models.naive_frame_averaging()


@zoo("zoo-multiplicity-frame-averaging", "exact", "frame built from the data on degenerate clouds", E3_SN, Vectors(), FRAME_CLOUDS)
def multiplicity_fa() -> Any:
    return models.multiplicity_frame_averaging()


# ------------------------------------------------------------------ rare inputs and rounding
@zoo("zoo-index-truncated-neighbours", "broken", "breaks S_n only when 3 points share a ball (dense clouds)", Symmetric(), Scalars(), DENSE)
def truncated() -> models.IndexTruncatedNeighbours:
    torch.manual_seed(0)
    return models.IndexTruncatedNeighbours()


@zoo("zoo-far-cancellation", "exact", "float32 cancellation 100 units from the origin", E3_SN, Invariant(size=1), FarClouds())
def far_cancellation() -> models.CancellingVariance:
    return models.CancellingVariance()


@zoo("zoo-leak-1e-4", "broken", "relative leak 1e-4 (reads approximate)", SO3(), Invariant(size=1))
def leak_4() -> models.Leaky:
    return models.Leaky(1e-4)


@zoo("zoo-leak-1e-6-f64", "broken", "relative leak 1e-6 (below float32's rounding: checked in float64)", SO3(), Invariant(size=1), check_options=FLOAT64)
def leak_6() -> models.Leaky:
    return models.Leaky(1e-6)


@zoo("zoo-translation-break", "broken", "rotations and reflections fine, translations not", E3(), Invariant(size=1))
def translation_break() -> models.RawNorm:
    return models.RawNorm()


@zoo("zoo-reflection-break", "broken", "rotations fine, reflections not", O3(), Invariant(size=1))
def reflection_break() -> models.Handedness:
    return models.Handedness()


# ------------------------------------------------------------------ randomness
@zoo("zoo-dropout-without-flag", "error", "dropout in training mode, no stochastic=", E3_SN, Invariant(size=2))
def dropout() -> models.DropoutDistances:
    return models.DropoutDistances()


@zoo("zoo-dropout-axis-without-flag", "error", "dropout plus a real break, no stochastic=", E3_SN, Invariant(size=2))
def dropout_axis() -> models.DropoutDistances:
    return models.DropoutDistances(read_axis=True)


@zoo("zoo-random-subset-crn", "exact", "random subset, randomness commutes with rotations", SO3(), Invariant(size=1), stochastic="crn")
def random_subset() -> models.RandomSubsetRadius:
    return models.RandomSubsetRadius()


@zoo("zoo-random-subset-axis-crn", "broken", "random subset plus a real break", SO3(), Invariant(size=1), stochastic="crn")
def random_subset_axis() -> models.RandomSubsetRadius:
    return models.RandomSubsetRadius(read_axis=True)


# ------------------------------------------------------------------ integer outputs, odd modules, failures
@zoo("zoo-neighbour-count", "exact", "int64 output, compared exactly", E3_SN, Invariant(size=1))
def neighbour_count() -> models.NeighbourCount:
    return models.NeighbourCount()


@zoo("zoo-widest-axis", "broken", "int64 output of an axis index", SO3(), Invariant())
def widest_axis() -> models.WidestAxis:
    return models.WidestAxis()


@zoo("zoo-locked", "exact", "holds a lock and a module: cannot be deep-copied", E3_SN, Invariant(size=2))
def locked() -> models.Locked:
    return models.Locked()


@zoo("zoo-locked-axis", "broken", "cannot be deep-copied, and reads an axis", E3_SN, Invariant(size=2))
def locked_axis() -> models.Locked:
    return models.Locked(read_axis=True)


@zoo("zoo-factory-raises", "error", "the factory raises NameError", E3_SN, Invariant())
def factory_raises() -> Any:
    return undefined_model()  # noqa: F821 - deliberately undefined, as in a user's typo


@zoo("zoo-forward-raises", "error", "the forward pass raises", E3_SN, Invariant())
def forward_raises() -> models.Raises:
    return models.Raises()


@zoo("zoo-wrong-shape", "error", "returns (B, N, 3) where Invariant(size=4) is declared", E3_SN, Invariant(size=4))
def wrong_shape() -> models.PerPointInsteadOfInvariant:
    return models.PerPointInsteadOfInvariant()


# ------------------------------------------------------------------ real library models
@zoo("zoo-e3nn-vector", "exact", "e3nn 1x1o output on symmetric molecules", E3_SN, VECTOR, MOLECULES)
def e3nn_vector() -> models.E3nnVectorNet:
    return models.E3nnVectorNet("1x1o")


@zoo("zoo-e3nn-pseudovector", "exact", "e3nn 1x1e output on symmetric molecules", E3_SN, Vectors(per_point=False, pseudo=True), MOLECULES)
def e3nn_pseudovector() -> models.E3nnVectorNet:
    return models.E3nnVectorNet("1x1e")


@zoo("zoo-e3nn-pseudovector-as-vector", "broken", "a 1x1e output declared a vector: reflections break", E3_SN, VECTOR, MOLECULES)
def e3nn_pseudovector_as_vector() -> models.E3nnVectorNet:
    return models.E3nnVectorNet("1x1e")


@zoo("zoo-schnet", "exact", "PyG SchNet energy, pure-torch radius graph", E3_SN, Invariant(size=1), MOLECULES)
def schnet() -> models.SchNetEnergy:
    return models.SchNetEnergy()
