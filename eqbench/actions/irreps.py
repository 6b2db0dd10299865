"""Fields typed by e3nn irreducible representations of O(3), so eqbench can check e3nn models.

``Irreps("8x0e+8x1o")`` acts on the last axis (of size ``irreps.dim``) by the block-diagonal
matrix ``D(R) = irreps.D_from_matrix(R)`` of e3nn: an O(3) matrix splits into its rotation
``R' = det(R) R`` and parity, each ``(mul, (l, p))`` block is ``p^k D^l(R')`` with ``k = 1``
for improper ``R``, and ``D^l`` is the Wigner matrix in e3nn's real basis (the one of
``o3.spherical_harmonics``; for ``l = 1`` in e3nn 0.5+ that is ``(x, y, z)``, so a ``1o`` field
moves like :class:`~eqbench.actions.Vectors` and a ``1e`` field like ``Vectors(pseudo=True)``).
Translations do not act; per-point fields are re-indexed by the permutation.

How ``D^l`` is computed. e3nn writes ``R' = Y(alpha) X(beta) Y(gamma)`` and
``D^l = exp(alpha J_y) exp(beta J_x) exp(gamma J_y)`` with its generators ``J = so3_generators(l)``.
e3nn evaluates each factor with ``torch.matrix_exp`` on generators built in the default
dtype (float32 unless changed, which makes ``D`` a representation only to ~1e-6), and finds
``beta`` with ``acos``. Here the generators are built once in float64 and diagonalised
(``i J = U diag(lambda) U^H``, so ``exp(theta J) = U diag(exp(-i theta lambda)) U^H``) and the
Euler angles come from ``atan2``: the same matrices as e3nn's, to ~1e-14, as a group action
to ~1e-12, and without a matrix exponential per element.
e3nn is imported only when an ``Irreps`` action is built.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from eqbench.actions.base import DataError
from eqbench.actions.checks import (
    check_batch,
    require_finite,
    require_floating,
    require_ndim,
    require_size,
    require_tensor,
)
from eqbench.actions.field import FieldAction
from eqbench.actions.transforms import linear_on_axis, permute_points
from eqbench.groups.element import Element


def _o3() -> Any:
    try:
        from e3nn import o3
    except ImportError as error:
        raise ImportError("eqbench.actions.Irreps needs e3nn: `pip install e3nn` (or `pip install eqbench[dev]`)") from error
    return o3


class _AxisRotations:
    """``exp(theta J)`` for one real antisymmetric generator ``J``, from its eigen-decomposition."""

    def __init__(self, generator: Tensor) -> None:
        eigenvalues, vectors = torch.linalg.eigh(1j * generator.to(torch.complex128))
        self.eigenvalues, self.vectors = eigenvalues, vectors

    def __call__(self, theta: Tensor) -> Tensor:
        phases = torch.exp(-1j * theta[:, None].to(torch.float64) * self.eigenvalues)
        return ((self.vectors * phases[:, None, :]) @ self.vectors.conj().T).real


def euler_angles(rotation: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """e3nn's Y-X-Y Euler angles of ``(B, 3, 3)`` rotations, ``R = Y(alpha) X(beta) Y(gamma)``, via ``atan2``."""
    o3 = _o3()
    y_axis = rotation[..., :, 1]
    alpha = torch.atan2(y_axis[..., 0], y_axis[..., 2])
    beta = torch.atan2(torch.hypot(y_axis[..., 0], y_axis[..., 2]), y_axis[..., 1])
    rest = o3.angles_to_matrix(alpha, beta, torch.zeros_like(alpha)).transpose(-1, -2) @ rotation
    return alpha, beta, torch.atan2(rest[..., 0, 2], rest[..., 0, 0])


