"""Control models: small networks whose symmetry (or its absence) is known by construction.

The checker is trusted only if it passes every correct control and catches every broken one,
each with a stated reason. All models are plain ``nn.Module``s on batched tensors: positions
``pos`` of shape ``(B, N, 3)``, per-point features ``(B, N, F)``, velocities ``(B, N, 3)``.
Distances are computed as ``||x_i - x_j||`` from explicit differences (not ``torch.cdist``, whose
matrix-multiplication shortcut loses precision in float32).

Correct controls
    :class:`DistanceMLP` (E(3) x S_n invariant), :class:`DeepSets` (S_n invariant),
    :class:`EGNNLayer` (E(3) x S_n equivariant, Satorras et al. 2021); the PointNet controls
    use :class:`eqbench.models.baselines.PointNet` (S_n invariant or per-point equivariant).
Broken controls
    :class:`CoordinateMLP`, :class:`AxisReader`, :class:`IndexWeightedPooling`,
    :class:`ChiralInvariant` (SO(3) invariant but not O(3)), :class:`RawVelocityEnergy`,
    :class:`TruncatedNeighbourhood` (breaks S_n only on dense inputs).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers of the given widths with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(nn.SiLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


def pairwise_differences(pos: Tensor) -> Tensor:
    """``x_i - x_j`` for every ordered pair: ``(B, N, 3) -> (B, N, N, 3)``."""
    return pos[:, :, None, :] - pos[:, None, :, :]


def pairwise_distances(pos: Tensor) -> Tensor:
    """``||x_i - x_j||``: ``(B, N, 3) -> (B, N, N)``; invariant under E(3), permuted with the points."""
    return pairwise_differences(pos).square().sum(-1).sqrt()


def off_diagonal(num_points: int, like: Tensor) -> Tensor:
    """``(N, N)`` mask that is 1 for ``i != j`` (no self pairs), in ``like``'s dtype and device."""
    return 1.0 - torch.eye(num_points, dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------- correct controls
class DistanceMLP(nn.Module):
    """Point-cloud network on pairwise distances, invariant under E(3) x S_n.

    ``f(X) = rho( sum_i sum_{j != i} phi(||x_i - x_j||) )``: distances are unchanged by rotations,
    reflections and translations, and the double sum is unchanged by re-indexing the points, so
    ``f(g.X) = f(X)`` for every ``g`` in E(3) x S_n. Output ``(B, out_features)``.
    """

    def __init__(self, hidden: int = 16, out_features: int = 4) -> None:
        super().__init__()
        self.pair = mlp(1, hidden, hidden)
        self.readout = mlp(hidden, hidden, out_features)

    def forward(self, pos: Tensor) -> Tensor:
        messages = self.pair(pairwise_distances(pos).unsqueeze(-1))
        messages = messages * off_diagonal(pos.shape[1], pos)[..., None]
        return self.readout(messages.sum(dim=(1, 2)))


class DeepSets(nn.Module):
    """DeepSets (Zaheer et al. 2017): ``f(X) = rho( sum_i phi(x_i) )``, invariant under S_n.

    Each point's features ``x_i`` (any per-point vector, coordinates included) go through the
    same ``phi``; the sum forgets the order. It is *not* rotation invariant when the features
    are coordinates. Output ``(B, out_features)``.
    """

    def __init__(self, in_features: int = 3, hidden: int = 16, out_features: int = 4) -> None:
        super().__init__()
        self.phi = mlp(in_features, hidden, hidden)
        self.rho = mlp(hidden, hidden, out_features)

    def forward(self, points: Tensor) -> Tensor:
        return self.rho(self.phi(points).sum(dim=1))


class EGNNLayer(nn.Module):
    """One E(n)-equivariant graph layer (Satorras, Hoogeboom & Welling 2021, Eqs. 3-6), fully connected.

    ``m_ij = phi_e(h_i, h_j, ||x_i - x_j||^2)``,
    ``x_i' = x_i + 1/(N-1) sum_{j != i} (x_i - x_j) phi_x(m_ij)``,
    ``h_i' = phi_h(h_i, sum_{j != i} m_ij)``.

    Messages see only invariants, and coordinates move along the differences ``x_i - x_j``, so
    for ``g`` in E(3) x S_n the output positions transform as points (``x' -> M x' + t``, re-indexed)
    and the output features as per-point invariants. Returns ``(pos', h')``, shapes
    ``(B, N, 3)`` and ``(B, N, out_features)``.
    """

    def __init__(self, in_features: int = 4, hidden: int = 16, out_features: int = 4) -> None:
        super().__init__()
        self.edge = mlp(2 * in_features + 1, hidden, hidden)
        self.coordinate = mlp(hidden, hidden, 1)
        self.node = mlp(in_features + hidden, hidden, out_features)

    def forward(self, pos: Tensor, feat: Tensor) -> tuple[Tensor, Tensor]:
        num_points = pos.shape[1]
        differences = pairwise_differences(pos)
        squared = differences.square().sum(-1, keepdim=True)
        h_i = feat[:, :, None, :].expand(-1, -1, num_points, -1)
        h_j = feat[:, None, :, :].expand(-1, num_points, -1, -1)
        mask = off_diagonal(num_points, pos)[..., None]
        messages = self.edge(torch.cat([h_i, h_j, squared], dim=-1)) * mask
        shift = (differences * self.coordinate(messages) * mask).sum(dim=2) / max(num_points - 1, 1)
        new_features = self.node(torch.cat([feat, messages.sum(dim=2)], dim=-1))
        return pos + shift, new_features


# ---------------------------------------------------------------------------- broken controls
class CoordinateMLP(nn.Module):
    """An MLP on the flattened raw coordinates ``(B, N*3) -> (B, out_features)``.

    Nothing ties the weights to the geometry, so a rotation of the input changes the output:
    broken under SO(3) (and under S_n and translations too).
    """

    def __init__(self, num_points: int, hidden: int = 16, out_features: int = 4) -> None:
        super().__init__()
        self.num_points = num_points
        self.net = mlp(3 * num_points, hidden, out_features)

    def forward(self, pos: Tensor) -> Tensor:
        if pos.shape[1:] != (self.num_points, 3):
            raise ValueError(f"CoordinateMLP expects positions of shape (B, {self.num_points}, 3), got {tuple(pos.shape)}")
        return self.net(pos.flatten(1))


class AxisReader(nn.Module):
    """:class:`DistanceMLP` plus the spread of the cloud along the first coordinate axis.

    ``f(X) = DistanceMLP(X) + w * var_i(x_i[0])``: the variance along axis 0 is unchanged by
    translations and re-indexing but not by rotations (it is one diagonal entry of the
    covariance, not its trace), so the model is broken under SO(3) while passing T(3) x S_n.
    """

    def __init__(self, hidden: int = 16, out_features: int = 4) -> None:
        super().__init__()
        self.invariant = DistanceMLP(hidden, out_features)
        self.axis_weight = nn.Linear(1, out_features)

    def forward(self, pos: Tensor) -> Tensor:
        spread = pos[..., 0].var(dim=1, unbiased=False)
        return self.invariant(pos) + self.axis_weight(spread.unsqueeze(-1))


class IndexWeightedPooling(nn.Module):
    """DeepSets with one learned weight per point *index*: ``f(X) = rho( sum_i w_i phi(x_i) )``.

    Like positional embeddings on a set, the weights ``w_i`` belong to slot ``i``, not to the
    point in it, so re-indexing the points changes the output: broken under S_n.
    """

    def __init__(self, in_features: int = 3, hidden: int = 16, out_features: int = 4, max_points: int = 1024) -> None:
        super().__init__()
        self.phi = mlp(in_features, hidden, hidden)
        self.rho = mlp(hidden, hidden, out_features)
        self.index_weights = nn.Parameter(1.0 + 0.5 * torch.randn(max_points))

    def forward(self, points: Tensor) -> Tensor:
        num_points = points.shape[1]
        if num_points > self.index_weights.numel():
            raise ValueError(f"IndexWeightedPooling supports at most {self.index_weights.numel()} points, got {num_points}")
        weights = self.index_weights[:num_points].to(points.dtype)
        return self.rho((weights[None, :, None] * self.phi(points)).sum(dim=1))


class ChiralInvariant(nn.Module):
    """The size and the handedness of a cloud: invariant under SO(3), the handedness flips under reflections.

    With centred points ``c_i = x_i - mean(x)``, radii ``r_i = ||c_i||`` relative to their RMS
    ``s``, and three narrow radial bands ``w_k(r) = exp(-(r/s - mu_k)^2 / (2 sigma^2))``
    (``mu = 0.5, 1, 1.5``, ``sigma = 0.1``), the vectors ``u_k = sum_i w_k(r_i) c_i`` are O(3)
    equivariant and S_n invariant. The output is ``[s, det[u_1 u_2 u_3] / prod_k m_k]`` with
    ``m_k = sum_i w_k(r_i) ||c_i||`` (so ``|det| / prod m_k <= 1``). A determinant of rotated
    vectors is ``det(R) det(U)``: unchanged for ``R`` in SO(3) but negated by a reflection, so
    the model is exact under SO(3) (and T(3) x S_n) and broken under O(3).

    Two choices keep the handedness both large and well conditioned. The bands are narrow, so
    they pick disjoint shells of points and the ``u_k`` point in unrelated directions (wide,
    overlapping bands sum to nearly a constant, and with ``sum_i c_i = 0`` the ``u_k`` would be
    nearly dependent); on generic clouds of 8 points its median size is about 0.05, against
    float32 rounding of about 1e-7. The normalisers ``m_k`` involve no cancellation, so rounding errors in ``c_i``
    change the output by ``O(eps)`` even for nearly coplanar clouds, whose handedness is 0
    (no reflection can tell them from their mirror image).
    """

    def __init__(self, centres: tuple[float, float, float] = (0.5, 1.0, 1.5), width: float = 0.1, eps: float = 1e-12) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor(centres))
        self.width = width
        self.eps = eps

    def forward(self, pos: Tensor) -> Tensor:
        centred = pos - pos.mean(dim=1, keepdim=True)
        radii = centred.norm(dim=-1)
        size = radii.square().mean(dim=1, keepdim=True).sqrt()
        relative = radii / (size + self.eps)
        bands = torch.exp(-(relative[..., None] - self.centres.to(pos.dtype)).square() / (2 * self.width**2))
        frame = torch.einsum("bnk,bnd->bkd", bands, centred)  # rows u_k
        magnitudes = torch.einsum("bnk,bn->bk", bands, radii)  # m_k
        # det[u_1 u_2 u_3] as the triple product: LAPACK's pivoted det returns NaN for a float32 matrix holding
        # a subnormal entry (as u_k of an exactly symmetric lattice can), the triple product returns 0 there
        triple = (frame[:, 0] * torch.linalg.cross(frame[:, 1], frame[:, 2], dim=-1)).sum(dim=-1)
        handedness = triple / (magnitudes.prod(dim=-1) + self.eps)
        return torch.cat([size, handedness.unsqueeze(-1)], dim=-1)


