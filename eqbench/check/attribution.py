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
random numbers), so the unit that draws the samples carries the sampling error.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn

from eqbench.actions.base import Action
from eqbench.check.activations import (
    Layout,
    acted,
    action_tangent,
    field_actions,
    argument_name,
    flatten,
    flatten_named,
    inferred_image,
    inferred_tangent,
    is_floating,
)
from eqbench.check.cases import InputSource
from eqbench.check.forward import call_model, dtype_copy, model_name
from eqbench.check.lie import lie_derivative_rows
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
    layout = Layout(group.space_dim, in_action.num_points(x64), fields)
    setting = _Setting(twin, hooks, group, x64, in_action, out_action, layout, seed, label)
    if group.lie_algebra is None:
        return _local_errors(setting, n_elements, [])
    try:
        with warnings.catch_warnings():  # torch scripts its forward-AD decompositions on first use, with a deprecation warning
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            attribution = _chain_rule(setting, probes, directions)
    except (RuntimeError, NotImplementedError) as error:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        return _local_errors(setting, n_elements, [f"forward-mode AD failed ({reason}): local errors under random elements"])
    if attribution.total < LIE_FLOOR and has_discrete_part(group, in_action.num_points(x64)):
        note = f"the Lie derivative vanishes (total {attribution.total:.2g}): local errors under random elements of {group.name}"
        discrete = _local_errors(setting, n_elements, [note])
        if discrete.top is not None and discrete.top.contribution > LIE_FLOOR:
            return discrete
    return attribution


def has_discrete_part(group: Group, num_points: int | None) -> bool:
    """Whether random elements of ``group`` leave its identity component (a reflection or a permutation): 16 draws."""
    g = group.sample(16, torch.Generator().manual_seed(0), num_points)
    reflects = g.matrix is not None and bool((g.determinant() < 0).any())
    permutes = g.permutation is not None and bool((g.permutation != torch.arange(g.permutation.shape[1])).any())
    return reflects or permutes


class Hooks:
    """The modules of a model that attribution hooks, by qualified name.

    ``units``: declared modules (not looked inside) and the leaf modules outside them; their
    outputs are checked. ``modules``: every module outside declared ones (units included); the
    tensors entering each are checked, so code between modules is blamed on the module it feeds.
    """

    def __init__(self, model: Any, in_action: Action, out_action: Action) -> None:
        self.units: dict[nn.Module, str] = {}
        self.modules: dict[nn.Module, str] = {}
        self.root_actions = DeclaredActions(in_action, out_action)
        self.root = model
        if not isinstance(model, nn.Module):
            return
        declared: list[str] = []
        for qualified, module in model.named_modules():
            if any(prefix == "" or qualified.startswith(prefix + ".") for prefix in declared):
                continue
            self.modules[module] = qualified
            if declared_actions(module) is not None:
                self.units[module] = qualified
                declared.append(qualified)
            elif next(module.children(), None) is None:
                self.units[module] = qualified

    def declared(self, module: nn.Module) -> DeclaredActions | None:
        """The module's declared actions; a model that is one leaf module acts as the checker says (``in_action`` -> ``out_action``)."""
        found = declared_actions(module)
        if found is None and module is self.root and module in self.units:
            return self.root_actions
        return found

    @contextmanager
    def installed(self, pre_hook: Callable, hook: Callable | None = None) -> Iterator[None]:
        """``pre_hook(module, args, kwargs)`` on every module and ``hook(module, args, kwargs, output)`` on the units, for a block."""
        handles = [module.register_forward_pre_hook(pre_hook, with_kwargs=True) for module in self.modules]
        if hook is not None:
            handles += [module.register_forward_hook(hook, with_kwargs=True) for module in self.units]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


@dataclass
class _Setting:
    """What every pass of one attribution shares."""

    twin: Any
    hooks: Hooks
    group: Group
    x64: Any
    in_action: Action
    out_action: Action
    layout: Layout
    seed: int
    label: str


