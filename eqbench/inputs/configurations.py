"""Point configurations, generic and degenerate, drawn from a seeded ``torch.Generator``.

Each function returns float64 positions of shape ``(B, n, d)`` at length scale ``scale``:

* ``generic``: i.i.d. ``N(0, scale^2 I)`` points (no structure, almost surely);
* ``duplicate``: generic points, then about a third of them (at least one) overwritten by
  copies of other points, so some points coincide (zero distances, repeated neighbours);
* ``collinear``: ``c + s_i u`` on a random line (centred covariance of rank 1);
* ``coplanar``: ``c + s_i u + r_i w`` in a random 2-plane (rank <= 2; the whole space when ``d = 2``);
* ``symmetric``: a regular ``k``-gon (``d = 2``) or a right prism over a regular ``k``-gon
  (``d >= 3``: two parallel ``k``-gons at heights ``+-h``, plus the centre when ``n`` is odd),
  randomly rotated and shifted. For ``k >= 3`` the polygon's in-plane covariance is
  isotropic, so the centred covariance has a repeated eigenvalue (and a frame built from
  its eigenvectors is ill-defined, the classic failure of PCA-based canonicalisation).
  The only exception is ``n = 2`` in the plane (an antipodal pair).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

Configuration = Callable[[int, int, int, float, torch.Generator], Tensor]


def random_orthonormal(batch: int, dim: int, generator: torch.Generator) -> Tensor:
    """``(B, d, d)`` Haar-random orthogonal matrices (QR of a Gaussian matrix with the sign fix of Mezzadri 2007)."""
    q, r = torch.linalg.qr(torch.randn(batch, dim, dim, generator=generator, dtype=torch.float64))
    signs = torch.sign(torch.diagonal(r, dim1=1, dim2=2))
    return q * signs.unsqueeze(1)


def generic(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    return scale * torch.randn(batch, n, dim, generator=generator, dtype=torch.float64)


def duplicate(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    points = generic(batch, n, dim, scale, generator)
    if n < 2:
        return points
    copies = max(1, n // 3)
    for item in range(batch):
        order = torch.randperm(n, generator=generator)
        targets, sources = order[:copies], order[copies:]
        picks = sources[torch.randint(len(sources), (copies,), generator=generator)]
        points[item, targets] = points[item, picks]
    return points


def _in_subspace(batch: int, n: int, dim: int, rank: int, scale: float, generator: torch.Generator) -> Tensor:
    """``c + sum_k s_ik u_k`` for ``rank`` random orthonormal directions ``u_k``."""
    centre = generic(batch, 1, dim, scale, generator)
    directions = random_orthonormal(batch, dim, generator)[:, :, :rank]
    coefficients = generic(batch, n, rank, scale, generator)
    return centre + coefficients @ directions.transpose(1, 2)


def collinear(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    return _in_subspace(batch, n, dim, 1, scale, generator)


def coplanar(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    return _in_subspace(batch, n, dim, min(2, dim), scale, generator)


def symmetric(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    layers = 2 if dim >= 3 and n >= 6 else 1
    k = n // layers
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    radius = scale * (0.5 + torch.rand(batch, 1, 1, generator=generator, dtype=torch.float64))
    height = scale * (0.5 + torch.rand(batch, 1, 1, generator=generator, dtype=torch.float64))
    local = torch.zeros(batch, n, dim, dtype=torch.float64)
    for layer in range(layers):
        rows = slice(layer * k, (layer + 1) * k)
        local[:, rows, 0] = radius[:, :, 0] * torch.cos(angles)
        local[:, rows, 1] = radius[:, :, 0] * torch.sin(angles)
        if layers == 2:
            local[:, rows, 2] = height[:, :, 0] * (1 if layer == 0 else -1)
    # a leftover point (odd n with two layers) stays at the centre, which keeps the covariance isotropic in-plane
    rotation = random_orthonormal(batch, dim, generator)
    centre = generic(batch, 1, dim, scale, generator)
    return local @ rotation.transpose(1, 2) + centre


#: The configurations by the names used in :attr:`InputStructure.degenerate` (``""`` is generic).
CONFIGURATIONS: dict[str, Configuration] = {
    "": generic,
    "duplicate": duplicate,
    "collinear": collinear,
    "coplanar": coplanar,
    "symmetric": symmetric,
}


def degenerate_options(dim: int) -> tuple[str, ...]:
    """Degenerate configuration names that are actually degenerate in R^d (``coplanar`` needs ``d >= 3``)."""
    return tuple(name for name in CONFIGURATIONS if name and (name != "coplanar" or dim >= 3))
