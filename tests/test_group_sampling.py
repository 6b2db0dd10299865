"""Haar statistics of the samplers, with fixed seeds, each with a non-Haar negative control.

Every test reads its statistic off the sampled *elements* (matrices, permutations), so that it
checks ``element(sample_params(...))`` together. Accepted at p > 0.01 (fixed seeds, so the
outcome is deterministic); each deliberately wrong sampler is rejected by the same test at
p < 1e-3.
"""
from __future__ import annotations

import math
from collections import Counter
from itertools import permutations
from typing import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from eqbench.groups import E3, O2, O3, SE2, SE3, SO2, SO3, Dihedral, E2, Group, ScaleRotation, Symmetric, Translations
from eqbench.groups.rotations2d import angle_of
from eqbench.groups.rotations3d import quaternion_to_matrix, so3_log

ACCEPT = 0.01
REJECT = 1e-3
N = 4000


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotation_part(group: Group, n: int, seed: int) -> torch.Tensor:
    """The proper rotation ``det(M) M`` of each sampled element (O(3) = SO(3) x {I, -I})."""
    m = group.sample(n, generator(seed)).matrix
    return m * torch.sign(torch.linalg.det(m))[:, None, None]


# ------------------------------------------------------------------ SO(3)
def so3_angle_pvalue(rotations: torch.Tensor) -> float:
    """KS test of the rotation angles against the Haar density ``(1 - cos t) / pi`` on [0, pi] (CDF ``(t - sin t) / pi``)."""
    angles = so3_log(rotations).norm(dim=-1).numpy()
    return stats.kstest(angles, lambda t: (t - np.sin(t)) / np.pi).pvalue


def so3_axis_pvalue(rotations: torch.Tensor) -> float:
    """KS test of the z-component of the rotation axes against uniform on [-1, 1] (uniform axes on S^2, Archimedes)."""
    omega = so3_log(rotations)
    return stats.kstest((omega[:, 2] / omega.norm(dim=-1)).numpy(), stats.uniform(-1, 2).cdf).pvalue


