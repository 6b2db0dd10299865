"""The lift as a module: where LieConv draws its stabiliser samples, and how the group acts on what it returns.

LieConv (Finzi et al. 2020, sec. 4.1-4.2) lifts each point ``x`` to group elements ``u`` with
``u . o_q = x``; when the stabiliser of ``o_q`` is non-trivial (SE(2), SO(3), SE(3)) the lift
is the coset ``u Stab(o_q)`` and ``liftsamples`` elements of it are drawn (Haar on the
stabiliser). A group element ``g`` maps the coset of ``x`` to the coset of ``g . x`` by left
multiplication, ``u -> g u``, and leaves the orbit coordinates ``q`` alone: that is the action
on lifted points, :class:`LiftedPoints`. A random lift is equivariant *in distribution* only:
with the same random numbers (common random numbers), ``lift(g . x)`` attaches the same draws
to ``g . x`` (for SE(3): ``(R, g . x)`` with the same rotation ``R``), which is not ``g u``
(``(Q R, g . x)`` for ``g = (Q, t)``), so its output differs from ``g . lift(x)``; everything
after it (invariant distances ``d(u, v)``, pair features ``log(v^-1 u)``) is exactly invariant
under ``u, v -> g u, g v``.

:class:`Lifting` is that step as a named, parameter-free module declared with these actions
(:func:`eqbench.declare`), so that per-module attribution (``eqbench explain``) measures the
lift's own equivariance error, which is the whole Monte-Carlo sampling error of the lift, and
recognises the lifted elements downstream by their action.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from eqbench.actions import Composite, DataError, Invariant, Points
from eqbench.actions.checks import check_batch, require_floating, require_ndim, require_size, require_tensor
from eqbench.actions.field import FieldAction
from eqbench.declare import declare
from eqbench.groups.element import Element
from eqbench.models.lieconv.groups.base import Lift, LiftingGroup


@dataclass(frozen=True, repr=False)
class LiftedElements(FieldAction):
    """Encoded elements ``u`` ``(B, ..., element_dim)`` of a lifting group, moved by left multiplication ``u -> g u``.

    ``g`` must be in the lifting group (:meth:`~eqbench.models.lieconv.groups.base.LiftingGroup.embed`);
    otherwise applying it is a :class:`~eqbench.actions.base.DataError`.
    """

    group: LiftingGroup

    def validate(self, x: Tensor, where: str = "input") -> None:
        layout = f"(B, ..., {self.group.element_dim})"
        require_tensor(x, where, "lifted elements")
        require_ndim(x, where, "lifted elements", layout, 2)
        require_floating(x, where, "lifted elements")
        require_size(x, -1, self.group.element_dim, where, "lifted elements", layout)

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "lifted elements")
        self.validate(x, "lifted elements")
        acting = self.group.embed(g).to(x.dtype)
        return self.group.compose(acting.view(acting.shape[0], *([1] * (x.dim() - 2)), acting.shape[-1]), x)


class LiftedPoints(Composite):
    """A :class:`~eqbench.models.lieconv.groups.base.Lift`: ``g . (u, q) = (g u, q)`` (module docstring)."""

    def __init__(self, group: LiftingGroup) -> None:
        self.group = group
        self.fields = {"elements": LiftedElements(group), "orbits": Invariant()}

    def _values(self, x: Any, where: str = "value") -> list[Any]:
        if not isinstance(x, Lift):
            raise DataError(f"{where}: expected lifted points (a Lift), got {type(x).__name__}")
        return [x.elements, x.orbits]

    def _rebuild(self, values: list[Any]) -> Lift:
        return Lift(*values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LiftedPoints) and self.group is other.group

    def __hash__(self) -> int:
        return hash(("LiftedPoints", id(self.group)))

    def __repr__(self) -> str:
        return f"LiftedPoints({self.group!r})"


class Lifting(nn.Module):
    """Lift ``(B, n, d)`` points to ``n * samples`` group elements (:meth:`LiftingGroup.lift`), declared ``Points -> LiftedPoints``.

    No parameters; ``forward(points, generator=None)`` draws the stabiliser samples from
    ``generator`` (torch's global RNG when ``None``).
    """

    def __init__(self, group: LiftingGroup, samples: int = 1) -> None:
        super().__init__()
        group.check_samples(samples)
        self.group, self.samples = group, samples
        declare(self, in_action=Points(dim=group.space_dim), out_action=LiftedPoints(group))

    def extra_repr(self) -> str:
        return f"group={self.group!r}, samples={self.samples}"

    def forward(self, points: Tensor, generator: torch.Generator | None = None) -> Lift:
        return self.group.lift(points, self.samples, generator)