@dataclass
class _Call:
    """One module call: the mismatches entering it (by input slot) and, for a unit, its local errors (by output slot)."""

    name: str
    unit: bool
    inputs: dict[int, Tensor] = field(default_factory=dict)
    outputs: dict[int, Tensor] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    input_sq: dict[int, float] = field(default_factory=dict)
    output_sq: float = 0.0
    actions: str = ""

    @property
    def label(self) -> str:
        return self.name or ROOT

    def code_label(self, slot: int) -> str:
        """``<code before> M``, with the argument's path when it is not the module's one plain argument (``arg0.distances``)."""
        path = argument_name(self.paths[slot]) if slot < len(self.paths) else ""
        return f"{CODE_BEFORE} {self.label}" + ("" if path in ("", "arg0") else f" [{path}]")


class _Ledger:
    """Per label: squared errors, squared sizes, calls and actions (the local-error bookkeeping)."""

    def __init__(self) -> None:
        self.errors: dict[str, float] = defaultdict(float)
        self.sizes: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.actions: dict[str, str] = {}

    def add(self, call: _Call) -> None:
        if call.unit:
            self.errors[call.label] += sum(float(t.square().sum()) for t in call.outputs.values())
            self.sizes[call.label] += call.output_sq
            self.calls[call.label] += 1
            self.actions.setdefault(call.label, call.actions)
        for slot, mismatch in call.inputs.items():
            code = call.code_label(slot)
            self.errors[code] += float(mismatch.square().sum())
            self.sizes[code] += call.input_sq.get(slot, 0.0)
            self.calls[code] += 1
            self.actions.setdefault(code, "code")

    def local(self, label: str) -> float:
        return math.sqrt(self.errors[label] / (self.sizes[label] + TINY)) if label in self.calls else float("nan")


# ------------------------------------------------------------------------------------------ chain rule
def algebra_directions(k: int, batch: int, directions: int | None, generator: torch.Generator) -> Tensor:
    """Coefficients ``(rows, k)`` of the generators differentiated along, input ``b`` on rows ``b, b + B, ...``.

    ``directions=None``: every basis generator (``k`` rows per input, generator-major);
    otherwise ``directions`` Gaussian combinations ``c ~ N(0, I_k)`` per input, for which
    ``E ||L_{sum c_i X_i} f||^2 = sum_i ||L_{X_i} f||^2``: the same squared sum over generators,
    estimated at a cost that does not grow with ``k``.
    """
    if directions is None:
        return torch.eye(k, dtype=torch.float64).repeat_interleave(batch, dim=0)
    return torch.randn(directions * batch, k, generator=generator, dtype=torch.float64)