def _axis_rotation(axis: int, t: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(t), torch.sin(t)
    m = torch.zeros(len(t), 3, 3, dtype=torch.float64)
    i, j = [k for k in range(3) if k != axis]
    m[:, axis, axis] = 1
    m[:, i, i], m[:, j, j], m[:, i, j], m[:, j, i] = c, c, -s, s
    return m


def uniform_euler_angles(n: int, seed: int) -> torch.Tensor:
    """Non-Haar: ZYZ Euler angles each uniform (the Haar measure needs ``sin(beta) d beta``)."""
    alpha, beta, gamma = (torch.rand(n, generator=generator(seed + i), dtype=torch.float64) * span for i, span in enumerate((2 * math.pi, math.pi, 2 * math.pi)))
    return _axis_rotation(2, alpha) @ _axis_rotation(1, beta) @ _axis_rotation(2, gamma)


def uniform_angle_quaternions(n: int, seed: int) -> torch.Tensor:
    """Non-Haar: uniform axis but rotation angle uniform on [0, pi]."""
    axis = torch.randn(n, 3, generator=generator(seed), dtype=torch.float64)
    angle = torch.rand(n, generator=generator(seed + 1), dtype=torch.float64) * math.pi
    q = torch.cat([torch.cos(angle / 2)[:, None], torch.sin(angle / 2)[:, None] * axis / axis.norm(dim=-1, keepdim=True)], -1)
    return quaternion_to_matrix(q)


@pytest.mark.parametrize("group", [SO3(), O3(), SE3(), E3()], ids=["SO3", "O3", "SE3", "E3"])
def test_so3_rotation_angles_follow_the_haar_density(group: Group) -> None:
    assert so3_angle_pvalue(rotation_part(group, N, seed=0)) > ACCEPT


def test_haar_is_left_invariant() -> None:
    """``R0 g`` is again Haar for a fixed ``R0`` (left invariance characterises the Haar measure)."""
    r0 = SO3().element({"quaternion": torch.tensor([[0.3, -0.5, 0.8, 0.1]], dtype=torch.float64)}).matrix
    assert so3_angle_pvalue(r0 @ rotation_part(SO3(), N, seed=1)) > ACCEPT


@pytest.mark.parametrize("sampler", [uniform_euler_angles, uniform_angle_quaternions], ids=["euler", "uniform-angle"])
def test_non_haar_rotation_angles_are_rejected(sampler: Callable[[int, int], torch.Tensor]) -> None:
    assert so3_angle_pvalue(sampler(N, 0)) < REJECT


def test_so3_rotation_axes_are_uniform_on_the_sphere() -> None:
    assert so3_axis_pvalue(rotation_part(SO3(), N, seed=2)) > ACCEPT
    assert so3_axis_pvalue(uniform_euler_angles(N, 2)) < REJECT


# ------------------------------------------------------------------ SO(2)
def so2_angle_pvalue(matrices: torch.Tensor) -> float:
    """KS test of ``atan2`` angles against uniform on [-pi, pi)."""
    return stats.kstest(angle_of(matrices).numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue


def square_angles(n: int, seed: int) -> torch.Tensor:
    """Non-Haar: the direction of a point uniform in a square (too many diagonal angles)."""
    xy = torch.rand(n, 2, generator=generator(seed), dtype=torch.float64) * 2 - 1
    return SO2().element({"angle": torch.atan2(xy[:, 1], xy[:, 0])}).matrix


@pytest.mark.parametrize("group", [SO2(), SE2()], ids=["SO2", "SE2"])
def test_so2_angles_are_uniform(group: Group) -> None:
    n = 10 * N  # the square's bias is a small ripple in the CDF: it takes more samples to see
    assert so2_angle_pvalue(group.sample(n, generator(3)).matrix) > ACCEPT
    assert so2_angle_pvalue(square_angles(n, 3)) < REJECT


# ------------------------------------------------------------------ reflections
def reflection_pvalue(matrices: torch.Tensor) -> float:
    """Two-sided binomial test that ``det < 0`` (the reflection coset) has probability 1/2."""
    flips = int((torch.linalg.det(matrices) < 0).sum())
    return stats.binomtest(flips, len(matrices), 0.5).pvalue


@pytest.mark.parametrize("group", [O2(), E2(), O3(), E3(), Dihedral(4)], ids=["O2", "E2", "O3", "E3", "D4"])
def test_reflections_have_probability_one_half(group: Group) -> None:
    assert reflection_pvalue(group.sample(N, generator(4)).matrix) > ACCEPT


def test_biased_reflections_are_rejected() -> None:
    params = O3().sample_params(N, generator(4))
    params["reflect"] = (torch.rand(N, generator=generator(5)) < 0.55).long()
    assert reflection_pvalue(O3().element(params).matrix) < REJECT


def test_dihedral_elements_are_equally_likely() -> None:
    group = Dihedral(4)
    everything = group.elements().matrix.reshape(8, 4)
    drawn = group.sample(N, generator(6)).matrix.reshape(N, 1, 4)
    index = (drawn == everything[None]).all(-1).long().argmax(-1)
    assert stats.chisquare(torch.bincount(index, minlength=8).numpy()).pvalue > ACCEPT


# ------------------------------------------------------------------ S_n
def naive_shuffle(n: int, size: int, seed: int) -> torch.Tensor:
    """Non-Haar: swap each position with a uniform position (``size^size`` equally likely paths, not ``size!``)."""
    perm = torch.arange(size).repeat(n, 1)
    swaps = torch.randint(0, size, (n, size), generator=generator(seed))
    rows = torch.arange(n)
    for i in range(size):
        j = swaps[:, i]
        a, b = perm[rows, i].clone(), perm[rows, j].clone()
        perm[rows, i], perm[rows, j] = b, a
    return perm


def coarse_key_argsort(n: int, size: int, seed: int) -> torch.Tensor:
    """Non-Haar: a stable argsort of keys with few values, so ties keep low indices (element 0) in front."""
    keys = torch.randint(0, 4, (n, size), generator=generator(seed))
    return torch.argsort(keys, dim=1, stable=True)


def position_of_zero_pvalue(perms: torch.Tensor) -> float:
    """Chi-square test that element 0 is equally likely at each position."""
    position = (perms == 0).long().argmax(dim=1)
    return stats.chisquare(torch.bincount(position, minlength=perms.shape[1]).numpy()).pvalue


def whole_permutation_pvalue(perms: torch.Tensor) -> float:
    """Chi-square test that each of the ``N!`` permutations is equally likely."""
    counts = Counter(map(tuple, perms.tolist()))
    return stats.chisquare([counts[p] for p in permutations(range(perms.shape[1]))]).pvalue


def test_symmetric_group_position_of_zero_is_uniform() -> None:
    assert position_of_zero_pvalue(Symmetric().sample(N, generator(7), 6).permutation) > ACCEPT
    assert position_of_zero_pvalue(coarse_key_argsort(N, 6, 7)) < REJECT


def test_symmetric_group_permutations_are_equally_likely() -> None:
    assert whole_permutation_pvalue(Symmetric(4).sample(N, generator(8)).permutation) > ACCEPT
    assert whole_permutation_pvalue(naive_shuffle(N, 4, 8)) < REJECT


# ------------------------------------------------------------------ non-compact parts (stated distributions)
def log_scale_pvalue(matrices: torch.Tensor, max_scale: float) -> float:
    """KS test of ``log s = log det(M) / 2`` against uniform on ``[-log max_scale, log max_scale]``."""
    log_scale = 0.5 * torch.log(torch.linalg.det(matrices))
    bound = math.log(max_scale)
    return stats.kstest(log_scale.numpy(), stats.uniform(-bound, 2 * bound).cdf).pvalue


def test_scale_rotation_log_scale_is_uniform() -> None:
    group = ScaleRotation(max_scale=2.0)
    assert log_scale_pvalue(group.sample(N, generator(9)).matrix, 2.0) > ACCEPT
    assert so2_angle_pvalue(group.sample(N, generator(9)).matrix) > ACCEPT
    uniform_scale = 0.5 + 1.5 * torch.rand(N, generator=generator(9), dtype=torch.float64)  # non-Haar: uniform in s
    wrong = group.element({"angle": torch.zeros(N, dtype=torch.float64), "log_scale": torch.log(uniform_scale)}).matrix
    assert log_scale_pvalue(wrong, 2.0) < REJECT


def translation_pvalue(translations: torch.Tensor, sigma: float) -> float:
    """KS test of every coordinate against ``N(0, sigma^2)``."""
    return stats.kstest((translations / sigma).flatten().numpy(), stats.norm.cdf).pvalue


@pytest.mark.parametrize("group", [Translations(3, sigma=2.5), SE3(sigma=0.5)], ids=["T3", "SE3"])
def test_translations_follow_the_stated_gaussian(group: Group) -> None:
    sigma = group.translations.sigma if hasattr(group, "translations") else group.sigma
    assert translation_pvalue(group.sample(N, generator(10)).translation, sigma) > ACCEPT
    same_variance_uniform = (torch.rand(N, 3, generator=generator(10), dtype=torch.float64) * 2 - 1) * math.sqrt(3) * sigma
    assert translation_pvalue(same_variance_uniform, sigma) < REJECT
