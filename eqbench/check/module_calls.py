"""What explain's passes share: hooks on a model's modules, one module call's record, the ledger of errors, results.

:class:`Hooks` installs forward pre-hooks on every module outside declared ones and forward
hooks on the *units* (declared modules and leaf modules); a :class:`Call` records what one
module call brought in and put out; a :class:`Ledger` sums squared errors per label
(``M`` for a unit, ``<code before> M [path]`` for the code feeding ``M``); :class:`Attribution`
is the ranked result (see :mod:`eqbench.check.attribution` for the mathematics).
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

from eqbench.actions.base import Action
from eqbench.check.activations import Layout, acted, action_tangent, argument_name, field_actions, flatten, is_floating
from eqbench.check.metrics import TINY
from eqbench.declare import DeclaredActions, declared_actions
from eqbench.groups.base import Group

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

    def declared_fields(self) -> list[Action]:
        """The field actions of every declared module's input and output (candidates for other activations' actions)."""
        found: list[Action] = []
        for module in self.units:
            declared = declared_actions(module)
            if declared is not None:
                found += [a for a in field_actions(declared.in_action) + field_actions(declared.out_action) if a not in found]
        return found

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
class Setting:
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
class Call:
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


class Ledger:
    """Per label: squared errors, squared sizes, calls and actions (the local-error bookkeeping)."""

    def __init__(self) -> None:
        self.errors: dict[str, float] = defaultdict(float)
        self.sizes: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.actions: dict[str, str] = {}

    def add(self, call: Call) -> None:
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


@dataclass
class Declared:
    """A declared action at a module boundary: ``leaves(primals)`` gives its tangent's (``how`` an ``exp``) or image's
    (``how`` an element) leaves, aligned with the boundary's leaves; ``None`` when it does not fit.

    ``call``: the leaves are those of a module call ``(args, kwargs)``, whose value is ``args[0]``
    for one positional argument, the tuple of several, or the dict of keyword arguments; beside
    positional arguments, keyword arguments without floating tensors (options such as a random
    generator) pass unchanged.
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
            if args and any(is_floating(leaf) for leaf in flatten(kwargs)[0]):
                raise RuntimeError("a declared module must take its tensors as positional or as keyword arguments, not both")
            value = dict(kwargs) if kwargs and not args else (args[0] if len(args) == 1 else tuple(args))
        result = action_tangent(self.action, self.how, value) if self.tangent else acted(self.action, self.how, value)
        if result is None:
            return None
        if self.call:
            args, kwargs = self.rebuild(primals)
            result = ((), result) if kwargs and not args else (((result,) if len(args) == 1 else tuple(result)), kwargs)
        return flatten(result)[0]


def ranked(contributions: dict[str, float], ledger: Ledger) -> list[ModuleAttribution]:
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


def rms(values: Tensor, batch: int) -> float:
    """``sqrt(mean over probes of the sum over rows of values^2 / batch)``: RMS over inputs, squares summed over generators."""
    return float(torch.sqrt(values.square().sum(dim=1).mean() / batch))


def row_inner(gradient: Tensor, vector: Tensor, rows: int) -> Tensor:
    """``<gradient, vector>`` per row; a tensor without a batch-major layout is shared evenly among the rows."""
    product = gradient.to(torch.float64) * vector.to(torch.float64)
    if product.dim() > 0 and product.shape[0] % rows == 0:
        return product.reshape(rows, -1).sum(dim=1)
    return product.sum().expand(rows) / rows


def tangent_of(t: Tensor) -> Tensor:
    unpacked = fwAD.unpack_dual(t)
    return unpacked.tangent if unpacked.tangent is not None else torch.zeros_like(unpacked.primal)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block from ``torch.manual_seed(seed)``, restoring the caller's RNG state after (common random numbers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def moves(t: Tensor) -> bool:
    """Whether ``t`` has a non-zero entry (``False`` for an empty tensor)."""
    return t.numel() > 0 and bool((t != 0).any())
