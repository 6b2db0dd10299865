"""The group library: each group is how to draw its elements (Haar) and how they act.

See :mod:`eqbench.groups.base` for the interface and :mod:`eqbench.groups.element` for the
concrete form (matrix, translation, permutation) every action understands. One module per
family: ``rotations2d`` (SO(2), R>0 x SO(2)), ``rotations3d`` (SO(3)), ``polygons`` (C_n),
``reflections`` (O(2), O(3), D_n), ``euclidean`` (T(d), SE(2), E(2), SE(3), E(3)),
``permutations`` (S_n), ``torus`` (cyclic shifts Z_H x Z_W of a periodic grid), ``trivial``, ``product`` (direct products) and ``names`` (parsing).
"""
from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.euclidean import E2, E3, SE2, SE3, Euclidean, Translations
from eqbench.groups.names import group_from_name
from eqbench.groups.permutations import Symmetric
from eqbench.groups.polygons import Cyclic
from eqbench.groups.product import DirectProduct
from eqbench.groups.reflections import O2, O3, Dihedral, WithReflection
from eqbench.groups.rotations2d import SO2, ScaleRotation
from eqbench.groups.rotations3d import SO3
from eqbench.groups.torus import CyclicTranslations
from eqbench.groups.trivial import Trivial

__all__ = [
    "Group", "Params", "Element", "SO2", "O2", "SE2", "E2", "SO3", "O3", "SE3", "E3", "Euclidean", "Translations",
    "ScaleRotation", "Symmetric", "Cyclic", "CyclicTranslations", "Dihedral", "WithReflection", "Trivial", "DirectProduct", "group_from_name",
]
