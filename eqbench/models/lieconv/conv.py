"""The LieConv layer: a Monte-Carlo group convolution with an MLP kernel on the Lie algebra.

For a query ``u`` with neighbourhood ``N(u)`` (:mod:`eqbench.models.lieconv.neighbourhoods`),
LieConv (Finzi et al. 2020, eq. 5 and app. A.1) estimates

    h(u) = 1/|N(u)| sum_{v in N(u)} k_theta(log(v^-1 u), q_u, q_v) f(v)

with a matrix-valued kernel factorised as in PointConv (Wu et al. 2019): a weight network
``w: R^{pair_dim} -> R^{c_m}`` (three Linear + masked BatchNorm + SiLU layers) and one linear
map ``L: R^{c_m c_in} -> R^{c_out}``, ``k(a) f = L (w(a) (x) f)``, so that

    h(u) = L( 1/|N(u)| sum_v w(a_uv) (x) f(v) ),

computed as one batched product of the ``(B, m, k, c_m)`` weights with the ``(B, m, k, c_in)``
neighbour values. (The reference divides after ``L``, bias included; we average before ``L``,
which is the Monte-Carlo estimate of the integral followed by a linear map.)

Memory. With ``P = B m k`` selected pairs (``k = nbhd``; ``k = n`` in the dense form):

* selection needs only the ``(B, m, n)`` invariant distances (formed once per pass by the
  network and sliced per layer) and, for ball sampling, the ``(B, m, n)`` ball membership,
  listed into a ``(B m, c_max)`` table of ball points with one float32 key each
  (:func:`~eqbench.models.lieconv.neighbourhoods.ball_sample`);
* the pair representation ``[k(log(v^-1 u)), q_u, q_v]`` is formed for the ``P`` selected
  pairs alone, and its ``V`` valid rows are the only pair-level tensor a layer keeps for
  backward: ``V pair_dim`` numbers (:mod:`~eqbench.models.lieconv.weightnet`), beside the
  query-level Monte-Carlo sums ``S`` (``R out c_in`` numbers for ``R`` real queries);
* the weight network's stage activations (``2 V hidden`` in forward, ``2 L V hidden`` while
  recomputing them in backward) and the gathered ``(P, c_in)`` neighbour values are transient,
  in the workspace the layers share.

Everything pair-level is therefore linear in ``k``. With ``nbhd=None`` or ``nbhd >= n`` (every
point a candidate) ``k = n`` and it is ``O(n^2)`` per item: e.g. 25 images of 648 pixels, all
queried, make ``P = 10.5 M`` pairs, 168 MB of saved float32 pair features (SO(2),
``pair_dim = 4``) and 2.7 GB of stage buffers at ``hidden = 32``; QM9's 29-atom molecules make
only 841 pairs each. For large clouds use the k-nearest path (``knn=True``, ``nbhd`` = k) or
ball sampling with ``nbhd`` well below ``n``: only the ``(B, m, k)`` pairs are materialised.
In the dense form the weights multiply the values directly (one ``bmm`` per item), without
gathering them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from eqbench.models.lieconv.groups.base import Lift, LiftingGroup
from eqbench.models.lieconv.neighbourhoods import BallRadius, Neighbourhood, ball_sample, nearest, pair_mask
from eqbench.models.lieconv.pointwise import real_rows
from eqbench.models.lieconv.weightnet import WeightNet
from eqbench.models.lieconv.workspace import Workspace


@dataclass(frozen=True)
class LiftedCloud:
    """The lifted points of one forward pass, in farthest-point order, shared by every layer.

    ``lift`` and ``mask`` cover all ``N`` lifted points; ``distances`` ``(B, M, N)`` are the
    invariant distances from the first ``M`` of them (the largest query set) to all ``N``.
    A layer with ``n`` inputs and ``m`` queries reads the first ``n`` points and
    ``distances[:, :m, :n]``. ``workspace`` is the scratch memory the layers share in turn.
    """

    group: LiftingGroup
    lift: Lift
    mask: Tensor
    distances: Tensor
    workspace: Workspace = field(default_factory=Workspace)
    row_cache: dict[int, Tensor | None] = field(default_factory=dict)

    def rows(self, count: int) -> Tensor | None:
        """Flat indices (into ``B count``) of the real points among the first ``count`` (``None`` when all are real)."""
        if count not in self.row_cache:
            self.row_cache[count] = real_rows(self.mask[:, :count])
        return self.row_cache[count]

    def restrict(self, packed: Tensor, inputs: int, queries: int) -> Tensor:
        """The packed rows of the first ``queries`` points, from the packed rows of the first ``inputs``."""
        if queries == inputs:
            return packed
        if self.rows(inputs) is None:
            return packed.view(self.mask.shape[0], inputs, -1)[:, :queries].reshape(-1, packed.shape[-1])
        real = self.mask[:, :inputs]
        is_query = (real & (torch.arange(inputs, device=real.device) < queries)).reshape(-1)[real.reshape(-1)]
        return packed.index_select(0, is_query.nonzero().squeeze(1))


class LieConv(nn.Module):
    """One LieConv layer from ``chin`` to ``chout`` channels (see the module docstring).

    ``nbhd``: Monte-Carlo sample size (``None``: every point of the ball, or every point with
    ``knn``); ``knn``: the ``nbhd`` nearest points instead of a ball sample; ``fill``: target
    fraction of the points inside the ball (:class:`~eqbench.models.lieconv.neighbourhoods.BallRadius`,
    initial ``radius``); ``mean``: divide by the number of neighbours; ``bn``: BatchNorm in the
    weight network; ``weight_hidden``/``weight_out``: its widths (the reference's 32 and 16).
    """

    def __init__(
        self,
        chin: int,
        chout: int,
        group: LiftingGroup,
        *,
        nbhd: int | None = None,
        fill: float = 1 / 3,
        knn: bool = False,
        mean: bool = True,
        bn: bool = True,
        radius: float | None = None,
        weight_hidden: int = 32,
        weight_out: int = 16,
    ) -> None:
        super().__init__()
        if nbhd is not None and nbhd < 1:
            raise ValueError(f"nbhd must be a positive integer or None (every point), got {nbhd!r}")
        self.group = group
        self.nbhd, self.mean = nbhd, mean
        self.weightnet = WeightNet(group.pair_dim, weight_hidden, weight_out, bn)
        self.linear = nn.Linear(weight_out * chin, chout)
        self.ball = None if knn else BallRadius(fill, radius)

    def extra_repr(self) -> str:
        return f"group={self.group!r}, nbhd={self.nbhd}, knn={self.ball is None}, mean={self.mean}"

    def neighbourhood(self, cloud: LiftedCloud, inputs: int, queries: int, generator: torch.Generator | None) -> Neighbourhood:
        """The neighbours of the first ``queries`` points among the first ``inputs`` points."""
        distances = cloud.distances[:, :queries, :inputs]
        column_mask, row_mask = cloud.mask[:, :inputs], cloud.mask[:, :queries]
        k = inputs if self.nbhd is None else min(self.nbhd, inputs)
        if self.ball is None:
            return nearest(distances, pair_mask(column_mask, row_mask), k)
        return ball_sample(self.ball.within(distances, column_mask, row_mask), k, generator)

    def forward(self, cloud: LiftedCloud, values: Tensor, queries: int, generator: torch.Generator | None) -> Tensor:
        """Convolve ``values`` ``(B, n, chin)`` on the first ``n`` lifted points at the first ``queries``.

        Returns the real queries' outputs packed, ``(R, chout)`` in the order of ``cloud.rows(queries)``.
        """
        inputs = values.shape[1]
        with torch.no_grad():
            neighbours = self.neighbourhood(cloud, inputs, queries, generator)
        query = cloud.lift.head(queries)
        query = Lift(query.elements[:, :, None], query.orbits[:, :, None])
        points = cloud.lift.head(inputs)
        if neighbours.index is None:
            pairs = cloud.group.pair_features(query, Lift(points.elements[:, None], points.orbits[:, None]))
        else:
            pairs = cloud.group.pair_features(query, points.take(neighbours.index))
        scale = 1 / neighbours.counts().to(values.dtype) if self.mean else None
        return self.weightnet.convolve(
            pairs, neighbours.valid, values, neighbours.index, self.linear, cloud.rows(queries), scale, cloud.workspace
        )

