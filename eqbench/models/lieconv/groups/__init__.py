"""LieConv's lifting groups: T(n), SO(2), R>0 x SO(2), SE(2), SO(3), SE(3) and the trivial group.

See :mod:`eqbench.models.lieconv.groups.base` for the lift, the pair representation and the
invariant distance. Groups are passed to networks as *instances* (``SO2Lift(alpha=0.2)``),
never as classes; :func:`lifting_group` builds one from a short name.
"""
from __future__ import annotations

from eqbench.models.lieconv.groups.base import Lift, LiftingGroup, gather_points
from eqbench.models.lieconv.groups.planar import RxSO2Lift, SE2Lift, SO2Lift
from eqbench.models.lieconv.groups.spatial import SE3Lift, SO3Lift
from eqbench.models.lieconv.groups.translations import TranslationLift, TrivialLift

#: Short names accepted by :func:`lifting_group` (case-insensitive).
NAMES = ("T2", "T3", "SO2", "RxSO2", "SE2", "SO3", "SE3", "trivial2", "trivial3")


def lifting_group(name: str, alpha: float = 0.2) -> LiftingGroup:
    """A lifting group from its short name (one of :data:`NAMES`), with distance weight ``alpha``."""
    builders = {
        "t2": lambda: TranslationLift(2, alpha),
        "t3": lambda: TranslationLift(3, alpha),
        "so2": lambda: SO2Lift(alpha),
        "rxso2": lambda: RxSO2Lift(alpha),
        "se2": lambda: SE2Lift(alpha),
        "so3": lambda: SO3Lift(alpha),
        "se3": lambda: SE3Lift(alpha),
        "trivial2": lambda: TrivialLift(2, alpha),
        "trivial3": lambda: TrivialLift(3, alpha),
    }
    key = name.lower().replace("(", "").replace(")", "").replace("_", "")
    if key not in builders:
        raise ValueError(f"unknown lifting group {name!r}; known: {', '.join(NAMES)}")
    return builders[key]()


__all__ = [
    "NAMES",
    "Lift",
    "LiftingGroup",
    "RxSO2Lift",
    "SE2Lift",
    "SE3Lift",
    "SO2Lift",
    "SO3Lift",
    "TranslationLift",
    "TrivialLift",
    "gather_points",
    "lifting_group",
]
