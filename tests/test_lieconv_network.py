"""LieConv networks: exact invariance in exact settings, no caching, seeded randomness, correct gradients.

Exact settings (Finzi et al. 2020; :mod:`eqbench.models.lieconv.network`): a deterministic
lift (T(n), SO(2), R>0 x SO(2)), ``liftsamples = 1``, every neighbour used or k nearest on
generic inputs, evaluation mode. There the output must be invariant to float64 rounding
(``EXACT``); the negative controls (a group that does not contain the transformation) must
move it by more than ``MOVED``. Parameters are randomised away from their initialisation
(where the convolutions barely depend on positions), so a broken symmetry shows clearly.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from eqbench.actions import Invariant
from eqbench.check import check_equivariance
from eqbench.models.gigp import radius_orbits
from eqbench.groups import SO2
from eqbench.inputs import PointCloudInputs
from eqbench.models.lieconv import (
    ImgLieResNet,
    LieResNet,
    MolecLieResNet,
    RxSO2Lift,
    SE2Lift,
    SO2Lift,
    SO3Lift,
    TranslationLift,
    TrivialLift,
    image_point_cloud,
    molecule_features,
)
from eqbench.models.lieconv.groups import LiftingGroup
from eqbench.models.lieconv.groups.base import Lift

DT = torch.float64
EXACT = 1e-9
MOVED = 1e-3
#: Float32 results of the same math summed in another order (see the streaming test).
FLOAT32_ROUNDING = 1e-5
BATCH, POINTS, CHIN = 3, 11, 3


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotate(x: Tensor, angle: float = 0.9) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.stack([c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]], -1)


def translate(x: Tensor) -> Tensor:
    return x + torch.linspace(1.5, -0.5, x.shape[-1], dtype=x.dtype)


def scale_rotate(x: Tensor) -> Tensor:
    return 1.8 * rotate(x, -2.3)


def inputs(dim: int = 2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Positions, features and a mask with padded points holding garbage (a model must ignore them)."""
    g = seeded(seed)
    pos = torch.randn(BATCH, POINTS, dim, generator=g, dtype=DT) + 0.2
    feat = torch.randn(BATCH, POINTS, CHIN, generator=g, dtype=DT)
    mask = torch.ones(BATCH, POINTS, dtype=torch.bool)
    mask[1, -3:] = False
    pos[~mask], feat[~mask] = 1e3, -1e3
    return pos, feat, mask


def prepared(model: nn.Module, *args: Tensor, seed: int = 1) -> nn.Module:
    """Randomise the parameters, run one training pass (running statistics, ball radius), switch to evaluation."""
    torch.manual_seed(seed)
    model = model.to(DT)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    model.train()
    model(*args)
    return model.eval()


def relative_change(model: nn.Module, before: tuple, after: tuple) -> float:
    with torch.no_grad():
        reference = model(*before)
        return float((model(*after) - reference).abs().max() / reference.abs().max())


def network(group: LiftingGroup, **options) -> LieResNet:
    options = {"k": 8, "num_layers": 2, **options}
    return LieResNet(CHIN, 2, group=group, **options)


CONFIGS = {
    "knn-all": {"knn": True, "nbhd": None},
    "knn-5": {"knn": True, "nbhd": 5},
    "ball-all": {"nbhd": None, "fill": 0.5},
    "ball-more-than-n": {"nbhd": 50, "fill": 0.5},
}
EXACT_CASES = [(SO2Lift(), rotate), (RxSO2Lift(), scale_rotate), (TranslationLift(2), translate)]
BROKEN_CASES = [(TrivialLift(2), rotate), (TranslationLift(2), rotate), (SO2Lift(), translate), (RxSO2Lift(), translate)]


def case_id(case: tuple[LiftingGroup, Callable]) -> str:
    return f"{case[0].name}-{case[1].__name__}"


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize(
    "case, exact", [(c, True) for c in EXACT_CASES] + [(c, False) for c in BROKEN_CASES], ids=lambda v: case_id(v) if isinstance(v, tuple) else ""
)
def test_exact_settings_are_invariant_to_rounding_and_other_transformations_are_not(case, exact, config):
    group, transform = case
    pos, feat, mask = inputs()
    model = prepared(network(group, **CONFIGS[config]), pos, feat, mask)
    moved = torch.where(mask[..., None], transform(pos), pos)
    change = relative_change(model, (pos, feat, mask), (moved, feat, mask))
    assert change <= EXACT if exact else change > MOVED


