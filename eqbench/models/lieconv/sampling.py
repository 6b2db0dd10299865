"""Farthest point sampling in the invariant distance, with a seeded random start.

LieConv subsamples its query points by farthest point sampling (FPS): start from one point,
then repeatedly add the point farthest (in the invariant distance ``d``) from those already
chosen. Because ``d`` is invariant, FPS commutes with the group: the same indices are chosen
for ``x`` and ``g . x`` (up to ties and rounding). The start is drawn from a caller-seedable
``torch.Generator`` (the reference draws it from the unseeded global RNG).

FPS has the *prefix property*: the first ``m'`` points of an FPS order of length ``m`` are the
FPS order of length ``m'`` started from the same point, also when run on the ``m`` chosen
points alone. A network that downsamples layer after layer therefore needs ONE order: layer
``l`` queries the first ``m_l`` points, and its inputs are the first ``m_{l-1}``
(:class:`~eqbench.models.lieconv.network.LieResNet`). The reference re-runs FPS in every
layer with a fresh random start; ours is the nested order from one seeded start.

The greedy loop runs ``count`` steps (FPS is sequential), each a vectorised update over the
batch and the points.
"""
from __future__ import annotations

import torch
from torch import Tensor

from eqbench.models.lieconv.groups.base import uniform


def random_valid_index(mask: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row of ``mask`` ``(B, N)``, uniform among its True entries (0 for an all-False row)."""
    counts = mask.sum(-1)
    draw = (uniform((mask.shape[0],), generator, torch.empty(0, device=mask.device)) * counts).long()
    rank = torch.cumsum(mask.long(), -1) - 1
    hit = mask & (rank == draw.clamp(max=counts.clamp(min=1) - 1)[:, None])
    return hit.long().argmax(-1)


@torch.no_grad()
def farthest_point_order(
    distances: Tensor, mask: Tensor, count: int, generator: torch.Generator | None, start: Tensor | None = None
) -> Tensor:
    """A ``(B, N)`` permutation whose first ``count`` entries are the FPS order, the rest the other points in order.

    ``distances`` ``(B, N, N)`` are the invariant distances, ``mask`` ``(B, N)`` the real
    points. The first pick is ``start`` ``(B,)`` when given, otherwise a real point drawn
    uniformly from ``generator``. Real points are picked first; when a row has fewer than
    ``count`` real points, the remaining picks are padding points (still without repeats),
    which the caller masks. Ties in distance go to the lowest index.
    """
    batch, n = mask.shape
    if not 0 < count <= n:
        raise ValueError(f"farthest point sampling needs 0 < count <= {n} points, got {count}")
    if start is not None and start.shape != (batch,):
        raise ValueError(f"the farthest point start needs one index per item, shape ({batch},), got {tuple(start.shape)}")
    rows = torch.arange(batch, device=mask.device) * n
    flat = distances.reshape(batch * n, n)
    # score: distance to the chosen set for unchosen real points, -1 for padding (distances are >= 0,
    # so the running minimum keeps it), -inf once chosen
    score = torch.where(mask, torch.inf, -1.0).to(distances.dtype)
    picked = torch.empty(batch, count, dtype=torch.long, device=mask.device)
    current = random_valid_index(mask, generator) if start is None else start
    for step in range(count):
        picked[:, step] = current
        torch.minimum(score, flat.index_select(0, rows + current), out=score)
        score.scatter_(1, current[:, None], -torch.inf)
        current = score.argmax(-1)
    keys = torch.arange(n, device=mask.device).expand(batch, n) + count
    keys = keys.scatter(1, picked, torch.arange(count, device=mask.device).expand(batch, count))
    return keys.argsort(-1)
