"""Point clouds in R^d, optionally with per-point features, vectors and a padding mask.

Layout (one documented form):

* only positions requested (``features == vectors == 0`` and ``mask=False``): a ``(B, N, d)``
  tensor, action ``Points(dim=d)``;
* otherwise a dict, passed to the model as keyword arguments, with the fields present in
  this order: ``pos`` ``(B, N, d)`` (``Points``), ``feat`` ``(B, N, features)`` (``Scalars``),
  ``vel`` ``(B, N, vectors, d)`` (``Vectors``), ``mask`` ``(B, N)`` bool (``Mask``).

Positions follow :mod:`eqbench.inputs.configurations` (generic ``N(0, scale^2)`` or a named
degenerate configuration); features and vectors are ``N(0, 1)``. The last ``num_padded``
points of every item are padding: ``mask`` is False there, and every field holds garbage of
magnitude ``PAD_MAGNITUDE`` so that a model that ignores the mask is caught. All values are
float64 (the checker casts them to the dtype under test).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.actions import Action, Dict, Mask, Points, Scalars, Vectors
from eqbench.inputs.base import InputGenerator, InputStructure
from eqbench.inputs.configurations import CONFIGURATIONS, degenerate_options

#: Standard deviation of the garbage written into padded rows.
PAD_MAGNITUDE = 1e3


class PointCloudInputs(InputGenerator):
    """Batched point clouds ``(B, N, d)`` (plus optional features / vectors / mask; see module docs).

    ``structure_strategy`` draws a seed, ``num_points`` in ``[min_points, max_points]``, a
    scale log-uniform in ``[min_scale, max_scale]`` or, half the time, exactly one end of that
    range (very small and very large clouds), ``num_padded`` in
    ``[0, num_points - min_points]`` (only with ``mask=True``, so at least ``min_points`` real
    points remain) and a configuration among ``("",) + degenerate``, each about equally likely
    (generic first, so shrinking goes to generic inputs): with every degenerate configuration
    allowed, eight in nine searched clouds are exactly degenerate (duplicate points,
    collinear, coplanar, prisms, regular polygons, regular polyhedra, lattices), and a search
    of 40 examples misses all of them with probability ``(1/9)^40``. ``degenerate=None``
    allows every configuration that is degenerate in R^d; pass ``()`` for generic inputs only.
    """

    def __init__(
        self,
        dim: int = 3,
        min_points: int = 2,
        max_points: int = 24,
        features: int = 0,
        vectors: int = 0,
        mask: bool = False,
        min_scale: float = 0.1,
        max_scale: float = 10.0,
        degenerate: Sequence[str] | None = None,
    ) -> None:
        if dim < 2:
            raise ValueError(f"PointCloudInputs needs dim >= 2, got {dim}")
        if not 1 <= min_points <= max_points:
            raise ValueError(f"need 1 <= min_points <= max_points, got min_points={min_points}, max_points={max_points}")
        if features < 0 or vectors < 0:
            raise ValueError(f"features and vectors must be >= 0, got features={features}, vectors={vectors}")
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got min_scale={min_scale}, max_scale={max_scale}")
        options = degenerate_options(dim) if degenerate is None else tuple(degenerate)
        unknown = [name for name in options if name not in CONFIGURATIONS or not name]
        if unknown:
            raise ValueError(f"unknown degenerate configurations {unknown}; known: {[n for n in CONFIGURATIONS if n]}")
        self.dim, self.min_points, self.max_points = dim, min_points, max_points
        self.features, self.vectors, self.mask = features, vectors, mask
        self.min_scale, self.max_scale = min_scale, max_scale
        self.degenerate = options

    def __repr__(self) -> str:
        extras = "".join(
            f", {name}={value!r}" for name, value in (("features", self.features), ("vectors", self.vectors), ("mask", self.mask)) if value
        )
        return f"PointCloudInputs(dim={self.dim}, points={self.min_points}..{self.max_points}{extras})"

    @property
    def positions_only(self) -> bool:
        return self.features == 0 and self.vectors == 0 and not self.mask

    @property
    def action(self) -> Action:
        """``Points(dim=d)``, or the ``Dict`` of the fields present (see module docs)."""
        if self.positions_only:
            return Points(dim=self.dim)
        fields: dict[str, Action] = {"pos": Points(dim=self.dim)}
        if self.features:
            fields["feat"] = Scalars()
        if self.vectors:
            fields["vel"] = Vectors(dim=self.dim)
        if self.mask:
            fields["mask"] = Mask()
        return Dict(**fields)

    # ------------------------------------------------------------------ values
    def __call__(self, structure: InputStructure) -> Tensor | dict[str, Tensor]:
        generator = self.generator(structure)
        pos, mask = self.positions(structure, generator)
        if self.positions_only:
            return pos
        value: dict[str, Tensor] = {"pos": pos}
        shape = (structure.batch, structure.num_points)
        if self.features:
            value["feat"] = self.pad(torch.randn(*shape, self.features, generator=generator, dtype=torch.float64), structure, generator)
        if self.vectors:
            vel = torch.randn(*shape, self.vectors, self.dim, generator=generator, dtype=torch.float64)
            value["vel"] = self.pad(vel, structure, generator)
        if self.mask:
            value["mask"] = mask
        return value

    def positions(self, structure: InputStructure, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(B, N, d)`` positions (padding included) and the ``(B, N)`` mask of real points."""
        self.check_structure(structure)
        real = structure.num_points - structure.num_padded
        configuration = CONFIGURATIONS[structure.degenerate]
        pos = torch.empty(structure.batch, structure.num_points, self.dim, dtype=torch.float64)
        pos[:, :real] = configuration(structure.batch, real, self.dim, structure.scale, generator)
        pos = self.pad(pos, structure, generator)
        mask = torch.zeros(structure.batch, structure.num_points, dtype=torch.bool)
        mask[:, :real] = True
        return pos, mask

    @staticmethod
    def pad(values: Tensor, structure: InputStructure, generator: torch.Generator) -> Tensor:
        """``values`` with its last ``num_padded`` points replaced by ``N(0, PAD_MAGNITUDE^2)`` garbage."""
        if structure.num_padded:
            garbage = torch.randn(values[:, -structure.num_padded :].shape, generator=generator, dtype=values.dtype)
            values[:, -structure.num_padded :] = PAD_MAGNITUDE * garbage
        return values

    def check_structure(self, structure: InputStructure) -> None:
        """Raise ``ValueError`` naming the field when ``structure`` does not fit this generator."""
        if structure.batch < 1:
            raise ValueError(f"structure.batch must be >= 1, got {structure.batch}")
        if structure.num_points < 1:
            raise ValueError(f"structure.num_points must be >= 1, got {structure.num_points}")
        if not 0 <= structure.num_padded < structure.num_points:
            raise ValueError(
                f"structure.num_padded must be in [0, num_points - 1] = [0, {structure.num_points - 1}], "
                f"got {structure.num_padded}"
            )
        if structure.num_padded and not self.mask:
            raise ValueError("structure.num_padded > 0 needs a generator built with mask=True")
        if structure.degenerate not in CONFIGURATIONS:
            raise ValueError(
                f"unknown structure.degenerate {structure.degenerate!r}; known: {[n for n in CONFIGURATIONS if n]}"
            )
        if not (math.isfinite(structure.scale) and structure.scale > 0):
            raise ValueError(f"structure.scale must be a positive number, got {structure.scale}")

    # ------------------------------------------------------------- structures
    def structure_strategy(self, batch: int = 1) -> Any:
        """Hypothesis strategy over :class:`InputStructure` (see the class docstring)."""
        return st.composite(lambda draw: self.draw_structure(draw, batch))()

    def draw_structure(self, draw: Any, batch: int = 1) -> InputStructure:
        """The draws of :meth:`structure_strategy`, made directly with the caller's ``draw``.

        A range of one value is not drawn: each draw costs hypothesis a choice (~0.04 ms) even
        when forced. The strategies are built once per range (:func:`_structure_choices`).
        """
        choices = _structure_choices(self.min_points, self.max_points, self.min_scale, self.max_scale, tuple(self.degenerate))
        seed = draw(choices.seed)
        num_points = self.min_points if choices.points is None else draw(choices.points)
        scale = self.min_scale
        if choices.log_scale is not None:
            scale = min(max(math.exp(draw(choices.log_scale)), self.min_scale), self.max_scale)
        num_padded = draw(st.integers(0, num_points - self.min_points)) if self.mask and num_points > self.min_points else 0
        degenerate = draw(choices.degenerate) if choices.degenerate is not None else ""
        return InputStructure(seed, batch, num_points, scale, num_padded, degenerate)

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        """Generic inputs of 8 points (clamped to the allowed range), scale 1 (clamped), and two
        padded points when the generator has a mask and the range allows it."""
        num_points = min(max(8, self.min_points), self.max_points)
        scale = min(max(1.0, self.min_scale), self.max_scale)
        num_padded = min(2, num_points - self.min_points) if self.mask else 0
        return InputStructure(seed=seed, batch=batch, num_points=num_points, scale=scale, num_padded=num_padded)


@dataclass(frozen=True)
class _StructureChoices:
    """The hypothesis strategies of :meth:`PointCloudInputs.draw_structure` (``None``: a range of one value)."""

    seed: Any
    points: Any
    log_scale: Any
    degenerate: Any


@functools.lru_cache(maxsize=64)
def _structure_choices(
    min_points: int, max_points: int, min_scale: float, max_scale: float, degenerate: tuple[str, ...]
) -> _StructureChoices:
    ends = (math.log(min_scale), math.log(max_scale))
    return _StructureChoices(
        seed=st.integers(0, 2**31 - 1),
        points=None if min_points == max_points else st.integers(min_points, max_points),
        log_scale=None if min_scale == max_scale else st.one_of(st.floats(*ends), st.sampled_from(ends)),
        degenerate=st.sampled_from(("",) + degenerate) if degenerate else None,
    )