def test_farthest_point_subsampling_with_a_fixed_seed_stays_exact():
    """``ds_frac < 1``: FPS from the same seeded start picks the same points of a rotated input."""
    pos, feat, mask = inputs()
    model = prepared(network(SO2Lift(), knn=True, nbhd=4, ds_frac=0.6, fixed_seed=7), pos, feat, mask)
    assert model.query_sizes(POINTS) == [11, 7, 4]
    moved = torch.where(mask[..., None], rotate(pos), pos)
    assert relative_change(model, (pos, feat, mask), (moved, feat, mask)) <= EXACT


def test_permuting_the_points_does_not_change_the_output():
    pos, feat, mask = inputs()
    model = prepared(network(SO2Lift(), knn=True, nbhd=5), pos, feat, mask)
    perm = torch.stack([torch.randperm(POINTS, generator=seeded(b)) for b in range(BATCH)])
    take = lambda t: torch.gather(t, 1, perm.view(BATCH, POINTS, *([1] * (t.dim() - 2))).expand_as(t))  # noqa: E731
    assert relative_change(model, (pos, feat, mask), (take(pos), take(feat), take(mask))) <= EXACT


def test_items_of_a_batch_are_independent_in_evaluation():
    pos, feat, mask = inputs()
    model = prepared(network(SO2Lift(), nbhd=None, fill=0.5), pos, feat, mask)
    with torch.no_grad():
        together = model(pos, feat, mask)
        alone = torch.cat([model(pos[b : b + 1], feat[b : b + 1], mask[b : b + 1]) for b in range(BATCH)])
    assert torch.allclose(together, alone, rtol=0, atol=EXACT * together.abs().max())


def test_the_checker_calls_exact_settings_exact_and_catches_the_trivial_group():
    """The same claim through ``eqbench.check`` in float32 (noise floor calibrated by the checker)."""
    generator = PointCloudInputs(dim=2, min_points=6, max_points=10, features=CHIN, mask=True, degenerate=())
    pos, feat, mask = inputs()
    check = {"n_inputs": 2, "n_elements": 4, "search_examples": 3}
    for group, expected in ((SO2Lift(), "exact"), (TrivialLift(2), "violated")):
        model = prepared(network(group, knn=True, nbhd=None), pos, feat, mask).float()
        result = check_equivariance(model, SO2(), generator, generator.action, Invariant(), expected=expected, **check)
        assert result.verdict.value == expected, result


# ------------------------------------------------------------------ front ends
def test_image_front_end_crops_the_reference_disk_and_a_quarter_turn_permutes_pixels():
    images = torch.randn(2, 1, 28, 28, generator=seeded(), dtype=DT)
    pos, feat, mask = image_point_cloud(images, radius=15.0)
    assert pos.shape == (2, 648, 2) and bool(mask.all())  # the reference's 648 pixels
    turned_pos, turned_feat, _ = image_point_cloud(torch.rot90(images, 1, dims=(2, 3)), radius=15.0)
    # the pixel moved to each position carries the intensity the quarter-turned position had
    key = lambda p, f: sorted(zip(p.round(decimals=6).tolist(), f.tolist()))  # noqa: E731
    assert key(rotate(pos[0], math.pi / 2), feat[0]) == key(turned_pos[0], turned_feat[0])
    assert key(pos[0], feat[0]) != key(turned_pos[0], turned_feat[0])


@pytest.mark.parametrize("group, expect_exact", [(SO2Lift(), True), (TranslationLift(2), False)], ids=["SO2", "T2-control"])
def test_image_lieresnet_is_invariant_to_rotating_the_image(group, expect_exact):
    images = torch.randn(2, 1, 9, 9, generator=seeded(3), dtype=DT)
    pos, feat, mask = image_point_cloud(images, radius=4.0)
    model = prepared(ImgLieResNet(group=group, k=8, num_layers=2, total_ds=1.0, nbhd=None, knn=True, num_targets=3), pos, feat, mask)
    change = relative_change(model, (pos, feat, mask), (rotate(pos, 0.7), feat, mask))
    turned = image_point_cloud(torch.rot90(images, 1, dims=(2, 3)), radius=4.0)
    turn_change = relative_change(model, (pos, feat, mask), turned)
    if expect_exact:
        assert change <= EXACT and turn_change <= EXACT
    else:
        assert change > MOVED and turn_change > MOVED


