"""Registrations of L-conv models, with the grid group, action and inputs their checks need.

Signals on an ``H x W`` periodic grid are ``(B, H*W, C)`` tensors (row-major sites on the point
axis, :mod:`eqbench.models.lconv`). Two symmetries act on them:

* :class:`CyclicTranslations`, the torus translations ``Z_H x Z_W``, a finite group that
  permutes the sites (so the plain :class:`~eqbench.actions.Scalars` action moves the
  signal): shift-generator L-convs (CNNs) commute with it exactly;
* :class:`GridRotation`, rotations of the plane acting on grid signals by
  :func:`~eqbench.models.lconv.band_limited_rotation`. Its derivative at the identity is
  the L-conv rotation generator, so the Lie derivative of a linear rotation-generator L-conv
  vanishes; finite rotations of a finite grid are not a group action, so finite-angle
  errors do not (they are caught as ``violated`` for Haar-random angles).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.actions import DataError, Scalars
from eqbench.actions.checks import check_batch, require_finite, require_floating, require_ndim, require_size, require_tensor
from eqbench.actions.field import FieldAction
from eqbench.groups import SO2
from eqbench.groups.base import Group, Params
from eqbench.groups.element import Element
from eqbench.inputs import InputGenerator, InputStructure
from eqbench.models.lconv import LConv, band_limited_rotate, images_to_sites, lconv_stack, rotation_generator, shift_generators, sites_to_images
from eqbench.registry import register_model

#: One 90-degree turn and its multiples are exact pixel permutations of a square grid.
RIGHT_ANGLE_TOLERANCE = 1e-9


class CyclicTranslations(Group):
    """The translations ``Z_H x Z_W`` of an ``H x W`` periodic grid, acting on row-major sites by permutation.

    Parameters ``{"shift": (n, 2) int64}`` (row and column shift, uniform: Haar on a finite
    group). A shift ``s`` moves the content at site ``q`` to ``q + s`` (mod the grid), i.e.
    ``(g.h)[p] = h[p - s]``, the permutation ``perm[p] = index(p - s)`` of the point axis.
    """

    permutes_points = True

    def __init__(self, height: int, width: int) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"CyclicTranslations needs height, width >= 1, got {height}, {width}")
        self.height, self.width = height, width
        self.name = f"Z{height}xZ{width}"

    def sample_params(self, n: int, generator: torch.Generator, num_points: int | None = None) -> Params:
        self._check_points(num_points)
        rows = torch.randint(self.height, (n,), generator=generator)
        cols = torch.randint(self.width, (n,), generator=generator)
        return {"shift": torch.stack([rows, cols], dim=1)}

    def element(self, params: Params) -> Element:
        shift = params["shift"].long()
        rows, cols = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        source_rows = torch.remainder(rows.reshape(1, -1) - shift[:, :1], self.height)
        source_cols = torch.remainder(cols.reshape(1, -1) - shift[:, 1:], self.width)
        return Element(permutation=source_rows * self.width + source_cols)

    def params_strategy(self, num_points: int | None = None) -> Any:
        self._check_points(num_points)
        shifts = st.tuples(st.integers(0, self.height - 1), st.integers(0, self.width - 1))
        return shifts.map(lambda s: {"shift": torch.tensor([s], dtype=torch.long)})

    def identity(self, n: int = 1, num_points: int | None = None) -> Element:
        return self.element({"shift": torch.zeros(n, 2, dtype=torch.long)})

    def order(self, num_points: int | None = None) -> int:
        return self.height * self.width

    def elements(self, num_points: int | None = None) -> Element:
        rows, cols = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        return self.element({"shift": torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)})

    def _check_points(self, num_points: int | None) -> None:
        if num_points is not None and num_points != self.height * self.width:
            raise ValueError(f"{self.name} permutes {self.height * self.width} grid sites, but the data has {num_points} points")


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


class GridSignalInputs(InputGenerator):
    """``(B, H*W, channels)`` signals with i.i.d. ``N(0, 1)`` values (float64); only the seed varies."""

    def __init__(self, height: int, width: int, channels: int = 1) -> None:
        if height < 1 or width < 1 or channels < 1:
            raise ValueError(f"GridSignalInputs needs positive sizes, got height={height}, width={width}, channels={channels}")
        self.height, self.width, self.channels = height, width, channels

    def __repr__(self) -> str:
        return f"GridSignalInputs({self.height}x{self.width}, channels={self.channels})"

    def __call__(self, structure: InputStructure) -> Tensor:
        shape = (structure.batch, self.height * self.width, self.channels)
        return torch.randn(shape, generator=self.generator(structure), dtype=torch.float64)

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(self.default_structure, seed=st.integers(0, 2**31 - 1), batch=st.just(batch))

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        return InputStructure(seed=seed, batch=batch, num_points=self.height * self.width)


# ----------------------------------------------------------------------------- registrations
GRID = 6
ROTATION_GRID = 7
TORUS = CyclicTranslations(GRID, GRID)
GRID_SIGNALS = GridSignalInputs(GRID, GRID, channels=2)
ROTATION_SIGNALS = GridSignalInputs(ROTATION_GRID, ROTATION_GRID, channels=1)
ROTATION_ACTION = GridRotation(ROTATION_GRID, ROTATION_GRID)
LCONV_CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 20}


@register_model(
    "lconv-shift",
    group=TORUS,
    in_action=Scalars(),
    out_action=Scalars(),
    inputs=GRID_SIGNALS,
    description="two L-conv layers with 3x3 cyclic-shift generators (a circular CNN), exact on the torus Z6 x Z6",
    check_options=LCONV_CHECK,
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
    check_options=LCONV_CHECK,
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
