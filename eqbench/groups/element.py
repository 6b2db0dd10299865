"""A batch of group elements, in the one concrete form every action understands.

Every group in eqbench acts on data through at most three parts:

* ``matrix`` ``M`` of shape ``(B, d, d)``: the linear part acting on R^d (a rotation, a
  reflection, a scaled rotation, or an integer grid symmetry such as rot90);
* ``translation`` ``t`` of shape ``(B, d)``: so that a point moves as ``x -> M x + t``;
* ``permutation`` ``p`` of shape ``(B, N)`` (int64): the point / node axis is re-indexed
  as ``(g.X)_i = X_{p[i]}``.

A part that is ``None`` is the identity. Composition ``a * b`` means "apply ``b`` first,
then ``a``" so that ``(a * b).x == a.(b.x)``:

    M = M_a M_b,    t = M_a t_b + t_a,    p = p_b[p_a]   (batched gather).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Element:
    """A batch of ``B`` group elements (see the module docstring for the math)."""

    matrix: Tensor | None = None
    translation: Tensor | None = None
    permutation: Tensor | None = None

    def __post_init__(self) -> None:
        sizes = {t.shape[0] for t in (self.matrix, self.translation, self.permutation) if t is not None}
        if len(sizes) > 1:
            raise ValueError(f"Element parts disagree on the batch size: {sorted(sizes)}")
        if self.matrix is not None and (self.matrix.dim() != 3 or self.matrix.shape[1] != self.matrix.shape[2]):
            raise ValueError(f"Element.matrix must have shape (B, d, d), got {tuple(self.matrix.shape)}")
        if self.translation is not None and self.translation.dim() != 2:
            raise ValueError(f"Element.translation must have shape (B, d), got {tuple(self.translation.shape)}")
        if self.permutation is not None and (self.permutation.dim() != 2 or self.permutation.dtype != torch.long):
            raise ValueError(
                f"Element.permutation must be an int64 tensor of shape (B, N), got "
                f"{tuple(self.permutation.shape)} {self.permutation.dtype}"
            )

    # ------------------------------------------------------------------ shape
    @property
    def batch_size(self) -> int:
        for part in (self.matrix, self.translation, self.permutation):
            if part is not None:
                return part.shape[0]
        return 1

    @property
    def space_dim(self) -> int | None:
        """The ``d`` of R^d the affine part acts on, or ``None`` for no affine part."""
        if self.matrix is not None:
            return self.matrix.shape[-1]
        if self.translation is not None:
            return self.translation.shape[-1]
        return None

    def linear(self, dim: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """The matrix part as a ``(B, dim, dim)`` tensor, the identity when absent."""
        if self.matrix is not None:
            if self.matrix.shape[-1] != dim:
                raise ValueError(f"group acts on R^{self.matrix.shape[-1]} but the data has vectors in R^{dim}")
            return self.matrix.to(dtype)
        return torch.eye(dim, dtype=dtype).expand(self.batch_size, dim, dim)

    def determinant(self) -> Tensor:
        """``det M`` per element (1 where there is no matrix part): the parity of O(d) elements."""
        if self.matrix is None:
            return torch.ones(self.batch_size, dtype=torch.float64)
        return torch.linalg.det(self.matrix.to(torch.float64))

    # ------------------------------------------------------------ group law
    def __mul__(self, other: Element) -> Element:
        """Composition: ``(self * other).x == self.(other.x)``."""
        if not isinstance(other, Element):
            return NotImplemented
        matrix = _matmul_optional(self.matrix, other.matrix)
        translation = self.translation
        if other.translation is not None:
            moved = other.translation
            if self.matrix is not None:
                moved = torch.einsum("bij,bj->bi", self.matrix, moved)
            translation = moved if translation is None else moved + translation
        permutation = self.permutation
        if other.permutation is not None:
            permutation = other.permutation if permutation is None else torch.gather(other.permutation, 1, permutation)
        return Element(matrix, translation, permutation)

    def inverse(self) -> Element:
        """The inverse element: ``M^-1``, ``-M^-1 t``, ``argsort(p)``."""
        matrix = None if self.matrix is None else torch.linalg.inv(self.matrix)
        translation = None
        if self.translation is not None:
            translation = -self.translation if matrix is None else -torch.einsum("bij,bj->bi", matrix, self.translation)
        permutation = None if self.permutation is None else torch.argsort(self.permutation, dim=1)
        return Element(matrix, translation, permutation)

    # ------------------------------------------------------------- batching
    def index(self, idx: Tensor | slice | int) -> Element:
        """Select elements along the batch axis (``idx`` as for tensor indexing)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Element(*(None if p is None else p[idx] for p in (self.matrix, self.translation, self.permutation)))

    def repeat_interleave(self, repeats: int) -> Element:
        """Each element repeated ``repeats`` times in a row (to pair with a batch of inputs)."""
        return Element(
            *(None if p is None else p.repeat_interleave(repeats, dim=0) for p in (self.matrix, self.translation, self.permutation))
        )

    def repeat(self, times: int) -> Element:
        """The whole batch tiled ``times`` times."""
        return Element(
            *(None if p is None else p.repeat(times, *([1] * (p.dim() - 1))) for p in (self.matrix, self.translation, self.permutation))
        )

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Element:
        """Cast the floating parts to ``dtype`` and move every part to ``device``."""

        def cast(part: Tensor | None) -> Tensor | None:
            if part is None:
                return None
            if part.is_floating_point() and dtype is not None:
                part = part.to(dtype)
            return part.to(device) if device is not None else part

        return Element(cast(self.matrix), cast(self.translation), cast(self.permutation))

    def with_parts(self, **parts: Tensor | None) -> Element:
        """A copy with some parts replaced."""
        return replace(self, **parts)

    @staticmethod
    def cat(elements: list[Element]) -> Element:
        """Concatenate batches of elements of the same group."""
        parts = []
        for name in ("matrix", "translation", "permutation"):
            values = [getattr(e, name) for e in elements]
            if all(v is None for v in values):
                parts.append(None)
            elif any(v is None for v in values):
                raise ValueError(f"cannot concatenate elements where only some have a {name} part")
            else:
                parts.append(torch.cat(values, dim=0))
        return Element(*parts)

    @staticmethod
    def merge(elements: list[Element]) -> Element:
        """Join elements of groups acting on different parts (a direct product such as SE(3) x S_n)."""
        merged: dict[str, Tensor] = {}
        for element in elements:
            for name in ("matrix", "translation", "permutation"):
                part = getattr(element, name)
                if part is None:
                    continue
                if name in merged:
                    raise ValueError(
                        f"direct product factors both act through a {name} part; eqbench products need factors "
                        "that act on different parts (e.g. SO(3) x T(3) x S_n), use SE(3) for rotations with translations"
                    )
                merged[name] = part
        return Element(**merged)


def _matmul_optional(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a @ b