def molecules(seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = seeded(seed)
    species = torch.randint(0, 4, (BATCH, POINTS), generator=g)
    charges = torch.tensor([1.0, 6.0, 7.0, 8.0], dtype=DT)[species]
    charges[0, -4:] = 0  # padded atoms
    one_hot = nn.functional.one_hot(species, 4).to(DT)
    pos = torch.randn(BATCH, POINTS, 3, generator=g, dtype=DT)
    return pos, one_hot, charges


def test_molecule_features_are_species_times_charge_powers():
    _, one_hot, charges = molecules()
    feat, mask = molecule_features(one_hot, charges, charge_scale=9.0, charge_power=2, dtype=DT)
    assert feat.shape == (BATCH, POINTS, 4 * 3) and torch.equal(mask, charges > 0)
    c = charges / 9.0
    want = (one_hot[..., None] * torch.stack([torch.ones_like(c), c, c * c], -1)[..., None, :]).flatten(-2)
    assert torch.allclose(feat, want, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="one_hot"):
        molecule_features(one_hot, charges[:, :-1], 9.0)


@pytest.mark.parametrize("group, transform, exact", [
    (TranslationLift(3), translate, True),
    (TranslationLift(3), lambda x: x.flip(-1), False),
], ids=["T3-translate", "T3-control-reflect"])
def test_molecule_lieresnet_invariance(group, transform, exact):
    pos, one_hot, charges = molecules()
    model = prepared(MolecLieResNet(4, 9.0, group=group, k=8, num_layers=2, knn=True, nbhd=5), pos, one_hot, charges)
    change = relative_change(model, (pos, one_hot, charges), (transform(pos), one_hot, charges))
    assert (change <= EXACT) if exact else (change > MOVED)
    assert model(pos, one_hot, charges).shape == (BATCH,)


# ------------------------------------------------------------------ no caching, seeds
@pytest.mark.parametrize("group, options", [
    (SO2Lift(), {"knn": True, "nbhd": 4, "ds_frac": 0.6, "fixed_seed": 3}),
    (SE2Lift(), {"nbhd": 3, "fill": 0.5, "liftsamples": 2, "ds_frac": 0.7, "fixed_seed": 3}),
], ids=["SO2-fps", "SE2-random-lift"])
def test_nothing_is_cached_between_calls(group, options):
    """``model(x)`` then ``model(g x)`` gives what a fresh copy gives on ``g x`` (lifts and subsampling move with the input)."""
    pos, feat, mask = inputs()
    model = prepared(network(group, **options), pos, feat, mask)
    fresh = copy.deepcopy(model)
    moved = torch.where(mask[..., None], rotate(pos), pos)
    with torch.no_grad():
        model(pos, feat, mask)
        assert torch.equal(model(moved, feat, mask), fresh(moved, feat, mask))
        assert torch.equal(model(pos, feat, mask), fresh(pos, feat, mask))


def test_randomness_follows_the_seed():
    pos, feat, mask = inputs()
    options = {"nbhd": 3, "fill": 0.5, "liftsamples": 2, "ds_frac": 0.7}
    model = prepared(network(SE2Lift(), **options), pos, feat, mask)
    with torch.no_grad():
        model.generator = seeded(5)
        first = model(pos, feat, mask)
        model.generator = seeded(5)
        again = model(pos, feat, mask)
        model.generator = seeded(6)
        other = model(pos, feat, mask)
    assert torch.equal(first, again)
    assert (first - other).abs().max() > MOVED * first.abs().max()
    model.fixed_seed = 5
    with torch.no_grad():
        assert torch.equal(model(pos, feat, mask), model(pos, feat, mask))


def test_monte_carlo_error_falls_with_more_lift_samples():
    """SE(2) draws random lifts: its rotation error is a Monte-Carlo error that more samples reduce."""
    pos, feat, mask = inputs()
    moved = torch.where(mask[..., None], rotate(pos), pos)
    errors = []
    for samples in (1, 8):
        model = prepared(network(SE2Lift(), knn=True, nbhd=None, liftsamples=samples, fixed_seed=0), pos, feat, mask, seed=2)
        spread = []
        for seed in range(4):
            model.fixed_seed = seed
            spread.append(relative_change(model, (pos, feat, mask), (moved, feat, mask)))
        errors.append(sum(spread) / len(spread))
    assert errors[1] < errors[0] and errors[0] > MOVED


# ------------------------------------------------------------------ construction errors
@pytest.mark.parametrize("build", [
    lambda: LieResNet(CHIN, group=SO2Lift),
    lambda: ImgLieResNet(group=SO2Lift),
    lambda: MolecLieResNet(4, 9.0, group=TranslationLift),
], ids=["LieResNet", "ImgLieResNet", "MolecLieResNet"])
def test_a_group_class_instead_of_an_instance_is_a_clear_type_error(build):
    with pytest.raises(TypeError, match=r"pass a lifting group instance such as \w+\(\)"):
        build()


def test_bad_arguments_and_inputs_are_refused_clearly():
    with pytest.raises(TypeError, match="lifting group"):
        LieResNet(CHIN, group="SO2")
    with pytest.raises(ValueError, match="liftsamples"):
        LieResNet(CHIN, group=SO2Lift(), liftsamples=2)
    with pytest.raises(ValueError, match="ds_frac"):
        LieResNet(CHIN, group=SO2Lift(), ds_frac=0.0)
    with pytest.raises(ValueError, match="orbit_labels='centroid'"):
        LieResNet(CHIN, group=TranslationLift(2), pool="gigp")
    model = network(SO2Lift(), knn=True)
    pos, feat, mask = inputs()
    with pytest.raises(ValueError, match="pos must be"):
        model(pos[..., :1], feat, mask)
    with pytest.raises(ValueError, match="mask must be"):
        model(pos, feat, mask.long())
    with pytest.raises(ValueError, match=r"pos must be a floating tensor \(B, n, 3\)"):
        LieResNet(CHIN, group=SO3Lift(), k=8, num_layers=1)(pos, feat, mask)


def test_ball_radius_travels_in_the_state_dict():
    pos, feat, mask = inputs()
    model = prepared(network(SO2Lift(), nbhd=None, fill=0.4), pos, feat, mask)
    radii = [k for k in model.state_dict() if k.endswith("ball.radius")]
    assert len(radii) == 2
    clone = network(SO2Lift(), nbhd=None, fill=0.4).to(DT)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(pos, feat, mask), model(pos, feat, mask))


