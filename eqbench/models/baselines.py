"""Baselines of the Frame Averaging paper (Puny et al. 2022): PointNet, a message-passing GNN and EGNN.

* :class:`PointNet` (Qi et al. CVPR 2017, without the transform nets) reads raw coordinates:
  S_n invariant (pooled) or equivariant (per point), not rotation or translation equivariant.
* :class:`NBodyGNN`, the "GNN" of the charged n-body benchmark (Satorras et al. 2021,
  after Gilmer et al. 2017): nodes carry the raw positions and velocities, so it is S_n
  equivariant but not E(3) equivariant.
* :class:`EGNN` for n-body (Satorras, Hoogeboom, Welling, ICML 2021, Eqs. 3-6 with the velocity update of Eq. 7):
  E(3) x S_n equivariant predicted positions.

The n-body models take ``positions (B, N, 3)``, ``velocities (B, N, 3)`` and ``charges (B, N, 1)``
of a fully connected system and return the predicted positions ``(B, N, 3)``; the edge
attribute of the pair ``(i, j)`` is ``q_i q_j`` in both graph networks, as in the reference.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from eqbench.models.controls import mlp, off_diagonal, pairwise_differences


class PointNet(nn.Module):
    """PointNet: shared per-point MLP ``h_i = phi(x_i)``, max pool ``m = max_i h_i``, then a head.

    ``per_point=False``: ``rho(m)`` of shape ``(B, out_features)`` (classification, S_n invariant);
    ``per_point=True``: ``psi([h_i, m])`` of shape ``(B, N, out_features)`` (segmentation or
    normal estimation, S_n equivariant). ``widths`` are the hidden sizes of ``phi``; the heads
    have one hidden layer of ``widths[-1] // 2`` units. Activations SiLU; no batch norm, so
    batch items never interact (frame averaging stacks frames on the batch axis).
    """

    def __init__(
        self, in_features: int = 3, out_features: int = 10, widths: Sequence[int] = (64, 128), per_point: bool = False
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("PointNet needs at least one hidden width")
        self.in_features, self.per_point = in_features, per_point
        self.phi = mlp(in_features, *widths)
        pooled = widths[-1]
        self.head = mlp(2 * pooled if per_point else pooled, max(pooled // 2, 1), out_features)

    def forward(self, points: Tensor) -> Tensor:
        if points.dim() != 3 or points.shape[-1] != self.in_features or points.shape[1] < 1:
            raise ValueError(f"PointNet expects points of shape (B, N >= 1, {self.in_features}), got {tuple(points.shape)}")
        features = self.phi(points)
        pooled = features.max(dim=1).values
        if not self.per_point:
            return self.head(pooled)
        return self.head(torch.cat([features, pooled[:, None, :].expand_as(features)], dim=-1))


class NBodyGNN(nn.Module):
    """Message-passing GNN on the fully connected n-body graph (the benchmark's "GNN").

    ``h_i^0 = embed([x_i, v_i])``; per layer ``m_ij = phi_e(h_i, h_j, q_i q_j)`` for ``j != i`` and
    ``h_i <- h_i + phi_h(h_i, sum_j m_ij)``; output ``x_i + decode(h_i)``. Sums over all other
    nodes make it S_n equivariant; raw coordinates make it neither rotation nor translation
    equivariant (this is the backbone that :func:`eqbench.models.frame_averaging.fa_gnn` averages).
    """

    def __init__(self, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(6, hidden)
        self.edges = nn.ModuleList(PairMLP(hidden, 1, hidden, hidden) for _ in range(layers))
        self.nodes = nn.ModuleList(mlp(2 * hidden, hidden, hidden) for _ in range(layers))
        self.decode = mlp(hidden, hidden, 3)

    def forward(self, positions: Tensor, velocities: Tensor, charges: Tensor) -> Tensor:
        _check_system(positions, velocities, charges)
        h = self.embed(torch.cat([positions, velocities], dim=-1))
        pair_charges = charge_products(charges)
        mask = off_diagonal(positions.shape[1], positions)[..., None]
        for edge, node in zip(self.edges, self.nodes):
            messages = edge(h, pair_charges) * mask
            h = h + node(torch.cat([h, messages.sum(dim=2)], dim=-1))
        return positions + self.decode(h)


class EGNN(nn.Module):
    """EGNN for n-body with velocities (Satorras, Hoogeboom, Welling 2021, Eqs. 3-6 and 7), fully connected.

    ``h_i^0 = embed(|v_i|)``; per layer, with ``C = 1/(N-1)``:

        m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, q_i q_j)
        v_i <- phi_v(h_i) v_i + C sum_{j != i} (x_i - x_j) phi_x(m_ij)
        x_i <- x_i + v_i
        h_i <- h_i + phi_h(h_i, sum_{j != i} m_ij)

    Messages see only E(3) invariants and positions move along differences and velocities, so
    the output positions ``x_i^L`` transform as points under E(3) x S_n.
    """

    def __init__(self, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(1, hidden)
        self.edges = nn.ModuleList(PairMLP(hidden, 2, hidden, hidden) for _ in range(layers))
        self.coordinates = nn.ModuleList(mlp(hidden, hidden, 1) for _ in range(layers))
        self.velocities = nn.ModuleList(mlp(hidden, hidden, 1) for _ in range(layers))
        self.nodes = nn.ModuleList(mlp(2 * hidden, hidden, hidden) for _ in range(layers))

    def forward(self, positions: Tensor, velocities: Tensor, charges: Tensor) -> Tensor:
        _check_system(positions, velocities, charges)
        num_points = positions.shape[1]
        h = self.embed(velocities.norm(dim=-1, keepdim=True))
        x, v = positions, velocities
        pair_charges = charge_products(charges)
        mask = off_diagonal(num_points, positions)[..., None]
        for edge, coordinate, velocity, node in zip(self.edges, self.coordinates, self.velocities, self.nodes):
            differences = pairwise_differences(x)
            squared = differences.square().sum(-1, keepdim=True)
            messages = edge(h, torch.cat([squared, pair_charges], dim=-1)) * mask
            pull = (differences * coordinate(messages) * mask).sum(dim=2) / max(num_points - 1, 1)
            v = velocity(h) * v + pull
            x = x + v
            h = h + node(torch.cat([h, messages.sum(dim=2)], dim=-1))
        return x


class PairMLP(nn.Module):
    """Edge MLP ``phi(h_i, h_j, e_ij) = W_2 silu(W_1 [h_i, h_j, e_ij] + b_1) + b_2`` on every ordered pair.

    The first layer is split by input, ``W_1 [h_i, h_j, e_ij] = A h_i + B h_j + C e_ij``, so the
    node parts run once per node instead of once per pair (the same function as an MLP on the
    concatenation, at a fraction of the cost). ``h (B, N, F)``, ``e (B, N, N, E)`` -> ``(B, N, N, out)``.
    """

    def __init__(self, node_features: int, edge_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.source = nn.Linear(node_features, hidden)
        self.target = nn.Linear(node_features, hidden, bias=False)
        self.edge = nn.Linear(edge_features, hidden, bias=False)
        self.out = nn.Linear(hidden, out_features)

    def forward(self, h: Tensor, edges: Tensor) -> Tensor:
        hidden = self.source(h)[:, :, None, :] + self.target(h)[:, None, :, :] + self.edge(edges)
        return self.out(nn.functional.silu(hidden))


def charge_products(charges: Tensor) -> Tensor:
    """Edge attributes ``q_i q_j``: ``(B, N, 1) -> (B, N, N, 1)``."""
    return charges[:, :, None, :] * charges[:, None, :, :]


def _check_system(positions: Tensor, velocities: Tensor, charges: Tensor) -> None:
    """Raise ``ValueError`` unless the shapes are ``(B, N, 3)``, ``(B, N, 3)``, ``(B, N, 1)`` with ``N >= 1``."""
    batch, num_points = positions.shape[:2] if positions.dim() == 3 else (-1, -1)
    expected = ((positions, 3), (velocities, 3), (charges, 1))
    if num_points < 1 or any(tuple(value.shape) != (batch, num_points, width) for value, width in expected):
        raise ValueError(
            "n-body models expect positions (B, N, 3), velocities (B, N, 3) and charges (B, N, 1) with N >= 1; got "
            f"{tuple(positions.shape)}, {tuple(velocities.shape)}, {tuple(charges.shape)}"
        )
