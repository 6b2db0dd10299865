"""Where does equivariance break? Per-module attribution of a model's equivariance error.

**Lie groups: the chain rule of the Lie derivative.** For a generator ``X`` and the model's
Lie derivative ``L_X f(x) = d/dt [rho_out(g_t)^{-1} f(rho_in(g_t) x)]`` at ``t = 0``
(:mod:`eqbench.check.lie`, Gruver et al. 2022), give every tensor ``a`` that a *unit* (a leaf
module, or a module declared with :func:`eqbench.declare`) reads or writes an action ``rho_a``
(declared, or inferred: :mod:`eqbench.check.activations`) and its expected tangent
``e_a = d/dt rho_a(g_t) a``. A unit ``m`` with input ``a`` and output ``b`` then has the
*local Lie derivative* ``l_m = J_m e_a - e_b`` (its own equivariance error on the activations
it actually sees), and the code between units (a module's own ``forward`` code, "``<code>``")
the mismatch ``d_a = u_a - e_a`` of the tangent ``u_a`` it hands to the next unit when every
unit upstream behaved. Telescoping over the computation graph gives exactly

    L_X f(x) = sum_m D_m l_m + sum_a D_a d_a + d_out,

with ``D`` the Jacobian from that tensor to the output: the contributions add up to the
model's Lie derivative whatever actions were chosen (the choice only moves blame). One
forward-mode pass (``torch.autograd.forward_ad``, hooks replacing each unit's input tangents by
``e_a`` and output tangents by ``e_b``) yields every ``l_m`` and ``d_a``; the downstream
Jacobians are probed in reverse mode: for a Gaussian probe ``r`` per row, one backward pass of
``<r, f(x)>`` gives ``r^T D`` for every unit at once (tensor hooks), and
``E_r <r, D l>^2 = ||D l||^2``. Reported per unit (and per module's own code):

* ``contribution = sqrt(mean_{rows, probes} <r, D l>^2) / scale``: the RMS norm of the unit's
  part of the Lie derivative relative to the output scale (RMS of ``||f(x_b)||``), summed in
  squares over the generators;
* ``share = contribution / sum of contributions``;
* ``local_error = RMS ||l_m|| / RMS ||b||``: the unit's own relative Lie derivative.

``total`` is the model's relative Lie derivative on the same probes (an independent plain
``jvp``, :func:`~eqbench.check.lie.lie_derivative_rows`) and ``residual`` the probed RMS of
``total - sum of contributions`` (relative to the scale): rounding for deterministic models;
larger when something escapes the hooks (a unit that changes its input in place, a
non-differentiable op whose forward and reverse derivatives disagree, tensors hidden inside
objects).

**Finite groups** (no Lie algebra), and models that forward-mode AD cannot trace: local
errors only. For ``R`` random elements ``g``, the model runs on ``x`` and on ``g.x`` with hooks
recording every unit call; the unit's input action is the one that maps its input at ``x`` to
its input at ``g.x`` best, and its local error is
``min_rho_out ||m(rho_in(g) a) - rho_out(g) b|| / ||b||`` (RMS over rows); shares are of the
sum of local errors.

Models that sample inside ``forward`` (Monte-Carlo) run every pass from the same seed (common
random numbers), so the unit that draws the samples carries the sampling error.
"""
from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from eqbench.actions.base import Action
from eqbench.check.activations import (
    Layout,
    acted,
    action_tangent,
    field_actions,
    inferred_image,
    inferred_tangent,
    is_floating,
)
from eqbench.check.cases import InputSource
from eqbench.check.forward import call_model, dtype_copy, model_name
from eqbench.check.metrics import TINY, masked
from eqbench.declare import DeclaredActions, declared_actions
from eqbench.groups.base import Group
from eqbench.groups.element import Element

#: Labels of the code between units (the glue of the modules' ``forward``): what enters a unit, what follows the last.
CODE_BEFORE = "<code before>"
CODE_AFTER = "<code at the output>"
#: Label of a model's root module when it is itself a unit.
ROOT = "(model)"
METHOD_LIE = "lie-derivative chain rule"
METHOD_LOCAL = "local errors"
#: A relative Lie derivative below this is no continuous breaking (float64 rounding sits near 1e-12).
LIE_FLOOR = 1e-6


