"""The group library: each group is how to draw its elements (Haar) and how they act.

See :mod:`eqbench.groups.base` for the interface and :mod:`eqbench.groups.element` for the
concrete form (matrix, translation, permutation) every action understands.
"""
from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.groups.euclidean import E2, E3, SE2, SE3, Euclidean, Translations
from eqbench.groups.names import group_from_name
from eqbench.groups.permutations import Symmetric, Trivial
from eqbench.groups.product import DirectProduct
from eqbench.groups.rotations2d import O2, SO2, Cyclic, Dihedral, ScaleRotation
from eqbench.groups.rotations3d import O3, SO3

__all__ = [
    "Group", "Params", "Element", "SO2", "O2", "SE2", "E2", "SO3", "O3", "SE3", "E3", "Euclidean", "Translations",
    "ScaleRotation", "Symmetric", "Cyclic", "Dihedral", "Trivial", "DirectProduct", "group_from_name",
]
