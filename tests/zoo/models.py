"""The zoo's models. Each docstring says what the truth is and why the case is hard for a checker.

Truth ``exact``: equivariant in exact arithmetic (the checker must say ``exact``); ``broken``:
not equivariant (anything but ``exact`` and ``error``); ``error``: the model cannot be checked
as a deterministic function (the checker must say ``error``, with a message naming why).
"""
from __future__ import annotations

import math
import threading

import torch
from torch import Tensor, nn

from eqbench.models.controls import mlp, off_diagonal, pairwise_distances
from eqbench.models.frame_averaging import FrameAveraging, fa_pointnet


def centred(pos: Tensor) -> Tensor:
    return pos - pos.mean(dim=1, keepdim=True)


# --------------------------------------------------------------------------- outputs that vanish by symmetry
class CentroidVector(nn.Module):
    """``sum_i (x_i - c) psi(|x_i - c|)`` with ``psi(r) = exp(-r) (1 + r^2)``: E(3) x S_n equivariant (exact).

    Hard: on a 2-point cloud, a regular polygon or polyhedron, a lattice or a prism the sum
    vanishes by symmetry, so its float32 value is pure rounding (~1e-7 absolute); an error
    measured against that example's own output size reads O(1). Issue 13 measured the old
    checker calling this ``violated`` on 20 of 20 seeds.
    """

    def forward(self, pos: Tensor) -> Tensor:
        c = centred(pos)
        r = c.norm(dim=-1, keepdim=True)
        return (c * torch.exp(-r) * (1 + r.square())).sum(dim=1)


class CubicMoment(nn.Module):
    """``sum_i c_i |c_i|^2`` (``c_i`` centred points): E(3) x S_n equivariant (exact); zero on every symmetric cloud."""

    def forward(self, pos: Tensor) -> Tensor:
        c = centred(pos)
        return (c * c.square().sum(dim=-1, keepdim=True)).sum(dim=1)


class Dipole(nn.Module):
    """Dipole ``sum_i q(Z_i) (x_i - c)`` with fixed partial charges per element: E(3) x S_n equivariant (exact).

    Hard: it vanishes on methane, SF6 and benzene (their point groups fix no vector), the
    README's own example of an output that vanishes by symmetry.
    """

    def __init__(self) -> None:
        super().__init__()
        charges = torch.zeros(20)
        charges[[1, 6, 9, 16]] = torch.tensor([0.18, -0.6, -0.3, 1.8])
        self.register_buffer("charges", charges)

    def forward(self, pos: Tensor, z: Tensor) -> Tensor:
        return (self.charges[z].unsqueeze(-1) * centred(pos)).sum(dim=1)


# --------------------------------------------------------------------------- discontinuous frames
def naive_frame_averaging() -> FrameAveraging:
    """PCA frame averaging over the 8 sign flips, no care for repeated eigenvalues (broken).

    Hard: exact on generic clouds, so the random phase passes; on a cloud with a repeated
    covariance eigenvalue (regular polygon, polyhedron, lattice, prism) ``eigh`` returns an
    arbitrary basis of the eigenspace, so the output jumps (the discontinuity Dym, Lawrence and
    Siegel show every canonicalisation must face). Its float32 and float64 evaluations take
    different eigenvectors there, so a per-example "noise floor" of O(1) used to hide it.
    """
    torch.manual_seed(0)
    return fa_pointnet(normals=True, widths=(16, 16), degeneracy="naive")


def multiplicity_frame_averaging() -> FrameAveraging:
    """The same PointNet averaged over the multiplicity-aware PCA frame (exact).

    Hard: exact on degenerate clouds only because the frame is built from the data where the
    eigenvalues repeat; its float32 and float64 twins may still pick different clusters near a
    gap, which must not be read as a violation.
    """
    torch.manual_seed(0)
    return fa_pointnet(normals=True, widths=(16, 16))


