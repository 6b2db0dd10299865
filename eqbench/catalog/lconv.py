"""Registrations of L-conv models, with the grid-rotation action their checks need.

Signals on an ``H x W`` periodic grid are ``(B, H*W, C)`` tensors (row-major sites on the point
axis, :mod:`eqbench.models.lconv`; inputs from :class:`~eqbench.inputs.GridSignalInputs`). Two
symmetries act on them:

* :class:`~eqbench.groups.CyclicTranslations`, the torus translations ``Z_H x Z_W``, a finite
  group that permutes the sites (so the plain :class:`~eqbench.actions.Scalars` action moves the
  signal): shift-generator L-convs (CNNs) commute with it exactly, checked on all 36 elements;
* :class:`GridRotation`, rotations of the plane acting on grid signals by
  :func:`~eqbench.models.lconv.band_limited_rotation`. Its derivative at the identity is
  the L-conv rotation generator, so the Lie derivative of a linear rotation-generator L-conv
  vanishes; finite rotations of a finite grid are not a group action, so finite-angle
  errors do not (they are caught as ``violated`` for Haar-random angles).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from eqbench.actions import DataError, Scalars
from eqbench.actions.checks import (
    check_batch,
    require_finite,
    require_floating,
    require_ndim,
    require_size,
    require_tensor,
)
from eqbench.actions.field import FieldAction
from eqbench.groups import SO2, CyclicTranslations
from eqbench.groups.element import Element
from eqbench.inputs import GridSignalInputs
from eqbench.models.lconv import (
    LConv,
    band_limited_rotate,
    images_to_sites,
    lconv_stack,
    rotation_generator,
    shift_generators,
    sites_to_images,
)
from eqbench.registry import register_model

#: One 90-degree turn and its multiples are exact pixel permutations of a square grid.
RIGHT_ANGLE_TOLERANCE = 1e-9


@dataclass(frozen=True, repr=False)
class GridRotation(FieldAction):
    """Rotations of the plane on ``(B, H*W, C)`` grid signals by :func:`~eqbench.models.lconv.band_limited_rotation`.

    The angle of ``g`` is ``atan2(M_10, M_00)`` (differentiable, so the Lie derivative traces
    it); reflections, translations and permutations are rejected. Exact (a pixel permutation) only for
    multiples of 90 degrees on a square grid, see :meth:`is_exact`.
    """

    height: int
    width: int
    per_point = True

    @property
    def layout(self) -> str:
        return f"(B, {self.height * self.width}, C)"

    def validate(self, x: Tensor, where: str = "input") -> None:
        require_tensor(x, where, "grid signal")
        require_ndim(x, where, "grid signal", self.layout, 3, exact=True)
        require_floating(x, where, "grid signal")
        require_size(x, 1, self.height * self.width, where, "grid signal", self.layout)
        require_finite(x, where)

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "grid signal")
        moves = g.translation is not None and bool(g.translation.detach().abs().max() > 0)
        if g.permutation is not None or moves:
            raise DataError("GridRotation acts by rotations only: the element permutes points or translates")
        if g.matrix is None:
            return x
        if g.matrix.shape[-1] != 2 or bool((torch.linalg.det(g.matrix.detach()) < 0).any()):
            raise DataError("GridRotation needs rotations of the plane (2x2 matrices with determinant +1)")
        angles = torch.atan2(g.matrix[:, 1, 0], g.matrix[:, 0, 0]).to(x.dtype)
        rotated = band_limited_rotate(sites_to_images(x, self.height, self.width), angles)
        return images_to_sites(rotated)

    def is_exact(self, g: Element) -> bool:
        """True when every element turns a square grid by a multiple of 90 degrees."""
        if g.matrix is None:
            return True
        if self.height != self.width:
            return False
        matrix = g.matrix.detach().to(torch.float64)
        return bool(((matrix - matrix.round()).abs() <= RIGHT_ANGLE_TOLERANCE).all())


# ----------------------------------------------------------------------------- registrations
GRID = 6
ROTATION_GRID = 7
TORUS = CyclicTranslations(GRID, GRID)
GRID_SIGNALS = GridSignalInputs(GRID, GRID, channels=2)
ROTATION_SIGNALS = GridSignalInputs(ROTATION_GRID, ROTATION_GRID, channels=1)
ROTATION_ACTION = GridRotation(ROTATION_GRID, ROTATION_GRID)
LCONV_CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 20}
#: The torus has 36 elements: check every one of them.
TORUS_CHECK = {**LCONV_CHECK, "exhaustive": True}


@register_model(
    "lconv-shift",
    group=TORUS,
    in_action=Scalars(),
    out_action=Scalars(),
    inputs=GRID_SIGNALS,
    description="two L-conv layers with 3x3 cyclic-shift generators (a circular CNN), exact on the torus Z6 x Z6",
    check_options=TORUS_CHECK,
)
def lconv_shift() -> torch.nn.Sequential:
    shifts, _ = shift_generators((GRID, GRID), 3)
    return lconv_stack([2, 8, 3], shifts)


@register_model(
    "lconv-random-generators",
    group=TORUS,
    in_action=Scalars(),
    out_action=Scalars(),
    inputs=GRID_SIGNALS,
    expected="violated",
    description="broken control: an L-conv layer with random (untrained) generators, not translation equivariant",
    check_options=TORUS_CHECK,
)
def lconv_random_generators() -> LConv:
    return LConv(2, 3, num_sites=GRID * GRID, num_generators=2)


@register_model(
    "lconv-rotation-finite-angles",
    group=SO2(),
    in_action=ROTATION_ACTION,
    out_action=ROTATION_ACTION,
    inputs=ROTATION_SIGNALS,
    expected="violated",
    description="linear L-conv with the grid rotation generator: zero Lie derivative, broken by finite rotations of the grid",
    check_options=LCONV_CHECK,
)
def lconv_rotation() -> LConv:
    generator = rotation_generator(ROTATION_GRID, ROTATION_GRID).unsqueeze(0)
    return LConv(1, 2, generator, bias=False)
