"""L-conv, the Lie algebra convolution of Dehmamy, Walters, Liu and Yu (NeurIPS 2021).

A signal on ``d`` sites with ``m`` channels is a ``(B, d, m)`` tensor ``h`` (sites on axis 1,
the per-point convention of eqbench). An L-conv layer with generators ``L_1 .. L_n``
(``d x d`` matrices acting on the site axis) is

    F(h) = sigma( sum_{i=0}^{n} L_i h W^i + b ),    L_0 = I,

with one ``m x m'`` weight matrix ``W^i`` per generator (the paper's layer: the first-order
expansion of a group convolution around the identity, ``g = I + eps_i L_i``). When every ``L_i``
commutes with the action ``T`` of a group on the sites (``L_i T = T L_i``), so does ``F``: it is
equivariant to that group with ``h -> T h``. Generators may be fixed (a buffer) or learnable,
dense or low rank (``L_i = U_i V_i`` with ``U_i: d x r``, ``V_i: r x d``).

Special cases discussed in the paper, each a constructor of :class:`LConv`:

* CNN: the ``L_i`` are the cyclic shifts by the offsets of a ``k``-wide kernel (``L_0`` is the
  centre); ``F`` equals a convolution with circular padding (:meth:`LConv.convolution`,
  :meth:`LConv.from_conv`). Shifts commute with all cyclic translations, so the layer is
  exactly translation equivariant on the torus.
* GCN: one generator, a graph propagation matrix ``A``: ``F(h) = h W^0 + A h W^1 + b``
  (:meth:`LConv.graph_convolution`).
* Fully connected: the ``d^2`` elementary matrices ``E_ab = e_a e_b^T`` as rank-one
  generators; ``sum_ab E_ab h W^ab`` is any linear map ``R^{d m} -> R^{d m'}``
  (:meth:`LConv.fully_connected`, :meth:`LConv.from_linear`).

Grids. Sites of an ``H x W`` image are numbered row-major, ``site = row * W + col``, and pixel
``(row i, col j)`` sits at ``(x, y) = (j - c_W, c_H - i)`` with ``c = (size - 1) / 2`` (the
convention of :class:`eqbench.actions.GridImage`). :func:`band_limited_rotation` rotates a
grid signal by evaluating its periodic (trigonometric) interpolant at rotated points, a
smooth function of the angle; its derivative at angle 0 is :func:`rotation_generator`,
``L_rot = x d/drow + y d/dcol`` with spectral derivatives (the discretised ``x d_y - y d_x``
that Dehmamy et al. use as the ground truth of their symmetry-discovery experiment).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

GeneratorSpec = Tensor | tuple[Tensor, Tensor]


class LConv(nn.Module):
    """One L-conv layer ``F(h) = sigma(sum_{i=0}^n L_i h W^i + b)``, ``L_0 = I`` (see module docs).

    Args:
        in_channels, out_channels: ``m`` and ``m'``.
        generators: the ``L_1 .. L_n`` as a dense ``(n, d, d)`` tensor, or low-rank factors
            ``(U, V)`` of shapes ``(n, d, r)`` and ``(n, r, d)`` with ``L_i = U_i V_i``; ``None``
            draws random ones (needs ``num_sites`` and ``num_generators``; low rank when ``rank``
            is given), entries of variance about ``1 / d``.
        learnable: generators are trained (``nn.Parameter``) rather than fixed (buffer).
            Randomly drawn generators are always learnable.
        bias, activation: ``b`` (one per output channel) and ``sigma`` (``None``: identity).
        seed_generator: the ``torch.Generator`` for the initial weights and random generators
            (seeded by the caller; ``None``: torch's global generator, as for ``nn.Linear``).

    Input ``(B, d, m)``, output ``(B, d, m')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        generators: GeneratorSpec | None = None,
        *,
        num_sites: int | None = None,
        num_generators: int | None = None,
        rank: int | None = None,
        learnable: bool = False,
        bias: bool = True,
        activation: nn.Module | None = None,
        seed_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"LConv needs in_channels >= 1 and out_channels >= 1, got {in_channels}, {out_channels}")
        if generators is None:
            generators = _random_generators(num_sites, num_generators, rank, seed_generator)
            learnable = True
        self.low_rank = isinstance(generators, tuple)
        factors = _check_generators(generators)
        self.num_generators, self.num_sites = factors[0].shape[0], factors[0].shape[1]
        for name, tensor in zip(("generator_u", "generator_v") if self.low_rank else ("generator",), factors):
            tensor = tensor.detach().clone()  # keeps its dtype: a float64 generator stays exact in float64 runs
            if learnable:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.learnable = learnable
        self.in_channels, self.out_channels = in_channels, out_channels
        bound = 1.0 / math.sqrt(in_channels * (self.num_generators + 1))
        weight = torch.empty(self.num_generators + 1, in_channels, out_channels)
        self.weight = nn.Parameter(weight.uniform_(-bound, bound, generator=seed_generator))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.activation = activation

    # ------------------------------------------------------------------ forward
    def forward(self, h: Tensor) -> Tensor:
        if h.dim() != 3 or h.shape[1] != self.num_sites or h.shape[2] != self.in_channels:
            raise ValueError(
                f"LConv expects signals of shape (B, sites={self.num_sites}, channels={self.in_channels}), "
                f"got {tuple(h.shape)}"
            )
        terms = torch.cat([h.unsqueeze(1), self.apply_generators(h)], dim=1)
        out = torch.einsum("bkdc,kco->bdo", terms, self.weight.to(h.dtype))
        if self.bias is not None:
            out = out + self.bias.to(h.dtype)
        return out if self.activation is None else self.activation(out)

    def apply_generators(self, h: Tensor) -> Tensor:
        """``L_i h`` for every generator: ``(B, d, m) -> (B, n, d, m)``."""
        if self.low_rank:
            inner = torch.einsum("krd,bdc->bkrc", self.generator_v.to(h.dtype), h)
            return torch.einsum("kdr,bkrc->bkdc", self.generator_u.to(h.dtype), inner)
        return torch.einsum("kij,bjc->bkic", self.generator.to(h.dtype), h)

    def generator_matrices(self) -> Tensor:
        """The dense ``(n, d, d)`` generators ``L_1 .. L_n`` (``U_i V_i`` for low-rank ones)."""
        if self.low_rank:
            return self.generator_u @ self.generator_v
        return self.generator

    def extra_repr(self) -> str:
        kind = "low-rank" if self.low_rank else "dense"
        state = "learnable" if self.learnable else "fixed"
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, sites={self.num_sites}, "
            f"generators={self.num_generators} ({kind}, {state}), bias={self.bias is not None}"
        )

    # ------------------------------------------------------------ special cases
    @classmethod
    def convolution(
        cls,
        spatial_shape: Sequence[int],
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        bias: bool = True,
        activation: nn.Module | None = None,
    ) -> LConv:
        """A CNN layer as an L-conv: fixed shift generators for every kernel offset but the centre.

        Equals an ``nn.Conv{1,2,3}d`` with ``padding_mode="circular"`` and "same" padding; the
        weights ``W^i`` are the kernel taps (see :meth:`from_conv` to copy a conv's weights).
        """
        shifts, _ = shift_generators(spatial_shape, kernel_size)
        return cls(in_channels, out_channels, shifts, bias=bias, activation=activation)

    @classmethod
    def from_conv(cls, conv: nn.Module, spatial_shape: Sequence[int]) -> LConv:
        """The L-conv equal to ``conv`` (an ``nn.Conv1d/2d/3d`` with circular "same" padding) on grids of ``spatial_shape``.

        Cross-correlation ``y[p] = sum_s w[s] x[p + s]`` becomes ``sum_s S_s h W^s`` with the
        shift ``(S_s h)[p] = h[p + s mod shape]``; the centre tap is ``W^0`` (``L_0 = I``).
        """
        if not isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise TypeError(f"from_conv needs an nn.Conv1d, Conv2d or Conv3d, got {type(conv).__name__}")
        kernel = tuple(conv.kernel_size)
        if len(kernel) != len(spatial_shape):
            raise ValueError(f"conv has {len(kernel)} spatial axes but spatial_shape is {tuple(spatial_shape)}")
        same = tuple(k // 2 for k in kernel)
        if (
            conv.padding_mode != "circular"
            or (conv.padding != "same" and tuple(conv.padding) != same)
            or any(k % 2 == 0 for k in kernel)
            or set(conv.stride) != {1}
            or set(conv.dilation) != {1}
            or conv.groups != 1
        ):
            raise ValueError(
                "from_conv needs an odd kernel, stride 1, dilation 1, groups 1 and circular 'same' padding "
                f"(padding={same}, padding_mode='circular'); got kernel={kernel}, stride={conv.stride}, "
                f"dilation={conv.dilation}, groups={conv.groups}, padding={conv.padding}, padding_mode={conv.padding_mode!r}"
            )
        layer = cls.convolution(spatial_shape, conv.in_channels, conv.out_channels, kernel, bias=conv.bias is not None)
        _, offsets = shift_generators(spatial_shape, kernel)
        taps = conv.weight.detach()  # (out, in, *kernel)
        with torch.no_grad():
            layer.weight[0] = taps[(slice(None), slice(None), *same)].T
            for i, offset in enumerate(offsets, start=1):
                index = tuple(o + c for o, c in zip(offset, same))
                layer.weight[i] = taps[(slice(None), slice(None), *index)].T
            if conv.bias is not None:
                layer.bias.copy_(conv.bias.detach())
        return layer

    @classmethod
    def graph_convolution(
        cls,
        propagation: Tensor,
        in_channels: int,
        out_channels: int,
        *,
        bias: bool = True,
        activation: nn.Module | None = None,
    ) -> LConv:
        """A GCN layer ``sigma(h W^0 + A h W^1 + b)``: the propagation matrix ``A`` (``d x d``) as the one generator.

        With ``A`` the normalised adjacency ``D^-1/2 (Adj + I) D^-1/2`` of Kipf and Welling
        (2017) and ``W^0 = 0`` this is their layer; it is equivariant to the node
        permutations ``P`` with ``P A P^T = A`` (the graph's automorphisms).
        """
        if propagation.dim() != 2 or propagation.shape[0] != propagation.shape[1]:
            raise ValueError(f"propagation matrix must be square (d, d), got {tuple(propagation.shape)}")
        return cls(in_channels, out_channels, propagation.unsqueeze(0), bias=bias, activation=activation)

    @classmethod
    def fully_connected(
        cls,
        num_sites: int,
        in_channels: int,
        out_channels: int,
        *,
        bias: bool = True,
        activation: nn.Module | None = None,
    ) -> LConv:
        """A dense layer on all ``d * m`` inputs: the ``d^2`` rank-one generators ``E_ab = e_a e_b^T``.

        ``(sum_ab E_ab h W^ab)[a] = sum_b h[b] W^ab`` connects every input site to every output
        site. The bias is one per output channel, shared by the sites (an L-conv's ``b``).
        """
        eye = torch.eye(num_sites)
        u = eye.repeat_interleave(num_sites, dim=0).unsqueeze(-1)  # generator a*d+b: U = e_a
        v = eye.repeat(num_sites, 1).unsqueeze(1)  # V = e_b^T
        return cls(in_channels, out_channels, (u, v), bias=bias, activation=activation)

    @classmethod
    def from_linear(cls, linear: nn.Linear, num_sites: int) -> LConv:
        """The L-conv equal to ``linear`` applied to the flattened signal ``(B, d * m) -> (B, d * m')``.

        ``linear`` must have ``in_features = d * m`` and ``out_features = d * m'`` and no bias
        (an L-conv bias is shared across sites, a general linear bias is not).
        """
        if linear.bias is not None:
            raise ValueError("from_linear needs nn.Linear(..., bias=False): an L-conv bias is shared across sites")
        if linear.in_features % num_sites or linear.out_features % num_sites:
            raise ValueError(
                f"nn.Linear({linear.in_features}, {linear.out_features}) does not act on {num_sites} sites: "
                "both feature counts must be multiples of num_sites"
            )
        in_channels, out_channels = linear.in_features // num_sites, linear.out_features // num_sites
        layer = cls.fully_connected(num_sites, in_channels, out_channels, bias=False)
        blocks = linear.weight.detach().reshape(num_sites, out_channels, num_sites, in_channels)
        with torch.no_grad():
            layer.weight.zero_()
            layer.weight[1:] = blocks.permute(0, 2, 3, 1).reshape(num_sites * num_sites, in_channels, out_channels)
        return layer


def lconv_stack(
    channels: Sequence[int],
    generators: GeneratorSpec | None = None,
    *,
    activation: type[nn.Module] = nn.ReLU,
    **layer_options: object,
) -> nn.Sequential:
    """Stacked L-conv layers ``channels[0] -> channels[1] -> ...`` with ``activation`` between layers (not after the last).

    Every layer gets the same ``generators`` (copied; pass ``learnable=True`` to train them
    per layer) and the remaining ``layer_options`` of :class:`LConv`.
    """
    if len(channels) < 2:
        raise ValueError(f"lconv_stack needs at least two channel counts, got {list(channels)}")
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(channels[:-1], channels[1:])):
        last = i == len(channels) - 2
        layers.append(LConv(fan_in, fan_out, generators, activation=None if last else activation(), **layer_options))
    return nn.Sequential(*layers)


