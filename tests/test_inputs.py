"""Input generators: determinism, shapes, padding, degenerate configurations, strategies, images, graphs."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings

from eqbench.actions import Dict, EdgeIndex, GridImage, Points
from eqbench.groups.element import Element
from eqbench.inputs import GraphInputs, ImageInputs, InputStructure, PointCloudInputs, fully_connected_edges
from eqbench.inputs.point_cloud import PAD_MAGNITUDE

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def centred_covariance_eigenvalues(points: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of the centred covariance of each ``(n, d)`` item of ``(B, n, d)``."""
    centred = points - points.mean(dim=1, keepdim=True)
    return torch.linalg.eigvalsh(centred.transpose(1, 2) @ centred / points.shape[1])


def has_repeated_eigenvalue(eigenvalues: torch.Tensor, rtol: float = 1e-9) -> torch.Tensor:
    gaps = eigenvalues.diff(dim=-1).abs()
    return (gaps <= rtol * eigenvalues.abs().amax(dim=-1, keepdim=True)).any(dim=-1)


def structure(**fields) -> InputStructure:
    return InputStructure(**{"seed": 3, "batch": 4, "num_points": 10, **fields})


# -------------------------------------------------------------------- point clouds
def test_positions_only_is_a_plain_tensor_with_a_points_action() -> None:
    inputs = PointCloudInputs(dim=2)
    x = inputs(structure())
    assert isinstance(x, torch.Tensor) and x.shape == (4, 10, 2) and x.dtype == torch.float64
    assert inputs.action == Points(dim=2)
    inputs.action.validate(x)


def test_all_fields_layout_and_action() -> None:
    inputs = PointCloudInputs(dim=3, features=5, vectors=2, mask=True)
    value = inputs(structure(num_padded=3))
    assert list(value) == ["pos", "feat", "vel", "mask"]
    assert value["pos"].shape == (4, 10, 3) and value["feat"].shape == (4, 10, 5)
    assert value["vel"].shape == (4, 10, 2, 3) and value["mask"].shape == (4, 10)
    assert repr(inputs.action) == "Dict(pos=Points(dim=3), feat=Scalars(), vel=Vectors(dim=3), mask=Mask())"
    inputs.action.validate(value)


def test_values_are_deterministic_per_seed_and_differ_across_seeds() -> None:
    inputs = PointCloudInputs(features=2, vectors=1, mask=True)
    for degenerate in ("", "duplicate", "collinear", "coplanar", "symmetric"):
        s = structure(num_padded=2, degenerate=degenerate)
        first, again, other = inputs(s), inputs(s), inputs(structure(seed=4, num_padded=2, degenerate=degenerate))
        for key in ("pos", "feat", "vel"):
            assert torch.equal(first[key], again[key])
            assert not torch.allclose(first[key], other[key])


def test_padding_is_masked_out_and_filled_with_garbage() -> None:
    inputs = PointCloudInputs(features=2, vectors=1, mask=True)
    value = inputs(structure(num_points=9, num_padded=4, scale=0.5))
    assert value["mask"][:, :5].all() and not value["mask"][:, 5:].any()
    for key in ("pos", "feat", "vel"):
        real, padded = value[key][:, :5].abs().mean(), value[key][:, 5:].abs().mean()
        assert real < 5 and padded > PAD_MAGNITUDE / 10, key
    plain = PointCloudInputs()(structure(num_points=9, scale=0.5))
    assert plain.abs().max() < 5  # no padding without a mask


def test_generic_points_have_the_requested_scale_and_full_rank() -> None:
    for scale in (0.1, 1.0, 10.0):
        x = PointCloudInputs()(structure(batch=8, num_points=24, scale=scale))
        assert 0.7 * scale < float(x.std()) < 1.3 * scale
        eigenvalues = centred_covariance_eigenvalues(x)
        assert (eigenvalues[:, 0] > 1e-3 * scale**2).all() and not has_repeated_eigenvalue(eigenvalues, 1e-6).any()
        assert torch.cdist(x, x).add(torch.eye(24) * 1e9).amin() > 1e-6 * scale