# ------------------------------------------------------------------ gradients
def test_network_gradients_match_finite_differences():
    """Training mode, padding, FPS and gathered neighbours: input gradients by (fast-mode) gradcheck, parameter
    gradients along a random direction by a central difference (the hand-written backward inside a whole network)."""
    pos, feat, mask = inputs()
    model = network(SO2Lift(), knn=True, nbhd=4, ds_frac=0.7, fixed_seed=1).to(DT).train()
    for module in model.modules():  # training mode without running-statistic drift between evaluations
        if isinstance(module, nn.BatchNorm1d):
            module.momentum = 0.0
    real = mask[..., None]

    def loss(p: Tensor, f: Tensor) -> Tensor:
        return model(torch.where(real, p, pos), torch.where(real, f, feat), mask)

    arguments = (pos.clone().requires_grad_(True), feat.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(loss, arguments, eps=1e-6, atol=1e-6, fast_mode=True)
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach().clone() for p in model.parameters()]
    direction = [torch.randn(p.shape, generator=seeded(i), dtype=DT) for i, p in enumerate(params)]
    weights = torch.randn(BATCH, 2, generator=seeded(9), dtype=DT)
    value = lambda ps: (torch.func.functional_call(model, dict(zip(names, ps)), (pos, feat, mask)) * weights).sum()  # noqa: E731
    grads = torch.autograd.grad(value([p.requires_grad_(True) for p in params]), params)
    analytic = sum((g * d).sum() for g, d in zip(grads, direction))
    eps = 1e-5
    with torch.no_grad():
        plus = value([p + eps * d for p, d in zip(params, direction)])
        minus = value([p - eps * d for p, d in zip(params, direction)])
    numeric = (plus - minus) / (2 * eps)
    assert abs(float(analytic - numeric)) <= 1e-6 * max(1.0, abs(float(numeric)))


# ------------------------------------------------------------------ with GIGP pooling (Bujel et al. 2023)
def test_lieconv_with_gigp_is_rotation_invariant_in_the_exact_setting():
    pos, feat, mask = inputs()
    model = network(SO2Lift(), knn=True, nbhd=5, pool="gigp", gigp_bins=6).to(DT)
    with pytest.raises(RuntimeError, match="not fitted"):
        model(pos, feat, mask)
    model.fit_orbit_bins(pos, mask)
    labels = radius_orbits(pos)[mask]  # SO(2)'s orbit coordinate: the radius
    assert torch.allclose(model.pool.bins[[0, -1]], torch.stack([labels.min(), labels.max()]), rtol=0, atol=1e-12)
    model = prepared(model, pos, feat, mask)
    moved = torch.where(mask[..., None], rotate(pos), pos)
    assert relative_change(model, (pos, feat, mask), (moved, feat, mask)) <= EXACT
    model.point_orbit_labels = lambda p, m: p[..., 0]  # negative control: the x coordinate is no orbit label
    assert relative_change(model, (pos, feat, mask), (moved, feat, mask)) > MOVED


