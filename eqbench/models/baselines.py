"""Baselines of the Frame Averaging paper (Puny et al. 2022): PointNet, a message-passing GNN and EGNN.

* :class:`PointNet` (Qi et al. CVPR 2017, without the transform nets) reads raw coordinates:
  S_n invariant (pooled) or equivariant (per point), not rotation or translation equivariant.
* :class:`NBodyGNN`, the "GNN" of the charged n-body benchmark (Satorras et al. 2021,
  after Gilmer et al. 2017): nodes carry the raw positions and velocities, so it is S_n
  equivariant but not E(3) equivariant. It is also the backbone of FA-GNN
  (:class:`eqbench.models.frame_averaging.FAGNN`).
* :class:`EGNN` for n-body (Satorras, Hoogeboom, Welling, ICML 2021, Eqs. 3-6 with the velocity
  update of Eq. 7): E(3) x S_n equivariant predicted positions.

The n-body models take ``positions (B, N, 3)``, ``velocities (B, N, 3)`` and ``charges (B, N, 1)``
of a fully connected system and return the predicted positions ``(B, N, 3)``. Edge attributes
follow the benchmark code of Satorras et al.: ``q_i q_j`` for the GNN, ``(q_i q_j, |x_i - x_j|^2)``
of the input positions for EGNN (and for FA-GNN). Edge MLPs end with an activation, as there.
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
    """Message-passing GNN on the fully connected n-body graph (the benchmark's "GNN", Satorras et al. 2021).

    ``h_i^0 = embed([x_i, v_i])``; per layer (:meth:`propagate`) ``m_ij = phi_e(h_i, h_j, e_ij)``
    for ``j != i`` and ``h_i <- h_i + phi_h(h_i, sum_j m_ij)``; the predicted positions are
    ``decode(h_i)`` (read out directly, as in the reference code), with ``e_ij = q_i q_j``. Sums
    over all other nodes make it S_n equivariant; raw coordinates make it neither rotation nor
    translation equivariant. ``edge_features`` sizes ``e_ij`` for other uses of the layers (FA-GNN).
    """

    def __init__(self, hidden: int = 64, layers: int = 4, edge_features: int = 1) -> None:
        super().__init__()
        if hidden < 1 or layers < 1 or edge_features < 1:
            raise ValueError(f"NBodyGNN needs hidden, layers, edge_features >= 1, got {hidden}, {layers}, {edge_features}")
        self.hidden = hidden
        self.embed = nn.Linear(6, hidden)
        self.edges = nn.ModuleList(PairMLP(hidden, edge_features, hidden, hidden) for _ in range(layers))
        self.nodes = nn.ModuleList(mlp(2 * hidden, hidden, hidden) for _ in range(layers))
        self.decode = mlp(hidden, hidden, 3)

    def forward(self, positions: Tensor, velocities: Tensor, charges: Tensor) -> Tensor:
        check_system(positions, velocities, charges)
        h = self.embed(torch.cat([positions, velocities], dim=-1))
        edges = charge_products(charges)
        for layer in range(len(self.edges)):
            h = self.propagate(layer, h, edges)
        return self.decode(h)

    def propagate(self, layer: int, h: Tensor, edges: Tensor) -> Tensor:
        """Message-passing layer ``layer``: ``h_i + phi_h(h_i, sum_{j != i} phi_e(h_i, h_j, e_ij))``; ``h (B, N, F)``, ``edges (B, N, N, E)``."""
        mask = off_diagonal(h.shape[1], h)[..., None]
        messages = self.edges[layer](h, edges) * mask
        return h + self.nodes[layer](torch.cat([h, messages.sum(dim=2)], dim=-1))


class EGNN(nn.Module):
    """EGNN for n-body with velocities (Satorras, Hoogeboom, Welling 2021, Eqs. 3-7), fully connected.

    ``h_i^0 = embed(|v_i|)``, ``e_ij = (q_i q_j, |x_i^0 - x_j^0|^2)``; per layer, with ``C = 1/(N-1)``
    and the input velocities ``v_i`` (Eq. 7 uses ``v_i^init`` in every layer):

        m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, e_ij)
        x_i <- x_i + C sum_{j != i} (x_i - x_j) phi_x(m_ij) + phi_v(h_i) v_i
        h_i <- h_i + phi_h(h_i, sum_{j != i} m_ij)

    Messages see only E(3) invariants and positions move along differences and velocities, so
    the output positions ``x_i^L`` transform as points under E(3) x S_n. The last layer of each
    ``phi_x`` has no bias and Xavier-uniform weights of gain 0.001, as in the reference code
    (tiny first position updates; training diverges without it).
    """

    def __init__(self, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"EGNN needs hidden, layers >= 1, got {hidden}, {layers}")
        self.embed = nn.Linear(1, hidden)
        self.edges = nn.ModuleList(PairMLP(hidden, 3, hidden, hidden) for _ in range(layers))
        self.coordinates = nn.ModuleList(_coordinate_mlp(hidden) for _ in range(layers))
        self.velocities = nn.ModuleList(mlp(hidden, hidden, 1) for _ in range(layers))
        self.nodes = nn.ModuleList(mlp(2 * hidden, hidden, hidden) for _ in range(layers))

    def forward(self, positions: Tensor, velocities: Tensor, charges: Tensor) -> Tensor:
        check_system(positions, velocities, charges)
        num_points = positions.shape[1]
        h = self.embed(velocities.norm(dim=-1, keepdim=True))
        x = positions
        attributes = torch.cat([charge_products(charges), squared_distances(positions)], dim=-1)
        mask = off_diagonal(num_points, positions)[..., None]
        for edge, coordinate, velocity, node in zip(self.edges, self.coordinates, self.velocities, self.nodes):
            differences = pairwise_differences(x)
            squared = differences.square().sum(-1, keepdim=True)
            messages = edge(h, torch.cat([squared, attributes], dim=-1)) * mask
            pull = (differences * coordinate(messages) * mask).sum(dim=2) / max(num_points - 1, 1)
            x = x + pull + velocity(h) * velocities
            h = h + node(torch.cat([h, messages.sum(dim=2)], dim=-1))
        return x


class PairMLP(nn.Module):
    """Edge MLP ``phi(h_i, h_j, e_ij) = silu(W_2 silu(W_1 [h_i, h_j, e_ij] + b_1) + b_2)`` on every ordered pair.

    Ends with the activation, as the edge MLPs of Satorras et al.'s code (GCL, E_GCL). The first
    layer is split by input, ``W_1 [h_i, h_j, e_ij] = A h_i + B h_j + C e_ij``, so the node parts
    run once per node instead of once per pair (the same function as an MLP on the
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
        return nn.functional.silu(self.out(nn.functional.silu(hidden)))


def charge_products(charges: Tensor) -> Tensor:
    """Edge attributes ``q_i q_j``: ``(B, N, 1) -> (B, N, N, 1)``."""
    return charges[:, :, None, :] * charges[:, None, :, :]


def squared_distances(positions: Tensor) -> Tensor:
    """Edge attributes ``|x_i - x_j|^2``: ``(B, N, 3) -> (B, N, N, 1)`` (E(3) invariant)."""
    return pairwise_differences(positions).square().sum(-1, keepdim=True)


def _coordinate_mlp(hidden: int) -> nn.Sequential:
    """``phi_x``: ``hidden -> hidden -> 1``, SiLU, the last layer bias-free with Xavier-uniform gain 0.001 (reference init)."""
    last = nn.Linear(hidden, 1, bias=False)
    nn.init.xavier_uniform_(last.weight, gain=0.001)
    return nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), last)


def check_system(positions: Tensor, velocities: Tensor, charges: Tensor) -> None:
    """Raise ``ValueError`` unless the shapes are ``(B, N, 3)``, ``(B, N, 3)``, ``(B, N, 1)`` with ``N >= 1``."""
    batch, num_points = positions.shape[:2] if positions.dim() == 3 else (-1, -1)
    expected = ((positions, 3), (velocities, 3), (charges, 1))
    if num_points < 1 or any(tuple(value.shape) != (batch, num_points, width) for value, width in expected):
        raise ValueError(
            "n-body models expect positions (B, N, 3), velocities (B, N, 3) and charges (B, N, 1) with N >= 1; got "
            f"{tuple(positions.shape)}, {tuple(velocities.shape)}, {tuple(charges.shape)}"
        )
