"""LieConv's lifting groups: lifts, exp/log round trips, the invariant distance and its alpha weighting.

Every property is checked in float64 for each lifting group (T(2), T(3), SO(2), RxSO(2),
SE(2), SO(3), SE(3), trivial) to ``TIGHT`` (rounding of a few float64 operations); every
invariance has a negative control, a transformation outside the group, that must move the
quantity by more than ``MOVED``.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from eqbench.models.lieconv.groups import (
    NAMES,
    LiftingGroup,
    RxSO2Lift,
    SE2Lift,
    SE3Lift,
    SO2Lift,
    SO3Lift,
    TranslationLift,
    TrivialLift,
    lifting_group,
)
from eqbench.models.lieconv.groups.base import Lift, safe_norm
from eqbench.models.lieconv.groups.spatial import matrices

TIGHT = 1e-10
MOVED = 1e-3
DT = torch.float64


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planar_angles(shape: tuple[int, ...], g: torch.Generator, limit: float = 0.95 * math.pi) -> Tensor:
    """Angles in ``(-limit, limit)`` (inside the principal domain), with a few tiny ones for the series branches."""
    angles = (torch.rand(shape, generator=g, dtype=DT) * 2 - 1) * limit
    angles.view(-1)[:2] = torch.tensor([3e-5, -1e-9], dtype=DT)
    return angles


def axis_angles(count: int, g: torch.Generator) -> Tensor:
    """Axis-angle vectors with ``|w|`` in ``(0, 0.95 pi)``, a few tiny."""
    axes = torch.randn(count, 3, generator=g, dtype=DT)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    return axes * planar_angles((count, 1), g).abs()


@dataclass(frozen=True)
class Case:
    """A lifting group with Lie algebra samples in its principal domain and a transformation outside the group."""

    group: LiftingGroup
    algebra: Callable[[int, torch.Generator], Tensor]
    #: ``x -> x'`` by a map outside the group that moves the distances (the negative control)
    outside: Callable[[Tensor], Tensor]
    #: the group part ``D(alpha=1)`` and the orbit part ``D(alpha=0)`` of the distance from ``a = log(v^-1 u)``, ``q_u``, ``q_v``
    group_part: Callable[[Tensor, Tensor, Tensor], Tensor]
    orbit_part: Callable[[Tensor, Tensor, Tensor], Tensor]

    def __str__(self) -> str:
        return self.group.name


def shift(x: Tensor) -> Tensor:
    return x + torch.linspace(0.4, 0.9, x.shape[-1], dtype=DT)


def stretch(x: Tensor) -> Tensor:
    return x * 1.7


def zero(a: Tensor, q_u: Tensor, q_v: Tensor) -> Tensor:
    return torch.zeros(torch.broadcast_shapes(a.shape[:-1], q_u.shape[:-1], q_v.shape[:-1]), dtype=DT)


def norm_of(part: slice) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    return lambda a, q_u, q_v: a[..., part].norm(dim=-1).expand(zero(a, q_u, q_v).shape)


def gaussian(width: int) -> Callable[[int, torch.Generator], Tensor]:
    return lambda count, g: torch.randn(count, width, generator=g, dtype=DT)


CASES = [
    Case(TranslationLift(2), gaussian(2), stretch, norm_of(slice(None)), zero),
    Case(TranslationLift(3), gaussian(3), stretch, norm_of(slice(None)), zero),
    Case(SO2Lift(), lambda n, g: planar_angles((n, 1), g), shift, norm_of(slice(0, 1)),
         lambda a, q_u, q_v: ((q_u - q_v).abs() / (q_u + q_v + 1e-3))[..., 0]),
    Case(RxSO2Lift(), lambda n, g: torch.cat([torch.randn(n, 1, generator=g, dtype=DT), planar_angles((n, 1), g)], -1), shift,
         norm_of(slice(1, 2)), norm_of(slice(0, 1))),
    Case(SE2Lift(), lambda n, g: torch.cat([planar_angles((n, 1), g), torch.randn(n, 2, generator=g, dtype=DT)], -1), stretch,
         norm_of(slice(0, 1)), norm_of(slice(1, 3))),
    Case(SO3Lift(), axis_angles, shift, norm_of(slice(0, 3)), lambda a, q_u, q_v: (q_u - q_v).abs()[..., 0].expand(a.shape[:-1])),
    Case(SE3Lift(), lambda n, g: torch.cat([axis_angles(n, g), torch.randn(n, 3, generator=g, dtype=DT)], -1), stretch,
         norm_of(slice(0, 3)), norm_of(slice(3, 6))),
    Case(TrivialLift(2), gaussian(0), stretch, zero, lambda a, q_u, q_v: (q_u - q_v).norm(dim=-1)),
]
DETERMINISTIC = [c for c in CASES if not c.group.random_lift]
RANDOM = [c for c in CASES if c.group.random_lift]


def cloud(case: Case, batch: int = 2, points: int = 7, seed: int = 0) -> Tensor:
    return torch.randn(batch, points, case.group.space_dim, generator=seeded(seed), dtype=DT) * 2


def element(case: Case, batch: int, seed: int = 5) -> Tensor:
    """Random group elements ``(B, 1, element_dim)`` (through ``exp``), one per item."""
    return case.group.exp(case.algebra(batch, seeded(seed)))[:, None]


def lift(case: Case, x: Tensor, samples: int = 1, seed: int = 3) -> Lift:
    return case.group.lift(x, samples, seeded(seed))


# ------------------------------------------------------------------------ lifting
@pytest.mark.parametrize("case", CASES, ids=str)
def test_lifted_elements_stand_for_their_points(case):
    x = cloud(case)
    samples = 3 if case.group.random_lift else 1
    lifted = lift(case, x, samples)
    assert lifted.elements.shape == (2, 7 * samples, case.group.element_dim)
    assert lifted.orbits.shape == (2, 7 * samples, case.group.orbit_dim)
    back = case.group.point(lifted.elements, lifted.orbits)
    assert torch.allclose(back, x.repeat_interleave(samples, 1), rtol=0, atol=TIGHT)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_orbit_coordinates_are_invariant_and_the_lift_is_equivariant(case):
    """``q(g x) = q(x)``; ``lift(g x) = g lift(x)`` for deterministic lifts, ``g lift(x)`` a lift of ``g x`` otherwise."""
    x = cloud(case)
    g = element(case, 2)
    moved = case.group.act(g, x)
    lifted, lifted_moved = lift(case, x), lift(case, moved)
    assert torch.allclose(lifted_moved.orbits, lifted.orbits, rtol=0, atol=TIGHT)
    transported = case.group.compose(g, lifted.elements)
    assert torch.allclose(case.group.point(transported, lifted.orbits), moved, rtol=0, atol=TIGHT)
    if not case.group.random_lift:
        assert torch.allclose(lifted_moved.elements, transported, rtol=0, atol=TIGHT)


@pytest.mark.parametrize("case", [c for c in CASES if c.group.orbit_dim], ids=str)
def test_orbit_coordinates_move_outside_the_group(case):
    x = cloud(case)
    moved = lift(case, case.outside(x)).orbits
    assert (moved - lift(case, x).orbits).abs().max() > MOVED


@pytest.mark.parametrize("case", DETERMINISTIC, ids=str)
def test_deterministic_lifts_refuse_several_samples(case):
    with pytest.raises(ValueError, match="liftsamples must be 1"):
        case.group.lift(cloud(case), 2)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_lift_rejects_points_of_the_wrong_dimension(case):
    with pytest.raises(ValueError, match="lifts points of shape"):
        case.group.lift(torch.zeros(2, 5, case.group.space_dim + 1, dtype=DT))


@pytest.mark.parametrize("case", RANDOM, ids=str)
def test_random_lifts_are_seeded_and_cover_the_stabiliser(case):
    x = cloud(case)
    first, again, other = lift(case, x, 4, seed=1), lift(case, x, 4, seed=1), lift(case, x, 4, seed=2)
    assert torch.equal(first.elements, again.elements)
    assert (first.elements - other.elements).abs().max() > MOVED
    # the samples of one point are different elements of its coset (same point, different rotations)
    per_point = first.elements.view(2, 7, 4, -1)
    spread = (per_point[:, :, :, None] - per_point[:, :, None]).norm(dim=-1)
    assert spread[:, :, ~torch.eye(4, dtype=torch.bool)].min() > MOVED
    rotations = matrices(first.elements) if case.group.space_dim == 3 else None
    if rotations is not None:  # proper rotations
        eye = torch.eye(3, dtype=DT)
        assert torch.allclose(rotations @ rotations.transpose(-1, -2), eye.expand_as(rotations), atol=TIGHT)
        assert torch.allclose(torch.linalg.det(rotations), torch.ones(rotations.shape[:-2], dtype=DT), atol=TIGHT)


def test_se2_lift_samples_are_stratified_over_the_circle():
    """The ``s`` stabiliser samples of a point are ``phi_0 + 2 pi j / s``."""
    group = SE2Lift()
    lifted = group.lift(torch.randn(1, 5, 2, generator=seeded(), dtype=DT), 4, seeded(1))
    angles = torch.atan2(lifted.elements[..., 1], lifted.elements[..., 0]).view(5, 4)
    steps = torch.remainder(angles.diff(dim=-1), 2 * math.pi)
    assert torch.allclose(steps, torch.full_like(steps, math.pi / 2), atol=TIGHT)


@pytest.mark.parametrize("group", [SO2Lift(), RxSO2Lift()], ids=str)
def test_pairs_with_the_origin_have_angle_zero_in_every_quadrant(group):
    """The origin lifts to zero; ``atan2`` of signed zeros must not give ``pi`` for points in some quadrants."""
    x = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [-1.0, 2.0], [-1.0, -2.0], [1.0, -2.0], [-3.0, 0.0], [0.0, -3.0]]], dtype=DT)
    lifted = group.lift(x)
    angle = 0 if isinstance(group, SO2Lift) else 1
    to_origin = group.relative(lifted.elements[:, :, None], lifted.elements[:, None, :1])[..., angle]
    from_origin = group.relative(lifted.elements[:, None, :1], lifted.elements[:, :, None])[..., angle]
    assert torch.equal(to_origin.abs(), torch.zeros_like(to_origin)) and torch.equal(from_origin.abs(), torch.zeros_like(from_origin))
    quarter_turn = torch.stack([-x[..., 1], x[..., 0]], -1)  # exact in floating point
    assert torch.allclose(group.pair_distances(*[group.lift(quarter_turn)] * 2), group.pair_distances(lifted, lifted), rtol=0, atol=TIGHT)


def test_so3_lifts_the_origin_to_haar_random_rotations():
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 0.5]]], dtype=DT)
    lifted = SO3Lift().lift(x, 3, seeded(1))
    rotations = matrices(lifted.elements[0, :3])
    assert torch.allclose(rotations @ rotations.transpose(-1, -2), torch.eye(3, dtype=DT).expand(3, 3, 3), atol=TIGHT)
    first_columns = rotations[..., 0]  # not all e_1: the origin's lift is not confined to rotations about e_1
    assert (first_columns - torch.tensor([1.0, 0.0, 0.0], dtype=DT)).norm(dim=-1).min() > MOVED
    assert torch.equal(lifted.orbits[0, :3], torch.zeros(3, 1, dtype=DT))


# ------------------------------------------------------------------------ exp / log
@pytest.mark.parametrize("case", CASES, ids=str)
def test_log_inverts_exp_in_the_principal_domain(case):
    a = case.algebra(64, seeded(11))
    assert torch.allclose(case.group.log(case.group.exp(a)), a, rtol=0, atol=TIGHT)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_exp_inverts_log_on_lifted_elements(case):
    elements = lift(case, cloud(case, points=20), 2 if case.group.random_lift else 1).elements
    if isinstance(case.group, SO2Lift):  # the lift of SO(2) is the element itself: unit complex numbers
        assert torch.allclose(elements.norm(dim=-1), torch.ones(elements.shape[:-1], dtype=DT), atol=TIGHT)
    assert torch.allclose(case.group.exp(case.group.log(elements)), elements, rtol=0, atol=TIGHT)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_relative_is_the_log_of_v_inverse_u(case):
    """``v exp(log(v^-1 u)) = u`` for every pair of lifted points."""
    elements = lift(case, cloud(case), 2 if case.group.random_lift else 1).elements
    batch, count, width = elements.shape
    u, v = elements[:, :, None].expand(batch, count, count, width), elements[:, None].expand(batch, count, count, width)
    a = case.group.relative(u, v)
    assert a.shape == (batch, count, count, case.group.lie_dim)
    assert torch.allclose(case.group.compose(v, case.group.exp(a)), u, rtol=0, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_exp_is_a_homomorphism_on_one_parameter_subgroups(case):
    """``exp(s a) exp(t a) = exp((s + t) a)``: exp and compose agree (a check of compose and exp together)."""
    a = case.algebra(16, seeded(4)) * 0.4
    assert torch.allclose(case.group.compose(case.group.exp(a), case.group.exp(1.5 * a)), case.group.exp(2.5 * a), atol=TIGHT)


# ------------------------------------------------------------------------ distances
def distances(case: Case, x: Tensor, alpha: float | None = None, samples: int = 1, elements: Tensor | None = None) -> Tensor:
    group = copy.copy(case.group)
    if alpha is not None:
        group.alpha = alpha
    lifted = lift(case, x, samples)
    if elements is not None:
        lifted = Lift(elements, lifted.orbits)
    return group.pair_distances(lifted, lifted)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_distance_is_invariant_under_the_group(case):
    """``d(g u, g v) = d(u, v)`` (for random lifts: the lifts of ``x`` moved by ``g``)."""
    x = cloud(case)
    samples = 2 if case.group.random_lift else 1
    g = element(case, 2)
    before = distances(case, x, samples=samples)
    transported = case.group.compose(g, lift(case, x, samples).elements)
    after = distances(case, case.group.act(g, x), samples=samples, elements=None if not case.group.random_lift else transported)
    assert torch.allclose(after, before, rtol=0, atol=TIGHT * before.abs().max())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_distance_changes_under_a_transformation_outside_the_group(case):
    x = cloud(case)
    samples = 2 if case.group.random_lift else 1
    before = distances(case, x, samples=samples)
    after = distances(case, case.outside(x), samples=samples)
    assert (after - before).abs().max() > MOVED * before.abs().max()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_distance_weights_the_group_and_orbit_parts_by_alpha(case):
    """``d = alpha D_group + (1 - alpha) D_orbit`` with the documented parts, computed from ``log(v^-1 u)`` and ``q``.

    Also checks the groups' closed-form ``pair_distances`` against the generic ``distance(relative(u, v))``.
    """
    x = cloud(case)
    samples = 2 if case.group.random_lift else 1
    lifted = lift(case, x, samples)
    a = case.group.relative(lifted.elements[:, :, None], lifted.elements[:, None])
    q_u, q_v = lifted.orbits[:, :, None], lifted.orbits[:, None]
    group_part, orbit_part = case.group_part(a, q_u, q_v), case.orbit_part(a, q_u, q_v)
    for alpha in (0.0, 0.2, 0.7, 1.0):
        want = alpha * group_part + (1 - alpha) * orbit_part
        got = distances(case, x, alpha, samples)
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=0, atol=1e-9 * want.abs().max().clamp(min=1)), alpha
    assert group_part.abs().max() + orbit_part.abs().max() > MOVED


@pytest.mark.parametrize("case", CASES, ids=str)
def test_distance_is_symmetric_and_zero_on_the_diagonal(case):
    d = distances(case, cloud(case), samples=1)
    assert torch.allclose(d, d.transpose(1, 2), rtol=0, atol=1e-9)
    assert d.diagonal(dim1=1, dim2=2).abs().max() <= 1e-7  # sqrt of rounding (chordal SO(3) form)
    assert bool((d >= 0).all())


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_alpha_outside_the_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="alpha must be in"):
        SO2Lift(alpha=bad)


# ------------------------------------------------------------------------ kernel features
@pytest.mark.parametrize("group", [SO2Lift(), RxSO2Lift(), SE2Lift()], ids=str)
def test_kernel_features_are_continuous_across_the_angle_cut(group):
    """Relative angles just below ``pi`` and just above ``-pi`` are the same element: equal weight-net inputs."""
    a = torch.zeros(2, group.lie_dim, dtype=DT)
    angle = 0 if isinstance(group, SO2Lift | SE2Lift) else 1
    a[0, angle], a[1, angle] = math.pi - 1e-9, -math.pi + 1e-9
    features = group.kernel_features(a)
    assert features.shape[-1] == group.kernel_dim
    assert torch.allclose(features[0], features[1], atol=1e-8)
    assert group.pair_dim == group.kernel_dim + 2 * group.orbit_dim


# ------------------------------------------------------------------------ construction
def test_lifting_group_builds_every_named_group():
    built = [lifting_group(name, alpha=0.3) for name in NAMES]
    assert [type(g) for g in built] == [TranslationLift, TranslationLift, SO2Lift, RxSO2Lift, SE2Lift, SO3Lift, SE3Lift, TrivialLift, TrivialLift]
    assert all(g.alpha == 0.3 for g in built)
    assert lifting_group("SE(3)").space_dim == 3 and lifting_group("trivial3").space_dim == 3
    with pytest.raises(ValueError, match="unknown lifting group"):
        lifting_group("SO(4)")


def test_safe_norm_has_zero_gradient_at_zero():
    x = torch.zeros(3, 2, dtype=DT, requires_grad=True)
    safe_norm(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
