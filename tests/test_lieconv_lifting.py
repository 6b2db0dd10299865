"""LieConv's lift as a module: the group's action on lifted points, and where the Monte-Carlo sampling error enters.

Known answers: eqbench's elements embed in each lifting group so that the encoded element acts on
points as ``Points`` does; ``g . lift(x)`` is a lift of ``g . x`` (and is ``lift(g . x)`` for
deterministic lifts). The experiment behind ``eqbench explain`` on SE(3) LieConv: with common random
numbers, replacing the lift of ``g . x`` by ``g . lift(x)`` makes the whole network invariant to
rounding although its neighbourhoods are subsampled at random too, so the lift's stabiliser sampling
carries the entire sampling error; the negative control draws the ball samples from another seed and
the error comes back.
"""
from __future__ import annotations

import pytest
import torch
from torch import Tensor

from eqbench.actions import DataError, Points
from eqbench.catalog.lieconv import CLOUDS_3D, calibrated
from eqbench.groups import O3, SE2, SE3, SO2, SO3, Element, Group, ScaleRotation, Translations, Trivial
from eqbench.models.lieconv import LieResNet
from eqbench.models.lieconv.groups import (
    LiftingGroup,
    RxSO2Lift,
    SE2Lift,
    SE3Lift,
    SO2Lift,
    SO3Lift,
    TranslationLift,
    TrivialLift,
)
from eqbench.models.lieconv.lifting import LiftedElements, LiftedPoints, Lifting

TIGHT = 1e-10
DT = torch.float64
#: Each lifting group with the eqbench group whose elements it contains.
PAIRS = [
    (TranslationLift(2), Translations(2)),
    (TranslationLift(3), Translations(3)),
    (SO2Lift(), SO2()),
    (RxSO2Lift(), ScaleRotation()),
    (SE2Lift(), SE2()),
    (SO3Lift(), SO3()),
    (SE3Lift(), SE3()),
    (TrivialLift(3), Trivial()),
]


def ids(pair: tuple[LiftingGroup, Group]) -> str:
    return f"{pair[0].name}-{pair[0].space_dim}"


def points(group: LiftingGroup, batch: int = 3, n: int = 6, seed: int = 0) -> Tensor:
    return torch.randn(batch, n, group.space_dim, generator=torch.Generator().manual_seed(seed), dtype=DT) * 2


def elements(group: Group, batch: int = 3, seed: int = 1) -> Element:
    return group.sample(batch, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pair", PAIRS, ids=ids)
def test_embedded_elements_act_on_points_as_eqbench_elements_do(pair):
    lifting, group = pair
    x, g = points(lifting), elements(group)
    encoded = lifting.embed(g)
    assert encoded.shape == (g.batch_size, lifting.element_dim)
    assert torch.allclose(lifting.act(encoded[:, None], x), Points().apply(g, x), rtol=0, atol=TIGHT)


@pytest.mark.parametrize("pair", PAIRS, ids=ids)
def test_the_action_on_lifted_points_takes_a_lift_of_x_to_a_lift_of_gx(pair):
    lifting, group = pair
    samples = 3 if lifting.random_lift else 1
    x, g = points(lifting), elements(group)
    lifted = lifting.lift(x, samples, torch.Generator().manual_seed(2))
    moved = LiftedPoints(lifting).apply(g, lifted)
    assert torch.equal(moved.orbits, lifted.orbits)
    assert torch.allclose(lifting.point(moved.elements, moved.orbits), Points().apply(g, x).repeat_interleave(samples, 1), rtol=0, atol=TIGHT)
    if not lifting.random_lift:
        again = lifting.lift(Points().apply(g, x), 1, None)
        assert torch.allclose(moved.elements, again.elements, rtol=0, atol=TIGHT)


@pytest.mark.parametrize(
    ("lifting", "group", "message"),
    [
        (SE3Lift(), O3(), "not in the lifting group SE\\(3\\)"),  # reflections
        (SO3Lift(), SE3(), "not in the lifting group SO\\(3\\)"),  # translations
        (TranslationLift(2), SO2(), "not in the lifting group T\\(2\\)"),  # rotations
        (SO2Lift(), ScaleRotation(), "not in the lifting group SO\\(2\\)"),  # scalings
    ],
)
def test_elements_outside_the_lifting_group_are_refused(lifting, group, message):
    g = elements(group, batch=16)
    with pytest.raises(DataError, match=message):
        lifting.embed(g)
    with pytest.raises(DataError, match="lifted elements"):
        LiftedElements(lifting).apply(elements(SE3() if lifting.space_dim == 3 else SE2()), torch.zeros(3, 4, lifting.element_dim + 1))


def test_permutations_of_points_are_refused_by_the_lifted_action():
    g = Element(permutation=torch.arange(4).flip(0).expand(2, 4).contiguous())
    with pytest.raises(DataError, match="does not permute"):
        SE3Lift().embed(g)


def test_the_lifting_module_is_declared_and_follows_the_networks_lift_sample_count():
    network = LieResNet(2, 1, group=SE3Lift(), k=16, num_layers=1, liftsamples=2, radius=1.0)
    assert isinstance(network.lifting, Lifting) and network.lifting.eqbench_actions.out_action == LiftedPoints(network.group)
    assert not any(name.startswith("lifting.") for name in network.state_dict())  # no parameters, no buffers
    network.liftsamples = 3
    assert network.lifting(points(SE3Lift())).size == 6 * 3
    with pytest.raises(ValueError, match="liftsamples must be 1"):
        LieResNet(2, 1, group=SO2Lift(), k=16, num_layers=1, radius=1.0).liftsamples = 2


def se3_network() -> LieResNet:
    """lieconv-se3's network (2 lift samples per point), also sampling 3 neighbours from each ball (half the points)."""
    torch.manual_seed(0)
    network = LieResNet(2, 1, group=SE3Lift(), k=16, num_layers=2, fill=0.5, nbhd=3, liftsamples=2)
    return calibrated(network, CLOUDS_3D).double()


def run(network: LieResNet, pos: Tensor, feat: Tensor, seed: int, lift: object = None) -> Tensor:
    """The network from seed ``seed``; ``lift`` (a Lift) replaces the lifting module's output when given."""
    handle = network.lifting.register_forward_hook(lambda module, args, output: lift) if lift is not None else None
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            return network(pos, feat)
    finally:
        if handle is not None:
            handle.remove()


def relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_with_common_random_numbers_the_lift_carries_the_whole_sampling_error():
    network = se3_network()
    x = points(SE3Lift(), batch=4, n=8)
    feat = torch.randn(4, 8, 2, generator=torch.Generator().manual_seed(3), dtype=DT)
    g = elements(SE3(), batch=4)
    gx = Points().apply(g, x)
    torch.manual_seed(5)
    lifted = network.lifting(x)
    moved_lift = LiftedPoints(network.group).apply(g, lifted)
    reference = run(network, x, feat, seed=5)
    assert relative(run(network, gx, feat, seed=5), reference) > 1e-2  # common random numbers alone: not invariant
    assert relative(run(network, gx, feat, seed=5, lift=moved_lift), reference) < 1e-10  # the lift moved with g: invariant
    # negative control: the same moved lift, but the neighbourhood samples drawn from another seed
    assert relative(run(network, gx, feat, seed=6, lift=moved_lift), reference) > 1e-2
