"""Where does equivariance break? Per-module attribution of a model's equivariance error.

**Lie groups: the chain rule of the Lie derivative.** For a generator ``X`` and the model's
Lie derivative ``L_X f(x) = d/dt [rho_out(g_t)^{-1} f(rho_in(g_t) x)]`` at ``t = 0``
(:mod:`eqbench.check.lie`, Gruver et al. 2022), give every tensor ``a`` that a *unit* (a leaf
module, or a module declared with :func:`eqbench.declare`) reads or writes an action ``rho_a``
(declared, or inferred: :mod:`eqbench.check.activations`) and its expected tangent
``e_a = d/dt rho_a(g_t) a``. A unit ``m`` with input ``a`` and output ``b`` then has the
*local Lie derivative* ``l_m = J_m e_a - e_b`` (its own equivariance error on the activations
it actually sees), and the code between modules (their own ``forward`` code, labelled
"``<code before> M``" by the module ``M`` it feeds, with the tensor's path in ``M``'s
arguments when there are several, e.g. ``<code before> blocks.0 [arg0.distances]``) the
mismatch ``d_a = u_a - e_a`` of the tangent ``u_a`` it hands to ``M`` when everything upstream
behaved; code after the last module is "``<code at the output>``". Telescoping over the computation graph gives exactly

    L_X f(x) = sum_m D_m l_m + sum_a D_a d_a + d_out,

with ``D`` the Jacobian from that tensor to the output: the contributions add up to the
model's Lie derivative whatever actions were chosen (the choice only moves blame). One
forward-mode pass (``torch.autograd.forward_ad``, hooks replacing the tangents entering every
module by ``e_a`` and leaving every unit by ``e_b``) yields every ``l_m`` and ``d_a``; the downstream
Jacobians are probed in reverse mode: for a Gaussian probe ``r`` per row, one backward pass of
``<r, f(x)>`` gives ``r^T D`` for every unit at once (tensor hooks), and
``E_r <r, D l>^2 = ||D l||^2``. Reported per unit and per piece of code:

* ``contribution = sqrt(mean_{rows, probes} <r, D l>^2) / scale``: the RMS norm of the unit's
  part of the Lie derivative relative to the output scale (RMS of ``||f(x_b)||``), summed in
  squares over the generators;
* ``share = contribution / sum of contributions``;
* ``local_error = RMS ||l_m|| / RMS ||b||``: the unit's own relative Lie derivative.

``total`` is the model's own relative Lie derivative on the same probes, ``<r, J_f v> - <r,
e_out>`` from the probe pass's gradients with respect to the input (``v`` the input's tangent;
an independent plain tangent pass where those gradients are not finite), and ``residual`` the
probed RMS of ``total - sum of contributions`` (relative to the scale): rounding for
deterministic models; larger when something escapes the hooks (a unit that changes its input
in place, a non-differentiable op whose forward and reverse derivatives disagree, tensors
hidden inside mutable objects).

Cost: the Lie derivative is taken along ``directions`` random combinations ``c ~ N(0, I)`` of
the ``k`` generators per input (``E ||L_{c.X} f||^2 = sum_i ||L_{X_i} f||^2``), so one tangent
pass and one forward + ``probes`` backward passes on ``directions * B`` rows, whatever ``k``.

**Finite groups** (no Lie algebra), and models that forward-mode AD cannot trace: local
errors only. For ``R`` random elements ``g``, the model runs on ``x`` (hooks record every
module's inputs and every unit's outputs) and then on ``g.x``, where every tensor entering a
module is compared with ``rho(g) a`` for its input ``a`` at ``x`` (``rho`` declared, or the
candidate that fits best) and replaced by it, and so is every unit's output: each error is then
measured where it arises. A unit's local error is ``||m(rho_in(g) a) - rho_out(g) b|| / ||b||``,
the code's ``||a' - rho(g) a|| / ||rho(g) a||`` (RMS over rows); shares are of the sum of local
errors; ``total`` is the model's own relative error on the same elements.

Models that sample inside ``forward`` (Monte-Carlo) run every pass from the same seed (common
random numbers), so the unit that draws the samples carries the sampling error, provided the
action on what it returns is declared (LieConv's ``lifting`` module: ``u -> g u`` on the lifted
group elements, :mod:`eqbench.models.lieconv.lifting`).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from eqbench.actions.base import Action
from eqbench.check.activations import Layout, field_actions
from eqbench.check.cases import InputSource
from eqbench.check.chain_rule import chain_rule
from eqbench.check.forward import dtype_copy, model_name
from eqbench.check.local_errors import local_errors
from eqbench.check.module_calls import (  # the labels, methods and results are re-exported (__all__)
    CODE_AFTER,
    CODE_BEFORE,
    LIE_FLOOR,
    METHOD_LIE,
    METHOD_LOCAL,
    Attribution,
    Hooks,
    ModuleAttribution,
    Setting,
)
from eqbench.groups.base import Group

def explain(
    model: Callable[..., Any],
    group: Group,
    inputs: Any,
    in_action: Action,
    out_action: Action,
    *,
    n_inputs: int = 4,
    n_elements: int = 4,
    probes: int = 1,
    directions: int | None = 1,
    seed: int = 0,
    name: str | None = None,
) -> Attribution:
    """Attribute ``model``'s equivariance error under ``group`` to its modules (module docstring).

    ``inputs`` is an input generator or a concrete batched value (as for
    :func:`~eqbench.check.check_equivariance`). Lie groups use the chain rule along ``directions``
    random algebra directions per input (``None``: along every basis generator) with ``probes``
    Gaussian output probes per row; finite groups (and models forward-mode AD cannot trace) the local
    errors under ``n_elements`` random elements per input. Raises ``ValueError`` for bad counts.
    """
    counts = (("n_inputs", n_inputs), ("n_elements", n_elements), ("probes", probes), ("directions", directions or 1))
    for label, value in counts:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    _, x64 = InputSource(inputs, in_action).random(n_inputs, seed)
    twin = dtype_copy(model, torch.float64) if isinstance(model, nn.Module) else model
    hooks = Hooks(twin, in_action, out_action)
    label = name or model_name(model)
    fields = [(action, tuple(leaf.tensor.shape[1:])) for action, leaf in zip(field_actions(in_action), in_action.leaves(x64))]
    layout = Layout(group.space_dim, in_action.num_points(x64), fields, hooks.declared_fields())
    setting = Setting(twin, hooks, group, x64, in_action, out_action, layout, seed, label)
    if group.lie_algebra is None:
        return local_errors(setting, n_elements, [])
    try:
        with warnings.catch_warnings():  # torch scripts its forward-AD decompositions on first use, with a deprecation warning
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            attribution = chain_rule(setting, probes, directions)
    except (RuntimeError, NotImplementedError) as error:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        return local_errors(setting, n_elements, [f"forward-mode AD failed ({reason}): local errors under random elements"])
    if attribution.total < LIE_FLOOR and has_discrete_part(group, in_action.num_points(x64)):
        note = f"the Lie derivative vanishes (total {attribution.total:.2g}): local errors under random elements of {group.name}"
        discrete = local_errors(setting, n_elements, [note])
        if discrete.top is not None and discrete.top.contribution > LIE_FLOOR:
            return discrete
    return attribution


def has_discrete_part(group: Group, num_points: int | None) -> bool:
    """Whether random elements of ``group`` leave its identity component (a reflection or a permutation): 16 draws."""
    g = group.sample(16, torch.Generator().manual_seed(0), num_points)
    reflects = g.matrix is not None and bool((g.determinant() < 0).any())
    permutes = g.permutation is not None and bool((g.permutation != torch.arange(g.permutation.shape[1])).any())
    return reflects or permutes


__all__ = ["CODE_AFTER", "CODE_BEFORE", "METHOD_LIE", "METHOD_LOCAL", "Attribution", "ModuleAttribution", "explain", "has_discrete_part"]
