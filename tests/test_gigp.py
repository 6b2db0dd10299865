"""Group Invariant Global Pooling (Bujel et al. 2023): mean pooling at initialisation, invariant labels, saved bins.

GIGP is ``C sum_k w_k Phi(S_k, o_k)`` with per-orbit sums ``S_k = sum_i a_ik h_i``; it must equal
masked global mean pooling before training (``MEAN_POOL`` in float32, rounding of the
re-ordered sum), keep its fitted bins in the state dict, and be exactly as invariant as its
orbit labels (negative control: a non-invariant label). GIGP inside LieConv networks is
tested in ``test_lieconv_network.py``.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from eqbench.models.gigp import GIGP, centroid_distance_orbits, radius_orbits

DT = torch.float64
MEAN_POOL = 1e-6
EXACT = 1e-9
MOVED = 1e-3


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_mask(batch: int, points: int, g: torch.Generator) -> Tensor:
    mask = torch.rand(batch, points, generator=g) < 0.7
    mask[:, 0] = True
    return mask


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def fitted(channels: int = 4, bins: int = 8, seed: int = 0, **options) -> GIGP:
    pool = GIGP(channels, bins, **options)
    pool.fit_bins(torch.rand(50, generator=seeded(seed)) * 3 + 0.5)
    return pool


def trained(pool: GIGP, seed: int = 1) -> GIGP:
    """Move every parameter away from its initialisation (so Phi is no longer the identity)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in pool.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return pool


# ------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("use_orbit_value", [True, False], ids=["with-orbit-value", "without"])
@pytest.mark.parametrize("width", [1.0, 2.5])
def test_gigp_equals_masked_mean_pooling_at_initialisation(use_orbit_value, width):
    g = seeded(3)
    pool = fitted(channels=5, bins=10, width=width, use_orbit_value=use_orbit_value)
    values = torch.randn(4, 13, 5, generator=g) * 3
    orbits = torch.rand(4, 13, generator=g) * 5  # some outside the fitted range (clamped)
    mask = random_mask(4, 13, g)
    values[~mask] = 1e4  # padding garbage must not leak in
    got, want = pool(values, orbits, mask), masked_mean(torch.where(mask[..., None], values, 0), mask)
    assert (got - want).abs().max() <= MEAN_POOL * want.abs().max()
    # negative control: once Phi and w move, GIGP is no longer the mean
    assert (trained(pool)(values, orbits, mask) - want).abs().max() > MOVED


def test_without_a_mask_every_point_counts():
    pool = fitted()
    values = torch.randn(2, 6, 4, generator=seeded(1))
    orbits = torch.rand(2, 6, generator=seeded(2)) * 3
    assert torch.allclose(pool(values, orbits), values.mean(1), rtol=0, atol=MEAN_POOL)


# ------------------------------------------------------------------ bins and assignments
def test_soft_assignments_rows_sum_to_one_and_interpolate_linearly():
    pool = fitted(bins=6)
    labels = torch.cat([torch.rand(40, generator=seeded(5)) * 4, pool.bins, torch.tensor([-1.0, 100.0])])
    a = pool.assignments(labels)
    assert torch.allclose(a.sum(-1), torch.ones(labels.shape), rtol=0, atol=1e-6)
    assert bool((a >= 0).all())
    clamped = labels.clamp(float(pool.bins[0]), float(pool.bins[-1]))
    assert torch.allclose(a @ pool.bins, clamped, rtol=0, atol=1e-5)  # width of one spacing: linear interpolation
    assert int((a > 1e-5).sum(-1).max()) <= 2  # (float32 labels on a bin may reach its neighbours by rounding)
    spacing = float(pool.bins[1] - pool.bins[0])
    reach = (labels[:, None].clamp(float(pool.bins[0]), float(pool.bins[-1])) - pool.bins).abs()
    assert bool((a[reach >= spacing] == 0).all())  # nothing beyond the aggregation distance


def test_wider_aggregation_reaches_more_bins():
    pool = fitted(bins=10, width=2.5)
    a = pool.assignments(pool.bins[4:5] + 0.01)
    assert int((a > 0).sum()) >= 4 and math.isclose(float(a.sum()), 1.0, rel_tol=1e-6)