class LConvImageClassifier(nn.Module):
    """Image classifier from L-conv layers with learnable low-rank generators (the paper's image experiments).

    ``(B, C, H, W)`` images become ``(B, H*W, C)`` signals, go through ``num_layers`` L-conv
    layers (``num_generators`` learnable generators of rank ``rank`` each, ReLU), are averaged
    over the sites and classified by a linear layer. Nothing about the grid is built in, so
    the model learns the same on images whose pixels were scrambled by a fixed permutation.
    """

    def __init__(
        self,
        height: int,
        width: int,
        num_classes: int,
        *,
        in_channels: int = 1,
        hidden_channels: int = 32,
        num_layers: int = 2,
        num_generators: int = 4,
        rank: int = 8,
        seed_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.height, self.width, self.in_channels = height, width, in_channels
        widths = [in_channels] + [hidden_channels] * num_layers
        self.layers = nn.Sequential(
            *(
                LConv(
                    fan_in,
                    fan_out,
                    num_sites=height * width,
                    num_generators=num_generators,
                    rank=rank,
                    activation=nn.ReLU(),
                    seed_generator=seed_generator,
                )
                for fan_in, fan_out in zip(widths[:-1], widths[1:])
            )
        )
        self.readout = nn.Linear(hidden_channels, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        expected = (self.in_channels, self.height, self.width)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"LConvImageClassifier expects images of shape (B, {', '.join(map(str, expected))}), got {tuple(images.shape)}")
        return self.readout(self.layers(images_to_sites(images)).mean(dim=1))


# ------------------------------------------------------------------- grid signals
def images_to_sites(images: Tensor) -> Tensor:
    """``(B, C, H, W)`` images to ``(B, H*W, C)`` signals (row-major sites)."""
    return images.flatten(2).transpose(1, 2)


def sites_to_images(signals: Tensor, height: int, width: int) -> Tensor:
    """``(B, H*W, C)`` signals back to ``(B, C, H, W)`` images."""
    if signals.dim() != 3 or signals.shape[1] != height * width:
        raise ValueError(f"expected signals of shape (B, {height * width}, C), got {tuple(signals.shape)}")
    return signals.transpose(1, 2).reshape(signals.shape[0], signals.shape[2], height, width)


def shift_matrix(spatial_shape: Sequence[int], offset: Sequence[int]) -> Tensor:
    """The cyclic shift ``(S h)[p] = h[(p + offset) mod shape]`` on row-major sites, a ``(d, d)`` permutation matrix."""
    if len(offset) != len(spatial_shape):
        raise ValueError(f"offset {tuple(offset)} does not match the grid shape {tuple(spatial_shape)}")
    sites = torch.arange(math.prod(spatial_shape)).reshape(*spatial_shape)
    source = torch.roll(sites, shifts=[-o for o in offset], dims=list(range(len(spatial_shape)))).reshape(-1)
    matrix = torch.zeros(sites.numel(), sites.numel())
    matrix[torch.arange(sites.numel()), source] = 1.0
    return matrix


def shift_generators(spatial_shape: Sequence[int], kernel_size: int | Sequence[int]) -> tuple[Tensor, list[tuple[int, ...]]]:
    """Cyclic shifts for every offset of an odd kernel except the centre: ``(n, d, d)`` and the offsets.

    Offsets run over ``[-k//2, k//2]`` per axis in row-major (C) order, skipping all zeros.
    """
    kernel = (kernel_size,) * len(spatial_shape) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(kernel) != len(spatial_shape) or any(k < 1 or k % 2 == 0 for k in kernel):
        raise ValueError(f"kernel_size must be odd and have one entry per grid axis {tuple(spatial_shape)}, got {kernel_size}")
    offsets = [o for o in itertools.product(*(range(-(k // 2), k // 2 + 1) for k in kernel)) if any(o)]
    if not offsets:
        raise ValueError("a kernel of size 1 has no shifts: use LConv.fully_connected or a 1x1 convolution instead")
    return torch.stack([shift_matrix(spatial_shape, o) for o in offsets]), offsets


def periodic_sinc(z: Tensor, n: int) -> Tensor:
    """The cardinal function of trigonometric interpolation on ``n`` periodic samples, at offsets ``z`` (pixels).

    ``sin(pi z) / (n sin(pi z / n))`` for odd ``n`` and ``sin(pi z) / (n tan(pi z / n))`` for even
    ``n`` (Trefethen, *Spectral Methods in MATLAB*, ch. 3): 1 at ``z = 0``, 0 at other integers,
    ``n``-periodic and smooth (safe to differentiate at the integers).
    """
    z = torch.remainder(z + n / 2, n) - n / 2
    at_zero = z.abs() < 1e-12
    safe = torch.where(at_zero, torch.ones_like(z), z)
    denominator = n * (torch.sin(math.pi * safe / n) if n % 2 else torch.tan(math.pi * safe / n))
    return torch.where(at_zero, torch.ones_like(z), torch.sin(math.pi * safe) / denominator)


def spectral_derivative_matrix(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``D[i, j] = periodic_sinc'(i - j)``: the derivative of the trigonometric interpolant at the samples.

    ``(pi / n) (-1)^k / sin(pi k / n)`` (odd ``n``) or ``(pi / n) (-1)^k cot(pi k / n)`` (even ``n``)
    for ``k = i - j != 0``, and 0 on the diagonal; exact on band-limited periodic signals.
    """
    k = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    off = k != 0
    safe = torch.where(off, k, torch.ones_like(k)).to(dtype)
    sign = 1.0 - 2.0 * torch.remainder(k, 2).to(dtype)
    angle = math.pi * safe / n
    value = (math.pi / n) * sign / (torch.sin(angle) if n % 2 else torch.tan(angle))
    return torch.where(off, value, torch.zeros_like(value))


def grid_coordinates(height: int, width: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Plane coordinates ``(x, y)`` of the row-major sites: ``x = col - c_W``, ``y = c_H - row``."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    return (cols - (width - 1) / 2).reshape(-1), ((height - 1) / 2 - rows).reshape(-1)


def band_limited_rotation(height: int, width: int, angles: Tensor) -> Tensor:
    """``(B, d, d)`` matrices rotating grid signals counter-clockwise by ``angles`` (``(B,)``, radians).

    ``(R_t h)(p) = I[h](R_{-t} p)``: the periodic trigonometric interpolant ``I[h]`` of the
    signal, read at the rotated site positions (a push-forward, as for
    :class:`eqbench.actions.GridImage`). Smooth in ``t``, ``R_0 = I`` and ``dR/dt(0) =``
    :func:`rotation_generator`; not a group action for finite angles on a finite grid
    (``R_s R_t != R_{s+t}``), which is why finite-angle errors grow with the angle. Runs in
    ``angles``' dtype and is differentiable in ``angles``.
    """
    row_weights, col_weights = _rotation_weights(height, width, angles)
    return (row_weights[..., :, None] * col_weights[..., None, :]).reshape(angles.shape[0], height * width, height * width)


def band_limited_rotate(images: Tensor, angles: Tensor) -> Tensor:
    """Rotate ``(B, C, H, W)`` images by ``angles`` (``(B,)``) with :func:`band_limited_rotation`, without building ``d x d`` matrices.

    The interpolant is separable, ``I[h](r, c) = sum_mk sinc_H(r - m) sinc_W(c - k) h[m, k]``, so
    the cost is ``B C H W (H + W)`` rather than ``B C (H W)^2``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    row_weights, col_weights = _rotation_weights(height, width, angles.to(images.dtype))
    columns = torch.einsum("bpk,bcmk->bcpm", col_weights, images)
    rotated = torch.einsum("bpm,bcpm->bcp", row_weights, columns)
    return rotated.reshape(images.shape)


def rotation_generator(height: int, width: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The infinitesimal rotation of grid signals, ``L_rot = diag(x) (D_H (x) I) + diag(y) (I (x) D_W)``: ``(d, d)``.

    This is ``x d/drow + y d/dcol = y d_x - x d_y`` acting on pixel values (a counter-clockwise
    rotation of the content moves the value at ``R_{-t} p`` to ``p``), with the spectral
    derivatives of :func:`spectral_derivative_matrix`; it equals ``dR_t/dt`` at ``t = 0`` for
    :func:`band_limited_rotation`.
    """
    x, y = grid_coordinates(height, width, dtype)
    d_row = torch.kron(spectral_derivative_matrix(height, dtype), torch.eye(width, dtype=dtype))
    d_col = torch.kron(torch.eye(height, dtype=dtype), spectral_derivative_matrix(width, dtype))
    return x[:, None] * d_row + y[:, None] * d_col


# ------------------------------------------------------------------------ helpers
def _rotation_weights(height: int, width: int, angles: Tensor) -> tuple[Tensor, Tensor]:
    """Interpolation weights of the rotated sites: ``(B, d, H)`` over source rows, ``(B, d, W)`` over source columns."""
    if angles.dim() != 1:
        raise ValueError(f"angles must have shape (B,), got {tuple(angles.shape)}")
    x, y = grid_coordinates(height, width, angles.dtype)
    cos, sin = torch.cos(angles)[:, None], torch.sin(angles)[:, None]
    source_x, source_y = cos * x + sin * y, cos * y - sin * x  # R_{-t} p
    source_row, source_col = (height - 1) / 2 - source_y, source_x + (width - 1) / 2
    row_weights = periodic_sinc(source_row[..., None] - torch.arange(height, dtype=angles.dtype), height)
    col_weights = periodic_sinc(source_col[..., None] - torch.arange(width, dtype=angles.dtype), width)
    return row_weights, col_weights


def _random_generators(
    num_sites: int | None, num_generators: int | None, rank: int | None, seed_generator: torch.Generator | None
) -> GeneratorSpec:
    if num_sites is None or num_generators is None or num_sites < 1 or num_generators < 1:
        raise ValueError(
            "LConv without generators draws learnable ones and needs num_sites >= 1 and num_generators >= 1, "
            f"got num_sites={num_sites}, num_generators={num_generators}"
        )
    if rank is None:
        return torch.randn(num_generators, num_sites, num_sites, generator=seed_generator) / math.sqrt(num_sites)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    u = torch.randn(num_generators, num_sites, rank, generator=seed_generator) / math.sqrt(num_sites)
    v = torch.randn(num_generators, rank, num_sites, generator=seed_generator) / math.sqrt(rank)
    return u, v


def _check_generators(generators: GeneratorSpec) -> tuple[Tensor, ...]:
    """Validate dense ``(n, d, d)`` generators or low-rank ``(U, V)`` factors; return them as a tuple."""
    if isinstance(generators, tuple):
        if len(generators) != 2:
            raise ValueError(f"low-rank generators must be a pair (U, V), got {len(generators)} tensors")
        u, v = generators
        if u.dim() != 3 or v.dim() != 3 or u.shape[0] != v.shape[0] or u.shape[2] != v.shape[1] or u.shape[1] != v.shape[2]:
            raise ValueError(
                f"low-rank generators need U of shape (n, d, r) and V of shape (n, r, d), got {tuple(u.shape)} and {tuple(v.shape)}"
            )
        factors: tuple[Tensor, ...] = (u, v)
    else:
        if not isinstance(generators, Tensor) or generators.dim() != 3 or generators.shape[1] != generators.shape[2]:
            shape = tuple(generators.shape) if isinstance(generators, Tensor) else type(generators).__name__
            raise ValueError(f"generators must be a tensor of shape (n, d, d) or a pair (U, V), got {shape}")
        factors = (generators,)
    for tensor in factors:
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise ValueError("generators must be finite floating-point tensors")
    if factors[0].shape[0] < 1:
        raise ValueError("an L-conv needs at least one generator besides L_0 = I")
    return factors
