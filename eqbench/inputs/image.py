"""Smooth random square images for grid (rot90 / flip / shift / rotation) checks.

Each image is white noise from the seeded generator, low-pass filtered on the torus with a
Gaussian of standard deviation ``correlation_length`` pixels (in Fourier space:
``exp(-2 pi^2 l^2 |f|^2)``, ``f`` in cycles per pixel), then normalised per image and channel
to mean 0 and standard deviation 1, so it is smooth but never near-constant. Being periodic,
it is also smooth across the border that circular shifts wrap around.

With ``disk=True`` the image is multiplied by a centred disk of radius ``size / 2 - 1``
pixels with a 2-pixel cosine edge, so rotations by any angle keep the content in the frame
(interpolated rotations then differ from exact ones only by interpolation error).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from eqbench.actions import GridImage
from eqbench.inputs.base import InputGenerator, InputStructure

DISK_EDGE = 2.0


def disk_window(size: int) -> Tensor:
    """``(size, size)`` float64 window: 1 inside radius ``size/2 - 1 - DISK_EDGE``, cosine ramp to 0 at ``size/2 - 1``."""
    centre = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - centre
    radius = torch.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    outer = size / 2 - 1
    ramp = ((radius - (outer - DISK_EDGE)) / DISK_EDGE).clamp(0, 1)
    return 0.5 * (1 + torch.cos(math.pi * ramp))


class ImageInputs(InputGenerator):
    """``(B, channels, size, size)`` smooth random images (see module docs); action ``GridImage(channels)``.

    Only the seed and batch of the structure matter; ``structure_strategy`` draws the seed.
    """

    def __init__(self, size: int = 28, channels: int = 1, disk: bool = False, correlation_length: float = 2.0) -> None:
        if size < 2 or channels < 1 or correlation_length <= 0:
            raise ValueError(
                f"ImageInputs needs size >= 2, channels >= 1, correlation_length > 0; "
                f"got size={size}, channels={channels}, correlation_length={correlation_length}"
            )
        self.size, self.channels, self.disk, self.correlation_length = size, channels, disk, correlation_length

    def __repr__(self) -> str:
        disk = ", disk=True" if self.disk else ""
        return f"ImageInputs(size={self.size}, channels={self.channels}{disk})"

    @property
    def action(self) -> GridImage:
        return GridImage(channels=self.channels)

    def __call__(self, structure: InputStructure) -> Tensor:
        generator = self.generator(structure)
        shape = (structure.batch, self.channels, self.size, self.size)
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        freq = torch.fft.fftfreq(self.size, dtype=torch.float64)
        squared = freq[:, None] ** 2 + freq[None, :] ** 2
        low_pass = torch.exp(-2 * math.pi**2 * self.correlation_length**2 * squared)
        image = torch.fft.ifft2(torch.fft.fft2(noise) * low_pass).real
        image = image - image.mean(dim=(-2, -1), keepdim=True)
        image = image / image.std(dim=(-2, -1), keepdim=True)
        if self.disk:
            image = image * disk_window(self.size)
        return image

    def structure_strategy(self, batch: int = 1) -> Any:
        return st.builds(self.default_structure, seed=st.integers(0, 2**31 - 1), batch=st.just(batch))

    def default_structure(self, seed: int = 0, batch: int = 1) -> InputStructure:
        """Images have no point axis: ``num_points`` is 0."""
        return InputStructure(seed=seed, batch=batch, num_points=0)
