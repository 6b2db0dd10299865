"""Actions: identity, composition law, the formulas per field, permutation bookkeeping, images, validation, e3nn."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench.actions import (
    Action,
    DataError,
    Dict,
    EdgeIndex,
    GridImage,
    Invariant,
    Irreps,
    Mask,
    Points,
    Scalars,
    Tensors,
    Tuple,
    Vectors,
)
from eqbench.groups import E3, O2, O3, SE2, SE3, SO2, Cyclic, Dihedral, ScaleRotation, Symmetric, Translations, Trivial
from eqbench.groups.element import Element

B, N, D = 4, 6, 3


# ----------------------------------------------------------------------------- helpers
def random_orthogonal(batch: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(batch, dim, dim, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)


def random_element(gen: torch.Generator, batch: int = B, dim: int = D, num_points: int = N) -> Element:
    """O(d) matrices (both parities), N(0, 1) translations and uniform permutations."""
    matrix = random_orthogonal(batch, dim, gen)
    matrix[: batch // 2, :, 0] *= -1  # make sure both determinants occur
    translation = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    permutation = torch.stack([torch.randperm(num_points, generator=gen) for _ in range(batch)])
    return Element(matrix, translation, permutation)


def identity(batch: int = B, dim: int = D, num_points: int = N) -> Element:
    return Element(
        torch.eye(dim, dtype=torch.float64).expand(batch, dim, dim).clone(),
        torch.zeros(batch, dim, dtype=torch.float64),
        torch.arange(num_points).expand(batch, num_points).clone(),
    )


def edge_list(gen: torch.Generator, batch: int = B, num_points: int = N, num_edges: int = 10) -> torch.Tensor:
    return torch.randint(num_points, (batch, 2, num_edges), generator=gen)


def example_values(gen: torch.Generator, dim: int = D, batch: int = B) -> list[tuple[Action, object]]:
    """One value per action on R^dim, with channel axes where the action allows them (e3nn irreps in 3D only)."""
    rand = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    cases: list[tuple[Action, object]] = [
        (Scalars(), rand(batch, N, 2)),
        (Invariant(), rand(batch, 5)),
        (Vectors(), rand(batch, N, 2, dim)),
        (Vectors(per_point=False), rand(batch, dim)),
        (Vectors(pseudo=True), rand(batch, N, dim)),
        (Points(), rand(batch, N, dim)),
        (Points(per_point=False), rand(batch, 3, dim)),
        (Tensors(), rand(batch, N, dim, dim)),
        (Tensors(rank=3, per_point=False), rand(batch, dim, dim, dim)),
        (Mask(), torch.rand(batch, N, generator=gen) > 0.3),
        (EdgeIndex(), edge_list(gen, batch)),
        (
            Dict(pos=Points(), feat=Tuple(Scalars(), Vectors()), edges=EdgeIndex(), mask=Mask()),
            {
                "pos": rand(batch, N, dim),
                "feat": (rand(batch, N, 1), rand(batch, N, dim)),
                "edges": edge_list(gen, batch),
                "mask": torch.rand(batch, N, generator=gen) > 0.5,
            },
        ),
    ]
    if dim == 3:
        cases.append((Irreps("2x0e+1x1o+1x1e+1x2e"), rand(batch, N, 13)))
    return cases


def assert_same(action: Action, a: object, b: object, atol: float = 1e-10) -> None:
    for left, right in zip(action.leaves(a), action.leaves(b), strict=True):
        assert left.name == right.name
        if left.tensor.is_floating_point():
            torch.testing.assert_close(left.tensor, right.tensor, atol=atol, rtol=0)
        else:
            assert torch.equal(left.tensor, right.tensor), left.name


def composition_error(action: Action, a: Element, b: Element, x: object) -> float:
    direct = action.leaves(action.apply(a * b, x))
    stepwise = action.leaves(action.apply(a, action.apply(b, x)))
    return max(float((l.tensor.double() - r.tensor.double()).abs().max()) for l, r in zip(direct, stepwise))


CASES = example_values(torch.Generator().manual_seed(0))
IDS = [repr(action) for action, _ in CASES]


# ------------------------------------------------------------------- group action laws
@pytest.mark.parametrize(("action", "x"), CASES, ids=IDS)
def test_identity_acts_trivially(action: Action, x: object) -> None:
    action.validate(x)
    assert_same(action, action.apply(identity(), x), x, atol=1e-12)
    assert_same(action, action.apply(Element(), x), x, atol=0)  # the part-less element


@pytest.mark.parametrize(("action", "x"), CASES, ids=IDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_composition_law(action: Action, x: object, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a, b = random_element(gen), random_element(gen)
    assert composition_error(action, a, b, x) <= 1e-10
    out = action.apply(a, x)
    action.validate(out, "output")  # shapes and dtypes are preserved
    assert [leaf.tensor.dtype for leaf in action.leaves(out)] == [leaf.tensor.dtype for leaf in action.leaves(x)]


SAMPLED_GROUPS = [E3() * Symmetric(), SE3() * Symmetric(), O3(), Translations(3), Trivial(), SE2() * Symmetric(), O2(), ScaleRotation()]


@pytest.mark.parametrize("group", SAMPLED_GROUPS, ids=repr)
def test_composition_law_with_haar_sampled_elements(group) -> None:
    gen = torch.Generator().manual_seed(20)
    dim = group.space_dim or D
    a, b = (group.sample(B, gen, num_points=N) for _ in range(2))
    for action, x in example_values(gen, dim):
        assert composition_error(action, a, b, x) <= 1e-10, action
        assert_same(action, action.apply(group.identity(B, num_points=N), x), x, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_composition_law_with_hypothesis_drawn_elements(data: st.DataObject) -> None:
    group = E3() * Symmetric()
    a, b = (group.element(data.draw(group.params_strategy(num_points=N))) for _ in range(2))
    for action, x in example_values(torch.Generator().manual_seed(21), batch=1):
        assert composition_error(action, a, b, x) <= 1e-10, action


class TransposedVectors(Vectors):
    """Negative control: ``v -> M^T v`` is an anti-homomorphism, not an action."""

    def transform(self, g: Element, x: torch.Tensor) -> torch.Tensor:
        return super().transform(g.with_parts(matrix=g.matrix.transpose(1, 2)), x)


class ForwardRelabelledEdges(EdgeIndex):
    """Negative control: relabels nodes by ``p`` instead of ``argsort(p)``."""

    def apply(self, g: Element, x: torch.Tensor) -> torch.Tensor:
        return torch.gather(g.permutation, 1, x.reshape(x.shape[0], -1)).reshape(x.shape)


def test_composition_law_catches_a_non_action() -> None:
    gen = torch.Generator().manual_seed(5)
    a, b = random_element(gen), random_element(gen)
    x = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    assert composition_error(TransposedVectors(), a, b, x) > 1e-2


def test_math_runs_in_the_dtype_of_the_data() -> None:
    gen = torch.Generator().manual_seed(6)
    g = random_element(gen)
    x = torch.randn(B, N, D, generator=gen)
    out = Points().apply(g, x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), Points().apply(g, x.double()), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ formulas per field
def test_points_and_vectors_differ_exactly_by_the_translation() -> None:
    gen = torch.Generator().manual_seed(7)
    g = random_element(gen)
    x = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    difference = Points().apply(g, x) - Vectors().apply(g, x)
    torch.testing.assert_close(difference, g.translation[:, None, :].expand(B, N, D), atol=1e-12, rtol=0)
    # the difference of two points is a vector
    y = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(Points().apply(g, x) - Points().apply(g, y), Vectors().apply(g, x - y), atol=1e-12, rtol=0)


def test_vectors_follow_the_matrix_then_the_permutation() -> None:
    gen = torch.Generator().manual_seed(8)
    g = random_element(gen)
    v = torch.randn(B, N, D, generator=gen, dtype=torch.float64)
    expected = torch.stack([(v[b] @ g.matrix[b].T)[g.permutation[b]] for b in range(B)])
    torch.testing.assert_close(Vectors().apply(g, v), expected, atol=1e-12, rtol=0)
    # global vectors ignore the permutation
    torch.testing.assert_close(Vectors(per_point=False).apply(g, v[:, 0]), torch.einsum("bij,bj->bi", g.matrix, v[:, 0]), atol=1e-12, rtol=0)


def test_pseudo_vectors_flip_under_reflections_like_cross_products() -> None:
    gen = torch.Generator().manual_seed(9)
    g = random_element(gen)
    det = torch.linalg.det(g.matrix)
    assert (det < 0).any() and (det > 0).any()
    u, v = (torch.randn(B, N, D, generator=gen, dtype=torch.float64) for _ in range(2))
    pseudo, ordinary = Vectors(pseudo=True).apply(g, u), Vectors().apply(g, u)
    torch.testing.assert_close(pseudo, det[:, None, None] * ordinary, atol=1e-12, rtol=0)
    # u x v is a pseudo-vector: (Mu) x (Mv) = det(M) M (u x v)
    cross_of_moved = torch.linalg.cross(Vectors().apply(g, u), Vectors().apply(g, v))
    torch.testing.assert_close(cross_of_moved, Vectors(pseudo=True).apply(g, torch.linalg.cross(u, v)), atol=1e-12, rtol=0)
    assert (cross_of_moved - Vectors().apply(g, torch.linalg.cross(u, v))).abs().max() > 1e-3  # ordinary vectors: wrong


def test_tensors_transform_as_m_t_m_transpose() -> None:
    gen = torch.Generator().manual_seed(10)
    g = random_element(gen)
    t = torch.randn(B, N, D, D, generator=gen, dtype=torch.float64)
    m = g.matrix[:, None]
    expected = torch.stack([(m[b] @ t[b] @ m[b].transpose(-1, -2))[g.permutation[b]] for b in range(B)])
    torch.testing.assert_close(Tensors().apply(g, t), expected, atol=1e-12, rtol=0)
    # the outer product of two vectors is a rank-2 tensor; of three, a rank-3 tensor
    u, v, w = (torch.randn(B, D, generator=gen, dtype=torch.float64) for _ in range(3))
    gu, gv, gw = (Vectors(per_point=False).apply(g, z) for z in (u, v, w))
    outer = torch.einsum("bi,bj->bij", u, v)
    torch.testing.assert_close(Tensors(per_point=False).apply(g, outer), torch.einsum("bi,bj->bij", gu, gv), atol=1e-12, rtol=0)
    triple = torch.einsum("bi,bj,bk->bijk", u, v, w)
    torch.testing.assert_close(
        Tensors(per_point=False, rank=3).apply(g, triple), torch.einsum("bi,bj,bk->bijk", gu, gv, gw), atol=1e-12, rtol=0
    )


def test_scalars_and_masks_only_follow_the_permutation() -> None:
    gen = torch.Generator().manual_seed(11)
    g = random_element(gen)
    s = torch.randn(B, N, 3, generator=gen, dtype=torch.float64)
    mask = torch.rand(B, N, generator=gen) > 0.5
    for action, value in ((Scalars(), s), (Mask(), mask)):
        expected = torch.stack([value[b][g.permutation[b]] for b in range(B)])
        assert torch.equal(action.apply(g, value), expected)
    assert Invariant().apply(g, s) is s
    assert Scalars().apply(g.with_parts(permutation=None), s) is s


def message_passing(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """``y_i = sum_{(i, k) in E} |x_i - x_k|^2 x_k``: a permutation-equivariant layer given the edges."""
    receivers, senders = edges[:, 0], edges[:, 1]
    gather = lambda idx: torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # noqa: E731
    xi, xk = gather(receivers), gather(senders)
    messages = ((xi - xk) ** 2).sum(-1, keepdim=True) * xk
    return torch.zeros_like(x).scatter_add(1, receivers.unsqueeze(-1).expand_as(messages), messages)


@pytest.mark.parametrize(("edge_action", "consistent"), [(EdgeIndex(), True), (ForwardRelabelledEdges(), False)])
def test_edge_relabelling_commutes_with_message_passing(edge_action: EdgeIndex, consistent: bool) -> None:
    gen = torch.Generator().manual_seed(12)
    g = random_element(gen).with_parts(translation=None)
    value_action = Dict(x=Points(), edges=edge_action)
    value = {"x": torch.randn(B, N, D, generator=gen, dtype=torch.float64), "edges": edge_list(gen, num_edges=20)}
    moved = value_action.apply(g, value)
    error = message_passing(moved["x"], moved["edges"]) - Points().apply(g, message_passing(**value))
    assert (float(error.abs().max()) < 1e-10) == consistent
    if consistent:  # the edge order is kept: edge e joins the images of the old endpoints
        for b in range(B):
            old_to_new = torch.argsort(g.permutation[b])
            assert torch.equal(moved["edges"][b], old_to_new[value["edges"][b]])


# ----------------------------------------------------------------------- composites
def test_composite_leaves_names_masks_and_casts() -> None:
    gen = torch.Generator().manual_seed(13)
    action = Dict(inputs=Tuple(Points(), Scalars()), edges=EdgeIndex(), mask=Mask())
    mask = torch.rand(B, N, generator=gen) > 0.5
    value = {
        "inputs": (torch.randn(B, N, D, generator=gen, dtype=torch.float64), torch.randn(B, N, generator=gen, dtype=torch.float64)),
        "edges": edge_list(gen),
        "mask": mask,
    }
    leaves = action.leaves(value)
    assert [leaf.name for leaf in leaves] == ["inputs.0", "inputs.1", "edges", "mask"]
    assert [leaf.per_point for leaf in leaves] == [True, True, False, True]
    assert [leaf.comparable for leaf in leaves] == [True, True, False, False]
    assert action.point_mask(value) is mask
    assert Tuple(Points(), Scalars()).point_mask(value["inputs"]) is None
    assert action.num_points(value) == N and action.batch_size(value) == B
    cast = action.cast(value, torch.float32)
    assert cast["inputs"][0].dtype == torch.float32 and cast["edges"].dtype == torch.long and cast["mask"].dtype == torch.bool
    indexed = action.index(value, slice(1, 3))
    assert action.batch_size(indexed) == 2 and isinstance(indexed["inputs"], tuple)
    assert Points().leaves(value["inputs"][0])[0].name == ""


def test_reprs_are_short_and_readable() -> None:
    assert repr(Points()) == "Points()"
    assert repr(Vectors(per_point=False, pseudo=True)) == "Vectors(per_point=False, pseudo=True)"
    assert repr(Invariant()) == "Invariant()"
    assert repr(Tensors(rank=3)) == "Tensors(rank=3)"
    assert repr(Dict(pos=Points(), mask=Mask())) == "Dict(pos=Points(), mask=Mask())"
    assert repr(Tuple(Points(), GridImage(channels=1))) == "Tuple(Points(), GridImage(channels=1))"
    assert repr(Irreps("8x0e+8x1o")) == "Irreps('8x0e+8x1o')"
    assert Dict(pos=Points()) == Dict(pos=Points()) and Tuple(Points()) != Tuple(Vectors())


# ----------------------------------------------------------------------- validation
def error_of(fn) -> str:
    with pytest.raises(DataError) as info:
        fn()
    return str(info.value)


def test_validation_names_shape_problems() -> None:
    message = error_of(lambda: Points(dim=3).validate(torch.zeros(4, 3), "input.pos"))
    assert "input.pos" in message and "(B, N, ..., 3)" in message and "(4, 3)" in message
    message = error_of(lambda: Points(dim=3).validate(torch.zeros(4, 5, 2)))
    assert "last axis has size 2, expected 3" in message
    message = error_of(lambda: Tensors(dim=3).validate(torch.zeros(4, 5, 3, 2)))
    assert "(4, 5, 3, 2)" in message
    message = error_of(lambda: Vectors().validate(torch.zeros(4, 5, 3, dtype=torch.long)))
    assert "floating dtype" in message and "torch.int64" in message
    message = error_of(lambda: GridImage().validate(torch.zeros(2, 1, 28, 27)))
    assert "square" in message
    message = error_of(lambda: Vectors().validate([1.0, 2.0]))
    assert "torch.Tensor" in message and "list" in message


def test_validation_locates_nan_and_inf() -> None:
    x = torch.zeros(4, 5, 3)
    x[2, 3, 1] = float("nan")
    x[3, 0, 0] = float("inf")
    message = error_of(lambda: Points().validate(x, "output"))
    assert message.startswith("output:") and "NaN at index (2, 3, 1)" in message and "2 non-finite" in message
    y = torch.zeros(4, 5)
    y[1, 1] = -float("inf")
    assert "Inf at index (1, 1)" in error_of(lambda: Scalars().validate(y))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_the_finite_sum_shortcut_misses_no_bad_entry_and_refuses_no_good_one(dtype) -> None:
    """A finite sum proves every entry finite; a sum that is not (a bad entry, or an overflow) gets the entrywise test."""
    huge = torch.finfo(dtype).max
    Scalars().validate(torch.full((4, 5), huge, dtype=dtype))  # finite entries whose sum overflows: still accepted
    Scalars().validate(torch.zeros(0, 5, dtype=dtype))
    for bad in ([float("nan")], [float("inf")], [-float("inf")], [float("inf"), -float("inf")]):
        x = torch.ones(4, 5, dtype=dtype)
        x[1, : len(bad)] = torch.tensor(bad, dtype=dtype)
        kind = "NaN" if math.isnan(bad[0]) else "Inf"
        assert f"{kind} at index (1, 0) ({len(bad)} non-finite" in error_of(lambda: Scalars().validate(x))


def test_validation_of_masks_and_edge_indices() -> None:
    assert "dtype torch.bool, got torch.float32" in error_of(lambda: Mask().validate(torch.ones(4, 5)))
    assert "(B, N)" in error_of(lambda: Mask().validate(torch.ones(4, 5, 1, dtype=torch.bool)))
    assert "dtype torch.int64, got torch.int32" in error_of(lambda: EdgeIndex().validate(torch.zeros(4, 2, 7, dtype=torch.int32)))
    assert "(B, 2, E)" in error_of(lambda: EdgeIndex().validate(torch.zeros(4, 3, 7, dtype=torch.long)))
    assert "negative node index -1" in error_of(lambda: EdgeIndex().validate(-torch.ones(4, 2, 7, dtype=torch.long)))
    value = {"pos": torch.zeros(4, 5, 3), "edges": torch.full((4, 2, 7), 5)}
    message = error_of(lambda: Dict(pos=Points(), edges=EdgeIndex()).validate(value))
    assert "input.edges" in message and "node 5" in message and "only 5 points" in message


def test_validation_of_composites() -> None:
    action = Dict(pos=Points(), feat=Scalars(), mask=Mask())
    good = {"pos": torch.zeros(4, 5, 3), "feat": torch.zeros(4, 5, 2), "mask": torch.ones(4, 5, dtype=torch.bool)}
    action.validate(good)
    message = error_of(lambda: action.validate({**good, "feat": torch.zeros(3, 5, 2)}))
    assert "batch size" in message and "pos 4" in message and "feat 3" in message
    message = error_of(lambda: action.validate({**good, "mask": torch.ones(4, 6, dtype=torch.bool)}))
    assert "number of points" in message and "mask 6" in message
    message = error_of(lambda: action.validate({"pos": good["pos"], "extra": good["feat"]}))
    assert "missing ['feat', 'mask']" in message and "unexpected ['extra']" in message
    assert "input.feat" in error_of(lambda: action.validate({**good, "feat": torch.zeros(4)}))
    assert "tuple of 2 fields, got 3" in error_of(lambda: Tuple(Points(), Scalars()).validate((1, 2, 3)))


def test_acting_reports_batch_and_size_mismatches() -> None:
    gen = torch.Generator().manual_seed(14)
    g = random_element(gen, batch=8)
    assert error_of(lambda: Points().apply(g, torch.zeros(4, N, D))) == "group elements batch 8 but points batch 4"
    g4 = random_element(gen)
    assert "permutes 6 points but scalars have 5 points" in error_of(lambda: Scalars().apply(g4, torch.zeros(4, 5)))
    assert "acts on R^3 but vectors have their last axis of size 2" in error_of(lambda: Vectors().apply(g4, torch.zeros(4, N, 2)))
    nested = Dict(inputs=Tuple(Points(), Vectors()))
    message = error_of(lambda: nested.apply(g4, {"inputs": (torch.zeros(4, N, D), torch.zeros(4, N, 2))}))
    assert message.startswith("field 'inputs.1':")
    assert "images have no point axis" in error_of(lambda: GridImage().apply(g4, torch.zeros(4, 1, 8, 8)))


# ---------------------------------------------------------------------------- images
def d4_elements() -> Element:
    """The 8 elements of D4 as integer 2x2 matrices: rotations by k * 90 degrees, then those times diag(-1, 1)."""
    rotations = [torch.tensor([[round(math.cos(k * math.pi / 2)), -round(math.sin(k * math.pi / 2))],
                               [round(math.sin(k * math.pi / 2)), round(math.cos(k * math.pi / 2))]], dtype=torch.float64) for k in range(4)]
    flip = torch.diag(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    return Element(matrix=torch.stack(rotations + [r @ flip for r in rotations]))


def rotation(angle: float, batch: int = 1) -> Element:
    c, s = math.cos(angle), math.sin(angle)
    return Element(matrix=torch.tensor([[c, -s], [s, c]], dtype=torch.float64).expand(batch, 2, 2).clone())


def smooth_image(batch: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    from eqbench.inputs import ImageInputs, InputStructure

    return ImageInputs(size=size, channels=2, disk=True, correlation_length=2.5)(InputStructure(seed=seed, batch=batch))


def point_set_view(g: Element, image: torch.Tensor) -> torch.Tensor:
    """Move every pixel centre ``(x, y) = (j - c, c - i)`` as a point ``M x + t`` and re-rasterise (mod size)."""
    batch, channels, size, _ = image.shape
    c = (size - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.stack([cols - c, c - rows], -1).reshape(1, -1, 2).double().expand(batch, -1, -1)
    moved = Points().apply(g, centres)
    new_rows = torch.remainder((c - moved[..., 1]).round().long(), size)
    new_cols = torch.remainder((moved[..., 0] + c).round().long(), size)
    out = torch.full_like(image, float("nan"))
    for b in range(batch):
        out[b][:, new_rows[b], new_cols[b]] = image[b].reshape(channels, -1)
    return out


def test_grid_symmetries_are_exact_pixel_permutations() -> None:
    action, g = GridImage(), d4_elements()
    image = torch.randn(8, 2, 7, 7, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    assert action.is_exact(g)
    out = action.apply(g, image)
    for b in range(8):  # a permutation of the pixels: same multiset of values per channel
        assert torch.equal(out[b].reshape(2, -1).sort().values, image[b].reshape(2, -1).sort().values)
    # composition law, exactly, for all 64 pairs
    a, b = g.repeat_interleave(8), g.repeat(8)
    tiled = image.repeat(8, 1, 1, 1)
    assert torch.equal(action.apply(a * b, tiled), action.apply(a, action.apply(b, tiled)))
    assert torch.equal(action.apply(g.inverse(), out), image)


def test_grid_convention_matches_rot90_flips_and_the_point_set_view() -> None:
    action, g = GridImage(), d4_elements()
    image = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    one = lambda k: g.index(k)  # noqa: E731
    assert torch.equal(action.apply(one(1), image), torch.rot90(image, 1, dims=(-2, -1)))  # +90 deg = counter-clockwise
    assert torch.equal(action.apply(one(2), image), torch.rot90(image, 2, dims=(-2, -1)))
    assert torch.equal(action.apply(one(4), image), torch.flip(image, dims=(-1,)))  # x -> -x mirrors the columns
    assert torch.equal(action.apply(one(6), image), torch.flip(image, dims=(-2,)))  # y -> -y mirrors the rows
    shifted = Element(matrix=g.matrix, translation=torch.tensor([[2.0, -1.0]], dtype=torch.float64).expand(8, 2).clone())
    assert action.is_exact(shifted)
    assert torch.equal(action.apply(shifted.index(0), image), torch.roll(image, shifts=(1, 2), dims=(-2, -1)))  # y up = row up
    images = image.expand(8, -1, -1, -1)
    assert torch.equal(action.apply(shifted, images), point_set_view(shifted, images))


def test_finite_planar_groups_act_exactly_on_images_and_continuous_ones_do_not() -> None:
    action = GridImage()
    image = smooth_image(batch=8)
    d4 = Dihedral(4).elements()
    assert action.is_exact(d4) and action.is_exact(Cyclic(4).elements())
    assert {tuple(m.flatten().tolist()) for m in d4.matrix} == {tuple(m.flatten().tolist()) for m in d4_elements().matrix}
    assert torch.equal(action.apply(d4, image), action.apply_exact(d4, image))
    gen = torch.Generator().manual_seed(22)
    for group in (SO2(), Cyclic(8), Translations(2), ScaleRotation()):
        sampled = group.sample(64, gen)
        assert not action.is_exact(sampled), group
    assert not action.is_exact(Cyclic(8).elements()) and action.exact_mask(Cyclic(8).elements()).sum() == 4


def test_interpolated_path_agrees_at_90_degrees_and_is_approximate_at_45() -> None:
    action, image = GridImage(), smooth_image()
    quarter = rotation(math.pi / 2)
    assert action.is_exact(quarter)
    torch.testing.assert_close(action.apply_interpolated(quarter, image), action.apply_exact(quarter, image), atol=1e-10, rtol=0)
    eighth = rotation(math.pi / 4)
    assert not action.is_exact(eighth)
    twice = action.apply(eighth, action.apply(eighth, image))
    error = float((twice - action.apply(quarter, image)).abs().max())
    assert 1e-3 < error < 0.5 * float(image.abs().max())  # close for a smooth image, but not exact
    assert not action.is_exact(Element(translation=torch.tensor([[0.5, 0.0]], dtype=torch.float64)))
    assert not Tuple(Invariant(), GridImage()).is_exact(eighth) and Tuple(Invariant(), GridImage()).is_exact(quarter)
    assert Points().is_exact(eighth)


def test_mixed_batches_use_the_exact_path_where_they_can() -> None:
    action = GridImage()
    image = smooth_image(batch=2)
    g = Element(matrix=torch.cat([rotation(math.pi / 2).matrix, rotation(0.3).matrix]))
    assert action.exact_mask(g).tolist() == [True, False] and not action.is_exact(g)
    out = action.apply(g, image)
    assert torch.equal(out[:1], torch.rot90(image[:1], 1, dims=(-2, -1)))
    torch.testing.assert_close(out[1:], action.apply_interpolated(g.index(1), image[1:]), atol=0, rtol=0)


# ----------------------------------------------------------------------------- e3nn
def e3nn_float64(fn):
    """Call ``fn`` with float64 as torch's default dtype (e3nn builds its generators in it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return fn()
    finally:
        torch.set_default_dtype(previous)