# --------------------------------------------------------------------------- rare inputs, rounding
class IndexTruncatedNeighbours(nn.Module):
    """Per point, the sum of ``phi(d_ij)`` over the first 2 neighbours within radius 0.5 *by index* (broken under S_n).

    Hard: exact unless three points crowd into one ball, which generic clouds of scale 1
    almost never do: only dense clouds show it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.phi = mlp(1, 8, 4)

    def forward(self, pos: Tensor) -> Tensor:
        d = pairwise_distances(pos)
        within = (d < 0.5) & off_diagonal(pos.shape[1], pos).bool()
        kept = within & (within.long().cumsum(dim=2) <= 2)
        return (self.phi(d.unsqueeze(-1)) * kept.unsqueeze(-1).to(pos.dtype)).sum(dim=2)


class CancellingVariance(nn.Module):
    """``sum_axes mean(x^2) - mean(x)^2``: the spread of the cloud, E(3) x S_n invariant (exact).

    Hard: computed far from the origin it cancels catastrophically; in float32 the error under a
    translation is 1e-3 or more of the output, purely rounding (it falls by the roundoff ratio
    in float64).
    """

    def forward(self, pos: Tensor) -> Tensor:
        return (pos.square().mean(dim=1) - pos.mean(dim=1).square()).sum(dim=-1, keepdim=True)


class Leaky(nn.Module):
    """Sum of pairwise distances times ``1 + eps u_x`` (``u`` the unit vector from the centroid to point 0): broken under SO(3).

    Hard: the relative error is at most ``2 eps``; with ``eps = 1e-6`` that is ten float32
    roundoffs, below float32's exact threshold, seen only because it does not shrink in float64.
    """

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pos: Tensor) -> Tensor:
        c = centred(pos)
        u = c[:, 0] / c[:, 0].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return pairwise_distances(pos).sum(dim=(1, 2)).unsqueeze(-1) * (1 + self.eps * u[:, :1])


class RawNorm(nn.Module):
    """``sum_i |x_i|^2`` of the raw points: invariant under rotations and reflections, not translations (broken under E(3))."""

    def forward(self, pos: Tensor) -> Tensor:
        return pos.square().sum(dim=(1, 2)).unsqueeze(-1)


class Handedness(nn.Module):
    """Radius of gyration plus the signed volume ``sum_i det[c_i, c_i+1, c_i+2]``: SO(3) invariant, flips under reflections (broken under O(3)).

    Hard: only the reflections of O(3) break it; a check that samples rotations alone passes.
    """

    def forward(self, pos: Tensor) -> Tensor:
        c = centred(pos)
        volume = (c * torch.linalg.cross(c.roll(-1, dims=1), c.roll(-2, dims=1))).sum(dim=-1).sum(dim=1, keepdim=True)
        return c.square().sum(dim=(1, 2)).unsqueeze(-1) + volume


# --------------------------------------------------------------------------- randomness
class DropoutDistances(nn.Module):
    """A distance MLP with dropout left in training mode (error: not a function without ``stochastic=``).

    Hard: the float64 twin draws other masks, so a measured noise floor is O(1) and once
    absorbed everything; ``read_axis=True`` adds a real break, which must not hide either.
    """

    def __init__(self, read_axis: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 16), nn.SiLU(), nn.Dropout(0.2), nn.Linear(16, 2))
        self.read_axis = read_axis

    def forward(self, pos: Tensor) -> Tensor:
        out = self.net(pairwise_distances(pos).unsqueeze(-1)).sum(dim=(1, 2))
        return out + centred(pos)[..., 2].square().sum(dim=1, keepdim=True) if self.read_axis else out


class RandomSubsetRadius(nn.Module):
    """Mean distance to the centroid over a random half of the points (exact under SO(3) with ``stochastic="crn"``).

    With common random numbers ``f(x)`` and ``f(g.x)`` keep the same points, and a rotation
    moves none of them into or out of the subset. ``read_axis=True`` adds the squared spread
    along z (broken).
    """

    def __init__(self, read_axis: bool = False) -> None:
        super().__init__()
        self.read_axis = read_axis

    def forward(self, pos: Tensor) -> Tensor:
        keep = (torch.rand(pos.shape[:2], device=pos.device) < 0.5).to(pos.dtype)
        radius = (centred(pos).norm(dim=-1) * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp_min(1)
        return radius + centred(pos)[..., 2:].square().mean(dim=1) if self.read_axis else radius


# --------------------------------------------------------------------------- integer outputs, odd modules
class NeighbourCount(nn.Module):
    """Number of ordered pairs closer than 1.3 (an int64 ``(B, 1)``): E(3) x S_n invariant (exact).

    Hard: integer outputs have no norm in float; they are compared entry by entry. The radius
    1.3 is not a distance of any lattice the inputs draw (spacing a power of two times
    ``sqrt(k)``), so no tie sits on the cut-off.
    """

    def forward(self, pos: Tensor) -> Tensor:
        close = (pairwise_distances(pos) < 1.3) & off_diagonal(pos.shape[1], pos).bool()
        return close.sum(dim=(1, 2)).unsqueeze(-1)


class WidestAxis(nn.Module):
    """Index of the coordinate axis along which the cloud spreads most (an int64 ``(B,)``): broken under SO(3)."""

    def forward(self, pos: Tensor) -> Tensor:
        return centred(pos).square().sum(dim=1).argmax(dim=-1)


class Locked(nn.Module):
    """A distance MLP holding a lock and a module object (exact; ``read_axis=True``: broken).

    Hard: ``copy.deepcopy`` fails on it (locks and modules cannot be pickled), so a float64 twin
    cannot be a copy; the checker casts the module in place and back instead.
    """

    def __init__(self, read_axis: bool = False) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.maths = math
        self.net = mlp(1, 16, 2)
        self.read_axis = read_axis

    def forward(self, pos: Tensor) -> Tensor:
        with self.lock:
            out = self.net(pairwise_distances(pos).unsqueeze(-1)).sum(dim=(1, 2)) / self.maths.sqrt(pos.shape[1])
        return out + centred(pos)[..., :1].square().mean(dim=1) if self.read_axis else out


class Raises(nn.Module):
    """A forward pass that raises (error)."""

    def forward(self, pos: Tensor) -> Tensor:
        raise RuntimeError("this layer is not implemented for point clouds")


class PerPointInsteadOfInvariant(nn.Module):
    """Returns per-point vectors ``(B, N, 3)`` where the registration declares ``Invariant(size=4)`` (error)."""

    def forward(self, pos: Tensor) -> Tensor:
        return centred(pos)


# --------------------------------------------------------------------------- real library models
class E3nnVectorNet(nn.Module):
    """A two-layer e3nn tensor-product network over all atom pairs with a ``1x1o`` (vector) or ``1x1e`` (pseudovector) output.

    Layer 1: species embedding ``4x0e`` (x) spherical harmonics ``Y(r_ij)`` (l <= 2) with radial
    weights, summed over neighbours; layer 2 the same on its output, then a linear map to the
    output irrep summed over atoms. Exact under E(3) x S_n as a vector (``1x1o``) or as a
    pseudovector (``1x1e``). Hard: on methane, SF6 and benzene both outputs vanish by symmetry
    (issue 13: the old checker read the vector net ``violated`` on benzene in 4 of 5 seeds).
    """

    def __init__(self, output: str = "1x1o") -> None:
        super().__init__()
        from e3nn import o3
        from e3nn.nn import FullyConnectedNet

        self.sh = o3.Irreps.spherical_harmonics(2)
        hidden = o3.Irreps("4x0e + 2x1o + 2x1e + 1x2e")
        self.embed = nn.Embedding(20, 4)
        self.tp1 = o3.FullyConnectedTensorProduct("4x0e", self.sh, hidden, shared_weights=False)
        self.tp2 = o3.FullyConnectedTensorProduct(hidden, self.sh, hidden, shared_weights=False)
        self.radial1 = FullyConnectedNet([4, 16, self.tp1.weight_numel], torch.nn.functional.silu)
        self.radial2 = FullyConnectedNet([4, 16, self.tp2.weight_numel], torch.nn.functional.silu)
        self.out = o3.Linear(hidden, o3.Irreps(output))

    def forward(self, pos: Tensor, z: Tensor) -> Tensor:
        from e3nn import o3

        batch, n, _ = pos.shape
        r = pos[:, None, :, :] - pos[:, :, None, :]  # r_ij = x_j - x_i
        d = r.norm(dim=-1, keepdim=True)
        centres = torch.linspace(0.0, 3.0, 4, dtype=pos.dtype, device=pos.device)
        radial = torch.exp(-((d - centres) ** 2)) * off_diagonal(n, pos)[..., None]
        sh = o3.spherical_harmonics(self.sh, r, normalize=True, normalization="component")
        h0 = self.embed(z).to(pos.dtype)[:, None, :, :].expand(batch, n, n, 4)
        h1 = (self.tp1(h0, sh, self.radial1(radial)) * off_diagonal(n, pos)[..., None]).sum(dim=2) / n
        h1j = h1[:, None, :, :].expand(batch, n, n, h1.shape[-1])
        h2 = (self.tp2(h1j, sh, self.radial2(radial)) * off_diagonal(n, pos)[..., None]).sum(dim=2) / n
        return self.out(h2 + h1).sum(dim=1)


class SchNetEnergy(nn.Module):
    """PyG's SchNet (Schütt et al. 2017) energy of a molecule, with a pure-torch radius graph (exact under E(3) x S_n).

    The interaction graph is every pair of atoms of the same molecule closer than the cut-off
    (no torch-cluster); SchNet's cosine cut-off makes the energy continuous there. Hard: a
    real library model (scatter sums, embedding tables) run through the float64 twin.
    """

    def __init__(self, cutoff: float = 4.0) -> None:
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.cutoff = cutoff
        self.net = SchNet(
            hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=10, cutoff=cutoff,
            interaction_graph=self.radius_graph,
        )

    def radius_graph(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """``(edge_index, edge_weight)`` of all pairs ``i != j`` of one molecule with ``|x_i - x_j| < cutoff``."""
        same = batch[:, None] == batch[None, :]
        distance = torch.cdist(pos, pos)
        source, target = torch.nonzero(same & (distance < self.cutoff) & ~torch.eye(len(pos), dtype=torch.bool, device=pos.device), as_tuple=True)
        return torch.stack([source, target]), distance[source, target]

    def forward(self, pos: Tensor, z: Tensor) -> Tensor:
        batch, n, _ = pos.shape
        owner = torch.arange(batch, device=pos.device).repeat_interleave(n)
        return self.net(z.flatten(), pos.flatten(0, 1), owner)