@pytest.mark.parametrize("num_points", [2, 3, 7, 24])
def test_degenerate_configurations_are_degenerate(num_points: int) -> None:
    inputs = PointCloudInputs(dim=3)
    build = lambda name: inputs(structure(num_points=num_points, degenerate=name, scale=2.0))  # noqa: E731
    duplicates = build("duplicate")
    distances = torch.cdist(duplicates, duplicates) + torch.eye(num_points) * 1e9
    assert (distances.flatten(1).amin(dim=1) == 0).all()
    # collinear: rank-1 centred covariance; coplanar: rank <= 2
    assert (centred_covariance_eigenvalues(build("collinear"))[:, :2].abs() < 1e-12).all()
    assert (centred_covariance_eigenvalues(build("coplanar"))[:, 0].abs() < 1e-12).all()
    assert has_repeated_eigenvalue(centred_covariance_eigenvalues(build("symmetric"))).all()


def test_symmetric_sets_in_the_plane_and_in_space() -> None:
    for dim in (2, 3, 4):
        for n in range(3, 25):
            x = PointCloudInputs(dim=dim)(structure(num_points=n, degenerate="symmetric"))
            assert has_repeated_eigenvalue(centred_covariance_eigenvalues(x)).all(), (dim, n)
    prism = PointCloudInputs(dim=3)(structure(num_points=12, degenerate="symmetric"))
    assert (centred_covariance_eigenvalues(prism)[:, 0] > 1e-3).all()  # two layers: not flat
    generic = PointCloudInputs(dim=2)(structure(num_points=12))
    assert not has_repeated_eigenvalue(centred_covariance_eigenvalues(generic)).any()  # the control


def test_bad_arguments_and_structures_are_refused() -> None:
    with pytest.raises(ValueError, match="dim >= 2"):
        PointCloudInputs(dim=1)
    with pytest.raises(ValueError, match="min_points=5, max_points=3"):
        PointCloudInputs(min_points=5, max_points=3)
    with pytest.raises(ValueError, match="unknown degenerate configurations \\['wobbly'\\]"):
        PointCloudInputs(degenerate=("collinear", "wobbly"))
    with pytest.raises(ValueError, match="needs a generator built with mask=True"):
        PointCloudInputs()(structure(num_padded=2))
    with pytest.raises(ValueError, match="= \\[0, 9\\], got 10"):
        PointCloudInputs(mask=True)(structure(num_padded=10))
    with pytest.raises(ValueError, match="unknown structure.degenerate 'wobbly'"):
        PointCloudInputs()(structure(degenerate="wobbly"))


@FAST
@given(data=PointCloudInputs(dim=3, min_points=3, max_points=12, features=2, mask=True, min_scale=0.5, max_scale=4.0).structure_strategy(batch=2))
def test_point_structure_strategy_draws_valid_structures(data: InputStructure) -> None:
    inputs = PointCloudInputs(dim=3, min_points=3, max_points=12, features=2, mask=True, min_scale=0.5, max_scale=4.0)
    assert data.batch == 2 and 3 <= data.num_points <= 12 and 0.5 <= data.scale <= 4.0
    assert 0 <= data.num_padded <= data.num_points - 3 and 0 <= data.seed < 2**31
    assert data.degenerate in ("", "duplicate", "collinear", "coplanar", "symmetric", "polygon", "polyhedron", "lattice")
    value = inputs(data)
    inputs.action.validate(value)
    assert int(value["mask"].sum(dim=1)[0]) == data.num_points - data.num_padded


def test_strategies_shrink_to_small_generic_inputs() -> None:
    inputs = PointCloudInputs(dim=2, min_points=4, max_points=20, mask=True)
    assert "coplanar" not in inputs.degenerate
    minimal = find(inputs.structure_strategy(batch=3), lambda s: True, settings=settings(database=None))
    assert minimal == InputStructure(seed=0, batch=3, num_points=4, scale=1.0, num_padded=0, degenerate="")
    unmasked = find(PointCloudInputs().structure_strategy(), lambda s: s.num_points > 5, settings=settings(database=None))
    assert unmasked.num_points == 6 and unmasked.num_padded == 0


def test_default_structures_are_generic_and_in_range() -> None:
    assert PointCloudInputs().default_structure(seed=2, batch=3) == InputStructure(seed=2, batch=3, num_points=8)
    masked = PointCloudInputs(min_points=3, max_points=4, mask=True, min_scale=2.0, max_scale=3.0).default_structure()
    assert masked.num_points == 4 and masked.num_padded == 1 and masked.scale == 2.0