def test_irreps_action_is_e3nn_d_from_matrix() -> None:
    from e3nn import o3

    gen = torch.Generator().manual_seed(17)
    # Haar samples of both parities, plus the gimbal-lock cases of e3nn's Y-X-Y angles (beta = 0, pi)
    special = torch.stack([torch.eye(3), torch.diag(torch.tensor([-1.0, 1.0, -1.0])), torch.diag(torch.tensor([1.0, -1.0, -1.0]))])
    matrices = torch.cat([random_element(gen, batch=8).matrix, special.double(), -special.double()])
    g = Element(matrix=matrices)
    spec = "2x0e+1x1o+1x2e+1x3o+1x0o"
    action = Irreps(spec, per_point=False)
    x = torch.randn(len(matrices), action.irreps.dim, generator=gen, dtype=torch.float64)
    wigner = e3nn_float64(lambda: o3.Irreps(spec).D_from_matrix(g.matrix))
    torch.testing.assert_close(action.wigner(g), wigner, atol=1e-12, rtol=0)
    torch.testing.assert_close(action.apply(g, x), torch.einsum("bij,bj->bi", wigner, x), atol=1e-12, rtol=0)
    assert torch.get_default_dtype() == torch.float32  # the action restored the default dtype


@pytest.mark.parametrize(("spec", "pseudo"), [("1x1o", False), ("1x1e", True)])
def test_irreps_vectors_equal_vectors_after_the_basis_change(spec: str, pseudo: bool) -> None:
    from e3nn import o3

    gen = torch.Generator().manual_seed(18)
    g = random_element(gen)
    v = torch.randn(B, N, 3, generator=gen, dtype=torch.float64)
    # e3nn's l=1 basis, read off its spherical harmonics of the unit vectors: Y_1(v) = c Q v
    basis = e3nn_float64(lambda: o3.spherical_harmonics(1, torch.eye(3), normalize=False).T)
    basis = basis / basis.norm(dim=0, keepdim=True)
    moved = Irreps(spec).apply(g, v @ basis.T)
    torch.testing.assert_close(moved, Vectors(pseudo=pseudo).apply(g, v) @ basis.T, atol=1e-12, rtol=0)


