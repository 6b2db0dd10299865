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
* ``polygon``: a regular ``n``-gon in a random 2-plane (coplanar, with a repeated in-plane
  eigenvalue for ``n >= 3``), randomly rotated and shifted;
* ``polyhedron``: the vertices of the largest regular polyhedron with at most ``n`` vertices
  (tetrahedron 4, octahedron 6, cube 8, icosahedron 12, dodecahedron 20) at radius ``scale``,
  the remaining points at its centre (duplicates), randomly rotated and shifted: the centred
  covariance is isotropic, every eigenvalue repeated three times. In the plane, or below four
  points, a ``polygon``;
* ``lattice``: the points of an axis-aligned cubic grid ``m^d`` (``m = floor(n^(1/d)) >= 2``)
  of spacing ``scale`` (rounded to a power of two, so that every coordinate is exact in
  float32 and float16), the rest at its centre, shifted by a multiple of the spacing: an
  isotropic covariance that stays exactly isotropic in every dtype. Below ``2^d`` points, a
  ``polygon``.

Every degenerate configuration is exactly degenerate in float64 (up to the rounding of its
random rotation), which is where frames, neighbour cut-offs and normalisations that are only
defined generically fail.
"""
from __future__ import annotations

import itertools
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


def polygon(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    local = torch.zeros(batch, n, dim, dtype=torch.float64)
    local[:, :, 0], local[:, :, 1] = scale * torch.cos(angles), scale * torch.sin(angles)
    return _placed(local, scale, generator)


def _placed(local: Tensor, scale: float, generator: torch.Generator) -> Tensor:
    """``local`` (centred at 0) randomly rotated (Haar on O(d)) and shifted by ``N(0, scale^2 I)``."""
    batch, _, dim = local.shape
    rotation = random_orthonormal(batch, dim, generator)
    return local @ rotation.transpose(1, 2) + generic(batch, 1, dim, scale, generator)


def _platonic_vertices() -> dict[int, Tensor]:
    """Unit-radius vertices of the five regular polyhedra, by vertex count."""
    phi = (1 + math.sqrt(5)) / 2
    signs = lambda k: torch.tensor(list(itertools.product((1.0, -1.0), repeat=k)), dtype=torch.float64)  # noqa: E731
    tetrahedron = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=torch.float64)
    octahedron = torch.cat([torch.eye(3, dtype=torch.float64), -torch.eye(3, dtype=torch.float64)])
    cube = signs(3)
    cyclic = lambda v: torch.stack([v, v.roll(1, dims=-1), v.roll(2, dims=-1)], dim=0).reshape(-1, 3)  # noqa: E731
    golden = signs(2)
    icosahedron = cyclic(torch.stack([torch.zeros(4, dtype=torch.float64), golden[:, 0], phi * golden[:, 1]], dim=-1))
    dodecahedron = torch.cat([
        cube,
        cyclic(torch.stack([torch.zeros(4, dtype=torch.float64), golden[:, 0] / phi, phi * golden[:, 1]], dim=-1)),
    ])
    solids = (tetrahedron, octahedron, cube, icosahedron, dodecahedron)
    return {len(v): v / v.norm(dim=-1, keepdim=True) for v in solids}


PLATONIC = _platonic_vertices()


def polyhedron(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    counts = [count for count in PLATONIC if count <= n]
    if dim != 3 or not counts:
        return polygon(batch, n, dim, scale, generator)
    vertices = PLATONIC[max(counts)]
    local = torch.zeros(batch, n, dim, dtype=torch.float64)
    local[:, : len(vertices)] = scale * vertices
    return _placed(local, scale, generator)


def lattice(batch: int, n: int, dim: int, scale: float, generator: torch.Generator) -> Tensor:
    side = int(math.floor(n ** (1 / dim) + 1e-9))
    if side < 2:
        return polygon(batch, n, dim, scale, generator)
    spacing = 2.0 ** round(math.log2(scale))
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    grid = torch.stack(torch.meshgrid(*[axis] * dim, indexing="ij"), dim=-1).reshape(-1, dim)
    local = torch.zeros(batch, n, dim, dtype=torch.float64)
    local[:, : len(grid)] = grid
    shift = torch.randint(-4, 5, (batch, 1, dim), generator=generator).to(torch.float64) * spacing
    return local + shift


#: The configurations by the names used in :attr:`InputStructure.degenerate` (``""`` is generic).
CONFIGURATIONS: dict[str, Configuration] = {
    "": generic,
    "duplicate": duplicate,
    "collinear": collinear,
    "coplanar": coplanar,
    "symmetric": symmetric,
    "polygon": polygon,
    "polyhedron": polyhedron,
    "lattice": lattice,
}
#: Configurations that are degenerate only in R^d with d >= 3 (in the plane they are generic or a polygon).
SPATIAL_ONLY = ("coplanar", "polyhedron")


def degenerate_options(dim: int) -> tuple[str, ...]:
    """Degenerate configuration names that are distinct and degenerate in R^d (``coplanar``, ``polyhedron`` need ``d >= 3``)."""
    return tuple(name for name in CONFIGURATIONS if name and (name not in SPATIAL_ONLY or dim >= 3))