@dataclass(frozen=True, repr=False)
class Irreps(FieldAction):
    """An e3nn irreps field ``(B, [N,] ..., irreps.dim)`` acted on by ``irreps.D_from_matrix(M)``."""

    spec: str
    per_point: bool = True
    irreps: Any = field(init=False, compare=False)
    _axes: dict = field(init=False, compare=False)

    def __post_init__(self) -> None:
        o3 = _o3()
        irreps = o3.Irreps(self.spec)
        object.__setattr__(self, "irreps", irreps)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
        try:
            generators = {ir.l: o3.so3_generators(ir.l) for _, ir in irreps}
        finally:
            torch.set_default_dtype(previous)
        axes = {l: (_AxisRotations(gen[1]), _AxisRotations(gen[0])) for l, gen in generators.items()}
        object.__setattr__(self, "_axes", axes)

    @property
    def layout(self) -> str:
        return f"(B, N, ..., {self.irreps.dim})" if self.per_point else f"(B, ..., {self.irreps.dim})"

    def blocks(self, g: Element) -> list[Tensor]:
        """One ``(B, 2l+1, 2l+1)`` float64 matrix ``p^k D^l(R')`` per ``(mul, ir)`` entry of the irreps."""
        if g.matrix.shape[-1] != 3:
            raise DataError(f"e3nn irreps need a group acting on R^3, got one acting on R^{g.matrix.shape[-1]}")
        matrix = g.matrix.to(torch.float64).cpu()
        improper = (torch.linalg.cross(matrix[:, 0], matrix[:, 1]) * matrix[:, 2]).sum(-1) < 0  # det < 0
        alpha, beta, gamma = euler_angles(torch.where(improper[:, None, None], -matrix, matrix))
        wigner = {l: about_y(alpha) @ about_x(beta) @ about_y(gamma) for l, (about_y, about_x) in self._axes.items()}
        return [
            wigner[ir.l] * torch.where(improper, float(ir.p), 1.0).to(torch.float64)[:, None, None]
            for _, ir in self.irreps
        ]

    def wigner(self, g: Element) -> Tensor:
        """``(B, dim, dim)`` float64 block-diagonal representation matrices (e3nn's ``D_from_matrix``)."""
        if g.matrix is None:
            return torch.eye(self.irreps.dim, dtype=torch.float64).expand(g.batch_size, -1, -1)
        return _block_diagonal([block for (mul, _), block in zip(self.irreps, self.blocks(g)) for _ in range(mul)])

    def apply(self, g: Element, x: Tensor) -> Tensor:
        check_batch(g, x, "irreps field")
        out = x
        if g.matrix is not None:
            pieces, start = [], 0
            for (mul, ir), block in zip(self.irreps, self.blocks(g)):
                width = mul * ir.dim
                copies = x[..., start : start + width].reshape(*x.shape[:-1], mul, ir.dim)
                pieces.append(linear_on_axis(block, copies).reshape(*x.shape[:-1], width))
                start += width
            out = torch.cat(pieces, dim=-1)
        if self.per_point and g.permutation is not None:
            out = permute_points(out, g.permutation, "irreps field")
        return out

    def validate(self, x: Tensor, where: str = "input") -> None:
        what = f"irreps field {self.irreps}"
        require_tensor(x, where, what)
        require_ndim(x, where, what, self.layout, 2 if self.per_point else 1)
        require_floating(x, where, what)
        require_size(x, -1, self.irreps.dim, where, what, self.layout)
        require_finite(x, where)

    def __repr__(self) -> str:
        per_point = "" if self.per_point else ", per_point=False"
        return f"Irreps({self.spec!r}{per_point})"


def _block_diagonal(blocks: list[Tensor]) -> Tensor:
    """Batched block-diagonal matrix ``(B, sum n_i, sum n_i)`` from ``(B, n_i, n_i)`` blocks."""
    size = sum(block.shape[-1] for block in blocks)
    out = torch.zeros(blocks[0].shape[0], size, size, dtype=blocks[0].dtype)
    start = 0
    for block in blocks:
        n = block.shape[-1]
        out[:, start : start + n, start : start + n] = block
        start += n
    return out
