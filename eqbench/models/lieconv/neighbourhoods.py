"""Neighbourhoods of query points: k nearest, or a uniform sample inside an invariant ball.

LieConv (Finzi et al. 2020, sec. 4.3 and app. A.4) estimates the convolution integral over a
neighbourhood of each query ``u``: the ball ``{v : d(u, v) < r}`` in the invariant distance.
``nbhd`` points are drawn uniformly without replacement from the ball (all of them when the
ball holds fewer), or the ``nbhd`` nearest points are taken instead (``knn``). Since ``d`` is
invariant, the ball and the k nearest points move with the group: only the uniform draw is
random, and it draws the same numbers for ``x`` and ``g . x`` under common random numbers.

The ball radius adapts during training so that the ball holds a target fraction ``fill`` of
the points (:class:`BallRadius`). Selection works on the ``(B, m, n)`` distances only; the
pair representation is formed afterwards for the selected ``(B, m, k)`` pairs alone.
The uniform draw keys only the ball's points (:func:`ball_sample`): on a rotMNIST first layer
(25 x 441 queries, 648 points, balls of up to about 110) that is 6 times fewer keys and a
selection over 110 columns instead of 648, about 40% less time than keying every pair.

Ties: ``topk`` breaks ties in distance arbitrarily, so k-nearest selection is exactly
invariant only on inputs without ties at the k-th distance (generic point clouds; not the
mirror-symmetric pairs of a pixel grid). Selecting every point of the ball (``nbhd >= n``)
has no such ties.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Neighbourhood:
    """Selected neighbours of ``m`` queries among ``n`` points.

    ``index`` ``(B, m, k)`` holds the neighbours' point indices, or is ``None`` when every
    point is a candidate (the dense form, ``k = n``); ``valid`` ``(B, m, k)`` marks real
    neighbours (inside the ball, real points, real query).
    """

    index: Tensor | None
    valid: Tensor

    def counts(self) -> Tensor:
        """``(B, m)`` number of valid neighbours per query (at least 1, for division)."""
        return self.valid.sum(-1).clamp(min=1)


def pair_mask(column_mask: Tensor, row_mask: Tensor) -> Tensor:
    """``(B, m, n)``: real query ``i`` and real point ``j``."""
    return row_mask[:, :, None] & column_mask[:, None, :]


def nearest(distances: Tensor, allowed: Tensor, k: int) -> Neighbourhood:
    """The ``k`` nearest allowed points of each query (``k`` at most ``n``; fewer allowed ones are marked invalid)."""
    if k >= distances.shape[-1]:
        return Neighbourhood(None, allowed)
    masked = torch.where(allowed, distances, torch.full_like(distances, torch.inf))
    chosen, index = torch.topk(masked, k, dim=-1, largest=False, sorted=False)
    return Neighbourhood(index, torch.isfinite(chosen))


def ball_sample(within: Tensor, k: int, generator: torch.Generator | None) -> Neighbourhood:
    """Up to ``k`` points drawn uniformly without replacement from each query's ball ``within`` ``(B, m, n)``.

    The ball points of each query are listed first (``nonzero``: a ``(B m, c_max)`` table of
    point indices, ``c_max`` the largest ball); each listed point gets a uniform float32 key
    and the ``k`` largest keys are a uniform sample of the ball. A ball of at most ``k`` points
    is taken whole (topped up with invalid entries), and when no ball exceeds ``k`` nothing is
    drawn. Keys are drawn for the ``B m c_max`` table only, not for all ``B m n`` pairs (a
    rotMNIST layer-1 ball holds about a tenth of the points), and the selection runs over
    ``c_max`` columns instead of ``n``.
    """
    batch, m, n = within.shape
    if k >= n:
        return Neighbourhood(None, within)
    queries, columns = within.reshape(batch * m, n).nonzero(as_tuple=True)
    counts = torch.bincount(queries, minlength=batch * m)
    widest = int(counts.max()) if counts.numel() else 0
    starts = counts.cumsum(0) - counts
    positions = torch.arange(queries.numel(), device=within.device) - starts[queries]
    table = torch.zeros(batch * m, max(widest, k), dtype=torch.long, device=within.device)
    table.index_put_((queries, positions), columns)
    if widest <= k:
        slots = torch.arange(k, device=within.device)
        return Neighbourhood(table.view(batch, m, k), (slots < counts[:, None]).view(batch, m, k))
    keys = torch.rand(batch * m, widest, generator=generator, device=within.device)
    keys.masked_fill_(torch.arange(widest, device=within.device) >= counts[:, None], -1.0)
    chosen, where = torch.topk(keys, k, dim=-1, largest=True, sorted=False)
    return Neighbourhood(table.gather(1, where).view(batch, m, k), (chosen >= 0).view(batch, m, k))


class BallRadius(nn.Module):
    """The radius ``r`` of the neighbourhood ball, adapted in training to hold a fraction ``fill`` of the points.

    Running estimate (the reference's rule): after each training forward pass,
    ``r <- r + coeff * (fill - observed fill)``, where the observed fill is the mean number of
    ball points per real query over the mean number of real points per item. When no
    initial radius is given, the first training pass sets ``r`` to the ``fill``-quantile of
    that batch's distances (so the running estimate starts where it should). The radius is
    a buffer, saved in the state dict; evaluation uses it as it is.
    """

    def __init__(self, fill: float, radius: float | None = None, coeff: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < fill <= 1.0:
            raise ValueError(f"fill must be in (0, 1], got {fill!r}")
        if radius is not None and not radius > 0:
            raise ValueError(f"the initial ball radius must be positive, got {radius!r}")
        self.fill = float(fill)
        self.coeff = float(coeff)
        self.register_buffer("radius", torch.tensor(float("nan") if radius is None else float(radius)))

    def extra_repr(self) -> str:
        return f"fill={self.fill:g}, radius={float(self.radius):.4g}"

    def within(self, distances: Tensor, column_mask: Tensor, row_mask: Tensor) -> Tensor:
        """``(B, m, n)`` pairs of a real query and a real point inside the ball; in training, then update the radius."""
        allowed = None if bool(column_mask.all()) and bool(row_mask.all()) else pair_mask(column_mask, row_mask)
        if torch.isnan(self.radius):
            if not self.training:
                raise RuntimeError(
                    "the LieConv ball radius has not been estimated: run the model in training mode on data first "
                    "(the radius adapts to the fill fraction), or construct it with an initial radius"
                )
            self.initialise(distances.reshape(-1) if allowed is None else distances[allowed])
        inside = distances < self.radius
        if allowed is not None:
            inside &= allowed
        if self.training:
            self.update(inside, column_mask, row_mask)
        return inside

    @torch.no_grad()
    def initialise(self, distances: Tensor) -> None:
        """Set the radius to the ``fill``-quantile of a batch's real distances (1-D)."""
        if distances.numel():
            rank = max(1, min(distances.numel(), round(self.fill * distances.numel())))
            self.radius.copy_(torch.kthvalue(distances, rank).values * (1 + 1e-6))

    @torch.no_grad()
    def update(self, inside: Tensor, column_mask: Tensor, row_mask: Tensor) -> None:
        """One step of the running estimate (class docstring) from a batch's ``(B, m, n)`` ball membership."""
        per_query = torch.count_nonzero(inside) / torch.count_nonzero(row_mask).clamp(min=1)
        points = column_mask.sum(-1).to(self.radius.dtype).mean().clamp(min=1)
        self.radius += self.coeff * (self.fill - per_query / points)
