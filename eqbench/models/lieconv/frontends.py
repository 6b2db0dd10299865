"""Front ends: images and molecules as point clouds, and the LieConv networks built on them.

* Images (the reference's ``ImgLieResnet``): pixel ``(i, j)`` of an ``H x W`` image sits at
  ``(-H/2 + i H/(H-1), -W/2 + j W/(W-1))`` (a grid spanning ``[-H/2, H/2] x [-W/2, W/2]``,
  centred on the image centre, the centre of rotation), its intensities are the features,
  and pixels farther than ``radius`` from the centre are cropped (the corners, which a
  rotation moves out of the frame). 28 x 28 images with ``radius = 15`` keep 648 pixels.
* Molecules (the reference's ``MolecLieResNet``, after Anderson et al.'s Cormorant QM9
  featurisation): atom ``i`` with one-hot species ``s_i`` and nuclear charge ``Z_i`` gets
  the features ``s_i (x) (1, c_i, c_i^2, ..., c_i^p)``, ``c_i = Z_i / charge_scale``;
  padded atoms have ``Z = 0`` and are masked out.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from eqbench.models.lieconv.groups.base import LiftingGroup
from eqbench.models.lieconv.groups.translations import TranslationLift
from eqbench.models.lieconv.network import LieResNet


def pixel_grid(height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``(H, W, 2)`` pixel coordinates spanning ``[-H/2, H/2] x [-W/2, W/2]`` (the reference's grid)."""
    rows = torch.linspace(-height / 2, height / 2, height, dtype=dtype, device=device)
    cols = torch.linspace(-width / 2, width / 2, width, dtype=dtype, device=device)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)


def image_point_cloud(images: Tensor, radius: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``(B, C, H, W)`` as ``(pos (B, n, 2), feat (B, n, C), mask (B, n))``: pixels within ``radius`` of the centre.

    ``radius=None`` keeps every pixel. The mask is all True (every image keeps the same pixels).
    """
    if not (isinstance(images, Tensor) and images.dim() == 4 and images.is_floating_point()):
        raise ValueError(f"images must be a floating tensor (B, C, H, W), got {getattr(images, 'shape', type(images))}")
    batch, channels, height, width = images.shape
    grid = pixel_grid(height, width, images.dtype, images.device)
    keep = torch.ones(height, width, dtype=torch.bool, device=images.device) if radius is None else grid.norm(dim=-1) < radius
    if not bool(keep.any()):
        raise ValueError(f"no pixel of a {height} x {width} image lies within radius {radius} of its centre")
    pos = grid[keep].expand(batch, -1, -1)
    feat = images.permute(0, 2, 3, 1)[:, keep]
    return pos, feat, torch.ones(pos.shape[:2], dtype=torch.bool, device=images.device)


def molecule_features(
    one_hot: Tensor, charges: Tensor, charge_scale: float, charge_power: int = 2, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """``(feat (B, n, S (p + 1)), mask (B, n))`` from one-hot species ``(B, n, S)`` and charges ``(B, n)`` (see module docs)."""
    if one_hot.dim() != 3 or charges.shape != one_hot.shape[:2]:
        raise ValueError(f"molecules need one_hot (B, n, species) and charges (B, n), got {tuple(one_hot.shape)} and {tuple(charges.shape)}")
    scaled = charges.to(dtype) / charge_scale
    powers = torch.stack([scaled**p for p in range(charge_power + 1)], dim=-1)
    feat = (one_hot.to(dtype)[..., :, None] * powers[..., None, :]).flatten(-2)
    return feat, charges > 0


class ImgLieResNet(LieResNet):
    """The reference's image LieConv: channel widths grow and the point count shrinks geometrically.

    With ``ds_frac = total_ds^(1/num_layers)``, layer ``l`` has fill ``fill / ds_frac^l`` and
    (``increase_channels``) ``k_l = int(k / ds_frac^(l/2))`` channels. Inputs are image point
    clouds (:func:`image_point_cloud`). ``group`` defaults to ``T(2)`` (a new instance).
    """

    def __init__(
        self,
        chin: int = 1,
        total_ds: float = 1 / 64,
        num_layers: int = 6,
        group: LiftingGroup | None = None,
        fill: float = 1 / 32,
        k: int = 256,
        nbhd: int | None = 12,
        num_targets: int = 10,
        increase_channels: bool = True,
        **options: Any,
    ) -> None:
        ds_frac = total_ds ** (1 / num_layers)
        fills = [fill / ds_frac**i for i in range(num_layers)]
        widths = [int(k / ds_frac ** (i / 2)) if increase_channels else k for i in range(num_layers + 1)]
        super().__init__(
            chin, num_targets, group=TranslationLift(2) if group is None else group, k=widths, num_layers=num_layers,
            nbhd=nbhd, fill=fills, ds_frac=ds_frac, **options,
        )


class MolecLieResNet(LieResNet):
    """The reference's QM9 LieConv on molecules: ``forward(pos (B, n, 3), one_hot (B, n, S), charges (B, n)) -> (B,)``.

    ``group`` defaults to ``T(3)`` (a new instance); other options as :class:`LieResNet`.
    """

    def __init__(self, num_species: int, charge_scale: float, charge_power: int = 2, group: LiftingGroup | None = None, **options: Any) -> None:
        super().__init__(num_species * (charge_power + 1), 1, group=TranslationLift(3) if group is None else group, **options)
        self.charge_scale, self.charge_power = float(charge_scale), int(charge_power)

    def forward(self, pos: Tensor, one_hot: Tensor, charges: Tensor) -> Tensor:  # type: ignore[override]
        """Predictions ``(B,)``; GIGP bins (``pool="gigp"``) are fitted with ``fit_orbit_bins(pos, charges > 0)``."""
        feat, mask = molecule_features(one_hot, charges, self.charge_scale, self.charge_power, pos.dtype)
        return super().forward(pos, feat, mask)[:, 0]