class RawVelocityEnergy(nn.Module):
    """An "energy" of positions and velocities that forgets to rotate the velocities.

    ``E(X, V) = DistanceMLP(X) + sum_i psi(v_i)`` with ``psi`` fed the raw components of
    ``v_i`` (a correct model would feed ``||v_i||^2``). Positions are handled invariantly, but
    when the group rotates ``V`` along with ``X`` the velocity term changes: broken under SO(3).
    Called as ``model(pos=..., vel=...)`` with ``vel`` of shape ``(B, N, ..., 3)`` (any number of
    vectors per point; every one is summed).
    """

    def __init__(self, hidden: int = 16, out_features: int = 4) -> None:
        super().__init__()
        self.invariant = DistanceMLP(hidden, out_features)
        self.velocity = mlp(3, hidden, out_features)

    def forward(self, pos: Tensor, vel: Tensor) -> Tensor:
        per_vector = self.velocity(vel)
        return self.invariant(pos) + per_vector.sum(dim=tuple(range(1, per_vector.dim() - 1)))


class TruncatedNeighbourhood(nn.Module):
    """Radius-graph network that keeps only the first ``max_neighbours`` neighbours by index.

    ``h_i = rho( mean_{j != i} phi(d_ij / s) + sum_{j in N_K(i)} psi(d_ij / s) )`` where ``s`` is
    the cloud's mean pairwise distance and ``N_K(i)`` the first ``K`` indices ``j`` (in index
    order, not by distance) with ``d_ij < r``, a hard cut-off. Everything is E(3) invariant
    and, as long as no point has more than ``K`` neighbours within ``r``, S_n equivariant.
    When more than ``K`` points crowd into one ball, which ``K`` of them are kept depends on the
    order of the points: broken under S_n, but only on such dense inputs, which random generic
    clouds almost never produce and a search over small scales finds. Messages see distances
    relative to ``s`` so that the neighbours of a dense cloud still differ from each other
    (with absolute distances they would all send nearly ``psi(0)``, and swapping one for
    another would change almost nothing). Output ``(B, N, out_features)``, one invariant row
    per point.
    """

    def __init__(
        self, radius: float = 0.35, max_neighbours: int = 2, hidden: int = 16, out_features: int = 4, eps: float = 1e-12
    ) -> None:
        super().__init__()
        self.radius = radius
        self.max_neighbours = max_neighbours
        self.eps = eps
        self.global_pair = mlp(1, hidden, hidden)
        self.local_pair = mlp(1, hidden, hidden)
        self.readout = mlp(hidden, hidden, out_features)

    def forward(self, pos: Tensor) -> Tensor:
        num_points = pos.shape[1]
        distances = pairwise_distances(pos).unsqueeze(-1)
        others = off_diagonal(num_points, pos)[..., None]
        pairs = max(num_points * (num_points - 1), 1)
        relative = distances / ((distances * others).sum(dim=(1, 2), keepdim=True) / pairs + self.eps)
        within = (distances < self.radius) & others.bool()
        kept = within & (within.long().cumsum(dim=2) <= self.max_neighbours)
        mean_field = (self.global_pair(relative) * others).sum(dim=2) / max(num_points - 1, 1)
        local = (self.local_pair(relative) * kept.to(pos.dtype)).sum(dim=2)
        return self.readout(mean_field + local)
