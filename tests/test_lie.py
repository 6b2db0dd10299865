"""Lie algebras, closed-form exp and log of the continuous groups."""
from __future__ import annotations

import math

import pytest
import torch

from eqbench.groups import E2, E3, O2, O3, SE2, SE3, SO2, SO3, DirectProduct, Group, ScaleRotation, Symmetric, Translations
from eqbench.groups.rotations3d import so3_exp, so3_log

ATOL = 1e-10

LIE_GROUPS: list[Group] = [SO2(), O2(), SE2(), E2(), SO3(), O3(), SE3(), E3(), Translations(2), Translations(3), ScaleRotation(), SE3() * Symmetric()]
#: Groups whose identity component the sampler covers with reflect = 0.
WITH_REFLECTIONS = ("O(2)", "E(2)", "O(3)", "E(3)")


def ids(groups: list[Group]) -> list[str]:
    return [g.name for g in groups]


def homogeneous(group: Group, g) -> torch.Tensor:
    return group.matrix_representation(g)


def identity_component(group: Group, n: int, seed: int):
    """Haar samples of the group, reflections removed (log is defined on the identity component)."""
    params = group.sample_params(n, torch.Generator().manual_seed(seed), 4)
    for key in params:
        if key.endswith("reflect"):
            params[key] = torch.zeros_like(params[key])
    return group.element(params)


@pytest.mark.parametrize("group", LIE_GROUPS, ids=ids(LIE_GROUPS))
def test_lie_algebra_is_homogeneous_float64(group: Group) -> None:
    basis = group.lie_algebra
    d = group.space_dim
    assert group.is_lie and basis.dtype == torch.float64 and basis.shape[1:] == (d + 1, d + 1)
    assert torch.equal(basis[:, d], torch.zeros_like(basis[:, d]))  # last row: the affine constraint
    assert torch.linalg.matrix_rank(basis.reshape(len(basis), -1)) == len(basis)  # a basis: independent