def test_e3nn_linear_is_equivariant_through_the_irreps_action() -> None:
    from e3nn import o3

    torch.manual_seed(0)  # e3nn draws its weights from the global generator
    gen = torch.Generator().manual_seed(19)
    irreps_in, irreps_out = "4x0e+4x1o+2x1e", "3x0e+2x1o+1x1e"
    layer = o3.Linear(irreps_in, irreps_out).double()
    plain = torch.nn.Linear(layer.irreps_in.dim, layer.irreps_out.dim).double()  # negative control: mixes all components
    act_in, act_out = Irreps(irreps_in), Irreps(irreps_out)
    g = random_element(gen).with_parts(translation=None)
    x = torch.randn(B, N, act_in.irreps.dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        for model, equivariant in ((layer, True), (plain, False)):
            error = float((model(act_in.apply(g, x)) - act_out.apply(g, model(x))).abs().max())
            assert (error < 1e-10) == equivariant, (model, error)
    assert "irreps field 4x0e+4x1o+2x1e" in error_of(lambda: act_in.validate(torch.zeros(B, N, 5)))


def test_irreps_without_e3nn_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "e3nn", None)  # makes `from e3nn import o3` raise ImportError
    with pytest.raises(ImportError, match="pip install e3nn"):
        Irreps("1x1o")
