"""LieConv (Finzi, Stanton, Izmailov, Wilson, ICML 2020): convolutions on Lie groups for point clouds.

Modules, in the order data flows through them:

* :mod:`~eqbench.models.lieconv.groups`: lifting groups (T(n), SO(2), R>0 x SO(2), SE(2),
  SO(3), SE(3), trivial) with lift, exp/log, the pair representation and the invariant distance;
* :mod:`~eqbench.models.lieconv.lifting`: the lift as a module (where stabiliser samples are
  drawn) and the group's action on lifted points, ``u -> g u``, declared for ``eqbench explain``;
* :mod:`~eqbench.models.lieconv.sampling`: farthest point sampling with a seeded start;
* :mod:`~eqbench.models.lieconv.neighbourhoods`: k nearest / ball-sampled neighbourhoods and the
  adaptive ball radius;
* :mod:`~eqbench.models.lieconv.pointwise`: per-point maps on the packed real points, masked
  batch normalisation;
* :mod:`~eqbench.models.lieconv.weightnet`: the kernel network and Monte-Carlo sum over the
  selected pairs, with a hand-written, memory-lean backward pass;
* :mod:`~eqbench.models.lieconv.workspace`: the scratch buffer the layers of one pass share;
* :mod:`~eqbench.models.lieconv.conv`: the LieConv layer (neighbourhood, pair features, weight network);
* :mod:`~eqbench.models.lieconv.blocks`: bottleneck residual blocks, mean pooling;
* :mod:`~eqbench.models.lieconv.network`: :class:`LieResNet` (mean or GIGP pooling,
  :mod:`eqbench.models.gigp`);
* :mod:`~eqbench.models.lieconv.frontends`: images and molecules as point clouds,
  :class:`ImgLieResNet`, :class:`MolecLieResNet`.

Memory: the invariant distances of all lifted points, ``(B, N, N)``, are formed once per pass
(``N = n * liftsamples``); the pair features and kernel weights only for the selected
``(B, m, k)`` pairs (``k = nbhd``), see :mod:`~eqbench.models.lieconv.conv`.
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
