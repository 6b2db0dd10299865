"""Parse group names such as ``"SO(3)"``, ``"SE3xSn"``, ``"T(2)"`` or ``"D4"`` into groups.

Case, spaces, brackets and underscores are ignored; ``x``, ``*`` or the sign ``×`` join the
factors of a direct product (``"SE(3) x S_n"``). Every group's ``name`` parses back to it
(with default constructor parameters).
"""
from __future__ import annotations

import re
from typing import Callable

from eqbench.groups.base import Group
from eqbench.groups.euclidean import E2, E3, SE2, SE3, Translations
from eqbench.groups.permutations import Symmetric
from eqbench.groups.polygons import Cyclic
from eqbench.groups.product import DirectProduct
from eqbench.groups.reflections import O2, O3, Dihedral
from eqbench.groups.rotations2d import SO2, ScaleRotation
from eqbench.groups.rotations3d import SO3
from eqbench.groups.trivial import Trivial

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
_NUMBERED: dict[str, Callable[[int], Group]] = {"T": Translations, "C": Cyclic, "D": Dihedral, "S": Symmetric}
KNOWN = "SO2, O2, SE2, E2, SO3, O3, SE3, E3, T<d>, RxSO2, Sn, S<N>, C<n>, D<n>, trivial, and products joined by 'x'"
#: Stands in for the 'x' inside 'RxSO2' while the name is split at product signs.
_SCALE_ROTATION_TOKEN = "R#SO2"


def _single(token: str, original: str) -> Group:
    if token in _FIXED:
        return _FIXED[token]()
    match = re.fullmatch(r"([TCDS])(\d+)", token)
    if match:
        return _NUMBERED[match.group(1)](int(match.group(2)))
    raise ValueError(f"unknown group {token!r} in {original!r}; known groups: {KNOWN}")


def group_from_name(name: str) -> Group:
    """The group named ``name``, e.g. ``"SO(3)"``, ``"so3"``, ``"RxSO2"``, ``"S_n"``, ``"SE(3) x S_n"``.

    Raises ``ValueError`` listing the known names for anything else.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"group name must be a non-empty string, got {name!r}; known groups: {KNOWN}")
    compact = re.sub(r"[\s()_]", "", name).upper().replace("×", "X").replace("*", "X")
    tokens = compact.replace("RXSO2", _SCALE_ROTATION_TOKEN).split("X")
    groups = [_single(token.replace(_SCALE_ROTATION_TOKEN, "RXSO2"), name) for token in tokens]
    return groups[0] if len(groups) == 1 else DirectProduct(*groups)
