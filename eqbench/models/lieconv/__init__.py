"""LieConv (Finzi, Stanton, Izmailov, Wilson, ICML 2020): convolutions on Lie groups for point clouds.

Modules, in the order data flows through them:

* :mod:`~eqbench.models.lieconv.groups`: lifting groups (T(n), SO(2), R>0 x SO(2), SE(2),
  SO(3), SE(3), trivial) with lift, exp/log and the invariant distance;
* :mod:`~eqbench.models.lieconv.sampling`: farthest point sampling with a seeded start;
* :mod:`~eqbench.models.lieconv.neighbourhoods`: k nearest / ball-sampled neighbourhoods and the
  adaptive ball radius;
* :mod:`~eqbench.models.lieconv.norm`: masked batch normalisation;
* :mod:`~eqbench.models.lieconv.conv`: the Monte-Carlo LieConv layer (PointConv trick);
* :mod:`~eqbench.models.lieconv.blocks`: bottleneck residual blocks, mean pooling;
* :mod:`~eqbench.models.lieconv.network`: :class:`LieResNet`;
* :mod:`~eqbench.models.lieconv.frontends`: images and molecules as point clouds,
  :class:`ImgLieResNet`, :class:`MolecLieResNet`;
* :mod:`~eqbench.models.lieconv.inputs`: example-input generators for checks.
"""
from eqbench.models.lieconv.frontends import ImgLieResNet, MolecLieResNet, image_point_cloud, molecule_features
from eqbench.models.lieconv.groups import (
    LiftingGroup,
    RxSO2Lift,
    SE2Lift,
    SE3Lift,
    SO2Lift,
    SO3Lift,
    TranslationLift,
    TrivialLift,
    lifting_group,
)
from eqbench.models.lieconv.network import LieResNet

__all__ = [
    "ImgLieResNet",
    "LieResNet",
    "LiftingGroup",
    "MolecLieResNet",
    "RxSO2Lift",
    "SE2Lift",
    "SE3Lift",
    "SO2Lift",
    "SO3Lift",
    "TranslationLift",
    "TrivialLift",
    "image_point_cloud",
    "lifting_group",
    "molecule_features",
]
