"""Registrations of the Frame Averaging models and their baselines (Puny et al. 2022), with n-body inputs.

Expected verdicts, each for a stated reason:

* ``fa-pointnet``, ``fa-pointnet-normals``, ``fa-gnn-nbody``: frame averaging over E(3)
  frames, with S_n-equivariant backbones and permutation-invariant frames: exact under
  E(3) x S_n, on every input the generators draw, degenerate point clouds included;
* ``egnn-nbody``: exact under E(3) x S_n by construction;
* ``gnn-nbody-permutations`` exact under S_n, ``gnn-nbody-rotations`` violated under SO(3)
  (raw coordinates in the node features);
* ``pointnet-baseline-permutations`` exact under S_n, ``pointnet-baseline-rotations``
  violated under SO(3);
* ``fa-pointnet-naive``: the paper's frame without degeneracy handling. Exact on generic
  clouds, so the random phase passes; the search finds a symmetric cloud (a repeated
  covariance eigenvalue), where ``eigh``'s arbitrary eigenbasis breaks equivariance. Checked
  in float64: a float32 check measures each example's noise floor against the model's float64
  twin, and on an exactly symmetric cloud the naive frame already differs between the two
  evaluations, so the failure would hide in that floor.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from eqbench.actions import Action, Invariant, Points, Scalars, Vectors
from eqbench.groups import E3, SO3, Group, Symmetric
from eqbench.inputs import NBodyInputs, PointCloudInputs
from eqbench.models.baselines import EGNN, NBodyGNN, PointNet
from eqbench.models.frame_averaging import FAGNN, FrameAveraging, fa_gnn, fa_pointnet
from eqbench.registry import register_model

FA_CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 20}
#: Every configuration PointCloudInputs knows (generic, duplicate, collinear, coplanar, symmetric), up to 12 points.
CLOUDS = PointCloudInputs(max_points=12)
SYMMETRIC_CLOUDS = PointCloudInputs(min_points=3, max_points=6, degenerate=("symmetric",))
SYSTEMS = NBodyInputs()
E3_SN = E3() * Symmetric()
SMALL_POINTNET = (32, 32)


def cloud_model(name: str, *, group: Group, out_action: Action, description: str, **settings: Any) -> Callable:
    """``register_model`` for a point-cloud model: ``Points`` in, the FA check settings, ``CLOUDS`` unless given."""
    settings.setdefault("inputs", CLOUDS)
    settings.setdefault("check_options", FA_CHECK)
    return register_model(
        name, group=group, in_action=settings["inputs"].action, out_action=out_action, description=description, **settings
    )


def nbody_model(name: str, *, group: Group, description: str, expected: str = "exact") -> Callable:
    """``register_model`` for an n-body model: ``(positions, velocities, charges)`` in, predicted positions out."""
    return register_model(
        name, group=group, in_action=SYSTEMS.action, out_action=Points(), inputs=SYSTEMS, expected=expected,
        description=description, check_options=FA_CHECK,
    )


@cloud_model(
    "fa-pointnet",
    group=E3_SN,
    out_action=Invariant(),
    description="FA-PointNet classifier, E(3) PCA frames with degeneracy handling (E(3) x S_n invariant)",
)
def fa_pointnet_classifier() -> FrameAveraging:
    return fa_pointnet(4, widths=SMALL_POINTNET)


@cloud_model(
    "fa-pointnet-normals",
    group=E3_SN,
    out_action=Vectors(),
    description="FA-PointNet normal estimation: per-point vectors (E(3) x S_n equivariant)",
)
def fa_pointnet_normals() -> FrameAveraging:
    return fa_pointnet(normals=True, widths=SMALL_POINTNET)


@cloud_model(
    "fa-pointnet-naive",
    group=E3_SN,
    out_action=Vectors(),
    inputs=SYMMETRIC_CLOUDS,
    expected="violated",
    description="broken control: FA-PointNet normals with the paper's naive frame; the search finds a symmetric cloud",
    check_options={**FA_CHECK, "dtype": torch.float64},
)
def fa_pointnet_naive() -> FrameAveraging:
    return fa_pointnet(normals=True, widths=SMALL_POINTNET, degeneracy="naive").double()


@cloud_model(
    "pointnet-baseline-permutations",
    group=Symmetric(),
    out_action=Scalars(),
    description="PointNet per-point head on raw coordinates (S_n equivariant)",
)
def pointnet_baseline_permutations() -> PointNet:
    return PointNet(3, 3, SMALL_POINTNET, per_point=True)


@cloud_model(
    "pointnet-baseline-rotations",
    group=SO3(),
    out_action=Invariant(),
    expected="violated",
    description="PointNet classifier on raw coordinates: not rotation invariant",
)
def pointnet_baseline_rotations() -> PointNet:
    return PointNet(3, 4, SMALL_POINTNET)


@nbody_model(
    "fa-gnn-nbody",
    group=E3_SN,
    description="FA-GNN for charged n-body, frames in every layer: predicted positions (E(3) x S_n equivariant)",
)
def fa_gnn_nbody() -> FAGNN:
    return fa_gnn(hidden=30, layers=2)


@nbody_model(
    "egnn-nbody",
    group=E3_SN,
    description="EGNN with velocities (Satorras et al. 2021) for n-body (E(3) x S_n equivariant)",
)
def egnn_nbody() -> EGNN:
    return EGNN(hidden=32, layers=2)


@nbody_model(
    "gnn-nbody-permutations",
    group=Symmetric(),
    description="message-passing GNN on raw positions and velocities (S_n equivariant)",
)
def gnn_nbody_permutations() -> NBodyGNN:
    return NBodyGNN(hidden=32, layers=2)


@nbody_model(
    "gnn-nbody-rotations",
    group=SO3(),
    expected="violated",
    description="message-passing GNN on raw coordinates: not rotation equivariant",
)
def gnn_nbody_rotations() -> NBodyGNN:
    return NBodyGNN(hidden=32, layers=2)
