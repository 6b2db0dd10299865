"""Local errors under group elements, for finite groups and models forward-mode AD cannot trace.

A pass on ``x`` records every module's inputs and every unit's outputs; a pass on ``g.x``
compares each with the action of ``g`` on its record (declared, or the best-fitting candidate)
and replaces it, so each error is measured where it arises (see :mod:`eqbench.check.attribution`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from eqbench.check.activations import flatten, flatten_named, inferred_image, is_floating
from eqbench.check.forward import call_model
from eqbench.check.metrics import TINY
from eqbench.check.module_calls import (
    CODE_AFTER,
    LIE_FLOOR,
    METHOD_LOCAL,
    Attribution,
    Call,
    Declared,
    Ledger,
    Setting,
    moves,
    ranked,
    seeded,
)
from eqbench.groups.element import Element

def local_errors(setting: Setting, n_elements: int, notes: list[str]) -> Attribution:
    """Local errors under random elements (module docstring): a pass on ``x`` records, a pass on ``g.x`` compares and replaces."""
    in_action = setting.in_action
    batch, num_points = in_action.batch_size(setting.x64), in_action.num_points(setting.x64)
    x = in_action.repeat_interleave(setting.x64, n_elements)
    g = setting.group.sample(batch * n_elements, torch.Generator().manual_seed(setting.seed), num_points)
    with seeded(setting.seed):
        recorded, fx = _record(setting, x)
    moved = _MovedPass(setting, g, recorded)
    with seeded(setting.seed):
        out = moved.run(in_action.apply(g, x))
    with seeded(setting.seed), torch.no_grad():
        out_plain = call_model(setting.twin, in_action.apply(g, x))
    if moved.diverged:
        notes = notes + ["the model called its modules differently on g.x: compared up to the first difference"]
    ledger = Ledger()
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
    return Attribution(setting.label, setting.group.name, METHOD_LOCAL, ranked(local, ledger), total, float("nan"), 0, notes)


def _record(setting: Setting, x: Any) -> tuple[list[tuple[list[Any], list[Any]]], Any]:
    """Every module call of one forward pass on ``x``: ``(input leaves, output leaves)`` (outputs for units only), and the output.

    Tensors are recorded as copies: a model that later changes an activation in place (a residual
    added into a layer's output, an in-place activation function) must not change what was recorded.
    """
    record: list[tuple[list[Any], list[Any]]] = []
    open_calls: list[int] = []

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        record.append((_copies(flatten((args, kwargs))[0]), []))
        if module in setting.hooks.units:
            open_calls.append(len(record) - 1)

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        record[open_calls.pop()][1].extend(_copies(flatten(output)[0]))

    with setting.hooks.installed(pre_hook, hook), torch.no_grad():
        out = call_model(setting.twin, x)
    return record, out


def _copies(leaves: list[Any]) -> list[Any]:
    """Tensors cloned (detached), anything else as it is."""
    return [leaf.detach().clone() if isinstance(leaf, Tensor) else leaf for leaf in leaves]


class _MovedPass:
    """The pass on ``g.x``: each module's input is compared with the action of ``g`` on its input at ``x`` (best fit, or
    declared) and replaced by it; each unit's output likewise, so every error is measured where it arises."""

    def __init__(self, setting: Setting, g: Element, recorded: list[tuple[list[Any], list[Any]]]) -> None:
        self.setting, self.g, self.recorded = setting, g, recorded
        self.calls: list[Call] = []
        self.open: list[tuple[Call, int]] = []
        self.diverged = False

    def run(self, gx: Any) -> Any:
        with self.setting.hooks.installed(self.pre_hook, self.hook), torch.no_grad():
            return call_model(self.setting.twin, gx)

    def compare(
        self, arriving: list[Any], before: list[Any], declared: Declared | None, store: dict[int, Tensor]
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
            if moves(mismatch):
                store[slot] = mismatch
            size[slot] = float(image.square().sum())
            out.append(image)
            names.append(name)
        return out, "+".join(dict.fromkeys(names)) or "-", size

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        hooks = self.setting.hooks
        index = len(self.calls)
        call = Call(hooks.modules[module], module in hooks.units)
        self.calls.append(call)
        if call.unit:
            self.open.append((call, index))
        leaves, call.paths, rebuild = flatten_named((args, kwargs))
        if self.diverged or index >= len(self.recorded) or len(self.recorded[index][0]) != len(leaves):
            self.diverged = True
            return None
        declared = self.setting.hooks.declared(module)
        images = Declared(declared.in_action, self.g, rebuild) if declared else None
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
        images = Declared(declared.out_action, self.g, rebuild, call=False) if declared else None
        new, names, _ = self.compare(leaves, before, images, call.outputs)
        call.output_sq = sum(float(t.square().sum()) for t in before if is_floating(t))
        call.actions += " -> " + names
        return rebuild(new)
