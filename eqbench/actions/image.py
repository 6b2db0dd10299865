"""Square images on a pixel grid, moved by the rotations, reflections and translations of the plane.

Convention. A ``(B, C, H, W)`` image with ``H == W`` is a function on the plane sampled at
pixel centres: pixel ``(row i, column j)`` sits at ``(x, y) = (j - c, c - i)`` with
``c = (W - 1) / 2``, i.e. ``x`` runs along ``W`` (to the right), ``y`` runs along ``H``
*upwards* (towards row 0), the origin is the image centre, and one unit is one pixel. The
group acts by pushing the image forward: ``(g.f)(y) = f(M^{-1} (y - t))``, so the pixel
content at ``x`` moves to ``M x + t``: the same motion as :class:`~eqbench.actions.Points`
applied to the pixel centres. A rotation by +90 degrees is ``torch.rot90(f, 1, dims=(-2, -1))``
(counter-clockwise on screen); ``diag(-1, 1)`` flips the columns, ``diag(1, -1)`` the rows.

Two paths, chosen per element:

* exact: ``M`` is (to 1e-6) a signed permutation matrix, i.e. one of the 8 elements of D4
  (rot90 powers and flips), and ``t`` is (to 1e-6) integer. Such a ``g`` maps the pixel grid
  onto itself and acts as a pixel permutation, with circular wrap-around for translations
  (the torus ``Z_W x Z_W``), so the group law holds exactly;
* interpolated: any other invertible ``M`` (45-degree rotations, scalings, sub-pixel shifts)
  resamples by bilinear interpolation with zero padding (``F.affine_grid`` /
  ``F.grid_sample``). This is only an approximate group action (``g.(h.f) != (gh).f``
  beyond interpolation error, content leaves the frame), so :meth:`GridImage.is_exact`
  returns False and a checker should judge such checks as approximate at best.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from eqbench.actions.base import DataError
from eqbench.actions.checks import (
    check_batch,
    require_finite,
    require_floating,
    require_ndim,
    require_size,
    require_tensor,
)
from eqbench.actions.field import FieldAction
from eqbench.groups.element import Element

#: How far (in matrix entries and pixels) an element may be from a grid symmetry and still count as one.
GRID_TOLERANCE = 1e-6
LAYOUT = "(B, C, H, W)"


@dataclass(frozen=True, repr=False)
class GridImage(FieldAction):
    """Square images ``(B, C, H, W)`` under rotations / reflections / translations of the plane (see module docs)."""

    channels: int | None = None
    per_point = False

    def validate(self, x: Tensor, where: str = "input") -> None:
        require_tensor(x, where, "image")
        require_ndim(x, where, "image", LAYOUT, 4, exact=True)
        require_floating(x, where, "image")
        require_size(x, 1, self.channels, where, "image", LAYOUT)
        if x.shape[-1] != x.shape[-2]:
            raise DataError(f"{where}: expected a square image (H == W), got shape {tuple(x.shape)}")
        require_finite(x, where)

    # ----------------------------------------------------------------- exactness
    def exact_mask(self, g: Element) -> Tensor:
        """``(B,)`` bool: which elements are pixel permutations (D4 matrix, integer translation)."""
        exact = torch.ones(g.batch_size, dtype=torch.bool)
        if g.matrix is not None:
            m = g.matrix.to(torch.float64).cpu()
            rounded = m.round()
            near_integer = (m - rounded).abs().amax(dim=(1, 2)) <= GRID_TOLERANCE
            one_per_row = (rounded.abs().sum(dim=2) == 1).all(dim=1) & (rounded.abs().sum(dim=1) == 1).all(dim=1)
            exact &= near_integer & one_per_row
        if g.translation is not None:
            t = g.translation.to(torch.float64).cpu()
            exact &= (t - t.round()).abs().amax(dim=1) <= GRID_TOLERANCE
        return exact

    def is_exact(self, g: Element) -> bool:
        """True when every element of ``g`` acts as an exact pixel permutation."""
        return bool(self.exact_mask(g).all())

    # -------------------------------------------------------------------- action
    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "image")
        if g.permutation is not None:
            raise DataError("GridImage cannot follow a permutation of points: images have no point axis")
        if g.space_dim is not None and g.space_dim != 2:
            raise DataError(f"group acts on R^{g.space_dim} but images live on the plane R^2")
        if g.space_dim is None:
            return x
        exact = self.exact_mask(g).to(x.device)
        if bool(exact.all()):
            return self.apply_exact(g, x)
        if not bool(exact.any()):
            return self.apply_interpolated(g, x)
        out = torch.empty_like(x)
        exact_idx, other_idx = exact.nonzero().squeeze(1), (~exact).nonzero().squeeze(1)
        out[exact_idx] = self.apply_exact(g.index(exact_idx.cpu()), x[exact_idx])
        out[other_idx] = self.apply_interpolated(g.index(other_idx.cpu()), x[other_idx])
        return out

    def apply_exact(self, g: Element, x: Tensor) -> Tensor:
        """Pixel permutation for grid symmetries: output pixel at ``y`` reads input pixel ``M^T (y - t)`` (mod W)."""
        batch, channels, size = x.shape[0], x.shape[1], x.shape[-1]
        centre = (size - 1) / 2
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        coords = torch.stack([cols - centre, centre - rows], dim=-1).reshape(1, -1, 2).to(torch.float64)
        if g.translation is not None:
            coords = coords - g.translation.to(torch.float64).cpu().round().unsqueeze(1)
        if g.matrix is not None:
            coords = coords @ g.matrix.to(torch.float64).cpu().round()  # row-vector form of M^T y
        coords = coords.expand(batch, -1, -1)
        src_col = torch.remainder((coords[..., 0] + centre).round().long(), size)
        src_row = torch.remainder((centre - coords[..., 1]).round().long(), size)
        flat_index = (src_row * size + src_col).to(x.device).unsqueeze(1).expand(-1, channels, -1)
        return torch.gather(x.reshape(batch, channels, -1), 2, flat_index).reshape(x.shape)

    def apply_interpolated(self, g: Element, x: Tensor) -> Tensor:
        """Bilinear resampling ``(g.f)(y) = f(M^{-1}(y - t))`` with zero padding, in ``x``'s dtype.

        ``F.affine_grid`` works in normalised coordinates with ``y`` pointing down (rows);
        with ``D = diag(1, -1)`` and half-width ``s = W / 2`` (``align_corners=False``) the
        sampling map is ``theta = [D A D | -D A t / s]`` for ``A = M^{-1}``.
        """
        batch, size = x.shape[0], x.shape[-1]
        inverse = torch.linalg.inv(g.linear(2, torch.float64))
        flip_y = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
        linear = flip_y @ inverse @ flip_y
        shift = torch.zeros(batch, 2, dtype=torch.float64)
        if g.translation is not None:
            shift = -(flip_y @ inverse @ g.translation.to(torch.float64).unsqueeze(-1)).squeeze(-1) / (size / 2)
        theta = torch.cat([linear, shift.unsqueeze(-1)], dim=2).to(dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
