"""L-conv (Dehmamy et al. 2021): special cases equal their standard layers, symmetry is exact where promised.

Equalities are checked to 1e-5 in float32 (the layers compute the same sums in another order);
equivariance through the checker, each claim with a negative control that the checker catches.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from eqbench.actions import Scalars
from eqbench.check import check_equivariance
from eqbench.groups import CyclicTranslations
from eqbench.inputs import GridSignalInputs
from eqbench.models.lconv import (
    LConv,
    LConvImageClassifier,
    band_limited_rotation,
    images_to_sites,
    lconv_stack,
    rotation_generator,
    shift_generators,
    shift_matrix,
    sites_to_images,
    spectral_derivative_matrix,
)
from eqbench.tasks.images import (
    image_variant,
    pixel_permutation,
    rotate_images,
    scramble_pixels,
)

EQUAL = 1e-5
CHECK = {"n_inputs": 2, "n_elements": 8, "search_examples": 10}


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ special cases
@pytest.mark.parametrize(
    "conv_cls, shape, kernel",
    [(nn.Conv1d, (9,), 3), (nn.Conv1d, (8,), 5), (nn.Conv2d, (6, 7), 3), (nn.Conv2d, (5, 5), 5), (nn.Conv2d, (6, 5), (3, 1))],
)
def test_shift_generators_give_a_circular_convolution(conv_cls, shape, kernel):
    torch.manual_seed(0)
    padding = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    conv = conv_cls(3, 4, kernel, padding=padding, padding_mode="circular")
    layer = LConv.from_conv(conv, shape)
    x = torch.randn(2, 3, *shape, generator=seeded())
    got = layer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(2, 4, *shape)
    assert torch.allclose(got, conv(x), atol=EQUAL, rtol=0)


def test_a_conv_with_zero_padding_is_refused():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="circular"):
        LConv.from_conv(conv, (5, 5))


def test_one_propagation_generator_gives_a_gcn_layer():
    torch.manual_seed(0)
    nodes, fan_in, fan_out = 7, 3, 5
    adjacency = (torch.rand(nodes, nodes, generator=seeded()) < 0.4).float()
    adjacency = ((adjacency + adjacency.T) > 0).float() + torch.eye(nodes)
    degree = adjacency.sum(1).rsqrt()
    propagation = degree[:, None] * adjacency * degree[None, :]
    neighbours, self_loop = nn.Linear(fan_in, fan_out), nn.Linear(fan_in, fan_out, bias=False)
    layer = LConv.graph_convolution(propagation, fan_in, fan_out, activation=nn.Tanh())
    with torch.no_grad():
        layer.weight[0] = self_loop.weight.T
        layer.weight[1] = neighbours.weight.T
        layer.bias.copy_(neighbours.bias)
    h = torch.randn(4, nodes, fan_in, generator=seeded(1))
    reference = torch.tanh(neighbours(propagation @ h) + self_loop(h))  # sigma(A h W + h W0 + b)
    assert torch.allclose(layer(h), reference, atol=EQUAL, rtol=0)


def test_elementary_generators_give_a_fully_connected_layer():
    torch.manual_seed(0)
    sites, fan_in, fan_out = 5, 2, 3
    linear = nn.Linear(sites * fan_in, sites * fan_out, bias=False)
    layer = LConv.from_linear(linear, sites)
    assert layer.num_generators == sites * sites and layer.low_rank
    h = torch.randn(4, sites, fan_in, generator=seeded())
    assert torch.allclose(layer(h), linear(h.flatten(1)).reshape(4, sites, fan_out), atol=EQUAL, rtol=0)


def test_low_rank_generators_equal_their_dense_product():
    u = torch.randn(3, 10, 2, generator=seeded())
    v = torch.randn(3, 2, 10, generator=seeded(1))
    low_rank = LConv(4, 6, (u, v), activation=nn.ReLU(), seed_generator=seeded(2))
    dense = LConv(4, 6, u @ v, activation=nn.ReLU(), seed_generator=seeded(2))
    h = torch.randn(5, 10, 4, generator=seeded(3))
    assert torch.allclose(low_rank(h), dense(h), atol=EQUAL, rtol=0)
    assert torch.allclose(low_rank.generator_matrices(), dense.generator_matrices(), atol=EQUAL, rtol=0)


def test_the_layer_computes_sum_of_generator_terms():
    """F(h) = sigma(sum_i L_i h W^i + b) with L_0 = I, term by term."""
    generators = torch.randn(2, 6, 6, generator=seeded())
    layer = LConv(3, 4, generators, activation=nn.Tanh(), seed_generator=seeded(1))
    with torch.no_grad():
        layer.bias.normal_(generator=seeded(2))
    h = torch.randn(2, 6, 3, generator=seeded(3))
    w = layer.weight
    expected = torch.tanh(h @ w[0] + generators[0] @ h @ w[1] + generators[1] @ h @ w[2] + layer.bias)
    assert torch.allclose(layer(h), expected, atol=EQUAL, rtol=0)


def test_fixed_generators_are_buffers_and_learnable_ones_get_gradients():
    shifts, _ = shift_generators((4, 4), 3)
    fixed = LConv(1, 2, shifts)
    assert "generator" in dict(fixed.named_buffers()) and "generator" not in dict(fixed.named_parameters())
    learned = LConv(1, 2, num_sites=16, num_generators=2, rank=3, seed_generator=seeded())
    learned(torch.randn(3, 16, 1, generator=seeded(1))).square().sum().backward()
    assert learned.generator_u.grad is not None and learned.generator_u.grad.abs().sum() > 0
    assert learned.generator_v.grad is not None and learned.generator_v.grad.abs().sum() > 0


def test_stacks_and_the_image_classifier_have_the_documented_shapes():
    shifts, _ = shift_generators((5, 5), 3)
    stack = lconv_stack([2, 8, 8, 3], shifts)
    assert len(stack) == 3 and stack[-1].activation is None and isinstance(stack[0].activation, nn.ReLU)
    assert stack(torch.randn(4, 25, 2)).shape == (4, 25, 3)
    classifier = LConvImageClassifier(6, 6, 10, hidden_channels=8, num_generators=2, rank=3, seed_generator=seeded())
    assert classifier(torch.randn(3, 1, 6, 6)).shape == (3, 10)


def test_bad_inputs_get_clear_errors():
    layer = LConv(2, 3, torch.randn(1, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, sites=5, channels=2\)"):
        layer(torch.randn(4, 6, 2))
    with pytest.raises(ValueError, match=r"\(n, d, d\)"):
        LConv(2, 3, torch.randn(5, 5))
    with pytest.raises(ValueError, match=r"U of shape \(n, d, r\)"):
        LConv(2, 3, (torch.randn(1, 5, 2), torch.randn(1, 3, 5)))
    with pytest.raises(ValueError, match="finite"):
        LConv(2, 3, torch.full((1, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="num_sites"):
        LConv(2, 3)
    with pytest.raises(ValueError, match="odd"):
        shift_generators((5, 5), 2)


# ------------------------------------------------------------------ grid operators
def test_shift_matrix_reads_the_signal_at_the_offset():
    signal = torch.arange(12.0).reshape(3, 4)
    shifted = (shift_matrix((3, 4), (1, -1)) @ signal.reshape(-1)).reshape(3, 4)
    assert torch.equal(shifted, torch.roll(signal, shifts=(-1, 1), dims=(0, 1)))


@pytest.mark.parametrize("n", [7, 8])
def test_spectral_derivative_is_exact_on_band_limited_signals(n):
    z = torch.arange(n, dtype=torch.float64)
    wave = torch.sin(2 * math.pi * 2 * z / n + 0.3)
    slope = (2 * math.pi * 2 / n) * torch.cos(2 * math.pi * 2 * z / n + 0.3)
    assert torch.allclose(spectral_derivative_matrix(n) @ wave, slope, atol=1e-12)


@pytest.mark.parametrize("size", [7, 8])
def test_band_limited_rotation_is_rot90_at_a_right_angle_and_its_derivative_is_the_generator(size):
    images = torch.randn(2, 1, size, size, generator=seeded(), dtype=torch.float64)
    quarter = band_limited_rotation(size, size, torch.tensor([math.pi / 2], dtype=torch.float64))[0]
    turned = sites_to_images(torch.einsum("ij,bjc->bic", quarter, images_to_sites(images)), size, size)
    assert torch.allclose(turned, torch.rot90(images, 1, dims=(-2, -1)), atol=1e-12)
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    _, derivative = torch.func.jvp(lambda t: band_limited_rotation(size, size, t), (zero,), (one,))
    assert torch.allclose(derivative[0], rotation_generator(size, size), atol=1e-12)


# ------------------------------------------------------------------ image variants (the L-conv comparison's data)
@pytest.mark.parametrize("interpolation", ["bilinear", "band_limited"])
def test_rotating_images_by_a_right_angle_is_rot90(interpolation):
    images = torch.randn(3, 2, 8, 8, generator=seeded(), dtype=torch.float64)
    turned = rotate_images(images, torch.full((3,), math.pi / 2, dtype=torch.float64), interpolation)
    assert torch.allclose(turned, torch.rot90(images, 1, dims=(-2, -1)), atol=1e-10)


def test_small_rotations_of_smooth_images_agree_between_interpolations():
    """Bilinear and band-limited resampling are two approximations of one rotation; on smooth content they agree."""
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    blob = torch.exp(-((rows - 7.5) ** 2 + (cols - 9.0) ** 2) / 8.0)[None, None].double()
    angle = torch.tensor([0.3])
    bilinear, band_limited = rotate_images(blob, angle, "bilinear"), rotate_images(blob, angle, "band_limited")
    assert (bilinear - band_limited).abs().max() < 0.05 < (blob - band_limited).abs().max()


def test_scrambled_variants_share_one_seeded_permutation():
    images = torch.randn(4, 1, 5, 5, generator=seeded())
    permutation = pixel_permutation(5, 5, seed=3)
    assert torch.equal(permutation, pixel_permutation(5, 5, seed=3)) and not torch.equal(permutation, torch.arange(25))
    scrambled = image_variant(images, "scrambled", seed=3)
    assert torch.equal(scrambled, scramble_pixels(images, permutation))
    assert torch.equal(scramble_pixels(scrambled, torch.argsort(permutation)), images)
    both = image_variant(images, "rotated_scrambled", seed=3)
    assert torch.equal(both, scramble_pixels(image_variant(images, "rotated", seed=3), permutation))
    assert not torch.allclose(image_variant(images, "rotated", seed=3), images)
    assert torch.equal(image_variant(images, "plain"), images)


def test_image_variants_refuse_bad_arguments():
    with pytest.raises(ValueError, match="unknown image variant"):
        image_variant(torch.zeros(1, 1, 4, 4), "sheared")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_variant(torch.zeros(4, 4), "rotated")
    with pytest.raises(ValueError, match="permutation of 16 pixels"):
        scramble_pixels(torch.zeros(1, 1, 4, 4), torch.zeros(16, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown interpolation"):
        rotate_images(torch.zeros(1, 1, 4, 4), torch.zeros(1), "nearest")


# ------------------------------------------------------------------ equivariance
def test_shift_generator_network_is_exactly_translation_equivariant_and_random_generators_are_not():
    torus, inputs = CyclicTranslations(6, 6), GridSignalInputs(6, 6, channels=2)
    shifts, _ = shift_generators((6, 6), 3)
    torch.manual_seed(0)
    network = lconv_stack([2, 8, 3], shifts)
    result = check_equivariance(network, torus, inputs, Scalars(), Scalars(), expected="exact", **CHECK)
    assert str(result.verdict) == "exact", str(result)
    control = LConv(2, 3, num_sites=36, num_generators=2, seed_generator=seeded())
    broken = check_equivariance(control, torus, inputs, Scalars(), Scalars(), expected="exact", **CHECK)
    assert str(broken.verdict) == "violated", str(broken)


def test_cyclic_translations_form_the_torus_group():
    torus = CyclicTranslations(3, 4)
    everything = torus.elements()
    assert everything.permutation.shape == (12, 12) and torus.order() == 12
    assert len({tuple(p.tolist()) for p in everything.permutation}) == 12
    a, b = torus.element({"shift": torch.tensor([[1, 3]])}), torus.element({"shift": torch.tensor([[2, 2]])})
    assert torch.equal((a * b).permutation, torus.element({"shift": torch.tensor([[0, 1]])}).permutation)


def test_torus_checks_are_exhaustive_and_catch_a_half_period_bug():
    """A site weight of period 2 along the columns commutes only with even column shifts (6 of 12)."""
    torus, inputs = CyclicTranslations(3, 4), GridSignalInputs(3, 4)
    weight = (1.0 + torch.arange(12) % 2).to(torch.float64)[None, :, None]

    def broken(x: torch.Tensor) -> torch.Tensor:
        return x * weight

    result = check_equivariance(broken, torus, inputs, Scalars(), Scalars(), expected="exact", n_inputs=1, n_elements=2, search_examples=0, exhaustive=True)
    assert result.exhaustive and result.n_elements == 12 and str(result.verdict) == "violated", str(result)
    uniform = check_equivariance(lambda x: 2.0 * x, torus, inputs, Scalars(), Scalars(), expected="exact", n_inputs=1, search_examples=0, exhaustive=True)
    assert str(uniform.verdict) == "exact", str(uniform)