def _chain_rule(setting: _Setting, probes: int, directions: int | None) -> Attribution:
    in_action, x64 = setting.in_action, setting.x64
    batch, k = in_action.batch_size(x64), setting.group.lie_algebra.shape[0]
    coefficients = algebra_directions(k, batch, directions, torch.Generator().manual_seed(setting.seed + 2))
    rows = coefficients.shape[0]
    stacked = in_action.index(x64, torch.arange(batch).repeat(rows // batch))

    def exp(t: float) -> Element:
        return setting.group.exp(t * coefficients)

    with _seeded(setting.seed):
        replaced = _TangentPass(setting, exp, replacing=True)
        result = replaced.run(stacked)
    with _seeded(setting.seed):
        probed = _probe_pass(setting, replaced.calls, stacked, probes)
    notes = ["every pass runs from the same seed (common random numbers for models that sample)"]
    # the model's own Lie derivative on each probe: <r, J_f v> - <r, e_out> from the input gradients
    totals = torch.stack([
        sum((_row_inner(g, t, rows) for g, t in zip(grads, result.input_tangents) if g is not None), torch.zeros(rows, dtype=torch.float64))
        - (r * result.expected).sum(dim=1)
        for grads, r in zip(probed.input_grads, probed.vectors)
    ])
    sanitized = replaced.sanitized
    if not bool(torch.isfinite(totals).all()):  # reverse mode through a norm at zero: a plain tangent pass instead
        with _seeded(setting.seed):
            flowing = _TangentPass(setting, exp, replacing=False)
            plain = flowing.run(stacked).mismatch
        totals = torch.stack([(r * plain).sum(dim=1) for r in probed.vectors])
        sanitized += flowing.sanitized
    if sanitized:
        notes.append(f"{sanitized} non-finite tangent entries (a norm or square root at zero) were taken as 0")
    scale = float(torch.sqrt(result.primal[:batch].square().sum(dim=1).mean()))
    parts: dict[str, Tensor] = defaultdict(lambda: torch.zeros(probes, rows, dtype=torch.float64))
    ledger = _Ledger()
    for index, call in enumerate(replaced.calls):
        ledger.add(call)
        for (kind, slot), per_probe in probed.grads.get(index, {}).items():
            vector = call.outputs[slot] if kind == "out" else call.inputs[slot]
            target = call.label if kind == "out" else call.code_label(slot)
            for p, gradient in enumerate(per_probe):
                parts[target][p] += _row_inner(gradient, vector, rows)
    if _moves(result.mismatch):
        for p, r in enumerate(probed.vectors):
            parts[CODE_AFTER][p] += (r * result.mismatch).sum(dim=1)
    summed = sum(parts.values(), torch.zeros(probes, rows, dtype=torch.float64))
    per_input = rows / batch if directions is not None else 1.0  # random directions: a mean over them, not a sum
    contributions = {label: _rms(values, batch * per_input) / (scale + TINY) for label, values in parts.items()}
    for label in ledger.calls:
        contributions.setdefault(label, 0.0)
    total = _rms(totals, batch * per_input) / (scale + TINY)
    if total < LIE_FLOOR:
        notes.append(f"no breaking above rounding (total {total:.2g} < {LIE_FLOOR:g}): the shares split rounding noise")
    return Attribution(
        model=setting.label,
        group=setting.group.name,
        method=METHOD_LIE,
        modules=_ranked(contributions, ledger),
        total=total,
        residual=_rms(totals - summed, batch * per_input) / (scale + TINY),
        probes=probes,
        notes=notes,
    )


def sanitized_lie_derivatives(
    model: Callable[..., Any], group: Group, x: Any, in_action: Action, out_action: Action, seed: int = 0
) -> tuple[Tensor, Tensor, int]:
    """``(derivative (k B, F), outputs (B, F), sanitized)``: the Lie derivatives of ``model`` at ``x`` per generator of ``group``.

    As :func:`~eqbench.check.lie.lie_derivative_rows` (same layout), but with hooks on the modules
    that take non-finite tangent entries at module boundaries as 0 (``sanitized`` counts them):
    a norm at zero (a point's distance to itself) has a finite value and no derivative there,
    though the model around it does. Falls back to ``lie_derivative_rows`` (jvp or central
    differences) when forward-mode AD cannot trace the model.
    """
    twin = dtype_copy(model, torch.float64) if isinstance(model, nn.Module) else model
    batch, k = in_action.batch_size(x), group.lie_algebra.shape[0]
    x64 = in_action.cast(x, torch.float64)
    stacked = in_action.index(x64, torch.arange(batch).repeat(k))
    directions = torch.eye(k, dtype=torch.float64).repeat_interleave(batch, dim=0)
    fields = [(action, tuple(leaf.tensor.shape[1:])) for action, leaf in zip(field_actions(in_action), in_action.leaves(x64))]
    setting = _Setting(twin, Hooks(twin, in_action, out_action), group, x64, in_action, out_action, Layout(group.space_dim, in_action.num_points(x64), fields), seed, "")
    try:
        with _seeded(seed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            flowing = _TangentPass(setting, lambda t: group.exp(t * directions), replacing=False)
            result = flowing.run(stacked)
        return result.mismatch, result.primal[:batch], flowing.sanitized
    except (RuntimeError, NotImplementedError):
        with _seeded(seed):
            derivative, outputs, _ = lie_derivative_rows(model, group, x64, in_action, out_action)
        return derivative, outputs, 0


@dataclass
class _PassResult:
    """A tangent pass: the output flattened per row (floating leaves, padded points zeroed) as ``primal``, its
    ``expected`` tangent and ``mismatch = tangent - expected``; the tangents of the input leaves (``None`` if not floating)."""

    primal: Tensor
    expected: Tensor
    mismatch: Tensor
    input_tangents: list[Tensor | None]


class _TangentPass:
    """One forward-mode pass with hooks (module docstring).

    ``replacing``: the tangents entering every module become the expected ones (mismatches
    recorded in :attr:`calls`), and so do the tangents leaving every unit (local Lie derivatives
    recorded). Otherwise the tangents flow as they are (a plain Lie derivative). Either way,
    non-finite tangent entries at module boundaries (the derivative of a norm at zero) are taken
    as 0 and counted in :attr:`sanitized`.
    """

    def __init__(self, setting: _Setting, exp: Callable[[float], Element], replacing: bool) -> None:
        self.setting, self.exp, self.replacing = setting, exp, replacing
        self.calls: list[_Call] = []
        self.open: list[_Call] = []
        self.sanitized = 0

    def run(self, stacked: Any) -> _PassResult:
        in_action, out_action = self.setting.in_action, self.setting.out_action
        input_tangent = action_tangent(in_action, self.exp, stacked)
        if input_tangent is None:
            raise RuntimeError("the input action does not act on the stacked inputs")
        with self.setting.hooks.installed(self.pre_hook, self.hook), fwAD.dual_level(), torch.no_grad():
            values, rebuild = flatten(stacked)
            tangents, _ = flatten(input_tangent)
            dual = rebuild([fwAD.make_dual(v, t) if is_floating(v) else v for v, t in zip(values, tangents)])
            out = call_model(self.setting.twin, dual)
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
            wanted = torch.cat([e.reshape(rows, -1) for _, e in pairs], dim=1)
        return _PassResult(primals, wanted, mismatch, [t if is_floating(v) else None for v, t in zip(values, tangents)])

    def tangent(self, t: Tensor) -> Tensor:
        """The tangent of dual tensor ``t`` (zeros without one), non-finite entries taken as 0."""
        tangent = _tangent_of(t)
        bad = ~torch.isfinite(tangent)
        if bool(bad.any()):
            self.sanitized += int(bad.sum())
            tangent = torch.where(bad, torch.zeros((), dtype=tangent.dtype), tangent)
        return tangent

    def expected(self, leaves: list[Any], declared: _Declared | None) -> list[tuple[Tensor | None, str]]:
        """Per leaf: the expected tangent (``None`` for non-floating leaves) and the action's name."""
        primals = [fwAD.unpack_dual(t).primal if is_floating(t) else t for t in leaves]
        if declared is not None:
            declared_leaves = declared.leaves(primals)
            if declared_leaves is None:
                raise RuntimeError(f"the declared action {declared.name} does not fit the module's value")
            return [(d if is_floating(p) else None, declared.name) for p, d in zip(primals, declared_leaves)]
        found: list[tuple[Tensor | None, str]] = []
        for t, p in zip(leaves, primals):
            if is_floating(t):
                action, tangent = inferred_tangent(self.setting.layout, self.exp, p, self.tangent(t))
                found.append((tangent, type(action).__name__))
            else:
                found.append((None, ""))
        return found

    def replace(
        self, leaves: list[Any], declared: _Declared | None, store: dict[int, Tensor]
    ) -> tuple[list[Any], str, dict[int, float]]:
        """The leaves with expected tangents (sanitized ones when not replacing); mismatches to ``store`` and squared
        primal norms to the returned dict, by slot."""
        if not self.replacing:
            return [fwAD.make_dual(fwAD.unpack_dual(t).primal, self.tangent(t)) if is_floating(t) else t for t in leaves], "", {}
        out, names, size = [], [], {}
        for slot, (t, (tangent, action)) in enumerate(zip(leaves, self.expected(leaves, declared))):
            if tangent is None:
                out.append(t)
                continue
            mismatch = self.tangent(t) - tangent
            if _moves(mismatch):
                store[slot] = mismatch
            size[slot] = float(fwAD.unpack_dual(t).primal.square().sum())
            out.append(fwAD.make_dual(fwAD.unpack_dual(t).primal, tangent))
            names.append(action)
        return out, "+".join(dict.fromkeys(names)) or "-", size

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hooks = self.setting.hooks
        call = _Call(hooks.modules[module], module in hooks.units)
        self.calls.append(call)
        if call.unit:
            self.open.append(call)
        leaves, call.paths, rebuild = flatten_named((args, kwargs))
        declared = self.setting.hooks.declared(module)
        expected = _Declared(declared.in_action, self.exp, rebuild, tangent=True) if declared else None
        new, call.actions, call.input_sq = self.replace(leaves, expected, call.inputs)
        return rebuild(new)

    def hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        call = self.open.pop()
        leaves, rebuild = flatten(output)
        declared = self.setting.hooks.declared(module)
        expected = _Declared(declared.out_action, self.exp, rebuild, tangent=True, call=False) if declared else None
        new, names, _ = self.replace(leaves, expected, call.outputs)
        call.output_sq = sum(float(fwAD.unpack_dual(t).primal.square().sum()) for t in leaves if is_floating(t))
        call.actions += " -> " + names
        return rebuild(new)


@dataclass
class _Probed:
    """The probe pass: per call ``r^T D`` by (kind, slot) and probe, the probes ``r`` (flattened per row), and per probe
    the gradients of ``<r, f>`` with respect to the input leaves (``None`` where not floating or unused)."""

    grads: dict[int, dict[tuple[str, int], list[Tensor]]]
    vectors: list[Tensor]
    input_grads: list[list[Tensor | None]]


def _probe_pass(setting: _Setting, calls: list[_Call], stacked: Any, probes: int) -> _Probed:
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
        if index is None or calls[index].name != setting.hooks.modules[module]:
            raise RuntimeError("the model called its modules in a different order on the probe pass")
        if calls[index].unit:
            open_calls.append(index)
        leaves, rebuild = flatten((args, kwargs))
        for slot in calls[index].inputs:
            if leaves[slot].requires_grad:
                leaves[slot] = leaves[slot].view_as(leaves[slot])  # its own node: only the path through this module
                leaves[slot].register_hook(keep(index, ("in", slot)))
        return rebuild(leaves)

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        index = open_calls.pop()
        leaves, _ = flatten(output)
        for slot in calls[index].outputs:
            if leaves[slot].requires_grad:
                leaves[slot].register_hook(keep(index, ("out", slot)))

    generator = torch.Generator().manual_seed(setting.seed + 1)
    in_action, out_action = setting.in_action, setting.out_action
    with setting.hooks.installed(pre_hook, hook), torch.enable_grad():
        values, rebuild = flatten(stacked)
        sources = [v.detach().requires_grad_() if is_floating(v) else v for v in values]
        out = call_model(setting.twin, rebuild(sources))
        mask = in_action.point_mask(stacked)
        leaves = [(masked(leaf.tensor, mask, leaf.per_point), leaf.per_point) for leaf in out_action.leaves(out) if leaf.tensor.is_floating_point()]
        rows = in_action.batch_size(stacked)
        vectors, input_grads = [], []
        floating = [s for s in sources if is_floating(s)]
        for p in range(probes):
            rs = [masked(torch.randn(t.shape, generator=generator, dtype=t.dtype), mask, pp) for t, pp in leaves]
            vectors.append(torch.cat([r.reshape(rows, -1) for r in rs], dim=1))
            loss = sum((r * t).sum() for r, (t, _) in zip(rs, leaves))
            found: list[Tensor | None] = [None] * len(floating)
            if isinstance(loss, Tensor) and loss.requires_grad:
                found = list(torch.autograd.grad(loss, floating, retain_graph=p < probes - 1, allow_unused=True))
            by_source = iter(found)
            input_grads.append([next(by_source) if is_floating(s) else None for s in sources])
    for per_call in grads.values():
        if any(len(per_probe) != probes for per_probe in per_call.values()):
            raise RuntimeError("a probe gradient was missed")
    return _Probed(grads, vectors, input_grads)


# ------------------------------------------------------------------------------------------ local errors
def _local_errors(setting: _Setting, n_elements: int, notes: list[str]) -> Attribution:
    """Local errors under random elements (module docstring): a pass on ``x`` records, a pass on ``g.x`` compares and replaces."""
    in_action = setting.in_action
    batch, num_points = in_action.batch_size(setting.x64), in_action.num_points(setting.x64)
    x = in_action.repeat_interleave(setting.x64, n_elements)
    g = setting.group.sample(batch * n_elements, torch.Generator().manual_seed(setting.seed), num_points)
    with _seeded(setting.seed):
        recorded, fx = _record(setting, x)
    moved = _MovedPass(setting, g, recorded)
    with _seeded(setting.seed):
        out = moved.run(in_action.apply(g, x))
    with _seeded(setting.seed), torch.no_grad():
        out_plain = call_model(setting.twin, in_action.apply(g, x))
    if moved.diverged:
        notes = notes + ["the model called its modules differently on g.x: compared up to the first difference"]
    ledger = _Ledger()
    for call in moved.calls:
        ledger.add(call)
    wanted = setting.out_action.apply(g, fx)
    final = [(a.tensor, b.tensor) for a, b in zip(setting.out_action.leaves(out), setting.out_action.leaves(wanted)) if a.tensor.is_floating_point()]
    ledger.errors[CODE_AFTER] = sum(float((a - b).square().sum()) for a, b in final)
    ledger.sizes[CODE_AFTER] = sum(float(b.square().sum()) for _, b in final)
    ledger.calls[CODE_AFTER] = 1
    ledger.actions[CODE_AFTER] = "code"
    local = {label: ledger.local(label) for label in ledger.calls}
    plain = [(a.tensor, b.tensor) for a, b in zip(setting.out_action.leaves(out_plain), setting.out_action.leaves(wanted)) if a.tensor.is_floating_point()]
    total = math.sqrt(sum(float((a - b).square().sum()) for a, b in plain) / (sum(float(b.square().sum()) for _, b in plain) + TINY))
    if total < LIE_FLOOR:
        notes = notes + [
            f"the model itself is equivariant on these elements (total {total:.2g}): any local error above rounding is "
            "the motion of activations that no inferred action describes (e.g. frame copies); declare their actions"
        ]
    return Attribution(setting.label, setting.group.name, METHOD_LOCAL, _ranked(local, ledger), total, float("nan"), 0, notes)


def _record(setting: _Setting, x: Any) -> tuple[list[tuple[list[Any], list[Any]]], Any]:
    """Every module call of one forward pass on ``x``: ``(input leaves, output leaves)`` (outputs for units only), and the output."""
    record: list[tuple[list[Any], list[Any]]] = []
    open_calls: list[int] = []

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        record.append((flatten((args, kwargs))[0], []))
        if module in setting.hooks.units:
            open_calls.append(len(record) - 1)

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        record[open_calls.pop()][1].extend(flatten(output)[0])

    with setting.hooks.installed(pre_hook, hook), torch.no_grad():
        out = call_model(setting.twin, x)
    return record, out


class _MovedPass:
    """The pass on ``g.x``: each module's input is compared with the action of ``g`` on its input at ``x`` (best fit, or
    declared) and replaced by it; each unit's output likewise, so every error is measured where it arises."""

    def __init__(self, setting: _Setting, g: Element, recorded: list[tuple[list[Any], list[Any]]]) -> None:
        self.setting, self.g, self.recorded = setting, g, recorded
        self.calls: list[_Call] = []
        self.open: list[tuple[_Call, int]] = []
        self.diverged = False

    def run(self, gx: Any) -> Any:
        with self.setting.hooks.installed(self.pre_hook, self.hook), torch.no_grad():
            return call_model(self.setting.twin, gx)

    def compare(
        self, arriving: list[Any], before: list[Any], declared: _Declared | None, store: dict[int, Tensor]
    ) -> tuple[list[Any], str, dict[int, float]]:
        images = declared.leaves(before) if declared is not None else None
        out, names, size = [], [], {}
        for slot, (now, then) in enumerate(zip(arriving, before)):
            if not (is_floating(now) and is_floating(then) and now.shape == then.shape):
                out.append(now)
                continue
            if images is not None:
                image, name = images[slot], declared.name
            else:
                action, image = inferred_image(self.setting.layout, self.g, then, now)
                name = type(action).__name__
            mismatch = now - image
            if _moves(mismatch):
                store[slot] = mismatch
            size[slot] = float(image.square().sum())
            out.append(image)
            names.append(name)
        return out, "+".join(dict.fromkeys(names)) or "-", size

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        hooks = self.setting.hooks
        index = len(self.calls)
        call = _Call(hooks.modules[module], module in hooks.units)
        self.calls.append(call)
        if call.unit:
            self.open.append((call, index))
        leaves, call.paths, rebuild = flatten_named((args, kwargs))
        if self.diverged or index >= len(self.recorded) or len(self.recorded[index][0]) != len(leaves):
            self.diverged = True
            return None
        declared = self.setting.hooks.declared(module)
        images = _Declared(declared.in_action, self.g, rebuild) if declared else None
        new, call.actions, call.input_sq = self.compare(leaves, self.recorded[index][0], images, call.inputs)
        return rebuild(new)

    def hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        call, index = self.open.pop()
        leaves, rebuild = flatten(output)
        before = self.recorded[index][1] if index < len(self.recorded) else []
        if self.diverged or len(before) != len(leaves):
            self.diverged = True
            return None
        declared = self.setting.hooks.declared(module)
        images = _Declared(declared.out_action, self.g, rebuild, call=False) if declared else None
        new, names, _ = self.compare(leaves, before, images, call.outputs)
        call.output_sq = sum(float(t.square().sum()) for t in before if is_floating(t))
        call.actions += " -> " + names
        return rebuild(new)


# ------------------------------------------------------------------------------------------ helpers
@dataclass
class _Declared:
    """A declared action at a module boundary: ``leaves(primals)`` gives its tangent's (``how`` an ``exp``) or image's
    (``how`` an element) leaves, aligned with the boundary's leaves; ``None`` when it does not fit.

    ``call``: the leaves are those of a module call ``(args, kwargs)``, whose value is ``args[0]``
    for one positional argument, the tuple of several, or the dict of keyword arguments.
    """

    action: Action
    how: Any
    rebuild: Callable[[list[Any]], Any]
    tangent: bool = False
    call: bool = True

    @property
    def name(self) -> str:
        return type(self.action).__name__

    def leaves(self, primals: list[Any]) -> list[Any] | None:
        value = self.rebuild(primals)
        if self.call:
            args, kwargs = value
            if args and kwargs:
                raise RuntimeError("a declared module must be called with positional or keyword arguments, not both")
            value = dict(kwargs) if kwargs else (args[0] if len(args) == 1 else tuple(args))
        result = action_tangent(self.action, self.how, value) if self.tangent else acted(self.action, self.how, value)
        if result is None:
            return None
        if self.call:
            args, kwargs = self.rebuild(primals)
            result = ((), result) if kwargs else (((result,) if len(args) == 1 else tuple(result)), {})
        return flatten(result)[0]


def _ranked(contributions: dict[str, float], ledger: _Ledger) -> list[ModuleAttribution]:
    total = sum(v for v in contributions.values() if math.isfinite(v))
    ranked = sorted(contributions.items(), key=lambda item: (-item[1] if math.isfinite(item[1]) else math.inf, item[0]))
    return [
        ModuleAttribution(
            module=label,
            contribution=value,
            share=value / total if total > 0 and math.isfinite(value) else 0.0,
            local_error=ledger.local(label),
            calls=ledger.calls.get(label, 0),
            actions=ledger.actions.get(label, "code"),
        )
        for label, value in ranked
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


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block from ``torch.manual_seed(seed)``, restoring the caller's RNG state after (common random numbers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _moves(t: Tensor) -> bool:
    """Whether ``t`` has a non-zero entry (``False`` for an empty tensor)."""
    return t.numel() > 0 and bool((t != 0).any())
