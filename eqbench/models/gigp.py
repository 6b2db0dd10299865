"""Group Invariant Global Pooling (GIGP; Bujel, Gideoni, Joshi, Lio, TAG-ML at ICML 2023).

Global mean pooling of an invariant network's per-point features throws away *where* the
features sit relative to the symmetry. GIGP pools per orbit instead: with orbit labels
``q_i`` (invariant: the orbit of point ``i`` under the group), bins ``o_1 < ... < o_K`` and
soft assignments ``a_ik``,

    S_k = sum_i a_ik h_i                         (per-orbit sums)
    GIGP(h) = C sum_k w_k Phi(S_k, o_k)          (Phi an MLP, w_k learnable orbit weights)

with ``C = 1 / |X|`` (one over the number of real points, the mean-pooling constant). Here

* **orbit labels** come from the lifted orbit coordinate ``q``: the radius ``|x|`` for SO(2)
  on images (:func:`radius_orbits`), the distance to the (masked) centroid for SO(3)/SE(3) on
  point clouds and molecules (:func:`centroid_distance_orbits`). They are never a Lie-algebra
  coordinate (the reference's QM9 model reads one component of ``x_i - x_1``, which is neither
  invariant nor an orbit);
* **bins** are fitted on training data (:meth:`GIGP.fit_bins`: ``K`` evenly spaced values from
  the smallest to the largest training label) and stored as buffers, so they travel with the
  state dict (the reference fits them lazily on its first batch and does not save them);
* **soft aggregation**: a point contributes to every bin within ``width`` of its label, with
  the hat weight ``max(0, 1 - |q_i - o_k| / width)`` normalised to sum to 1 over the bins
  (labels are clamped to the bins' range first). With ``width`` = one bin spacing this is
  linear interpolation between the two nearest bins. The weights are continuous in ``q``,
  so GIGP is exactly as invariant as its labels;
* ``Phi(s, o) = s + MLP([s, o']) - MLP([0, o'])`` (``o'`` the bin's position rescaled to
  ``[0, 1]``, an optional input), so that ``Phi(0, o) = 0``: empty orbits contribute nothing;
* **initialisation**: the MLP's last layer is zero and ``w_k = 1``, so ``Phi(s, o) = s`` and
  ``GIGP(h) = (1/|X|) sum_k S_k = (1/|X|) sum_i h_i``: global mean pooling, exactly (up to
  rounding), before training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def radius_orbits(points: Tensor) -> Tensor:
    """Orbit labels of SO(d) acting on ``R^d`` about the origin: ``|x_i|`` for ``(B, n, d)`` points: ``(B, n)``.

    (``vector_norm`` has a zero gradient at the origin, where ``sqrt(sum x^2)`` has NaN.)
    """
    return torch.linalg.vector_norm(points, dim=-1)


def centroid_distance_orbits(points: Tensor, mask: Tensor | None = None) -> Tensor:
    """``|x_i - c|`` with ``c`` the centroid of the real points: ``(B, n)`` labels invariant under E(d) (and S_n)."""
    if mask is None:
        mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
    weights = mask[..., None].to(points.dtype)
    centroid = (points * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
    return torch.linalg.vector_norm(points - centroid, dim=-1)


class GIGP(nn.Module):
    """GIGP over ``channels`` features with ``num_bins`` orbit bins (see the module docstring).

    ``width`` is the aggregation distance in units of the bin spacing (more than 0.5, so that
    every label reaches a bin); ``hidden`` the width of Phi's MLP; ``use_orbit_value`` feeds the
    bin position to Phi. Call :meth:`fit_bins` on training labels before the first forward pass.
    """

    def __init__(self, channels: int, num_bins: int = 50, width: float = 1.0, hidden: int = 16, use_orbit_value: bool = True) -> None:
        super().__init__()
        if channels < 1 or hidden < 1:
            raise ValueError(f"GIGP needs channels >= 1 and hidden >= 1, got channels={channels}, hidden={hidden}")
        if num_bins < 2:
            raise ValueError(f"GIGP needs at least 2 orbit bins, got {num_bins}")
        if not width > 0.5:
            raise ValueError(f"GIGP width (in bin spacings) must exceed 0.5 so every label reaches a bin, got {width!r}")
        self.channels, self.width_in_bins, self.use_orbit_value = channels, float(width), use_orbit_value
        self.register_buffer("bins", torch.zeros(num_bins))
        self.register_buffer("width", torch.tensor(1.0))
        self.register_buffer("fitted", torch.tensor(False))
        self.orbit_weights = nn.Parameter(torch.ones(num_bins))
        self.phi = nn.Sequential(
            nn.Linear(channels + int(use_orbit_value), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, channels)
        )
        nn.init.zeros_(self.phi[-1].weight)
        nn.init.zeros_(self.phi[-1].bias)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_bins={self.bins.numel()}, width={self.width_in_bins:g} bins, fitted={bool(self.fitted)}"

    @torch.no_grad()
    def fit_bins(self, orbits: Tensor, mask: Tensor | None = None) -> None:
        """Fit the bins to training labels ``orbits`` (any shape; ``mask`` selects the real ones).

        Bins are evenly spaced from the smallest to the largest label; the aggregation
        distance is ``width`` bin spacings. Raises ``ValueError`` when the labels are empty,
        not finite, or all equal (no orbit structure to pool over).
        """
        labels = orbits if mask is None else orbits[mask]
        labels = labels.detach().reshape(-1).to(self.bins)
        if labels.numel() == 0 or not bool(torch.isfinite(labels).all()):
            raise ValueError(f"GIGP.fit_bins needs finite training orbit labels, got {labels.numel()} values")
        low, high = labels.min(), labels.max()
        if not high > low:
            raise ValueError(f"GIGP.fit_bins: every training orbit label equals {float(low):g}; GIGP needs labels that vary")
        self.bins.copy_(torch.linspace(low, high, self.bins.numel(), dtype=self.bins.dtype, device=self.bins.device))
        self.width.copy_((high - low) / (self.bins.numel() - 1) * self.width_in_bins)
        self.fitted.fill_(True)

    def assignments(self, orbits: Tensor) -> Tensor:
        """Soft bin assignments ``a_ik`` ``(B, n, K)`` of labels ``(B, n)`` (rows sum to 1)."""
        clamped = torch.minimum(torch.maximum(orbits, self.bins[0]), self.bins[-1])
        hat = F.relu(1 - (clamped[..., None] - self.bins).abs() / self.width)
        return hat / hat.sum(-1, keepdim=True)

    def forward(self, values: Tensor, orbits: Tensor, mask: Tensor | None = None) -> Tensor:
        """Pool ``values`` ``(B, n, C)`` with orbit labels ``(B, n)`` over the real points of ``mask``: ``(B, C)``."""
        if not bool(self.fitted):
            raise RuntimeError("GIGP bins are not fitted: call fit_bins(training orbit labels) before the first forward pass")
        if values.dim() != 3 or values.shape[-1] != self.channels or orbits.shape != values.shape[:2]:
            raise ValueError(
                f"GIGP expects values (B, n, {self.channels}) and orbit labels (B, n), got {tuple(values.shape)} and {tuple(orbits.shape)}"
            )
        if mask is None:
            mask = torch.ones(orbits.shape, dtype=torch.bool, device=orbits.device)
        weights = torch.where(mask[..., None], self.assignments(orbits), torch.zeros((), dtype=values.dtype, device=values.device))
        sums = torch.einsum("bnk,bnc->bkc", weights, torch.where(mask[..., None], values, torch.zeros_like(values)))
        pooled = torch.einsum("k,bkc->bc", self.orbit_weights, self.transform(sums))
        return pooled / mask.sum(1, keepdim=True).clamp(min=1).to(values.dtype)

    def transform(self, sums: Tensor) -> Tensor:
        """``Phi(S_k, o_k) = S_k + MLP([S_k, o_k']) - MLP([0, o_k'])`` for ``(B, K, C)`` per-orbit sums."""
        if not self.use_orbit_value:
            return sums + self.phi(sums) - self.phi(torch.zeros_like(sums[:1, :1]))
        position = ((self.bins - self.bins[0]) / (self.bins[-1] - self.bins[0])).to(sums.dtype)
        position = position[None, :, None].expand(*sums.shape[:2], 1)
        zeros = torch.zeros_like(sums[:1])
        return sums + self.phi(torch.cat([sums, position], -1)) - self.phi(torch.cat([zeros, position[:1]], -1))
