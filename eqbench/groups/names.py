"""Parse group names such as ``"SO(3)"``, ``"SE3xSn"`` or ``"D4"`` into groups."""
from __future__ import annotations

import re
from typing import Callable

from eqbench.groups.base import Group
from eqbench.groups.euclidean import E2, E3, SE2, SE3, Translations
from eqbench.groups.permutations import Symmetric, Trivial
from eqbench.groups.product import DirectProduct
from eqbench.groups.rotations2d import O2, SO2, Cyclic, Dihedral, ScaleRotation
from eqbench.groups.rotations3d import O3, SO3

_FIXED: dict[str, Callable[[], Group]] = {
    "SO2": SO2,
    "O2": O2,
    "SE2": SE2,
    "E2": E2,
    "SO3": SO3,
    "O3": O3,
    "SE3": SE3,
    "E3": E3,
    "RXSO2": ScaleRotation,
    "SN": Symmetric,
    "TRIVIAL": Trivial,
}
_PATTERNS: list[tuple[str, Callable[[int], Group]]] = [
    (r"T(\d+)", lambda n: Translations(n)),
    (r"C(\d+)", Cyclic),
    (r"D(\d+)", Dihedral),
    (r"S(\d+)", Symmetric),
]
KNOWN = "SO2, O2, SE2, E2, SO3, O3, SE3, E3, T<n>, RxSO2, Sn, S<n>, C<n>, D<n>, trivial, and products joined by 'x'"


def _normalise(name: str) -> str:
    return re.sub(r"[\s()_]", "", name).upper()


def _single(token: str, original: str) -> Group:
    if token in _FIXED:
        return _FIXED[token]()
    for pattern, build in _PATTERNS:
        match = re.fullmatch(pattern, token)
        if match:
            return build(int(match.group(1)))
    raise ValueError(f"unknown group {original!r}; known groups: {KNOWN}")


def group_from_name(name: str) -> Group:
    """The group named ``name`` (case, spaces, brackets and underscores ignored), e.g. ``"SE(3) x S_n"``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"group name must be a non-empty string, got {name!r}")
    compact = _normalise(name)
    # 'RXSO2' contains an 'X' that is not a product sign: protect it before splitting.
    tokens = compact.replace("RXSO2", "RSO2").split("X")
    groups = [_single("RXSO2" if t == "RSO2" else t, name) for t in tokens]
    return groups[0] if len(groups) == 1 else DirectProduct(*groups)
