"""Data checks shared by the actions: each raises :class:`DataError` naming the field and the problem."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from eqbench.actions.base import DataError
from eqbench.groups.element import Element


def require_tensor(x: object, where: str, what: str) -> Tensor:
    """``x`` itself when it is a tensor, else a :class:`DataError`."""
    if not isinstance(x, Tensor):
        raise DataError(f"{where}: expected {what} as a torch.Tensor, got {type(x).__name__}")
    return x


def require_ndim(x: Tensor, where: str, what: str, layout: str, min_ndim: int, exact: bool = False) -> None:
    """At least (or, with ``exact``, exactly) ``min_ndim`` axes; ``layout`` names them, e.g. ``(B, N, d)``."""
    if x.dim() < min_ndim or (exact and x.dim() != min_ndim):
        raise DataError(f"{where}: expected {what} of shape {layout}, got shape {tuple(x.shape)} ({x.dim()} axes)")


def require_size(x: Tensor, axis: int, size: int | None, where: str, what: str, layout: str) -> None:
    """Axis ``axis`` has length ``size`` (no check when ``size`` is ``None``)."""
    if size is not None and x.shape[axis] != size:
        name = {-1: "last axis", -2: "second-to-last axis"}.get(axis, f"axis {axis}")
        raise DataError(
            f"{where}: expected {what} of shape {layout}, got shape {tuple(x.shape)} "
            f"({name} has size {x.shape[axis]}, expected {size})"
        )


def require_count(x: Tensor, lead: int, trail: int, size: int | None, where: str, what: str) -> None:
    """The axes between the first ``lead`` and the last ``trail`` hold ``size`` values in all (no check for ``None``).

    This is what a declared ``size`` means: values per item (per point for per-point fields),
    spatial axes excluded; a model returning ``(B, N, 3)`` where ``(B, k)`` was declared fails here.
    """
    if size is None:
        return
    inner = tuple(x.shape[lead : x.dim() - trail])
    count = 1
    for length in inner:
        count *= length
    if count != size:
        raise DataError(
            f"{where}: expected {what} with {size} value(s) per {'point' if lead == 2 else 'item'} (declared size={size}), "
            f"got shape {tuple(x.shape)} ({count})"
        )


def require_floating(x: Tensor, where: str, what: str) -> None:
    if not x.is_floating_point():
        raise DataError(f"{where}: expected {what} with a floating dtype, got {x.dtype}")


def require_dtype(x: Tensor, dtype: torch.dtype, where: str, what: str) -> None:
    if x.dtype != dtype:
        raise DataError(f"{where}: expected {what} with dtype {dtype}, got {x.dtype}")


def require_finite(x: Tensor, where: str) -> None:
    """No NaN or Inf in a floating tensor; the message gives the first bad index and the count.

    A finite sum proves every entry finite (an Inf or NaN entry makes the sum Inf or NaN), so
    the entrywise test runs only when the sum is not finite: a bad entry, or a sum that overflowed.
    """
    if not x.is_floating_point() or math.isfinite(float(x.sum())):
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        locations = bad.nonzero()
        first = tuple(int(i) for i in locations[0])
        kind = "NaN" if bool(torch.isnan(x[first])) else "Inf"
        raise DataError(f"{where}: contains {kind} at index {first} ({locations.shape[0]} non-finite values in all)")


def check_batch(g: Element, x: Tensor, what: str) -> None:
    """Element ``b`` acts on item ``b``: the batch sizes must agree (a part-less element is the identity)."""
    if all(part is None for part in (g.matrix, g.translation, g.permutation)):
        return
    if g.batch_size != x.shape[0]:
        raise DataError(f"group elements batch {g.batch_size} but {what} batch {x.shape[0]}")


def check_space_dim(g: Element, dim: int, what: str) -> None:
    """The group acts on R^d with the same ``d`` as the data's spatial axis."""
    if g.space_dim is not None and g.space_dim != dim:
        raise DataError(f"group acts on R^{g.space_dim} but {what} have their last axis of size {dim}")
