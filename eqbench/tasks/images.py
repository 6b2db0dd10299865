"""Image variants for the L-conv comparison of Dehmamy et al. (2021): rotated, scrambled, rotated-and-scrambled.

* rotated: every image turned counter-clockwise by its own angle, uniform in
  ``[-max_angle, max_angle]`` (the full circle by default, as in rotated MNIST);
* scrambled: every image's pixels re-ordered by *one* fixed permutation drawn from a seed,
  ``out.flat[i] = in.flat[perm[i]]``. A CNN's locality prior is then wrong, while a model
  that learns its own generators (L-conv) or a fully connected one is unaffected;
* rotated_scrambled: rotated first, then scrambled with the same fixed permutation.

Rotation uses the conventions of :class:`eqbench.actions.GridImage` (pixel ``(i, j)`` at
``(j - c, c - i)``, push-forward ``(g.f)(y) = f(R^-1 y)``): ``"bilinear"`` resamples through that
action (exact pixel permutations at multiples of 90 degrees, bilinear with zero padding
otherwise); ``"band_limited"`` uses the periodic trigonometric interpolant of
:func:`eqbench.models.lconv.band_limited_rotate`, whose derivative at angle 0 is the L-conv
rotation generator.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from eqbench.actions import GridImage
from eqbench.groups.element import Element
from eqbench.groups.rotations2d import rotation_matrix
from eqbench.models.lconv import band_limited_rotate

VARIANTS = ("plain", "rotated", "scrambled", "rotated_scrambled")
INTERPOLATIONS = ("bilinear", "band_limited")


def rotate_images(images: Tensor, angles: Tensor, interpolation: str = "bilinear") -> Tensor:
    """Rotate ``(B, C, H, W)`` images counter-clockwise by ``angles`` (radians, ``(B,)``) about the image centre."""
    _check_images(images)
    if angles.shape != (images.shape[0],):
        raise ValueError(f"angles must have shape ({images.shape[0]},) (one per image), got {tuple(angles.shape)}")
    if interpolation == "bilinear":
        if images.shape[-1] != images.shape[-2]:
            raise ValueError(f"bilinear rotation needs square images (H == W), got {tuple(images.shape)}")
        return GridImage().apply(Element(matrix=rotation_matrix(angles)), images)
    if interpolation == "band_limited":
        return band_limited_rotate(images, angles)
    raise ValueError(f"unknown interpolation {interpolation!r}; known: {INTERPOLATIONS}")


def random_angles(count: int, generator: torch.Generator, max_angle: float = math.pi) -> Tensor:
    """``count`` float64 angles uniform in ``[-max_angle, max_angle]``."""
    return (2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1) * max_angle


def pixel_permutation(height: int, width: int, seed: int = 0) -> Tensor:
    """One fixed permutation of the ``H * W`` pixels (int64), drawn from ``seed``."""
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))


def scramble_pixels(images: Tensor, permutation: Tensor) -> Tensor:
    """``out.flat[..., i] = images.flat[..., permutation[i]]`` for ``(B, C, H, W)`` images."""
    _check_images(images)
    pixels = images.shape[-2] * images.shape[-1]
    if permutation.shape != (pixels,) or not torch.equal(torch.sort(permutation).values, torch.arange(pixels)):
        raise ValueError(f"permutation must be a permutation of {pixels} pixels, got shape {tuple(permutation.shape)}")
    return images.flatten(2)[..., permutation].reshape(images.shape)


def image_variant(
    images: Tensor,
    variant: str,
    *,
    seed: int = 0,
    max_angle: float = math.pi,
    interpolation: str = "bilinear",
) -> Tensor:
    """``images`` ``(B, C, H, W)`` turned into one of :data:`VARIANTS` (see module docs), deterministic in ``seed``.

    The angles come from ``torch.Generator().manual_seed(seed)``; the permutation from
    :func:`pixel_permutation` with the same ``seed``, so train and test sets built with one
    seed share the permutation.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown image variant {variant!r}; known: {VARIANTS}")
    _check_images(images)
    out = images
    if variant in ("rotated", "rotated_scrambled"):
        angles = random_angles(images.shape[0], torch.Generator().manual_seed(seed), max_angle)
        out = rotate_images(out, angles, interpolation)
    if variant in ("scrambled", "rotated_scrambled"):
        out = scramble_pixels(out, pixel_permutation(images.shape[-2], images.shape[-1], seed))
    return out


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a floating tensor of shape (B, C, H, W), got {shape}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