def test_molecule_lieconv_with_centroid_gigp_is_translation_invariant():
    pos, one_hot, charges = molecules()
    model = MolecLieResNet(4, 9.0, group=TranslationLift(3), k=8, num_layers=2, knn=True, nbhd=4, pool="gigp", orbit_labels="centroid", gigp_bins=5)
    model.to(DT).fit_orbit_bins(pos, charges > 0)
    model = prepared(model, pos, one_hot, charges)
    assert relative_change(model, (pos, one_hot, charges), (translate(pos), one_hot, charges)) <= EXACT
    stretched = pos * torch.tensor([1.0, 1.0, 2.0], dtype=DT)  # negative control
    assert relative_change(model, (pos, one_hot, charges), (stretched, one_hot, charges)) > MOVED


@pytest.mark.parametrize("group", [SO2Lift(), TranslationLift(2), TranslationLift(3), SE2Lift(), SO3Lift()], ids=lambda g: g.name)
def test_blockwise_distances_equal_the_closed_form_in_one_go(monkeypatch, group):
    """Distances computed a block at a time (3 rows of every item, a last partial block; or one item) equal the closed form's.

    Exactly for the elementwise closed forms; to rounding where one uses matrix products (SO(3)).
    """
    from eqbench.models.lieconv import network

    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2, 11, group.space_dim, generator=generator, dtype=DT)
    lift = group.lift(points, 2 if group.random_lift else 1, generator)
    queries = Lift(lift.elements[:, :7], lift.orbits[:, :7])
    want = group.pair_distances(queries, lift)
    for block in (3 * 2 * lift.size, 7 * lift.size):  # 3 rows of both items, then one item, per block
        monkeypatch.setattr(network, "DISTANCE_BLOCK", block)
        got = network.blockwise_distances(group, queries, lift)
        assert got.shape == want.shape == (2, 7, lift.size)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    shuffled = Lift(lift.elements.flip(1), lift.orbits.flip(1))  # negative control: other columns give other distances
    assert (network.blockwise_distances(group, queries, shuffled) - want).abs().max() > 1e-3


# ------------------------------------------------------------ streamed passes without backward
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-no-grad"])
@pytest.mark.parametrize("options", [
    {"nbhd": 4, "fill": 0.5, "ds_frac": 0.7, "fixed_seed": 3},  # ball samples of 4 among 11 points, gathered
    {"nbhd": None, "fill": 1.0},  # every point a neighbour: the dense form
], ids=["ball-gather", "dense"])
def test_streamed_chunks_equal_the_whole_batch_to_rounding(monkeypatch, training, options):
    """A pass without backward streams its pairs in chunks (down to one query at a time) and computes what the whole batch does.

    In float64 the two agree to ``EXACT`` (same math, other summation order and, in training,
    BatchNorm statistics combined chunk by chunk). In float32 they agree to ``FLOAT32_ROUNDING``
    relative to the output's scale: each output sums about ``k c`` float32 products per layer
    over 2 layers and 3 weight-network stages, so a reordering moves it by tens of units in
    the last place of float32 (eps 1.2e-7), far below it; the running statistics likewise.
    """
    from eqbench.models.lieconv import weightnet

    pos, feat, mask = inputs()
    for dtype, tolerance in ((DT, EXACT), (torch.float32, FLOAT32_ROUNDING)):
        model = prepared(network(SO2Lift(), **options), pos, feat, mask).to(dtype).train(training)
        whole, streamed = copy.deepcopy(model), copy.deepcopy(model)
        args = (pos.to(dtype), feat.to(dtype), mask)
        with torch.no_grad():
            monkeypatch.setattr(weightnet, "CHUNK_BYTES", 1 << 40)  # one chunk: the whole batch
            want = whole(*args)
            monkeypatch.setattr(weightnet, "CHUNK_BYTES", 1)  # one query per chunk
            got = streamed(*args)
        assert float((got - want).abs().max() / want.abs().max()) <= tolerance
        for (name, a), b in zip(streamed.named_buffers(), whole.buffers()):
            if a.is_floating_point() and a.numel() > 1:
                assert float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) <= tolerance, name