@dataclass
class ModuleAttribution:
    """One unit's (or one module's own code's) part of the equivariance error (module docstring)."""

    module: str
    contribution: float
    share: float
    local_error: float
    calls: int
    actions: str

    def to_record(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "contribution": self.contribution,
            "share": self.share,
            "local_error": self.local_error,
            "calls": self.calls,
            "actions": self.actions,
        }


@dataclass
class Attribution:
    """The outcome of :func:`explain`: units ranked by contribution, the total and the additivity residual."""

    model: str
    group: str
    method: str
    modules: list[ModuleAttribution]
    total: float
    residual: float
    probes: int
    notes: list[str] = field(default_factory=list)

    @property
    def top(self) -> ModuleAttribution | None:
        return self.modules[0] if self.modules else None

    def to_records(self) -> list[dict[str, Any]]:
        """One ``{"module", "contribution", "share", ...}`` record per unit (sorted), then one summary record."""
        summary = {
            "model": self.model,
            "group": self.group,
            "method": self.method,
            "total": self.total,
            "additivity_residual": self.residual,
            "probes": self.probes,
            "notes": self.notes,
        }
        return [m.to_record() for m in self.modules] + [summary]

    def __str__(self) -> str:
        lines = [f"{self.model} under {self.group} ({self.method}): total {self.total:.3g}, residual {self.residual:.3g}"]
        lines += [f"  {m.module}: contribution {m.contribution:.3g}, share {m.share:.1%}, local {m.local_error:.3g}" for m in self.modules]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def explain(
    model: Callable[..., Any],
    group: Group,
    inputs: Any,
    in_action: Action,
    out_action: Action,
    *,
    n_inputs: int = 4,
    n_elements: int = 4,
    probes: int = 2,
    seed: int = 0,
    name: str | None = None,
) -> Attribution:
    """Attribute ``model``'s equivariance error under ``group`` to its modules (module docstring).

    ``inputs`` is an input generator or a concrete batched value (as for
    :func:`~eqbench.check.check_equivariance`). Lie groups use the chain rule with ``probes``
    Gaussian probes per row; finite groups (and models forward-mode AD cannot trace) the local
    errors under ``n_elements`` random elements per input. Raises ``ValueError`` for bad counts.
    """
    for label, value in (("n_inputs", n_inputs), ("n_elements", n_elements), ("probes", probes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    _, x64 = InputSource(inputs, in_action).random(n_inputs, seed)
    twin = dtype_copy(model, torch.float64) if isinstance(model, nn.Module) else model
    units = attribution_units(twin)
    label = name or model_name(model)
    layout = Layout(group.space_dim, in_action.num_points(x64), [(a, tuple(leaf.tensor.shape[1:])) for a, leaf in zip(field_actions(in_action), in_action.leaves(x64))])
    local = lambda notes: _local_errors(twin, units, group, x64, in_action, layout, n_elements, seed, label, notes)  # noqa: E731
    if group.lie_algebra is None:
        return local([])
    try:
        attribution = _chain_rule(twin, units, group, x64, in_action, out_action, layout, probes, seed, label)
    except (RuntimeError, NotImplementedError) as error:
        return local([f"forward-mode AD failed ({type(error).__name__}: {str(error).splitlines()[0]}): local errors only"])
    if attribution.total < LIE_FLOOR and has_discrete_part(group, in_action.num_points(x64)):
        discrete = local([f"the Lie derivative vanishes (total {attribution.total:.2g}): local errors under random elements of {group.name}"])
        if discrete.top is not None and discrete.top.contribution > LIE_FLOOR:
            return discrete
    return attribution


def has_discrete_part(group: Group, num_points: int | None) -> bool:
    """Whether random elements of ``group`` leave its identity component (a reflection or a permutation): 16 draws."""
    g = group.sample(16, torch.Generator().manual_seed(0), num_points)
    reflects = g.matrix is not None and bool((g.determinant() < 0).any())
    permutes = g.permutation is not None and bool((g.permutation != torch.arange(g.permutation.shape[1])).any())
    return reflects or permutes


def attribution_units(model: Any) -> dict[nn.Module, str]:
    """The units of ``model``: declared modules (not looked inside) and the leaf modules outside them, by qualified name."""
    if not isinstance(model, nn.Module):
        return {}
    units: dict[nn.Module, str] = {}
    declared: list[str] = []
    for qualified, module in model.named_modules():
        if any(qualified.startswith(prefix + ".") or prefix == "" for prefix in declared):
            continue
        if declared_actions(module) is not None:
            units[module] = qualified
            declared.append(qualified)
        elif next(module.children(), None) is None:
            units[module] = qualified
    return units


# ------------------------------------------------------------------------------------------ chain rule
@dataclass
class _Call:
    """One unit call of the tangent pass: the mismatches entering it (by input slot) and its local derivatives (by output slot)."""

    unit: str
    inputs: dict[int, Tensor] = field(default_factory=dict)
    outputs: dict[int, Tensor] = field(default_factory=dict)
    output_sq: float = 0.0
    actions: str = ""


def _chain_rule(
    twin: Any,
    units: dict[nn.Module, str],
    group: Group,
    x64: Any,
    in_action: Action,
    out_action: Action,
    layout: Layout,
    probes: int,
    seed: int,
    label: str,
) -> Attribution:
    basis = group.lie_algebra
    batch, k = in_action.batch_size(x64), basis.shape[0]
    stacked = in_action.index(x64, torch.arange(batch).repeat(k))  # generator-major rows: row i * B + b
    rows = batch * k
    directions = torch.eye(k, dtype=torch.float64).repeat_interleave(batch, dim=0)

    def exp(t: float) -> Element:
        return group.exp(t * directions)

    with _seeded(seed):
        flowing = _TangentPass(units, exp, layout, replacing=False)
        plain = flowing.run(twin, stacked, in_action, out_action)
    with _seeded(seed):
        pass_ = _TangentPass(units, exp, layout, replacing=True)
        replaced = pass_.run(twin, stacked, in_action, out_action)
    with _seeded(seed):
        grads, probe_vectors = _probe_pass(twin, units, pass_.calls, stacked, in_action, out_action, probes, seed)
    scale = float(torch.sqrt(plain.primal[:batch].square().sum(dim=1).mean()))
    parts: dict[str, Tensor] = defaultdict(lambda: torch.zeros(probes, rows, dtype=torch.float64))
    local_sq: dict[str, float] = defaultdict(float)
    output_sq: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    actions: dict[str, str] = {}
    for index, call in enumerate(pass_.calls):
        unit_label = call.unit or ROOT
        counts[unit_label] += 1
        actions.setdefault(unit_label, call.actions)
        local_sq[unit_label] += sum(float(t.square().sum()) for t in call.outputs.values())
        output_sq[unit_label] += call.output_sq
        for (kind, slot), per_probe in grads.get(index, {}).items():
            vector = call.outputs[slot] if kind == "out" else call.inputs[slot]
            target = unit_label if kind == "out" else f"{CODE_BEFORE} {unit_label}"
            for p, gradient in enumerate(per_probe):
                parts[target][p] += _row_inner(gradient, vector, rows)
    if float(replaced.mismatch.abs().max()) > 0:
        for p, r in enumerate(probe_vectors):
            parts[CODE_AFTER][p] += (r * replaced.mismatch).sum(dim=1)
    totals = torch.stack([(r * plain.mismatch).sum(dim=1) for r in probe_vectors])
    summed = sum(parts.values(), torch.zeros(probes, rows, dtype=torch.float64))
    contributions = {unit: _rms(values, batch) / (scale + TINY) for unit, values in parts.items()}
    for unit_label in counts:
        contributions.setdefault(unit_label, 0.0)
    notes = ["every pass runs from the same seed (common random numbers for models that sample)"]
    sanitized = flowing.sanitized + pass_.sanitized
    if sanitized:
        notes.append(f"{sanitized} non-finite tangent entries (a norm or square root at zero) were taken as 0")
    return Attribution(
        model=label,
        group=group.name,
        method=METHOD_LIE,
        modules=_ranked(contributions, local_sq, output_sq, counts, actions),
        total=_rms(totals, batch) / (scale + TINY),
        residual=_rms(totals - summed, batch) / (scale + TINY),
        probes=probes,
        notes=notes,
    )


@dataclass
class _PassResult:
    """The output of a tangent pass, flattened per row (floating leaves, padded points zeroed): primal and ``tangent - expected``."""

    primal: Tensor
    mismatch: Tensor


class _TangentPass:
    """One forward-mode pass with hooks on the units (module docstring).

    ``replacing``: every unit's input tangents become the expected ones (mismatches recorded in
    :attr:`calls`), and its output tangents too (local Lie derivatives recorded). Otherwise the
    tangents flow as they are (a plain Lie derivative). Either way, non-finite tangent entries at
    unit boundaries (the derivative of a norm at zero) are taken as 0 and counted in
    :attr:`sanitized`.
    """

    def __init__(self, units: dict[nn.Module, str], exp: Callable[[float], Element], layout: Layout, replacing: bool) -> None:
        self.units, self.exp, self.layout, self.replacing = units, exp, layout, replacing
        self.calls: list[_Call] = []
        self.open: list[_Call] = []
        self.sanitized = 0

    def run(self, twin: Any, stacked: Any, in_action: Action, out_action: Action) -> _PassResult:
        input_tangent = action_tangent(in_action, self.exp, stacked)
        if input_tangent is None:
            raise RuntimeError("the input action does not act on the stacked inputs")
        with _hooked(self.units, self.pre_hook, self.hook), fwAD.dual_level(), torch.no_grad():
            dual = pytree.tree_map(lambda v, t: fwAD.make_dual(v, t) if is_floating(v) else v, stacked, input_tangent)
            out = call_model(twin, dual)
            primal = out_action.map_tensors(out, lambda t: fwAD.unpack_dual(t).primal if t.is_floating_point() else t)
            expected = action_tangent(out_action, self.exp, primal)
            if expected is None:
                raise RuntimeError("the output action does not act on the model's output")
            mask = in_action.point_mask(stacked)
            rows = in_action.batch_size(stacked)
            pairs = [
                (masked(leaf.tensor, mask, leaf.per_point), masked(want.tensor, mask, leaf.per_point))
                for leaf, want in zip(out_action.leaves(out), out_action.leaves(expected))
                if leaf.tensor.is_floating_point()
            ]
            mismatch = torch.cat([(self.tangent(t) - e).reshape(rows, -1) for t, e in pairs], dim=1)
            primals = torch.cat([fwAD.unpack_dual(t).primal.reshape(rows, -1) for t, _ in pairs], dim=1)
        return _PassResult(primals, mismatch)

    def tangent(self, t: Tensor) -> Tensor:
        """The tangent of dual tensor ``t`` (zeros without one), non-finite entries taken as 0."""
        tangent = _tangent_of(t)
        bad = ~torch.isfinite(tangent)
        if bool(bad.any()):
            self.sanitized += int(bad.sum())
            tangent = torch.where(bad, torch.zeros((), dtype=tangent.dtype), tangent)
        return tangent

    def expected(self, leaves: list[Any], declared: Action | None, value_of: Callable[[list[Any]], Any]) -> list[tuple[Any, Tensor | None, str]]:
        """Per leaf: ``(primal, expected tangent or None for non-floating leaves, action name)``."""
        primals = [fwAD.unpack_dual(t).primal if is_floating(t) else t for t in leaves]
        if declared is not None:
            tangent = action_tangent(declared, self.exp, value_of(primals))
            if tangent is None:
                raise RuntimeError(f"the declared action {declared!r} does not fit the module's value")
            declared_leaves = pytree.tree_flatten(tangent)[0]
            name = type(declared).__name__
            return [(p, declared_leaves[i] if is_floating(p) else None, name) for i, p in enumerate(primals)]
        found: list[tuple[Any, Tensor | None, str]] = []
        for t, p in zip(leaves, primals):
            if is_floating(t):
                action, tangent = inferred_tangent(self.layout, self.exp, p, self.tangent(t))
                found.append((p, tangent, type(action).__name__))
            else:
                found.append((p, None, ""))
        return found

    def replace(
        self, leaves: list[Any], declared: Action | None, value_of: Callable[[list[Any]], Any], store: dict[int, Tensor]
    ) -> tuple[list[Any], str]:
        """The leaves with expected tangents (or sanitized ones, when not replacing); mismatches to ``store`` by slot."""
        if not self.replacing:
            return [fwAD.make_dual(fwAD.unpack_dual(t).primal, self.tangent(t)) if is_floating(t) else t for t in leaves], ""
        out, names = [], []
        for slot, (t, (primal, tangent, action)) in enumerate(zip(leaves, self.expected(leaves, declared, value_of))):
            if tangent is None:
                out.append(t)
                continue
            mismatch = self.tangent(t) - tangent
            if float(mismatch.abs().max()) > 0:
                store[slot] = mismatch
            out.append(fwAD.make_dual(primal, tangent))
            names.append(action)
        return out, "+".join(dict.fromkeys(names)) or "-"

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        call = _Call(self.units[module])
        leaves, spec = pytree.tree_flatten((args, kwargs))
        declared = declared_actions(module)
        new, call.actions = self.replace(leaves, declared.in_action if declared else None, _call_value(spec), call.inputs)
        self.calls.append(call)
        self.open.append(call)
        return pytree.tree_unflatten(new, spec)

    def hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        call = self.open.pop()
        leaves, spec = pytree.tree_flatten(output)
        declared = declared_actions(module)
        new, names = self.replace(leaves, declared.out_action if declared else None, _output_value(spec), call.outputs)
        call.output_sq = sum(float(fwAD.unpack_dual(t).primal.square().sum()) for t in leaves if is_floating(t))
        call.actions += " -> " + names
        return pytree.tree_unflatten(new, spec)


def _probe_pass(
    twin: Any,
    units: dict[nn.Module, str],
    calls: list[_Call],
    stacked: Any,
    in_action: Action,
    out_action: Action,
    probes: int,
    seed: int,
) -> tuple[dict[int, dict[tuple[str, int], list[Tensor]]], list[Tensor]]:
    """Reverse mode: ``r^T D`` at every recorded mismatch and local derivative, for ``probes`` Gaussian probes per row."""
    grads: dict[int, dict[tuple[str, int], list[Tensor]]] = defaultdict(lambda: defaultdict(list))
    counter = iter(range(len(calls)))
    open_calls: list[int] = []

    def keep(index: int, key: tuple[str, int]) -> Callable[[Tensor], None]:
        def store(gradient: Tensor) -> None:
            grads[index][key].append(gradient.detach())

        return store

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        index = next(counter, None)
        if index is None or calls[index].unit != units[module]:
            raise RuntimeError("the model called its modules in a different order on the probe pass")
        open_calls.append(index)
        leaves, spec = pytree.tree_flatten((args, kwargs))
        for slot in calls[index].inputs:
            if leaves[slot].requires_grad:
                leaves[slot] = leaves[slot].view_as(leaves[slot])  # its own node: only the path through this unit
                leaves[slot].register_hook(keep(index, ("in", slot)))
        return pytree.tree_unflatten(leaves, spec)

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        index = open_calls.pop()
        leaves, _ = pytree.tree_flatten(output)
        for slot in calls[index].outputs:
            if leaves[slot].requires_grad:
                leaves[slot].register_hook(keep(index, ("out", slot)))

    generator = torch.Generator().manual_seed(seed + 1)
    with _hooked(units, pre_hook, hook), torch.enable_grad():
        x = pytree.tree_map(lambda t: t.detach().requires_grad_() if is_floating(t) else t, stacked)
        out = call_model(twin, x)
        mask = in_action.point_mask(stacked)
        leaves = [(masked(leaf.tensor, mask, leaf.per_point), leaf.per_point) for leaf in out_action.leaves(out) if leaf.tensor.is_floating_point()]
        rows = in_action.batch_size(stacked)
        sources = [t for t in pytree.tree_flatten(x)[0] if is_floating(t)]
        vectors = []
        for p in range(probes):
            rs = [masked(torch.randn(t.shape, generator=generator, dtype=t.dtype), mask, pp) for t, pp in leaves]
            vectors.append(torch.cat([r.reshape(rows, -1) for r in rs], dim=1))
            loss = sum((r * t).sum() for r, (t, _) in zip(rs, leaves))
            if isinstance(loss, Tensor) and loss.requires_grad:
                torch.autograd.grad(loss, sources, retain_graph=p < probes - 1, allow_unused=True)
    for index in list(grads):
        for key, per_probe in grads[index].items():
            if len(per_probe) != probes:
                raise RuntimeError("a probe gradient was missed")
    return grads, vectors


# ------------------------------------------------------------------------------------------ local errors
def _local_errors(
    twin: Any,
    units: dict[nn.Module, str],
    group: Group,
    x64: Any,
    in_action: Action,
    layout: Layout,
    n_elements: int,
    seed: int,
    label: str,
    notes: list[str],
) -> Attribution:
    batch, num_points = in_action.batch_size(x64), in_action.num_points(x64)
    x = in_action.repeat_interleave(x64, n_elements)
    g = group.sample(batch * n_elements, torch.Generator().manual_seed(seed), num_points)
    with _seeded(seed):
        plain = _record(twin, units, x)
    with _seeded(seed):
        moved = _record(twin, units, in_action.apply(g, x))
    if [c[0] for c in plain] != [c[0] for c in moved]:
        notes = notes + ["the model called its modules differently on g.x: units matched up to the first difference"]
    errors: dict[str, float] = defaultdict(float)
    sizes: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    actions: dict[str, str] = {}
    for (module, args, kwargs, output), (other, moved_args, moved_kwargs, _) in zip(plain, moved):
        if module is not other:
            break
        unit_label = units[module] or ROOT
        error, size, names = _unit_error(module, group, layout, g, (args, kwargs), (moved_args, moved_kwargs), output)
        errors[unit_label] += error
        sizes[unit_label] += size
        counts[unit_label] += 1
        actions.setdefault(unit_label, names)
    local = {unit: math.sqrt(errors[unit] / (sizes[unit] + TINY)) for unit in counts}
    modules = _ranked(local, {u: errors[u] for u in counts}, {u: sizes[u] for u in counts}, counts, actions)
    return Attribution(label, group.name, METHOD_LOCAL, modules, float("nan"), float("nan"), 0, notes)


def _record(twin: Any, units: dict[nn.Module, str], x: Any) -> list[tuple[nn.Module, tuple, dict, Any]]:
    """Every unit call of one forward pass: ``(module, args, kwargs, output)``."""
    record: list[tuple[nn.Module, tuple, dict, Any]] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        record.append((module, args, kwargs, output))

    with _hooked(units, None, hook), torch.no_grad():
        call_model(twin, x)
    return record


def _unit_error(
    module: nn.Module, group: Group, layout: Layout, g: Element, value: tuple, moved: tuple, output: Any
) -> tuple[float, float, str]:
    """``(sum of squared errors, sum of squared output norms, actions)`` of one unit call under ``g``."""
    declared: DeclaredActions | None = declared_actions(module)
    leaves, spec = pytree.tree_flatten(value)
    moved_leaves, _ = pytree.tree_flatten(moved)
    if declared is not None:
        image = acted(declared.in_action, g, _call_value(spec)(leaves))
        transformed = pytree.tree_flatten(_as_call(image, spec))[0] if image is not None else leaves
        in_names = [type(declared.in_action).__name__]
    else:
        transformed, in_names = [], []
        for t, u in zip(leaves, moved_leaves):
            if is_floating(t) and isinstance(u, Tensor) and u.shape == t.shape:
                action, image = inferred_image(layout, g, t, u)
                transformed.append(image)
                in_names.append(type(action).__name__)
            else:
                transformed.append(t)
    args, kwargs = pytree.tree_unflatten(transformed, spec)
    with torch.no_grad():
        result = module(*args, **kwargs)
    out_leaves, out_spec = pytree.tree_flatten(output)
    result_leaves, _ = pytree.tree_flatten(result)
    error, size, out_names = 0.0, 0.0, []
    if declared is not None:
        image = _output_value(out_spec)(out_leaves)
        wanted = acted(declared.out_action, g, image)
        wanted_leaves = pytree.tree_flatten(wanted)[0] if wanted is not None else out_leaves
        out_names.append(type(declared.out_action).__name__)
    for slot, (b, y) in enumerate(zip(out_leaves, result_leaves)):
        if not is_floating(b):
            continue
        if declared is not None:
            expected = wanted_leaves[slot]
        else:
            action, expected = inferred_image(layout, g, b, y)
            out_names.append(type(action).__name__)
        error += float((y - expected).square().sum())
        size += float(b.square().sum())
    names = f"{'+'.join(dict.fromkeys(in_names)) or '-'} -> {'+'.join(dict.fromkeys(out_names)) or '-'}"
    return error, size, names


# ------------------------------------------------------------------------------------------ helpers
def _ranked(
    contributions: dict[str, float],
    local_sq: dict[str, float],
    output_sq: dict[str, float],
    counts: dict[str, int],
    actions: dict[str, str],
) -> list[ModuleAttribution]:
    total = sum(contributions.values())
    ranked = sorted(contributions.items(), key=lambda item: (-item[1] if math.isfinite(item[1]) else math.inf, item[0]))
    return [
        ModuleAttribution(
            module=unit,
            contribution=value,
            share=value / total if total > 0 else 0.0,
            local_error=math.sqrt(local_sq.get(unit, 0.0) / (output_sq.get(unit, 0.0) + TINY)) if unit in counts else float("nan"),
            calls=counts.get(unit, 0),
            actions=actions.get(unit, "code"),
        )
        for unit, value in ranked
    ]


def _rms(values: Tensor, batch: int) -> float:
    """``sqrt(mean over probes of the sum over rows of values^2 / batch)``: RMS over inputs, squares summed over generators."""
    return float(torch.sqrt(values.square().sum(dim=1).mean() / batch))


def _row_inner(gradient: Tensor, vector: Tensor, rows: int) -> Tensor:
    """``<gradient, vector>`` per row; a tensor without a batch-major layout is shared evenly among the rows."""
    product = gradient.to(torch.float64) * vector.to(torch.float64)
    if product.dim() > 0 and product.shape[0] % rows == 0:
        return product.reshape(rows, -1).sum(dim=1)
    return product.sum().expand(rows) / rows


def _tangent_of(t: Tensor) -> Tensor:
    unpacked = fwAD.unpack_dual(t)
    return unpacked.tangent if unpacked.tangent is not None else torch.zeros_like(unpacked.primal)


def _call_value(spec: Any) -> Callable[[list[Any]], Any]:
    """The value a declared ``in_action`` describes, from the leaves of ``(args, kwargs)``: ``args[0]``, a tuple, or the kwargs."""

    def value(leaves: list[Any]) -> Any:
        args, kwargs = pytree.tree_unflatten(leaves, spec)
        if kwargs and not args:
            return dict(kwargs)
        return args[0] if len(args) == 1 else tuple(args)

    return value


def _as_call(value: Any, spec: Any) -> tuple[tuple, dict]:
    """The inverse of :func:`_call_value`: ``(args, kwargs)`` of the call shape ``spec`` from the value."""
    args, kwargs = pytree.tree_unflatten([None] * spec.num_leaves, spec)
    if kwargs and not args:
        return (), dict(value)
    return ((value,) if len(args) == 1 else tuple(value)), {}


def _output_value(spec: Any) -> Callable[[list[Any]], Any]:
    return lambda leaves: pytree.tree_unflatten(leaves, spec)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block from ``torch.manual_seed(seed)``, restoring the caller's RNG state after (common random numbers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class _hooked:
    """Forward pre-hooks and hooks (with kwargs) on every unit for the duration of a block."""

    def __init__(self, units: dict[nn.Module, str], pre_hook: Callable | None, hook: Callable | None) -> None:
        self.units, self.pre_hook, self.hook = units, pre_hook, hook
        self.handles: list[Any] = []

    def __enter__(self) -> None:
        for module in self.units:
            if self.pre_hook is not None:
                self.handles.append(module.register_forward_pre_hook(self.pre_hook, with_kwargs=True))
            if self.hook is not None:
                self.handles.append(module.register_forward_hook(self.hook, with_kwargs=True))

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()
