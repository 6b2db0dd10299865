"""Farthest point sampling and neighbourhood selection: correct, seeded, and commuting with the group.

Selections are computed from invariant distances, so a transformed input (a group element
applied to every point) must select the same indices, and a permuted input the permuted
indices; the negative controls transform by a map outside the group and must change them.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from eqbench.models.lieconv.groups import LiftingGroup, RxSO2Lift, SO2Lift, TranslationLift
from eqbench.models.lieconv.neighbourhoods import BallRadius, ball_sample, nearest, pair_mask
from eqbench.models.lieconv.sampling import farthest_point_order

DT = torch.float64
BATCH, POINTS = 3, 16


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotate(x: Tensor, angle: float = 1.1) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.stack([c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]], -1)


#: (group, a transformation in the group, a transformation outside it)
SYMMETRIES = [
    (SO2Lift(), rotate, lambda x: x + torch.tensor([0.7, -0.2], dtype=DT)),
    (RxSO2Lift(), lambda x: 2.5 * rotate(x, -0.4), lambda x: x + torch.tensor([0.7, -0.2], dtype=DT)),
    (TranslationLift(2), lambda x: x + torch.tensor([3.0, -1.5], dtype=DT), lambda x: x * torch.tensor([1.0, 3.0], dtype=DT)),
]
IDS = ["SO2", "RxSO2", "T2"]


def points(seed: int = 0) -> Tensor:
    return torch.randn(BATCH, POINTS, 2, generator=seeded(seed), dtype=DT) + 0.3


def distances(group: LiftingGroup, x: Tensor) -> Tensor:
    lifted = group.lift(x)
    return group.pair_distances(lifted, lifted)


def padded_mask() -> Tensor:
    mask = torch.ones(BATCH, POINTS, dtype=torch.bool)
    mask[1, -5:] = False
    mask[2, ::3] = False
    return mask


def permutations(seed: int = 1) -> Tensor:
    return torch.stack([torch.randperm(POINTS, generator=seeded(seed + b)) for b in range(BATCH)])


def permute(values: Tensor, perm: Tensor) -> Tensor:
    """``values[b, perm[b]]`` along the point axis (axis 1)."""
    index = perm.view(*perm.shape, *([1] * (values.dim() - 2))).expand(*perm.shape, *values.shape[2:])
    return torch.gather(values, 1, index)


def permute_distances(d: Tensor, perm: Tensor) -> Tensor:
    return torch.stack([d[b][perm[b]][:, perm[b]] for b in range(d.shape[0])])


def inverse(perm: Tensor) -> Tensor:
    return perm.argsort(-1)


# ------------------------------------------------------------------ farthest points
def test_farthest_point_order_is_greedy_farthest_first():
    """Each pick maximises the distance to the points picked before it (brute force on every step)."""
    d = distances(SO2Lift(), points())
    mask = padded_mask()
    order = farthest_point_order(d, mask, POINTS, seeded(2))
    for b in range(BATCH):
        real = int(mask[b].sum())
        assert sorted(order[b].tolist()) == list(range(POINTS))  # a permutation
        assert bool(mask[b, order[b, :real]].all())  # real points first
        for step in range(1, real):
            chosen = order[b, :step]
            to_set = d[b][chosen].min(0).values
            to_set[chosen] = -1
            to_set[~mask[b]] = -1
            assert math.isclose(float(to_set[order[b, step]]), float(to_set.max()), rel_tol=0, abs_tol=1e-12)


@pytest.mark.parametrize("count", [1, 5, POINTS])
def test_farthest_point_order_has_the_prefix_property(count):
    """The order for ``count`` picks starts with the order for fewer picks (one order serves every layer)."""
    d, mask = distances(SO2Lift(), points()), padded_mask()
    full = farthest_point_order(d, mask, POINTS, seeded(4))
    part = farthest_point_order(d, mask, count, seeded(4))
    assert torch.equal(part[:, :count], full[:, :count])


def test_farthest_point_start_is_seeded_and_real():
    d, mask = distances(SO2Lift(), points()), padded_mask()
    starts = [farthest_point_order(d, mask, 4, seeded(seed)) for seed in range(8)]
    assert torch.equal(farthest_point_order(d, mask, 4, seeded(3)), starts[3])
    assert len({tuple(s[:, 0].tolist()) for s in starts}) > 1  # different seeds pick different starts
    for s in starts:
        assert bool(mask.gather(1, s[:, :1]).all())


@pytest.mark.parametrize("group, inside, outside", SYMMETRIES, ids=IDS)
def test_farthest_point_order_commutes_with_the_group(group, inside, outside):
    x, mask = points(), padded_mask()
    order = farthest_point_order(distances(group, x), mask, 8, seeded(5))
    assert torch.equal(farthest_point_order(distances(group, inside(x)), mask, 8, seeded(5)), order)
    assert not torch.equal(farthest_point_order(distances(group, outside(x)), mask, 8, seeded(5))[:, :8], order[:, :8])


def test_farthest_point_order_commutes_with_permutations():
    """From the same (permuted) start, a permuted input gives the permuted picks."""
    d, mask, perm = distances(SO2Lift(), points()), padded_mask(), permutations()
    order = farthest_point_order(d, mask, 8, seeded(5))
    start = inverse(perm).gather(1, order[:, :1])[:, 0]
    permuted = farthest_point_order(permute_distances(d, perm), permute(mask, perm), 8, None, start=start)
    assert torch.equal(perm.gather(1, permuted[:, :8]), order[:, :8])


def test_farthest_point_order_rejects_bad_counts_and_starts():
    d, mask = distances(SO2Lift(), points()), padded_mask()
    with pytest.raises(ValueError, match="0 < count"):
        farthest_point_order(d, mask, 0, None)
    with pytest.raises(ValueError, match="one index per item"):
        farthest_point_order(d, mask, 3, None, start=torch.zeros(BATCH + 1, dtype=torch.long))


# ------------------------------------------------------------------ k nearest
def nearest_sets(d: Tensor, mask: Tensor, k: int) -> list[list[set[int]]]:
    found = nearest(d, pair_mask(mask, mask), k)
    return [[{int(j) for j, ok in zip(found.index[b, i], found.valid[b, i]) if ok} for i in range(d.shape[1])] for b in range(d.shape[0])]


@pytest.mark.parametrize("group, inside, outside", SYMMETRIES, ids=IDS)
def test_nearest_neighbours_commute_with_the_group(group, inside, outside):
    x, mask = points(), padded_mask()
    chosen = nearest_sets(distances(group, x), mask, 5)
    assert nearest_sets(distances(group, inside(x)), mask, 5) == chosen
    assert nearest_sets(distances(group, outside(x)), mask, 5) != chosen


def test_nearest_neighbours_commute_with_permutations_and_respect_the_mask():
    d, mask, perm = distances(SO2Lift(), points()), padded_mask(), permutations()
    chosen = nearest_sets(d, mask, 5)
    permuted = nearest_sets(permute_distances(d, perm), permute(mask, perm), 5)
    for b in range(BATCH):
        for i in range(POINTS):
            assert {int(perm[b, j]) for j in permuted[b][i]} == chosen[b][int(perm[b, i])]
            if mask[b, i]:
                assert len(chosen[b][i]) == 5 and all(mask[b, j] for j in chosen[b][i])
                dist = d[b, i].masked_fill(~mask[b], math.inf)
                assert max(float(dist[j]) for j in chosen[b][i]) <= float(dist.sort().values[4])
            else:
                assert chosen[b][i] == set()  # padded queries have no neighbours


def test_nearest_with_k_of_all_points_is_the_dense_form():
    d, mask = distances(SO2Lift(), points()), padded_mask()
    found = nearest(d, pair_mask(mask, mask), POINTS)
    assert found.index is None and torch.equal(found.valid, pair_mask(mask, mask))


# ------------------------------------------------------------------ ball sampling
def ball(group: LiftingGroup, x: Tensor, mask: Tensor, radius: float = 0.8) -> Tensor:
    return BallRadius(0.3, radius).eval().within(distances(group, x), mask, mask)


def sample_sets(within: Tensor, k: int, seed: int) -> list[list[set[int]]]:
    found = ball_sample(within, k, seeded(seed))
    return [[{int(j) for j, ok in zip(found.index[b, i], found.valid[b, i]) if ok} for i in range(within.shape[1])] for b in range(within.shape[0])]


@pytest.mark.parametrize("group, inside, outside", SYMMETRIES, ids=IDS)
def test_ball_and_its_seeded_sample_commute_with_the_group(group, inside, outside):
    x, mask = points(), padded_mask()
    within = ball(group, x, mask)
    assert torch.equal(ball(group, inside(x), mask), within)
    assert not torch.equal(ball(group, outside(x), mask), within)
    assert sample_sets(ball(group, inside(x), mask), 3, seed=6) == sample_sets(within, 3, seed=6)


def test_ball_sample_takes_only_ball_points_and_all_of_a_small_ball():
    x, mask = points(), padded_mask()
    within = ball(SO2Lift(), x, mask)
    for k in (2, 4):
        chosen = sample_sets(within, k, seed=1)
        for b in range(BATCH):
            for i in range(POINTS):
                inside = set(within[b, i].nonzero().flatten().tolist())
                assert chosen[b][i] <= inside and len(chosen[b][i]) == min(k, len(inside))


def test_ball_commutes_with_permutations_and_a_large_sample_takes_the_permuted_ball():
    x, mask, perm = points(), padded_mask(), permutations()
    within = ball(SO2Lift(), x, mask, radius=0.3)
    moved = ball(SO2Lift(), permute(x, perm), permute(mask, perm), radius=0.3)
    assert torch.equal(moved, permute(permute(within, perm).transpose(1, 2), perm).transpose(1, 2))
    k = int(within.sum(-1).max())  # every ball point fits: the sample is the ball, whatever the draw
    assert 1 < k < POINTS
    chosen, permuted = sample_sets(within, k, seed=2), sample_sets(moved, k, seed=9)
    for b in range(BATCH):
        for i in range(POINTS):
            assert {int(perm[b, j]) for j in permuted[b][i]} == chosen[b][int(perm[b, i])]


def test_ball_sample_is_seeded_and_uniform():
    """Draws from a 6-point ball, 2 at a time: each point is taken with probability 1/3 (3 sigma band)."""
    within = torch.zeros(1, 1, 10, dtype=torch.bool)
    within[0, 0, [0, 2, 3, 5, 7, 9]] = True
    first, again = ball_sample(within, 2, seeded(3)), ball_sample(within, 2, seeded(3))
    assert torch.equal(first.index, again.index)
    draws = 3000
    counts = torch.zeros(10)
    g = seeded(0)
    for _ in range(draws):
        found = ball_sample(within, 2, g)
        counts[found.index[found.valid]] += 1
    assert counts[~within[0, 0]].sum() == 0
    sigma = math.sqrt(draws * (1 / 3) * (2 / 3))
    assert ((counts[within[0, 0]] - draws / 3).abs() < 3 * sigma).all(), counts


# ------------------------------------------------------------------ adaptive radius
def test_ball_radius_starts_at_the_fill_quantile_and_adapts_towards_the_fill():
    d, mask = distances(SO2Lift(), points()), padded_mask()
    radius = BallRadius(0.25)
    radius.train()
    within = radius.within(d, mask, mask)
    real_pairs = pair_mask(mask, mask)
    observed = float(within.sum() / real_pairs.sum())
    assert abs(observed - 0.25) < 0.02
    # a too small radius grows, a too large one shrinks, towards the target fill
    small, large = BallRadius(0.25, radius=1e-3).train(), BallRadius(0.25, radius=100.0).train()
    small.within(d, mask, mask)
    large.within(d, mask, mask)
    assert float(small.radius) > 1e-3 and float(large.radius) < 100.0
    for _ in range(200):
        small.within(d, mask, mask)
    assert abs(float(small.within(d, mask, mask).sum() / real_pairs.sum()) - 0.25) < 0.1
    assert "radius" in radius.state_dict()


def test_ball_radius_refuses_evaluation_before_estimation_and_bad_fills():
    d, mask = distances(SO2Lift(), points()), padded_mask()
    with pytest.raises(RuntimeError, match="radius has not been estimated"):
        BallRadius(0.3).eval().within(d, mask, mask)
    with pytest.raises(ValueError, match="fill must be in"):
        BallRadius(0.0)
    with pytest.raises(ValueError, match="initial ball radius must be positive"):
        BallRadius(0.5, radius=-1.0)
