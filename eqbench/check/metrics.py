"""Equivariance errors per output leaf, in float64.

For each output leaf (a named tensor of the model's output) and each sample ``r`` (an input
``x`` with a group element ``g``):

* absolute error ``a_r = ||f(g.x) - g.f(x)||_2`` over every non-batch axis;
* output scale ``s = sqrt(mean ||y||^2)`` over every output ``y`` of the check: the ``f(x)``
  of each input and the ``f(g.x)`` of each sample of the random phase, pooled with those of
  the searched example being judged (:meth:`ErrorTable.pooled`), never one example's own
  outputs alone;
* scale-adjusted relative error ``a_r / (s + tiny)``: **the verdict uses this one.** An output
  that vanishes by symmetry on some inputs (the equivariant dipole of benzene is zero, the
  centroid vector of a 2-point cloud too) has ``||f(x)|| ~ rounding`` there; dividing by the
  check's ``s`` (which the generic inputs of the random phase keep at the model's typical
  output size) keeps rounding at rounding size instead of turning it into ``O(1)``, and a
  near-identity element cannot hide an error behind a large ``||f(x)||`` of its own;
* per-sample ratio ``a_r / (||g.f(x)||_2 + tiny)``: the textbook relative error, for reference.

Per-point leaves of masked inputs ignore padded points (``in_action.point_mask``): their rows
are zeroed before every norm. Integer and boolean leaves (masks, edge
indices, class labels, counts: not ``comparable``, or not floating) are compared exactly: a
sample's error is the number of differing entries (absolute) and 1 when any differ (relative).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from eqbench.actions.base import Leaf
from eqbench.check.forward import ModelFailure
from eqbench.check.result import OutputErrors

TINY = torch.finfo(torch.float64).tiny


def masked(t: Tensor, mask: Tensor | None, per_point: bool) -> Tensor:
    """``t`` with padded points zeroed (only per-point tensors whose point axis matches the mask)."""
    if mask is None or not per_point or t.dim() < 2 or t.shape[1] != mask.shape[1]:
        return t
    return t * mask.reshape(mask.shape + (1,) * (t.dim() - 2)).to(t.dtype)


def row_norms(t: Tensor) -> Tensor:
    """``(R,)`` L2 norm of each row over all non-batch axes."""
    return torch.linalg.vector_norm(t if t.dim() == 2 else t.reshape(t.shape[0], -1), dim=1)


@dataclass
class LeafErrors:
    """Per-sample errors of one output leaf (all ``(R,)`` float64 tensors, R samples)."""

    name: str
    abs: Tensor
    rel: Tensor
    ratio: Tensor
    scale: float
    #: ``sum ||y||^2`` and the number of rows ``y`` behind ``scale`` (for pooling scales of several evaluations).
    square_sum: float = 0.0
    rows: int = 0

    def rescaled(self, scale: float) -> LeafErrors:
        """The same errors relative to another output scale (an exactly compared leaf keeps its own)."""
        if not self.rows:
            return self
        return LeafErrors(self.name, self.abs, self.abs / (scale + TINY), self.ratio, scale, self.square_sum, self.rows)


def leaf_errors(fgx: Leaf, gfx: Leaf, fx: Leaf, mask: Tensor | None, base_mask: Tensor | None) -> LeafErrors:
    """Errors of one leaf: ``fgx``/``gfx`` hold the R samples, ``fx`` the outputs on the inputs.

    ``mask`` is the ``(R, N)`` point mask of the transformed inputs, ``base_mask`` that of
    the inputs (both ``None`` without a mask).
    """
    name = _same_shape(fgx, gfx)
    if exactly_compared(fgx):
        count = _differing(fgx, gfx, mask)
        wrong = (count > 0).to(torch.float64)
        return LeafErrors(name, count, wrong, wrong, 1.0)
    a = masked(fgx.tensor, mask, fgx.per_point)
    b = masked(gfx.tensor, mask, fgx.per_point)
    absolute = row_norms(a - b)
    outputs = torch.cat([row_norms(masked(fx.tensor, base_mask, fx.per_point)), row_norms(a)])
    square_sum = float(outputs.square().sum())
    scale = math.sqrt(square_sum / outputs.numel())
    return LeafErrors(
        name=name,
        abs=absolute,
        rel=absolute / (scale + TINY),
        ratio=absolute / (row_norms(b) + TINY),
        scale=scale,
        square_sum=square_sum,
        rows=outputs.numel(),
    )


def relative_errors(fgx: list[Leaf], gfx: list[Leaf], mask: Tensor | None, scales: list[float]) -> Tensor:
    """``(R,)`` per sample, the worst relative error over the leaves, relative to given output scales (one per leaf).

    The ``rel`` column of ``error_table(fgx, gfx, ...).rescaled(scales)``, without the table's own
    scales, ratios and absolute columns: what a twin's re-evaluation is judged by (the check's scales).
    """
    if not fgx:
        raise ModelFailure("output", "model output has no tensors")
    columns = []
    for a, b, scale in zip(fgx, gfx, scales):
        _same_shape(a, b)
        if exactly_compared(a):
            columns.append((_differing(a, b, mask) > 0).to(torch.float64))
        else:
            columns.append(row_norms(masked(a.tensor, mask, a.per_point) - masked(b.tensor, mask, a.per_point)) / (scale + TINY))
    return _worst(columns)


def _same_shape(fgx: Leaf, gfx: Leaf) -> str:
    """The leaf's name, once its outputs on the transformed inputs and the transformed outputs have one shape."""
    name = fgx.name or "<value>"
    if fgx.tensor.shape != gfx.tensor.shape:
        raise ModelFailure(
            "output",
            f"model output {name} has shape {tuple(fgx.tensor.shape)} on transformed inputs but the "
            f"transformed output has shape {tuple(gfx.tensor.shape)}",
        )
    return name


