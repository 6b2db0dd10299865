"""Finite groups are checked exhaustively: every element on every input, so no element can be missed."""
from __future__ import annotations

import pytest
import torch

from eqbench.actions import Invariant, Points
from eqbench.check import Verdict, check_equivariance
from eqbench.groups import SO2, Cyclic, Dihedral, Symmetric, Trivial
from eqbench.inputs import PointCloudInputs

PLANAR = PointCloudInputs(dim=2, min_points=5, max_points=5)
RANDOM_ONLY = dict(n_inputs=1, search_examples=0)
SEEDS = range(10)


def signed_area(x: torch.Tensor) -> torch.Tensor:
    """Shoelace area ``1/2 sum_i x_i ^ x_{i+1}`` of the polygon through the points in order.

    Invariant under rotations about the origin (C_n), negated by reflections: broken under D_n
    by half of its elements.
    """
    following = torch.roll(x, shifts=-1, dims=1)
    return 0.5 * (x[..., 0] * following[..., 1] - x[..., 1] * following[..., 0]).sum(dim=1, keepdim=True)


def test_enumerations_list_every_element_once() -> None:
    for group, points in ((Cyclic(6), None), (Dihedral(4), None), (Symmetric(), 4), (Dihedral(3) * Symmetric(), 3), (Trivial(), None)):
        params = group.enumerate_params(points)
        element = group.element(params)
        assert all(value.shape[0] == group.order(points) for value in params.values())
        if element.matrix is not None and element.permutation is not None:
            keys = {(tuple(m.flatten().round(decimals=9).tolist()), tuple(p.tolist())) for m, p in zip(element.matrix, element.permutation)}
            assert len(keys) == group.order(points)
    with pytest.raises(NotImplementedError, match="SO\\(2\\) is not finite"):
        SO2().enumerate_params()


def test_exhaustive_check_catches_what_one_random_element_misses() -> None:
    """With one random element per input, the reflections are missed for some seeds; exhaustively, never."""
    group = Dihedral(4)
    random_verdicts = [
        check_equivariance(signed_area, group, PLANAR, PLANAR.action, Invariant(), n_elements=1, seed=seed, **RANDOM_ONLY).verdict
        for seed in SEEDS
    ]
    assert Verdict.EXACT in random_verdicts and Verdict.VIOLATED in random_verdicts
    for seed in SEEDS:
        result = check_equivariance(
            signed_area, group, PLANAR, PLANAR.action, Invariant(), n_elements=1, exhaustive=True, seed=seed, **RANDOM_ONLY
        )
        assert result.verdict is Verdict.VIOLATED and result.exhaustive and result.n_elements == 8, str(result)
        assert "exhaustive: all 8 elements of D4" in result.message and "(exhaustive)" in str(result)
        assert result.to_record()["exhaustive"] is True


def test_exhaustive_is_automatic_when_the_group_is_no_larger_than_n_elements() -> None:
    exact = check_equivariance(signed_area, Cyclic(4), PLANAR, Points(dim=2), Invariant(), n_inputs=3, n_elements=4, search_examples=0)
    assert exact.verdict is Verdict.EXACT and exact.exhaustive and exact.n_elements == 3 * 4
    sampled = check_equivariance(signed_area, Cyclic(8), PLANAR, Points(dim=2), Invariant(), n_inputs=3, n_elements=4, search_examples=0)
    assert not sampled.exhaustive and sampled.n_elements == 3 * 4
    refused = check_equivariance(
        signed_area, Dihedral(4), PLANAR, Points(dim=2), Invariant(), n_elements=16, exhaustive=False, **RANDOM_ONLY
    )
    assert not refused.exhaustive and refused.n_elements == 16
    # S_n on triangles: 3! = 6 orderings; odd ones flip the signed area
    triangles = PointCloudInputs(dim=2, min_points=3, max_points=3)
    orderings = check_equivariance(signed_area, Symmetric(), triangles, Points(dim=2), Invariant(), n_inputs=2, search_examples=0)
    assert orderings.verdict is Verdict.VIOLATED and orderings.exhaustive and orderings.n_elements == 2 * 6


def test_exhaustive_refuses_infinite_groups_by_name() -> None:
    with pytest.raises(ValueError, match=r"exhaustive=True needs a finite group; SO\(2\) is not finite"):
        check_equivariance(signed_area, SO2(), PLANAR, Points(dim=2), Invariant(), exhaustive=True, **RANDOM_ONLY)
    with pytest.raises(ValueError, match="exhaustive must be None, True or False"):
        check_equivariance(signed_area, Cyclic(4), PLANAR, Points(dim=2), Invariant(), exhaustive="yes", **RANDOM_ONLY)