# ----------------------------------------------------------------------------- graphs
def test_graph_inputs_are_fully_connected_without_self_loops() -> None:
    inputs = GraphInputs(dim=3, mask=True)
    value = inputs(structure(num_points=5, num_padded=1))
    assert list(value) == ["pos", "vel", "charges", "edges", "mask"]
    assert value["vel"].shape == (4, 5, 3) and value["charges"].shape == (4, 5, 1)
    assert set(value["charges"].unique().tolist()) <= {-1.0, 1.0}
    edges = value["edges"]
    assert edges.shape == (4, 2, 20) and edges.dtype == torch.long
    pairs = {tuple(pair) for pair in edges[0].T.tolist()}
    assert len(pairs) == 20 and all(i != j for i, j in pairs)
    assert isinstance(inputs.action, Dict) and inputs.action.fields["edges"] == EdgeIndex()
    inputs.action.validate(value)
    assert inputs.action.point_mask(value) is value["mask"]
    assert torch.equal(inputs(structure(num_points=5, num_padded=1))["pos"], value["pos"])


def test_permuting_a_complete_graph_gives_the_same_edge_set() -> None:
    edges = fully_connected_edges(6).expand(3, -1, -1)
    permutation = torch.stack([torch.randperm(6, generator=torch.Generator().manual_seed(s)) for s in range(3)])
    moved = EdgeIndex().apply(Element(permutation=permutation), edges)
    for b in range(3):
        assert sorted(map(tuple, moved[b].T.tolist())) == sorted(map(tuple, edges[b].T.tolist()))


@FAST
@given(data=GraphInputs(min_points=2, max_points=6).structure_strategy(batch=2))
def test_graph_structure_strategy_draws_valid_graphs(data: InputStructure) -> None:
    inputs = GraphInputs(min_points=2, max_points=6)
    value = inputs(data)
    inputs.action.validate(value)
    assert value["edges"].shape[-1] == data.num_points * (data.num_points - 1)


# ----------------------------------------------------------------------------- images
def test_images_are_smooth_normalised_and_deterministic() -> None:
    inputs = ImageInputs(size=20, channels=3)
    images = inputs(InputStructure(seed=1, batch=2))
    assert images.shape == (2, 3, 20, 20) and inputs.action == GridImage(channels=3)
    inputs.action.validate(images)
    torch.testing.assert_close(images.std(dim=(-2, -1)), torch.ones(2, 3, dtype=torch.float64))
    neighbour_step = (images - images.roll(1, dims=-1)).abs().mean()
    white = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert neighbour_step < 0.4 < (white - white.roll(1, dims=-1)).abs().mean()  # smooth, unlike white noise
    assert torch.equal(inputs(InputStructure(seed=1, batch=2)), images)
    assert not torch.allclose(inputs(InputStructure(seed=2, batch=2)), images)


def round_trip_error(images: torch.Tensor, angle: float) -> float:
    """Relative mean error of rotating by ``angle`` and back (bilinear both ways)."""
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    g = Element(matrix=rotation.expand(images.shape[0], 2, 2).clone())
    there_and_back = GridImage().apply(g.inverse(), GridImage().apply(g, images))
    return float((there_and_back - images).abs().mean() / images.abs().mean())


def test_disk_images_vanish_outside_the_disk_and_rotate_in_frame() -> None:
    disk, full = (ImageInputs(size=24, disk=flag) for flag in (True, False))
    images = disk(disk.default_structure(batch=8))
    coords = torch.arange(24, dtype=torch.float64) - 11.5
    radius = torch.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
    assert (images[..., radius >= 11] == 0).all() and images[..., radius < 8].abs().amax() > 0.5
    # only interpolation blur for the disk; the full frame also loses its corners
    assert round_trip_error(images, 0.7) < 0.15 < round_trip_error(full(full.default_structure(batch=8)), 0.7)


@FAST
@given(data=ImageInputs(size=8).structure_strategy(batch=3))
def test_image_structure_strategy(data: InputStructure) -> None:
    assert data.batch == 3 and data.num_points == 0 and 0 <= data.seed < 2**31
    assert ImageInputs(size=8)(data).shape == (3, 1, 8, 8)