def _differing(fgx: Leaf, gfx: Leaf, mask: Tensor | None) -> Tensor:
    """``(R,)`` float64 number of entries of an exactly compared leaf that differ between the two outputs."""
    differ = masked(fgx.tensor != gfx.tensor, mask, fgx.per_point).reshape(fgx.tensor.shape[0], -1)
    return differ.sum(dim=1).to(torch.float64)


def exactly_compared(leaf: Leaf) -> bool:
    """Whether a leaf is compared entry by entry (integer bookkeeping fields, integer or boolean outputs)."""
    return not leaf.comparable or not (leaf.tensor.is_floating_point() or leaf.tensor.is_complex())


def output_gaps(out_action: Any, first: Any, second: Any, mask: Tensor | None, scales: list[float]) -> Tensor:
    """``(R,)`` per row, the largest ``||a - b|| / scale`` over the leaves of two outputs of the same ``R`` rows.

    ``scales`` holds one output scale per leaf (an :class:`ErrorTable`'s); an exactly compared
    leaf counts 1 where any of its entries differ. Used for the noise floor, the determinism
    check and the model's own float32-vs-float64 gap: all compare the model with itself.
    """
    gaps = None
    for a, b, scale in zip(out_action.leaves(first), out_action.leaves(second), scales):
        if exactly_compared(a):
            gap = (a.tensor != b.tensor).reshape(a.tensor.shape[0], -1).any(dim=1).to(torch.float64)
        else:
            gap = row_norms(masked(a.tensor - b.tensor, mask, a.per_point)) / (scale + TINY)
        gaps = gap if gaps is None else torch.maximum(gaps, gap)
    if gaps is None:
        raise ModelFailure("output", "model output has no tensors")
    return gaps


@dataclass(frozen=True)
class ErrorTable:
    """Errors of every output leaf on the same R samples (read-only: the worst-over-leaves columns are computed once)."""

    leaves: list[LeafErrors]

    @functools.cached_property
    def rel(self) -> Tensor:
        """``(R,)`` worst scale-adjusted relative error of each sample over the leaves."""
        return _worst([leaf.rel for leaf in self.leaves])

    @functools.cached_property
    def abs(self) -> Tensor:
        return _worst([leaf.abs for leaf in self.leaves])

    def summary(self) -> tuple[dict[str, OutputErrors], tuple[float, float, float, float]]:
        """Each leaf's :class:`OutputErrors`, and the max and mean of :attr:`rel` and of :attr:`abs`
        (``(max_rel, mean_rel, max_abs, mean_abs)``), read in one synchronisation."""
        columns = [column for leaf in self.leaves for column in (leaf.rel, leaf.abs, leaf.ratio)]
        if len(self.leaves) > 1:  # one leaf's columns are the table's
            columns += [self.rel, self.abs]
        stacked = torch.stack(columns)
        largest, mean = torch.stack([stacked.amax(dim=1), stacked.mean(dim=1)]).tolist()
        per_output = {
            leaf.name: OutputErrors(
                leaf.name, largest[3 * i], mean[3 * i], largest[3 * i + 1], mean[3 * i + 1], largest[3 * i + 2], scale=leaf.scale
            )
            for i, leaf in enumerate(self.leaves)
        }
        table = 3 * len(self.leaves) if len(self.leaves) > 1 else 0
        return per_output, (largest[table], mean[table], largest[table + 1], mean[table + 1])

    @property
    def scales(self) -> list[float]:
        return [leaf.scale for leaf in self.leaves]

    def rescaled(self, scales: list[float]) -> ErrorTable:
        """The same errors relative to other output scales, one per leaf (e.g. the check's)."""
        return ErrorTable([leaf.rescaled(scale) for leaf, scale in zip(self.leaves, scales)])

    def pooled(self, reference: ErrorTable) -> ErrorTable:
        """Errors relative to the RMS output norm over this table's outputs and ``reference``'s together.

        The search judges an example against the check's scale pooled with its own outputs:
        the random phase's generic inputs keep it at the model's typical output size, so an
        example whose outputs vanish by symmetry cannot shrink it to rounding size.
        """
        scales = [
            math.sqrt((own.square_sum + ref.square_sum) / max(own.rows + ref.rows, 1))
            for own, ref in zip(self.leaves, reference.leaves)
        ]
        return self.rescaled(scales)

    def worst(self) -> tuple[int, str]:
        """Index of the worst sample and the name of its worst leaf."""
        rel = torch.stack([leaf.rel for leaf in self.leaves])
        flat = int(torch.argmax(rel))
        leaf, sample = divmod(flat, rel.shape[1])
        return sample, self.leaves[leaf].name


def _worst(columns: list[Tensor]) -> Tensor:
    """The elementwise maximum of same-shaped columns (the column itself when there is one)."""
    return columns[0] if len(columns) == 1 else torch.stack(columns).amax(dim=0)


def error_table(fgx: list[Leaf], gfx: list[Leaf], fx: list[Leaf], mask: Tensor | None, base_mask: Tensor | None) -> ErrorTable:
    """:func:`leaf_errors` for every leaf (the three lists come from the same output action)."""
    if not fgx:
        raise ModelFailure("output", "model output has no tensors")
    return ErrorTable([leaf_errors(a, b, c, mask, base_mask) for a, b, c in zip(fgx, gfx, fx)])

