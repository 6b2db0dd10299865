"""The chain rule of the Lie derivative through a model's modules (see :mod:`eqbench.check.attribution`).

One forward-mode pass with the tangents at module boundaries replaced by the expected ones
(``_TangentPass``) gives every unit's local Lie derivative and every piece of code's
mismatch; one reverse-mode pass with Gaussian output probes (``_probe_pass``) carries them
to the output; :func:`chain_rule` adds them up against the model's own Lie derivative.
:func:`sanitized_lie_derivatives` is the plain pass, for the symmetry profile.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn

from eqbench.actions.base import Action
from eqbench.check.activations import (
    Layout,
    action_tangent,
    field_actions,
    flatten,
    flatten_named,
    inferred_tangent,
    is_floating,
)
from eqbench.check.forward import call_model, dtype_copy
from eqbench.check.lie import lie_derivative_rows
from eqbench.check.metrics import TINY, masked
from eqbench.check.module_calls import (
    CODE_AFTER,
    LIE_FLOOR,
    METHOD_LIE,
    Attribution,
    Call,
    Declared,
    Hooks,
    Ledger,
    Setting,
    moves,
    ranked,
    rms,
    row_inner,
    seeded,
    tangent_of,
)
from eqbench.groups.base import Group
from eqbench.groups.element import Element

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


def chain_rule(setting: Setting, probes: int, directions: int | None) -> Attribution:
    in_action, x64 = setting.in_action, setting.x64
    batch, k = in_action.batch_size(x64), setting.group.lie_algebra.shape[0]
    coefficients = algebra_directions(k, batch, directions, torch.Generator().manual_seed(setting.seed + 2))
    rows = coefficients.shape[0]
    stacked = in_action.index(x64, torch.arange(batch).repeat(rows // batch))

    def exp(t: float) -> Element:
        return setting.group.exp(t * coefficients)

    with seeded(setting.seed):
        replaced = _TangentPass(setting, exp, replacing=True)
        result = replaced.run(stacked)
    with seeded(setting.seed):
        probed = _probe_pass(setting, replaced.calls, stacked, probes)
    notes = ["every pass runs from the same seed (common random numbers for models that sample)"]
    # the model's own Lie derivative on each probe: <r, J_f v> - <r, e_out> from the input gradients
    totals = torch.stack([
        sum((row_inner(g, t, rows) for g, t in zip(grads, result.input_tangents) if g is not None), torch.zeros(rows, dtype=torch.float64))
        - (r * result.expected).sum(dim=1)
        for grads, r in zip(probed.input_grads, probed.vectors)
    ])
    sanitized = replaced.sanitized
    if not bool(torch.isfinite(totals).all()):  # reverse mode through a norm at zero: a plain tangent pass instead
        with seeded(setting.seed):
            flowing = _TangentPass(setting, exp, replacing=False)
            plain = flowing.run(stacked).mismatch
        totals = torch.stack([(r * plain).sum(dim=1) for r in probed.vectors])
        sanitized += flowing.sanitized
    if sanitized:
        notes.append(f"{sanitized} non-finite tangent entries (a norm or square root at zero) were taken as 0")
    scale = float(torch.sqrt(result.primal[:batch].square().sum(dim=1).mean()))
    parts: dict[str, Tensor] = defaultdict(lambda: torch.zeros(probes, rows, dtype=torch.float64))
    ledger = Ledger()
    for index, call in enumerate(replaced.calls):
        ledger.add(call)
        for (kind, slot), per_probe in probed.grads.get(index, {}).items():
            vector = call.outputs[slot] if kind == "out" else call.inputs[slot]
            target = call.label if kind == "out" else call.code_label(slot)
            for p, gradient in enumerate(per_probe):
                parts[target][p] += row_inner(gradient, vector, rows)
    if moves(result.mismatch):
        for p, r in enumerate(probed.vectors):
            parts[CODE_AFTER][p] += (r * result.mismatch).sum(dim=1)
    summed = sum(parts.values(), torch.zeros(probes, rows, dtype=torch.float64))
    per_input = rows / batch if directions is not None else 1.0  # random directions: a mean over them, not a sum
    contributions = {label: rms(values, batch * per_input) / (scale + TINY) for label, values in parts.items()}
    for label in ledger.calls:
        contributions.setdefault(label, 0.0)
    total = rms(totals, batch * per_input) / (scale + TINY)
    if total < LIE_FLOOR:
        notes.append(f"no breaking above rounding (total {total:.2g} < {LIE_FLOOR:g}): the shares split rounding noise")
    return Attribution(
        model=setting.label,
        group=setting.group.name,
        method=METHOD_LIE,
        modules=ranked(contributions, ledger),
        total=total,
        residual=rms(totals - summed, batch * per_input) / (scale + TINY),
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
    setting = Setting(twin, Hooks(twin, in_action, out_action), group, x64, in_action, out_action, Layout(group.space_dim, in_action.num_points(x64), fields), seed, "")
    try:
        with seeded(seed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            flowing = _TangentPass(setting, lambda t: group.exp(t * directions), replacing=False)
            result = flowing.run(stacked)
        return result.mismatch, result.primal[:batch], flowing.sanitized
    except (RuntimeError, NotImplementedError):
        with seeded(seed):
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

    def __init__(self, setting: Setting, exp: Callable[[float], Element], replacing: bool) -> None:
        self.setting, self.exp, self.replacing = setting, exp, replacing
        self.calls: list[Call] = []
        self.open: list[Call] = []
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
        tangent = tangent_of(t)
        bad = ~torch.isfinite(tangent)
        if bool(bad.any()):
            self.sanitized += int(bad.sum())
            tangent = torch.where(bad, torch.zeros((), dtype=tangent.dtype), tangent)
        return tangent

    def expected(self, leaves: list[Any], declared: Declared | None) -> list[tuple[Tensor | None, str]]:
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
        self, leaves: list[Any], declared: Declared | None, store: dict[int, Tensor]
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
            if moves(mismatch):
                store[slot] = mismatch
            size[slot] = float(fwAD.unpack_dual(t).primal.square().sum())
            out.append(fwAD.make_dual(fwAD.unpack_dual(t).primal, tangent))
            names.append(action)
        return out, "+".join(dict.fromkeys(names)) or "-", size

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hooks = self.setting.hooks
        call = Call(hooks.modules[module], module in hooks.units)
        self.calls.append(call)
        if call.unit:
            self.open.append(call)
        leaves, call.paths, rebuild = flatten_named((args, kwargs))
        declared = self.setting.hooks.declared(module)
        expected = Declared(declared.in_action, self.exp, rebuild, tangent=True) if declared else None
        new, call.actions, call.input_sq = self.replace(leaves, expected, call.inputs)
        return rebuild(new)

    def hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        call = self.open.pop()
        leaves, rebuild = flatten(output)
        declared = self.setting.hooks.declared(module)
        expected = Declared(declared.out_action, self.exp, rebuild, tangent=True, call=False) if declared else None
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


def _probe_pass(setting: Setting, calls: list[Call], stacked: Any, probes: int) -> _Probed:
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
