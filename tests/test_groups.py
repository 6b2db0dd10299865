"""The group library: parameters, group axioms, closure, determinism, strategies, finite groups, names."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import find, strategies as st

from eqbench.groups import (
    E2,
    E3,
    O2,
    O3,
    SE2,
    SE3,
    SO2,
    SO3,
    Cyclic,
    Dihedral,
    DirectProduct,
    Element,
    Group,
    ScaleRotation,
    Symmetric,
    Translations,
    Trivial,
    group_from_name,
)
from eqbench.groups.permutations import transposition
from eqbench.groups.rotations2d import rotation_matrix

N_POINTS = 5
BATCH = 16
ATOL = 1e-10

GROUPS: list[Group] = [
    SO2(), O2(), SE2(), E2(), SO3(), O3(), SE3(), E3(), Translations(2), Translations(3, sigma=2.5), ScaleRotation(),
    ScaleRotation(max_scale=3.0), Symmetric(), Symmetric(N_POINTS), Cyclic(4), Cyclic(6), Dihedral(4), Dihedral(3),
    Trivial(), SE3() * Symmetric(), DirectProduct(SO3(), Translations(3), Symmetric()), Dihedral(4) * Symmetric(),
]
FINITE: list[Group] = [Cyclic(1), Cyclic(4), Cyclic(6), Dihedral(3), Dihedral(4), Symmetric(3), Symmetric(), Trivial(), Dihedral(4) * Symmetric(3)]


def ids(groups: list[Group]) -> list[str]:
    return [f"{g.name}-{i}" for i, g in enumerate(groups)]


def sample(group: Group, n: int = BATCH, seed: int = 0) -> Element:
    return group.sample(n, torch.Generator().manual_seed(seed), N_POINTS)


def assert_same(a: Element, b: Element, atol: float = ATOL) -> None:
    """Equal as group elements: the affine parts to ``atol``, permutations exactly (absent part = identity)."""
    for x, y in ((a, b), (b, a)):
        if x.matrix is not None or x.translation is not None:
            d = x.space_dim
            n = max(a.batch_size, b.batch_size)
            lin_x, lin_y = x.linear(d).expand(n, d, d), y.linear(d).expand(n, d, d)
            torch.testing.assert_close(lin_x, lin_y, atol=atol, rtol=0)
            zero = torch.zeros(n, d, dtype=torch.float64)
            tx = zero if x.translation is None else x.translation
            ty = zero if y.translation is None else y.translation
            torch.testing.assert_close(tx.expand(n, d), ty.expand(n, d), atol=atol, rtol=0)
        if x.permutation is not None:
            assert y.permutation is not None
            assert torch.equal(x.permutation.expand_as(y.permutation), y.permutation)


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("group", GROUPS, ids=ids(GROUPS))
def test_sample_params_have_a_leading_batch_axis_and_float64_floats(group: Group) -> None:
    params = group.sample_params(7, torch.Generator().manual_seed(1), N_POINTS)
    for key, value in params.items():
        assert value.shape[0] == 7, key
        assert value.dtype in (torch.float64, torch.int64), (key, value.dtype)
    g = group.element(params)
    for part in (g.matrix, g.translation):
        assert part is None or part.dtype == torch.float64
    assert g.permutation is None or g.permutation.dtype == torch.long
    if group.name != "trivial":
        assert g.batch_size == 7
    assert repr(group) == group.name


@pytest.mark.parametrize("group", GROUPS, ids=ids(GROUPS))
def test_identity_has_the_same_parts_as_the_elements(group: Group) -> None:
    g, e = sample(group, 3), group.identity(3, N_POINTS)
    for part in ("matrix", "translation", "permutation"):
        assert (getattr(g, part) is None) == (getattr(e, part) is None), part
    assert_same(Element.cat([e, g]).index(slice(3, 6)), g)


# ------------------------------------------------------------------ group axioms
@pytest.mark.parametrize("group", GROUPS, ids=ids(GROUPS))
def test_group_axioms_on_samples(group: Group) -> None:
    a, b, c = sample(group, seed=1), sample(group, seed=2), sample(group, seed=3)
    e = group.identity(BATCH, N_POINTS)
    assert_same((a * b) * c, a * (b * c))
    assert_same(a * e, a)
    assert_same(e * a, a)
    assert_same(a * a.inverse(), e)
    assert_same(a.inverse() * a, e)
    assert_same(group.compose(a, group.inverse(a)), e)


def test_assert_same_catches_different_elements() -> None:
    """Negative control for the axiom tests: distinct elements are told apart."""
    for group in (SO3(), SE3(), Symmetric(), Translations(2)):
        a, b = sample(group, seed=1), sample(group, seed=2)
        with pytest.raises(AssertionError):
            assert_same(a, b)


ROTATIONS = [SO2(), SE2(), SO3(), SE3(), Cyclic(4), Cyclic(5)]
ORTHOGONAL = [O2(), E2(), O3(), E3(), Dihedral(4), Dihedral(5)] + ROTATIONS


@pytest.mark.parametrize("group", ORTHOGONAL, ids=ids(ORTHOGONAL))
def test_orthogonal_groups_are_closed(group: Group) -> None:
    g = sample(group, 64) * sample(group, 64, seed=5)
    m = g.matrix
    eye = torch.eye(group.space_dim, dtype=torch.float64).expand_as(m)
    torch.testing.assert_close(m.transpose(1, 2) @ m, eye, atol=ATOL, rtol=0)
    det = torch.linalg.det(m)
    torch.testing.assert_close(det.abs(), torch.ones_like(det), atol=ATOL, rtol=0)
    if group in ROTATIONS:
        torch.testing.assert_close(det, torch.ones_like(det), atol=ATOL, rtol=0)
    else:
        assert (det < 0).any() and (det > 0).any()


def test_scale_rotations_are_scaled_rotations_within_the_stated_range() -> None:
    group = ScaleRotation(max_scale=3.0)
    params = group.sample_params(256, torch.Generator().manual_seed(0))
    m = group.element(params).matrix
    scale = torch.exp(params["log_scale"])
    assert scale.min() >= 1 / 3 and scale.max() <= 3
    torch.testing.assert_close(m, scale[:, None, None] * rotation_matrix(params["angle"]), atol=ATOL, rtol=0)
    gram = m.transpose(1, 2) @ m
    torch.testing.assert_close(gram, scale[:, None, None] ** 2 * torch.eye(2, dtype=torch.float64), atol=ATOL, rtol=0)


def test_o2_is_a_rotation_times_the_reflection_power() -> None:
    group = O2()
    params = group.sample_params(32, torch.Generator().manual_seed(0))
    flip = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    expected = torch.stack([rotation_matrix(a[None])[0] @ (flip if r else torch.eye(2, dtype=torch.float64)) for a, r in zip(params["angle"], params["reflect"])])
    torch.testing.assert_close(group.element(params).matrix, expected, atol=ATOL, rtol=0)


def test_o3_is_so3_times_the_inversion() -> None:
    params = O3().sample_params(32, torch.Generator().manual_seed(0))
    rotations = SO3().element({"quaternion": params["quaternion"]}).matrix
    sign = torch.where(params["reflect"] == 1, -1.0, 1.0).to(torch.float64)
    torch.testing.assert_close(O3().element(params).matrix, sign[:, None, None] * rotations, atol=0, rtol=0)


def test_quaternions_map_to_the_expected_rotations() -> None:
    t = 0.7
    q = torch.tensor([[math.cos(t / 2), 0.0, 0.0, math.sin(t / 2)], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    m = SO3().element({"quaternion": q}).matrix
    rz = torch.eye(3, dtype=torch.float64)
    rz[:2, :2] = rotation_matrix(torch.tensor([t], dtype=torch.float64))[0]
    torch.testing.assert_close(m[0], rz, atol=ATOL, rtol=0)
    torch.testing.assert_close(m[1], torch.eye(3, dtype=torch.float64), atol=0, rtol=0)
    torch.testing.assert_close(SO3().element({"quaternion": -3 * q}).matrix, m, atol=ATOL, rtol=0)


def test_permutations_are_permutations() -> None:
    p = sample(Symmetric(), 64).permutation
    assert torch.equal(p.sort(dim=1).values, torch.arange(N_POINTS).expand(64, -1))


# ------------------------------------------------------------------ determinism
@pytest.mark.parametrize("group", [g for g in GROUPS if g.name != "trivial"], ids=ids([g for g in GROUPS if g.name != "trivial"]))
def test_sampling_is_determined_by_the_seed(group: Group) -> None:
    def draw(seed: int) -> dict[str, torch.Tensor]:
        return group.sample_params(BATCH, torch.Generator().manual_seed(seed), N_POINTS)

    first, again, other = draw(7), draw(7), draw(8)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


# ------------------------------------------------------------------ hypothesis strategies
@pytest.mark.parametrize("group", GROUPS, ids=ids(GROUPS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_params_strategy_matches_sample_params(group: Group, data: st.DataObject) -> None:
    drawn = data.draw(group.params_strategy(N_POINTS))
    sampled = group.sample_params(2, torch.Generator().manual_seed(0), N_POINTS)
    assert drawn.keys() == sampled.keys()
    for key in sampled:
        assert drawn[key].shape == (1, *sampled[key].shape[1:]), key
        assert drawn[key].dtype == sampled[key].dtype, key
    g = group.element(drawn)
    assert_same(g * g.inverse(), group.identity(1, N_POINTS))
    if g.matrix is not None and group.compact:
        m = g.matrix[0]
        torch.testing.assert_close(m.T @ m, torch.eye(m.shape[0], dtype=torch.float64), atol=ATOL, rtol=0)


ONE_PER_FAMILY = [SO2(), O2(), SO3(), E3(), Translations(3), ScaleRotation(), Symmetric(), Dihedral(4), SE3() * Symmetric()]


@pytest.mark.parametrize("group", ONE_PER_FAMILY, ids=ids(ONE_PER_FAMILY))
def test_params_strategy_shrinks_to_the_identity(group: Group) -> None:
    simplest = find(group.params_strategy(N_POINTS), lambda params: True, settings=settings(database=None, max_examples=1))
    assert_same(group.element(simplest), group.identity(1, N_POINTS), atol=0)


@pytest.mark.parametrize("size", [2, 3, 7, 32])
def test_transposition_indices_name_every_pair_once(size: int) -> None:
    pairs = [transposition(t) for t in range(1, size * (size - 1) // 2 + 1)]
    assert pairs[0] == (0, 1)
    assert pairs == [(i, j) for j in range(size) for i in range(j)]


def test_permutation_strategy_shrinks_a_reordering_to_one_swap_of_the_first_points() -> None:
    identity = torch.arange(N_POINTS)[None]
    simplest = find(
        Symmetric().params_strategy(N_POINTS),
        lambda params: not torch.equal(params["permutation"], identity),
        settings=settings(database=None, max_examples=200),
    )
    assert simplest["permutation"][0, :3].tolist() == [1, 0, 2]
    assert torch.equal(simplest["permutation"][0, 2:], identity[0, 2:])


def test_quaternion_strategy_yields_unit_quaternions() -> None:
    @settings(max_examples=30, deadline=None)
    @given(SO3().params_strategy())
    def check(params: dict[str, torch.Tensor]) -> None:
        assert abs(float(params["quaternion"].norm()) - 1) < 1e-12

    check()


# ------------------------------------------------------------------ finite groups
def element_keys(g: Element) -> list[tuple]:
    """Hashable identities of a batch of elements (matrices rounded at 1e-9)."""
    keys = []
    for i in range(g.batch_size):
        item = g.index(i)
        matrix = () if item.matrix is None else tuple(torch.round(item.matrix.flatten() * 1e9).long().tolist())
        perm = () if item.permutation is None else tuple(item.permutation.flatten().tolist())
        keys.append((matrix, perm))
    return keys


@pytest.mark.parametrize("group", FINITE, ids=ids(FINITE))
def test_finite_groups_enumerate_distinct_elements_closed_under_composition(group: Group) -> None:
    points = 3
    order = group.order(points)
    everything = group.elements(points)
    keys = element_keys(everything)
    assert group.is_finite or group.permutes_points
    if group.name == "trivial":
        assert order == 1 and keys == [((), ())]
        return
    assert len(keys) == order == len(set(keys))
    n = everything.batch_size
    products = everything.repeat_interleave(n) * everything.repeat(n)
    assert set(element_keys(products)) == set(keys)
    assert element_keys(group.identity(1, points))[0] in set(keys)
    assert set(element_keys(everything.inverse())) == set(keys)
    assert set(element_keys(group.sample(64, torch.Generator().manual_seed(0), points))) <= set(keys)


def test_orders() -> None:
    assert Symmetric().order() is None and Symmetric().order(5) == 120 and Symmetric(4).order() == 24
    assert Cyclic(7).order() == 7 and Dihedral(7).order() == 14 and Trivial().order() == 1
    assert (Dihedral(4) * Symmetric()).order(3) == 48
    assert SO3().order() is None and not SO3().is_finite and (SE3() * Symmetric()).order(4) is None


@pytest.mark.parametrize("group", [Cyclic(4), Dihedral(4), Cyclic(2), Dihedral(2)], ids=["C4", "D4", "C2", "D2"])
def test_right_angle_groups_have_exact_integer_matrices(group: Group) -> None:
    m = group.elements().matrix
    assert torch.equal(m, torch.round(m)) and set(m.unique().tolist()) <= {-1.0, 0.0, 1.0}
    turn = Cyclic(4).element({"k": torch.tensor([1])})
    assert torch.equal((turn * turn * turn * turn).matrix, torch.eye(2, dtype=torch.float64)[None])
    products = m.repeat_interleave(len(m), 0) @ m.repeat(len(m), 1, 1)
    assert torch.equal(products, torch.round(products))


def test_cyclic_rotates_by_multiples_of_the_angle() -> None:
    k = torch.arange(6)
    torch.testing.assert_close(Cyclic(6).element({"k": k}).matrix, rotation_matrix(2 * math.pi * k.double() / 6), atol=1e-15, rtol=0)


def test_symmetric_needs_the_number_of_points() -> None:
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="S_n.*num_points"):
        Symmetric().sample_params(2, generator)
    with pytest.raises(ValueError, match="S_n.*num_points"):
        (SE3() * Symmetric()).params_strategy()
    with pytest.raises(ValueError, match="S_4 acts on 4 points but the data has 5"):
        Symmetric(4).sample_params(2, generator, 5)
    with pytest.raises(ValueError, match="5040"):
        Symmetric(8).elements()
    assert Symmetric(4).sample_params(2, generator)["permutation"].shape == (2, 4)
    with pytest.raises(ValueError, match="n >= 1"):
        Cyclic(0)


def test_trivial_group_acts_through_no_part() -> None:
    g = Trivial().sample(5, torch.Generator().manual_seed(0))
    assert g.matrix is None and g.translation is None and g.permutation is None
    assert Trivial().space_dim is None and not Trivial().is_lie
    with pytest.raises(ValueError, match="no parameters"):
        Trivial().element({"angle": torch.zeros(1)})


# ------------------------------------------------------------------ products
def test_direct_product_prefixes_params_and_merges_elements() -> None:
    group = SE3() * Symmetric()
    assert group == DirectProduct(SE3(), Symmetric()) and group.name == "SE(3)xS_n"
    assert group.permutes_points and group.space_dim == 3 and not group.compact
    params = group.sample_params(4, torch.Generator().manual_seed(0), N_POINTS)
    assert sorted(params) == ["0.quaternion", "0.translation", "1.permutation"]
    g = group.element(params)
    se3 = SE3().element({"quaternion": params["0.quaternion"], "translation": params["0.translation"]})
    assert_same(g, Element.merge([se3, Element(permutation=params["1.permutation"])]))
    nested = DirectProduct(SO3() * Translations(3), Symmetric())
    assert len(nested.factors) == 3 and nested.name == "SO(3)xT(3)xS_n"


def test_direct_product_refuses_factors_acting_on_the_same_part() -> None:
    with pytest.raises(ValueError, match="SO\\(3\\) and SE\\(3\\) both act through the matrix part"):
        SO3() * SE3()
    with pytest.raises(ValueError, match="different dimension"):
        SO2() * Translations(3)
    with pytest.raises(ValueError, match="at least two"):
        DirectProduct(SO3())
    with pytest.raises(ValueError, match="'0.angle'|factor index"):
        (SO2() * Symmetric()).element({"angle": torch.zeros(1), "1.permutation": torch.zeros(1, 2, dtype=torch.long)})


# ------------------------------------------------------------------ equality and names
def test_groups_compare_by_class_and_parameters() -> None:
    assert SO3() == SO3() and hash(SO3()) == hash(SO3()) and SO3() != O3()
    assert Translations(3) != Translations(3, sigma=2.0) and Cyclic(4) != Cyclic(6) and Cyclic(4) != Dihedral(4)
    assert SE3() * Symmetric() != SE3() * Symmetric(4)
    assert len({SO2(), SO2(), Cyclic(4), Cyclic(4), SE3() * Symmetric(), SE3() * Symmetric()}) == 3


LIBRARY = [SO2(), O2(), SE2(), E2(), SO3(), O3(), SE3(), E3(), Translations(2), Translations(3), ScaleRotation(),
           Symmetric(), Symmetric(6), Cyclic(4), Dihedral(8), Trivial(), SE3() * Symmetric(), ScaleRotation() * Symmetric()]


@pytest.mark.parametrize("group", LIBRARY, ids=ids(LIBRARY))
def test_names_round_trip(group: Group) -> None:
    assert group_from_name(group.name) == group


@pytest.mark.parametrize(
    "name, expected",
    [
        ("SO2", SO2()), ("SO(2)", SO2()), ("so3", SO3()), ("O3", O3()), ("SE3", SE3()), ("E3", E3()), ("E(2)", E2()),
        ("T3", Translations(3)), ("T(2)", Translations(2)), ("RxSO2", ScaleRotation()), ("Sn", Symmetric()),
        ("S_n", Symmetric()), ("S5", Symmetric(5)), ("C4", Cyclic(4)), ("D4", Dihedral(4)), ("trivial", Trivial()),
        ("SE3xSn", SE3() * Symmetric()), ("SE(3) x S_n", SE3() * Symmetric()), ("SO(3) × T(3) × S_n", SO3() * Translations(3) * Symmetric()),
        ("RxSO2xSn", ScaleRotation() * Symmetric()),
    ],
)
def test_names_parse(name: str, expected: Group) -> None:
    assert group_from_name(name) == expected


@pytest.mark.parametrize("name", ["SU2", "SO(4)", "", "SE3xFoo", "x", "Lorentz"])
def test_unknown_names_are_rejected_with_the_known_ones(name: str) -> None:
    with pytest.raises(ValueError, match="known groups: SO2, O2"):
        group_from_name(name)
