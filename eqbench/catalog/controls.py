"""Registrations of the control models (:mod:`eqbench.models.controls`) in the default suite.

Correct controls are expected ``exact``, broken ones ``violated``; each docstring in the model
module says why. Every check here uses :data:`CONTROL_CHECK` (a few inputs and elements and a
short hypothesis search) so that the whole control suite runs in seconds and the
20-seed acceptance test in well under a minute.

The truncated-neighbourhood control is the rare-input case. With radius 0.35 and at most 2
neighbours kept, the random phase's generic clouds (8 points of scale 1, where a given pair
lies within the radius with probability about 0.5%) essentially never put 3 points inside
one ball, so only the search finds the configuration that breaks S_n. Its inputs
(:data:`DENSE_CAPABLE_CLOUDS`) reach scales down to 0.01, where every pair does, and its
search is longer (:data:`RARE_INPUT_CHECK`): searching for rare inputs is what that control
tests. Measured over seeds 0..499, the random phase alone never caught it and the search
always did.
"""
from __future__ import annotations

from typing import Callable, Mapping

from torch import nn

from eqbench.actions import Action, Invariant, Points, Scalars, Tuple
from eqbench.groups import E3, O3, SE3, SO3, Group, Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models import controls
from eqbench.models.baselines import PointNet
from eqbench.registry import register_model

#: Checker settings shared by every control: small, yet each broken control fails in the random
#: phase or the search for every seed (tests/test_controls.py runs seeds 0..19).
CONTROL_CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 30}
RARE_INPUT_CHECK = {**CONTROL_CHECK, "search_examples": 100}
CLOUDS = PointCloudInputs()
CLOUDS_WITH_FEATURES = PointCloudInputs(features=4)
CLOUDS_WITH_VELOCITIES = PointCloudInputs(vectors=1)
#: Clouds of 4 to 12 points at scales down to 0.01, for the truncated-neighbourhood control.
DENSE_CAPABLE_CLOUDS = PointCloudInputs(min_points=4, max_points=12, min_scale=0.01)
#: CoordinateMLP has one weight per coordinate of a fixed number of points.
FIXED_CLOUDS = PointCloudInputs(min_points=8, max_points=8)
E3_SN = E3() * Symmetric()
SE3_SN = SE3() * Symmetric()


def control(
    name: str,
    group: Group,
    inputs: PointCloudInputs,
    out_action: Action,
    description: str,
    *,
    expected: str = "exact",
    check_options: Mapping[str, int] = CONTROL_CHECK,
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """:func:`~eqbench.registry.register_model` for a control: its inputs' own action, :data:`CONTROL_CHECK` by default."""
    return register_model(
        name,
        group=group,
        in_action=inputs.action,
        out_action=out_action,
        inputs=inputs,
        expected=expected,
        description=description,
        check_options=check_options,
    )


def broken(
    name: str, group: Group, inputs: PointCloudInputs, out_action: Action, description: str, *,
    check_options: Mapping[str, int] = CONTROL_CHECK,
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """:func:`control` for a deliberately broken model: expected ``violated``."""
    return control(name, group, inputs, out_action, description, expected="violated", check_options=check_options)


# ----------------------------------------------------------------------------- correct
@control("distance-mlp", E3_SN, CLOUDS, Invariant(), "MLP on pairwise distances with sum pooling (E(3) x S_n invariant)")
def distance_mlp() -> controls.DistanceMLP:
    return controls.DistanceMLP()


@control("deepsets", Symmetric(), CLOUDS, Invariant(), "DeepSets rho(sum_i phi(x_i)) (S_n invariant)")
def deepsets() -> controls.DeepSets:
    return controls.DeepSets()


@control("pointnet", Symmetric(), CLOUDS, Invariant(), "PointNet without transform nets, max-pooled output (S_n invariant)")
def pointnet() -> PointNet:
    return PointNet(3, 4, widths=(16, 16))


@control(
    "pointnet-per-point", Symmetric(), CLOUDS, Scalars(),
    "PointNet segmentation head [h_i, max_j h_j] (S_n equivariant per point)",
)
def pointnet_per_point() -> PointNet:
    return PointNet(3, 4, widths=(16, 16), per_point=True)


@control(
    "egnn-layer", E3_SN, CLOUDS_WITH_FEATURES, Tuple(Points(), Scalars()),
    "EGNN layer, Satorras et al. 2021 (positions E(3) x S_n equivariant, features invariant)",
)
def egnn_layer() -> controls.EGNNLayer:
    return controls.EGNNLayer(in_features=CLOUDS_WITH_FEATURES.features)


@control(
    "chiral-so3", SO3(), CLOUDS, Invariant(),
    "distances plus a signed volume det[u1 u2 u3] (SO(3) invariant; see chiral-o3)",
)
def chiral_so3() -> controls.ChiralInvariant:
    return controls.ChiralInvariant()


# ------------------------------------------------------------------------------ broken
@broken(
    "chiral-o3", O3(), CLOUDS, Invariant(),
    "broken: the signed volume flips sign under reflections (not O(3) invariant)",
)
def chiral_o3() -> controls.ChiralInvariant:
    return controls.ChiralInvariant()


@broken(
    "coordinate-mlp", SO3(), FIXED_CLOUDS, Invariant(),
    "broken: MLP on the flattened raw coordinates (not rotation invariant)",
)
def coordinate_mlp() -> controls.CoordinateMLP:
    return controls.CoordinateMLP(num_points=FIXED_CLOUDS.max_points)


@broken(
    "axis-reader", SE3_SN, CLOUDS, Invariant(),
    "broken: distance MLP plus the variance along axis 0 (not rotation invariant)",
)
def axis_reader() -> controls.AxisReader:
    return controls.AxisReader()


@broken(
    "index-weighted-pooling", Symmetric(), CLOUDS, Invariant(),
    "broken: DeepSets with one learned weight per point index (not S_n invariant)",
)
def index_weighted_pooling() -> controls.IndexWeightedPooling:
    return controls.IndexWeightedPooling()


@broken(
    "raw-velocity-energy", SE3_SN, CLOUDS_WITH_VELOCITIES, Invariant(),
    "broken: feeds raw velocity components to an invariant (velocities not rotated)",
)
def raw_velocity_energy() -> controls.RawVelocityEnergy:
    return controls.RawVelocityEnergy()


@broken(
    "truncated-neighbourhood", Symmetric(), DENSE_CAPABLE_CLOUDS, Scalars(),
    "broken on dense inputs: keeps the first K neighbours within r by index (S_n)", check_options=RARE_INPUT_CHECK,
)
def truncated_neighbourhood() -> controls.TruncatedNeighbourhood:
    return controls.TruncatedNeighbourhood(radius=0.35, max_neighbours=2)
