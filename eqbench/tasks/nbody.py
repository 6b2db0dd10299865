"""Charged n-body: our simulator of the EGNN benchmark (Satorras, Hoogeboom, Welling, ICML 2021, Sec. 5.1).

The benchmark (after Kipf et al. 2018 and Fuchs et al. 2020) is 5 particles in 3-d with charges
``q_i = +-1`` (each sign with probability 1/2), initial positions ``x_i ~ N(0, I)`` and initial
velocities of norm 0.5 in uniformly random directions. Particle ``i`` feels the Coulomb-like force

    F_i = sum_{j != i} c q_i q_j (x_i - x_j) / |x_i - x_j|^3        (c = 1; like charges repel),

each component clipped to ``+-0.1 / dt``. Integration is the reference's kick-drift leapfrog with
unit masses and ``dt = 0.001``: ``v <- v + dt F(x_0)``, then for steps ``s = 1 .. 4999``:
``x <- x + dt v``, save ``(x, v)`` when ``s`` is a multiple of 100, ``v <- v + dt F(x)``. That
gives 49 saved frames; frame ``k`` is the state after step ``100 (k + 1)`` (the reference's initial
frame is overwritten by the first save) and its velocity is the half-step one. The task
("nbody_small" in the EGNN code, the setting of the Frame Averaging paper's Table 4) predicts the
positions at frame 40 from the positions, velocities and charges at frame 30, with 3,000
training, 2,000 validation and 2,000 test systems. The trivial baseline predicts no motion.

Systems are simulated in float64, all at once (vectorised over systems), from
``numpy.random.default_rng`` streams seeded by ``(seed, split)``, and cached as ``.npz``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from eqbench.tasks.datafiles import cache_dir, cached_arrays

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ChargedSystemConfig:
    """Physical and numerical settings of :func:`simulate_charged_systems` (defaults: the EGNN benchmark)."""

    num_particles: int = 5
    dim: int = 3
    dt: float = 0.001
    steps: int = 5000
    save_every: int = 100
    position_std: float = 1.0
    speed: float = 0.5
    interaction: float = 1.0
    force_clip: float = 100.0  # 0.1 / dt

    def __post_init__(self) -> None:
        if self.num_particles < 2 or self.dim < 1 or self.dt <= 0 or self.save_every < 1:
            raise ValueError(f"invalid n-body settings {self}")
        if self.steps % self.save_every or self.steps < 2 * self.save_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of save_every ({self.save_every}) and at least twice it")

    @property
    def num_frames(self) -> int:
        """Saved frames: one per ``save_every`` steps, after steps ``save_every, 2 save_every, .., steps - save_every``."""
        return self.steps // self.save_every - 1


def coulomb_forces(positions: np.ndarray, charges: np.ndarray, interaction: float, clip: float) -> np.ndarray:
    """``F_i = sum_{j != i} c q_i q_j (x_i - x_j) / |x_i - x_j|^3`` per component clipped to ``+-clip``.

    ``positions (S, N, d)``, ``charges (S, N)`` -> ``(S, N, d)``.
    """
    differences = positions[:, :, None, :] - positions[:, None, :, :]
    squared = np.einsum("sijk,sijk->sij", differences, differences)
    diagonal = np.arange(positions.shape[1])
    squared[:, diagonal, diagonal] = np.inf  # no self-force
    magnitude = interaction * charges[:, :, None] * charges[:, None, :] * squared**-1.5
    return np.clip(np.einsum("sij,sijk->sik", magnitude, differences), -clip, clip)


def simulate_charged_systems(count: int, rng: np.random.Generator, config: ChargedSystemConfig = ChargedSystemConfig()) -> dict[str, np.ndarray]:
    """Draw ``count`` systems' charges and initial states from ``rng`` and :func:`integrate` them (float64)."""
    n, d = config.num_particles, config.dim
    charges = rng.choice(np.array([-1.0, 1.0]), size=(count, n))
    positions = rng.standard_normal((count, n, d)) * config.position_std
    directions = rng.standard_normal((count, n, d))
    velocities = directions * (config.speed / np.linalg.norm(directions, axis=-1, keepdims=True))
    return {**integrate(positions, velocities, charges, config), "charges": charges}


def integrate(positions: np.ndarray, velocities: np.ndarray, charges: np.ndarray, config: ChargedSystemConfig = ChargedSystemConfig()) -> dict[str, np.ndarray]:
    """The saved frames of the kick-drift leapfrog from ``(S, N, d)`` initial states: ``positions``, ``velocities`` ``(S, F, N, d)``."""
    x, v = np.array(positions, dtype=np.float64), np.array(velocities, dtype=np.float64)
    saved_x = np.empty((x.shape[0], config.num_frames, *x.shape[1:]))
    saved_v = np.empty_like(saved_x)
    v = v + config.dt * coulomb_forces(x, charges, config.interaction, config.force_clip)
    for step in range(1, config.steps):
        x = x + config.dt * v
        if step % config.save_every == 0:
            frame = step // config.save_every - 1
            saved_x[:, frame], saved_v[:, frame] = x, v
        v = v + config.dt * coulomb_forces(x, charges, config.interaction, config.force_clip)
    return {"positions": saved_x, "velocities": saved_v}


def charged_nbody(
    sizes: dict[str, int],
    *,
    seed: int = 0,
    config: ChargedSystemConfig = ChargedSystemConfig(),
    input_frame: int = 30,
    target_frame: int = 40,
) -> dict[str, dict[str, Tensor]]:
    """Per split (``sizes``, e.g. ``{"train": 3000, "valid": 2000, "test": 2000}``) the float32 task tensors.

    Each split is ``{"positions", "velocities" (S, N, d) at input_frame, "charges" (S, N, 1),
    "target" (S, N, d) positions at target_frame}``. Split ``k`` of :data:`SPLITS` is simulated
    from the stream seeded by ``(seed, k)`` and cached, so growing one split leaves the others unchanged.
    """
    if not 0 <= input_frame < target_frame < config.num_frames:
        raise ValueError(f"need 0 <= input_frame < target_frame < {config.num_frames}, got {input_frame}, {target_frame}")
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown n-body splits {sorted(unknown)}; known: {SPLITS}")
    data = {}
    for split, count in sizes.items():
        if count < 1:
            raise ValueError(f"split {split!r} needs at least one system, got {count}")
        arrays = _cached_split(split, count, seed, config)
        data[split] = {
            "positions": torch.from_numpy(arrays["positions"][:, input_frame]),
            "velocities": torch.from_numpy(arrays["velocities"][:, input_frame]),
            "charges": torch.from_numpy(arrays["charges"][..., None]),
            "target": torch.from_numpy(arrays["positions"][:, target_frame]),
        }
    return data


def _cached_split(split: str, count: int, seed: int, config: ChargedSystemConfig) -> dict[str, np.ndarray]:
    settings = "-".join(f"{value}" for value in asdict(config).values())
    path = cache_dir() / "nbody" / f"charged-{split}-{count}-seed{seed}-{settings}.npz"

    def simulate() -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        arrays = simulate_charged_systems(count, rng, config)
        return {name: value.astype(np.float32) for name, value in arrays.items()}

    return cached_arrays(path, simulate)
