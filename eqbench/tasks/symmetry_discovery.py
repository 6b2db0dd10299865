"""Symmetry discovery with L-conv (Dehmamy et al. 2021): learn a hidden rotation's generator from data.

Data: random images ``x`` (i.i.d. ``N(0, 1)`` pixels on a ``size x size`` grid) and the same
images rotated by one fixed small angle ``t``, ``y = R_t x`` (:func:`band_limited_rotation`).
Model: one L-conv layer with a single learnable generator, no bias, no activation,
``F(x) = W^0 x + W^1 L x``, trained by full-batch Adam on ``||F(x) - y||^2``. Since
``R_t = I + t L_rot + O(t^2)``, a good fit has ``W^1 L ~ (R_t - W^0 I)``, so the learned
generator ``W^1 L`` points along ``L_rot`` (:func:`rotation_generator`), up to its identity
component (``L_0 = I`` already spans that direction, so it is not identifiable and is removed).

Score: the cosine similarity ``<A, B>_F / (|A|_F |B|_F)`` of the traceless parts of the learned
and the true generator (Dehmamy et al.'s "cosine correlation"). Reported beside it: the same
score for the untrained random generator (a negative control, about 0) and the ceiling of a
first-order fit, the score of ``(R_t - I) / t`` itself.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from eqbench.models.lconv import LConv, band_limited_rotation, rotation_generator


@dataclass(frozen=True)
class DiscoveryConfig:
    """Settings of :func:`discover_rotation`; the defaults run in about a second on one CPU core."""

    size: int = 7
    angle: float = math.radians(3.0)
    num_samples: int = 512
    steps: int = 400
    learning_rate: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 2 or self.num_samples < 1 or self.steps < 0 or self.learning_rate <= 0:
            raise ValueError(
                "DiscoveryConfig needs size >= 2, num_samples >= 1, steps >= 0, learning_rate > 0; "
                f"got size={self.size}, num_samples={self.num_samples}, steps={self.steps}, learning_rate={self.learning_rate}"
            )
        if not 0 < abs(self.angle) < math.pi:
            raise ValueError(f"the hidden rotation angle must be in (0, pi) in magnitude, got {self.angle}")


@dataclass(frozen=True)
class DiscoveryResult:
    """What :func:`discover_rotation` measured (cosine similarities in ``[-1, 1]``)."""

    cosine_similarity: float
    untrained_cosine_similarity: float
    first_order_ceiling: float
    final_loss: float
    seconds: float
    config: DiscoveryConfig

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def generator_cosine(learned: Tensor, true: Tensor) -> float:
    """Cosine similarity of the traceless parts ``A - tr(A)/d I`` of two ``(d, d)`` generators (float64)."""
    if learned.shape != true.shape or learned.dim() != 2 or learned.shape[0] != learned.shape[1]:
        raise ValueError(f"generators must be square matrices of equal shape, got {tuple(learned.shape)} and {tuple(true.shape)}")
    a, b = (_traceless(m.detach().to(torch.float64)) for m in (learned, true))
    return float((a * b).sum() / (a.norm() * b.norm()))


def hidden_rotation(config: DiscoveryConfig) -> Tensor:
    """The ``(d, d)`` float64 matrix ``R_t`` of the hidden rotation by ``config.angle``."""
    return band_limited_rotation(config.size, config.size, torch.tensor([config.angle], dtype=torch.float64))[0]


def rotation_pairs(config: DiscoveryConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(x, R_t x)``: ``num_samples`` random float32 signals ``(n, size^2, 1)`` and their rotations."""
    x = torch.randn(config.num_samples, config.size * config.size, 1, generator=generator, dtype=torch.float64)
    y = torch.einsum("ij,bjc->bic", hidden_rotation(config), x)
    return x.float(), y.float()


def learned_generator(layer: LConv) -> Tensor:
    """The effective generator ``W^1 L`` of a one-channel, one-generator L-conv layer."""
    if layer.num_generators != 1 or layer.in_channels != 1 or layer.out_channels != 1:
        raise ValueError("learned_generator needs an L-conv layer with one generator and one input and output channel")
    return layer.weight[1, 0, 0] * layer.generator_matrices()[0]


def discover_rotation(config: DiscoveryConfig = DiscoveryConfig()) -> DiscoveryResult:
    """Train one learnable L-conv generator on rotated random images; score it against the rotation generator."""
    generator = torch.Generator().manual_seed(config.seed)
    x, y = rotation_pairs(config, generator)
    sites = config.size * config.size
    layer = LConv(1, 1, num_sites=sites, num_generators=1, bias=False, seed_generator=generator)
    true = rotation_generator(config.size, config.size)
    untrained = generator_cosine(learned_generator(layer), true)
    optimiser = torch.optim.Adam(layer.parameters(), lr=config.learning_rate)
    start = time.perf_counter()
    for _ in range(config.steps):
        optimiser.zero_grad()
        loss = torch.mean((layer(x) - y) ** 2)
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - start
    ceiling = generator_cosine((hidden_rotation(config) - torch.eye(sites, dtype=torch.float64)) / config.angle, true)
    with torch.no_grad():
        final_loss = float(torch.mean((layer(x) - y) ** 2))
    return DiscoveryResult(
        cosine_similarity=generator_cosine(learned_generator(layer), true),
        untrained_cosine_similarity=untrained,
        first_order_ceiling=ceiling,
        final_loss=final_loss,
        seconds=seconds,
        config=config,
    )


def _traceless(matrix: Tensor) -> Tensor:
    return matrix - torch.trace(matrix) / matrix.shape[0] * torch.eye(matrix.shape[0], dtype=matrix.dtype)
