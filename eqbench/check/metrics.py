"""Equivariance errors per output leaf, in float64.

For each output leaf (a named tensor of the model's output) and each sample ``r`` (an input
``x`` with a group element ``g``):

* absolute error ``a_r = ||f(g.x) - g.f(x)||_2`` over every non-batch axis;
* output scale ``s = sqrt(mean ||y||^2)`` over every output ``y`` of the check: the ``f(x)``
  of each input and the ``f(g.x)`` of each sample;
* scale-adjusted relative error ``a_r / (s + tiny)``: **the verdict uses this one.** An output
  that vanishes by symmetry on some inputs (the equivariant dipole of benzene is zero) has
  ``||f(x)|| ~ rounding`` there; dividing by ``s`` keeps rounding at rounding size instead of
  turning it into ``O(1)``, and a near-identity element cannot hide an error behind a large
  ``||f(x)||`` of its own;
* per-sample ratio ``a_r / (||g.f(x)||_2 + tiny)``: the textbook relative error, for reference.

Per-point leaves of masked inputs ignore padded points (``in_action.point_mask``): their rows
are zeroed before every norm. Integer bookkeeping leaves (masks, edge indices; not
``comparable``) are compared exactly: a sample's error is the number of differing entries
(absolute) and 1 when any differ (relative).
"""
from __future__ import annotations

from dataclasses import dataclass

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
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)


@dataclass
class LeafErrors:
    """Per-sample errors of one output leaf (all ``(R,)`` float64 tensors, R samples)."""

    name: str
    abs: Tensor
    rel: Tensor
    ratio: Tensor
    scale: float

    def summary(self) -> OutputErrors:
        return OutputErrors(
            name=self.name,
            max_rel_error=float(self.rel.max()),
            mean_rel_error=float(self.rel.mean()),
            max_abs_error=float(self.abs.max()),
            mean_abs_error=float(self.abs.mean()),
            max_sample_ratio=float(self.ratio.max()),
            scale=self.scale,
        )


def leaf_errors(fgx: Leaf, gfx: Leaf, fx: Leaf, mask: Tensor | None, base_mask: Tensor | None) -> LeafErrors:
    """Errors of one leaf: ``fgx``/``gfx`` hold the R samples, ``fx`` the outputs on the inputs.

    ``mask`` is the ``(R, N)`` point mask of the transformed inputs, ``base_mask`` that of
    the inputs (both ``None`` without a mask).
    """
    name = fgx.name or "<value>"
    if fgx.tensor.shape != gfx.tensor.shape:
        raise ModelFailure(
            "output",
            f"model output {name} has shape {tuple(fgx.tensor.shape)} on transformed inputs but the "
            f"transformed output has shape {tuple(gfx.tensor.shape)}",
        )
    if not fgx.comparable:
        differ = masked(fgx.tensor != gfx.tensor, mask, fgx.per_point).reshape(fgx.tensor.shape[0], -1)
        count = differ.sum(dim=1).to(torch.float64)
        wrong = (count > 0).to(torch.float64)
        return LeafErrors(name, count, wrong, wrong, 1.0)
    a = masked(fgx.tensor, mask, fgx.per_point)
    b = masked(gfx.tensor, mask, fgx.per_point)
    absolute = row_norms(a - b)
    outputs = torch.cat([row_norms(masked(fx.tensor, base_mask, fx.per_point)), row_norms(a)])
    scale = float(torch.sqrt(outputs.square().mean()))
    return LeafErrors(
        name=name,
        abs=absolute,
        rel=absolute / (scale + TINY),
        ratio=absolute / (row_norms(b) + TINY),
        scale=scale,
    )


@dataclass
class ErrorTable:
    """Errors of every output leaf on the same R samples."""

    leaves: list[LeafErrors]

    @property
    def rel(self) -> Tensor:
        """``(R,)`` worst scale-adjusted relative error of each sample over the leaves."""
        return torch.stack([leaf.rel for leaf in self.leaves]).amax(dim=0)

    @property
    def abs(self) -> Tensor:
        return torch.stack([leaf.abs for leaf in self.leaves]).amax(dim=0)

    def worst(self) -> tuple[int, str]:
        """Index of the worst sample and the name of its worst leaf."""
        rel = torch.stack([leaf.rel for leaf in self.leaves])
        flat = int(torch.argmax(rel))
        leaf, sample = divmod(flat, rel.shape[1])
        return sample, self.leaves[leaf].name


def error_table(fgx: list[Leaf], gfx: list[Leaf], fx: list[Leaf], mask: Tensor | None, base_mask: Tensor | None) -> ErrorTable:
    """:func:`leaf_errors` for every leaf (the three lists come from the same output action)."""
    if not fgx:
        raise ModelFailure("output", "model output has no tensors")
    return ErrorTable([leaf_errors(a, b, c, mask, base_mask) for a, b, c in zip(fgx, gfx, fx)])

