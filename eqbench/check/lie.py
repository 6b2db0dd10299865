"""The Lie derivative of a model: how fast equivariance breaks along each infinitesimal symmetry.

Gruver, Finzi, Goldblum & Wilson 2022, "The Lie Derivative for Measuring Learned
Equivariance": for a generator ``X`` of the Lie algebra and ``g_t = exp(t X)``,

    L_X f(x) = d/dt [ g_t^{-1} . f(g_t . x) ] at t = 0,

which is zero for every ``X`` exactly when ``f`` is equivariant to the identity component of
the group. We evaluate it with forward-mode AD (``torch.func.jvp`` in ``t``), in float64
(the model's float64 twin, :class:`~eqbench.check.forward.TwinModel`), for every basis
generator ``X_i`` of ``group.lie_algebra`` at once (the inputs are stacked ``k`` times).
Models that forward-mode AD cannot trace fall back to a central difference in ``t`` with step
``FD_STEP`` (``method`` says which was used).

Reported per generator ``i``, over the ``B`` inputs ``x_b``:

* ``norms[i] = mean_b ||L_{X_i} f(x_b)||_2``: the **unsquared** L2 norm (all output leaves
  together; padded points masked out);
* ``relative_norms[i] = norms[i] / scale`` with ``scale`` the RMS norm of ``f(x_b)``
  (the same normalisation as the checker's errors);
* ``squared_norms[i] = mean_b ||L_{X_i} f(x_b)||_2^2``: the paper's local equivariance error
  squares the Lie derivative's norm (its Eq. 4), so this is the comparable figure.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from eqbench.actions.base import Action
from eqbench.check.forward import TwinModel, call_model, dtype_copy
from eqbench.check.metrics import TINY, masked, row_norms
from eqbench.groups.base import Group

#: Step of the central-difference fallback (float64: truncation ~1e-12, rounding ~1e-11).
FD_STEP = 1e-5


@dataclass
class LieDerivativeResult:
    """Lie derivative norms per generator (see the module docstring for the definitions)."""

    group: str
    norms: list[float]
    relative_norms: list[float]
    squared_norms: list[float]
    scale: float
    method: str

    @property
    def max_relative_norm(self) -> float:
        return max(self.relative_norms)

    def __str__(self) -> str:
        rows = ", ".join(f"X{i}: {rel:.3g}" for i, rel in enumerate(self.relative_norms))
        return f"Lie derivative under {self.group} ({self.method}), relative to output scale {self.scale:.3g}: {rows}"


def lie_derivative(
    model: Callable[..., Any],
    group: Group,
    x: Any,
    in_action: Action,
    out_action: Action,
) -> LieDerivativeResult:
    """Lie derivative norms of ``model`` at the batched input ``x`` for each generator of ``group``.

    ``x`` is a concrete input value (batch ``B``); tuples and dicts are passed as for
    :func:`~eqbench.check.check_equivariance`. Raises ``ValueError`` for a group without a
    Lie algebra (finite groups, S_n).
    """
    derivative, outputs, method = lie_derivative_rows(model, group, x, in_action, out_action)
    batch, k = outputs.shape[0], derivative.shape[0] // outputs.shape[0]
    scale = float(torch.sqrt(row_norms(outputs).square().mean()))
    norms = row_norms(derivative).reshape(k, batch)
    return LieDerivativeResult(
        group=group.name,
        norms=norms.mean(dim=1).tolist(),
        relative_norms=(norms.mean(dim=1) / (scale + TINY)).tolist(),
        squared_norms=norms.square().mean(dim=1).tolist(),
        scale=scale,
        method=method,
    )


def lie_derivative_rows(
    model: Callable[..., Any],
    group: Group,
    x: Any,
    in_action: Action,
    out_action: Action,
) -> tuple[Tensor, Tensor, str]:
    """The Lie derivatives themselves: ``(derivative, outputs, method)``.

    ``derivative`` is ``(k * B, F)``, row ``i * B + b`` holding ``L_{X_i} f(x_b)`` (all floating
    output leaves flattened and concatenated, padded points zeroed); ``outputs`` is ``f(x)`` as
    ``(B, F)`` in the same layout; ``method`` is ``"jvp"`` or ``"finite-difference"``.
    Raises ``ValueError`` for a group without a Lie algebra.
    """
    basis = group.lie_algebra
    if basis is None:
        raise ValueError(f"{group.name} has no Lie algebra: the Lie derivative needs a continuous group")
    in_action.validate(x, "input")
    x64 = in_action.cast(x, torch.float64)
    batch, k = in_action.batch_size(x64), basis.shape[0]
    stacked = in_action.index(x64, torch.arange(batch).repeat(k))  # generator-major: row i * B + b
    directions = torch.eye(k, dtype=torch.float64).repeat_interleave(batch, dim=0)
    if isinstance(model, nn.Module):
        dtype_copy(model, torch.float64)  # copy (and cache) the float64 twin now: jvp forbids copying inside it
    twin = TwinModel(model, torch.float64)
    mask = in_action.point_mask(stacked)

    def pulled_back(t: Tensor) -> tuple[Tensor, ...]:
        """``g_t^{-1} . f(g_t . x)`` for ``g_t = exp(t X_i)``, floating output leaves only."""
        g = group.exp(t * directions)
        y = call_model(twin, in_action.apply(g, stacked))
        back = out_action.apply(g.inverse(), y)
        leaves = [leaf for leaf in out_action.leaves(back) if leaf.tensor.is_floating_point()]
        return tuple(masked(leaf.tensor, mask, leaf.per_point) for leaf in leaves)

    zero, one = torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64)
    try:
        with warnings.catch_warnings():  # torch scripts its jvp decompositions on first use, with a deprecation warning
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            values, tangents = torch.func.jvp(pulled_back, (zero,), (one,))
        method = "jvp"
    except (RuntimeError, NotImplementedError):
        with torch.no_grad():
            values = pulled_back(zero)
            ahead, behind = pulled_back(zero + FD_STEP), pulled_back(zero - FD_STEP)
        tangents = tuple((a - b) / (2 * FD_STEP) for a, b in zip(ahead, behind))
        method = "finite-difference"
    derivative = torch.cat([t.reshape(t.shape[0], -1) for t in tangents], dim=1).detach()
    outputs = torch.cat([v[:batch].reshape(batch, -1) for v in values], dim=1).detach()
    return derivative, outputs, method