@pytest.mark.parametrize("group", LIE_GROUPS, ids=ids(LIE_GROUPS))
def test_closed_form_exp_is_the_matrix_exponential(group: Group) -> None:
    k = group.lie_algebra.shape[0]
    c = 1.5 * torch.randn(32, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c[:4] *= 1e-9  # the small-angle series
    c[4] = 0.0
    closed, generic = group.exp(c), Group.exp(group, c)
    torch.testing.assert_close(homogeneous(group, closed), homogeneous(group, generic), atol=ATOL, rtol=0)


@pytest.mark.parametrize("group", LIE_GROUPS, ids=ids(LIE_GROUPS))
def test_log_of_exp_is_the_identity_for_small_coefficients(group: Group) -> None:
    k = group.lie_algebra.shape[0]
    c = 0.5 * torch.randn(64, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c[:8] *= 1e-7
    torch.testing.assert_close(group.log(group.exp(c)), c, atol=ATOL, rtol=1e-9)


@pytest.mark.parametrize("group", LIE_GROUPS, ids=ids(LIE_GROUPS))
def test_exp_of_log_is_the_identity_on_haar_samples(group: Group) -> None:
    g = identity_component(group, 64, seed=2)
    torch.testing.assert_close(homogeneous(group, group.exp(group.log(g))), homogeneous(group, g), atol=ATOL, rtol=0)


@pytest.mark.parametrize("group", LIE_GROUPS, ids=ids(LIE_GROUPS))
def test_one_parameter_subgroups(group: Group) -> None:
    """``exp(s X) exp(t X) = exp((s + t) X)``."""
    k = group.lie_algebra.shape[0]
    x = torch.randn(8, k, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    s, t = 0.3, -1.1
    product = group.exp(s * x) * group.exp(t * x)
    torch.testing.assert_close(homogeneous(group, product), homogeneous(group, group.exp((s + t) * x)), atol=ATOL, rtol=0)


@pytest.mark.parametrize("group", LIE_GROUPS, ids=ids(LIE_GROUPS))
@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")  # torch scripts its jvp decompositions once
def test_exp_is_differentiable_at_zero_with_the_generators_as_derivative(group: Group) -> None:
    """``d/dt exp(t X_i)`` at ``t = 0`` is ``X_i`` (forward mode, as the Lie derivative uses it): no NaN from |w|."""
    basis = group.lie_algebra
    directions = torch.eye(len(basis), dtype=torch.float64)

    def curve(t: torch.Tensor) -> torch.Tensor:
        return homogeneous(group, group.exp(t * directions))

    _, tangent = torch.func.jvp(curve, (torch.zeros((), dtype=torch.float64),), (torch.ones((), dtype=torch.float64),))
    torch.testing.assert_close(tangent, basis, atol=1e-12, rtol=0)


def random_axes(n: int, seed: int) -> torch.Tensor:
    axes = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return axes / axes.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-7, 1e-4, 0.5, math.pi / 2, 2.0, 3.0, 3.1, math.pi - 1e-4, math.pi - 1e-8, math.pi])
def test_so3_log_is_accurate_at_every_angle(angle: float) -> None:
    omega = random_axes(16, seed=4) * angle
    rotation = so3_exp(omega)
    recovered = so3_log(rotation)
    torch.testing.assert_close(so3_exp(recovered), rotation, atol=ATOL, rtol=0)
    torch.testing.assert_close(recovered.norm(dim=-1), torch.full((16,), angle, dtype=torch.float64), atol=1e-9, rtol=0)
    if angle < math.pi - 1e-6:  # below pi the axis-angle vector is unique
        torch.testing.assert_close(recovered, omega, atol=1e-9, rtol=0)


def test_log_at_pi_from_the_symmetric_part_only_would_miss_nearby_angles() -> None:
    """Negative control for the accuracy test: ``(R + I) / 2 = u u^T`` only at pi; near 3.0 it is off by far more than 1e-10."""
    omega = random_axes(16, seed=5) * 3.0
    rotation = so3_exp(omega)
    sym = (rotation + torch.eye(3, dtype=torch.float64)) / 2
    column = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
    u = sym[torch.arange(16), :, column]
    u = u / u.norm(dim=-1, keepdim=True)
    u = u * torch.sign((u * omega).sum(-1, keepdim=True))
    assert (so3_exp(3.0 * u) - rotation).abs().max() > 1e-3


@pytest.mark.parametrize("group", [O2(), O3(), E3()], ids=["O2", "O3", "E3"])
def test_log_refuses_reflections(group: Group) -> None:
    params = group.sample_params(4, torch.Generator().manual_seed(0))
    params["reflect"] = torch.ones_like(params["reflect"])
    with pytest.raises(ValueError, match="reflection"):
        group.log(group.element(params))


def test_scale_rotation_log_is_angle_and_log_scale() -> None:
    group = ScaleRotation()
    params = group.sample_params(32, torch.Generator().manual_seed(0))
    torch.testing.assert_close(group.log(group.element(params)), torch.stack([params["angle"], params["log_scale"]], -1), atol=ATOL, rtol=0)


def test_product_exp_acts_on_the_lie_factor_only() -> None:
    group = SE3() * Symmetric()
    c = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = group.exp(c)
    assert g.permutation is None  # the identity on the point axis
    torch.testing.assert_close(homogeneous(group, g), homogeneous(SE3(), SE3().exp(c)), atol=0, rtol=0)
    torch.testing.assert_close(group.lie_algebra, SE3().lie_algebra, atol=0, rtol=0)


def test_products_of_two_lie_factors_concatenate_generators() -> None:
    group = DirectProduct(SO3(), Translations(3), Symmetric())
    assert group.lie_algebra.shape == (6, 4, 4)
    c = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(homogeneous(group, group.exp(c)), homogeneous(SE3(), SE3().exp(c)), atol=ATOL, rtol=0)
    with pytest.raises(NotImplementedError, match="exactly one continuous factor"):
        group.log(group.exp(c))


def test_finite_groups_have_no_lie_algebra() -> None:
    from eqbench.groups import Cyclic, Dihedral, Trivial

    for group in (Cyclic(4), Dihedral(4), Symmetric(), Trivial(), Dihedral(4) * Symmetric()):
        assert group.lie_algebra is None and not group.is_lie
        with pytest.raises(NotImplementedError):
            group.exp(torch.zeros(1, 1, dtype=torch.float64))