def test_bins_are_buffers_in_the_state_dict_and_load_back():
    pool = trained(fitted(seed=7))
    state = pool.state_dict()
    assert {"bins", "width", "fitted"} <= set(state)
    assert "bins" not in dict(pool.named_parameters())
    fresh = GIGP(4, 8)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh(torch.zeros(1, 3, 4), torch.zeros(1, 3))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.bins, pool.bins) and bool(fresh.fitted)
    values, orbits = torch.randn(2, 5, 4, generator=seeded()), torch.rand(2, 5, generator=seeded(1)) * 3
    assert torch.equal(fresh(values, orbits), pool(values, orbits))


def test_bins_span_the_training_labels():
    pool = GIGP(2, 5, width=1.5)
    labels = torch.tensor([[0.5, 2.0, 9.0], [3.0, 4.5, 1.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    pool.fit_bins(labels, mask)
    assert torch.allclose(pool.bins, torch.linspace(0.5, 4.5, 5))
    assert math.isclose(float(pool.width), 1.0 * 1.5)


def test_bad_fits_and_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="labels that vary"):
        GIGP(2, 4).fit_bins(torch.full((5,), 2.0))
    with pytest.raises(ValueError, match="finite training orbit labels"):
        GIGP(2, 4).fit_bins(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="finite training orbit labels"):
        GIGP(2, 4).fit_bins(torch.ones(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 2 orbit bins"):
        GIGP(2, 1)
    with pytest.raises(ValueError, match="exceed 0.5"):
        GIGP(2, 4, width=0.5)
    with pytest.raises(ValueError, match=r"GIGP expects values \(B, n, 4\)"):
        fitted()(torch.zeros(2, 3, 5), torch.zeros(2, 3))


# ------------------------------------------------------------------ orbit labels
def rotation_2d(angle: float) -> Tensor:
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=DT)


def rotation_3d() -> Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=seeded(4), dtype=DT))
    return q * torch.sign(torch.linalg.det(q))


def test_radius_labels_are_so2_invariant_and_move_under_translation():
    x = torch.randn(3, 9, 2, generator=seeded(), dtype=DT)
    labels = radius_orbits(x)
    assert torch.allclose(radius_orbits(x @ rotation_2d(1.3).T), labels, rtol=0, atol=1e-12)
    assert (radius_orbits(x + 0.5) - labels).abs().max() > MOVED


def test_centroid_labels_are_se3_and_permutation_invariant_and_ignore_padding():
    x = torch.randn(3, 9, 3, generator=seeded(), dtype=DT)
    mask = random_mask(3, 9, seeded(1))
    x[~mask] = 1e3
    labels = centroid_distance_orbits(x, mask)
    moved = torch.where(mask[..., None], x @ rotation_3d().T + torch.tensor([1.0, -2.0, 0.5], dtype=DT), x)
    assert torch.allclose(centroid_distance_orbits(moved, mask)[mask], labels[mask], rtol=0, atol=1e-12)
    perm = torch.randperm(9, generator=seeded(2))
    assert torch.allclose(centroid_distance_orbits(x[:, perm], mask[:, perm]), labels[:, perm], rtol=0, atol=1e-12)
    assert (centroid_distance_orbits(torch.where(mask[..., None], x * 1.5, x), mask) - labels)[mask].abs().max() > MOVED
    zero = torch.zeros(1, 2, 3, dtype=DT, requires_grad=True)  # every point at the centroid: finite gradient
    centroid_distance_orbits(zero).sum().backward()
    assert bool(torch.isfinite(zero.grad).all())


def test_gigp_is_exactly_as_invariant_as_its_labels():
    """Trained GIGP on rotated inputs: radius labels leave it invariant, x-coordinate labels do not."""
    g = seeded(6)
    x = torch.randn(2, 10, 2, generator=g, dtype=DT)
    values = torch.randn(2, 10, 4, generator=g, dtype=DT)
    pool = trained(fitted(seed=2)).to(DT)
    pool.fit_bins(radius_orbits(x))
    turned = x @ rotation_2d(0.8).T
    with torch.no_grad():
        before = pool(values, radius_orbits(x))
        assert torch.allclose(pool(values, radius_orbits(turned)), before, rtol=0, atol=EXACT * float(before.abs().max()))
        pool.fit_bins(x[..., 0])
        assert (pool(values, turned[..., 0]) - pool(values, x[..., 0])).abs().max() > MOVED * before.abs().max()
