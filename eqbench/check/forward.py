"""Calling the model under test, and turning its misbehaviour into a clear failure.

Calling convention: a ``tuple`` input value is passed as positional arguments
(``model(*x)``), a ``dict`` as keyword arguments (``model(**x)``), anything else (a tensor)
as one positional argument (``model(x)``). Forward passes run under ``torch.no_grad()``
(a model that needs gradients inside its forward, e.g. forces as ``-dE/dx``, wraps that part
in ``torch.enable_grad()``), and the batch axis must hold independent items.

A :class:`ModelFailure` is raised (never anything else) when the model raises, changes its
input in place, or returns a value that does not match the output action (wrong type or
shape, a batch size other than the input's, NaN or Inf).
"""
from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from eqbench.actions.base import Action, DataError
from eqbench.actions.composite import Composite

LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


class ModelFailure(Exception):
    """The model could not be checked on some input; ``kind`` is raised/mutated/output/precision."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def call_model(model: Callable[..., Any], x: Any) -> Any:
    """``model(*x)`` for a tuple, ``model(**x)`` for a dict, ``model(x)`` otherwise."""
    if isinstance(x, tuple):
        return model(*x)
    if isinstance(x, Mapping):
        return model(**x)
    return model(x)


def model_name(model: Any) -> str:
    """A readable name: the function's ``__name__`` or the module's class name."""
    if isinstance(model, nn.Module):
        return type(model).__name__
    return getattr(model, "__name__", type(model).__name__)


def evaluate(model: Callable[..., Any], x: Any, in_action: Action, out_action: Action, rows: int) -> Any:
    """The model's output on ``x`` (``rows`` items), checked; raises :class:`ModelFailure`.

    The input is compared with a clone taken before the call to catch in-place changes, except
    for a dtype twin (:class:`TwinModel`): the checker runs it only on rows the model itself has
    already run on, with the same code, so the model's own pass catches them.
    """
    before = None if isinstance(model, TwinModel) else in_action.clone(x)
    try:
        with torch.no_grad():
            out = call_model(model, x)
    except Exception as error:  # noqa: BLE001 - any exception of the model is reported, not propagated
        raise ModelFailure("raised", f"model raised {type(error).__name__}: {error}") from error
    changed = [] if before is None else [
        leaf.name or "<value>"
        for leaf, kept in zip(in_action.leaves(x), in_action.leaves(before))
        if not torch.equal(leaf.tensor, kept.tensor)
    ]
    if changed:
        raise ModelFailure("mutated", f"model changed its input in place (field(s) {', '.join(changed)})")
    try:
        out_action.validate(out, where="model output")
    except DataError as error:
        raise ModelFailure("output", f"bad model output: {error}") from None
    finite_checked = validate_rejects_non_finite(out_action)
    leaves = out_action.leaves(out)
    for leaf in leaves:
        if leaf.tensor.shape[0] != rows:
            raise ModelFailure(
                "output",
                f"model output {leaf.name or '<value>'} has batch {leaf.tensor.shape[0]} for {rows} inputs "
                "(the batch axis must hold independent items)",
            )
        if not finite_checked and leaf.tensor.is_floating_point() and not bool(torch.isfinite(leaf.tensor).all()):
            raise ModelFailure("output", f"model output {leaf.name or '<value>'} contains NaN or Inf")
    if isinstance(model, TwinModel) and model.dtype == torch.float64:
        low = [leaf.name or "<value>" for leaf in leaves if leaf.tensor.dtype in LOW_PRECISION]
        if low:
            raise ModelFailure("precision", f"model output {', '.join(low)} stays below float64 precision on float64 inputs")
    return out


def validate_rejects_non_finite(action: Action) -> bool:
    """Whether ``action.validate`` already rejects NaN and Inf in every floating tensor of a value.

    eqbench's own actions do: those of floating fields call
    :func:`~eqbench.actions.checks.require_finite`, the others (masks, edge indices) refuse floating
    dtypes, and a composite validates each field with that field's action. An action whose
    ``validate`` is defined elsewhere (a plugin's) may not, so :func:`evaluate` checks its
    floating outputs itself.
    """
    if not type(action).validate.__module__.startswith("eqbench.actions."):
        return False
    return all(validate_rejects_non_finite(field) for field in action.fields.values()) if isinstance(action, Composite) else True


#: Copies of checked modules in another dtype, kept while the module lives and its tensors are unchanged.
_TWINS: weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, _Twin]] = weakref.WeakKeyDictionary()


@dataclass
class _Twin:
    """A cached dtype copy: the checked module's :func:`_tensor_state` when it was made or last
    refreshed, the copy, and the copy's parameters and buffers (in :func:`_named_tensors` order,
    gathered once: nothing but :func:`_refresh` changes the private copy)."""

    state: tuple
    module: nn.Module
    tensors: list[torch.Tensor]


def _tensor_state(named: list[tuple[str, torch.Tensor]]) -> tuple:
    """Identity and in-place version of every parameter and buffer: changes when training updates them."""
    return tuple((name, t.data_ptr(), _version(t), t.dtype, tuple(t.shape)) for name, t in named)


def _version(t: torch.Tensor) -> int:
    """The in-place version counter (inference-mode tensors have none: their changes go unseen)."""
    return -1 if t.is_inference() else t._version


def dtype_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``copy.deepcopy(module)`` with its real floating tensors in ``dtype``, cached per module and dtype.

    Only real floating parameters and buffers are cast (as ``.double()`` and ``.float()`` do):
    integer and complex ones keep their dtype (``.to(float64)`` would drop the imaginary part of a
    spectral model's complex weights).

    Copying can be costly (e3nn re-generates its tensor-product code on copy), so checks of
    the same module reuse one copy. Parameters changed in place (optimiser steps,
    ``load_state_dict``) bump their version: the cached copy then takes the new values
    (:func:`_refresh`, a cast copy per tensor, much cheaper than a deep copy, which is what
    training-time tracking needs after every epoch). A module whose tensors were replaced
    (other storage, shape or dtype) is copied anew. Writes through ``.data`` are not seen.
    """
    named = _named_tensors(module)
    state = _tensor_state(named)
    copies = _TWINS.setdefault(module, {})
    cached = copies.get(dtype)
    if cached is not None and cached.state == state:
        return cached.module
    if cached is not None and _same_storage(cached.state, state):
        _refresh(cached.tensors, [t for _, t in named])
        cached.state = state
        return cached.module
    twin = cast_model(copy.deepcopy(module), dtype)
    copies[dtype] = _Twin(state, twin, [t for _, t in _named_tensors(twin)])
    return twin


def _same_storage(old: tuple, new: tuple) -> bool:
    """Whether two :func:`_tensor_state` s name the same tensors (storage, dtype, shape), whatever their versions."""
    return len(old) == len(new) and all(a[:2] == b[:2] and a[3:] == b[3:] for a, b in zip(old, new))


def _refresh(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """Copy a module's parameter and buffer values into its twin's (same order), cast to the twin's dtypes."""
    with torch.no_grad():
        for target, source in zip(targets, sources):
            target.copy_(source)


def _named_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(module.named_parameters()) + list(module.named_buffers())


class TwinModel:
    """The model evaluated in ``dtype``: :func:`dtype_copy` of a module, made on first use.

    The copy casts every real floating parameter and buffer (and whatever else a module's
    ``_apply`` covers, e.g. the generated code of e3nn's tensor products); it leaves the
    checked model untouched. A module that cannot be deep-copied (it holds a lock, an open
    file, an imported module object) is cast in place instead for each call
    (:func:`cast_in_place`: its own tensors are swapped back afterwards, bit for bit). A plain
    function is called as is on inputs in ``dtype``. A float32 twin runs with TF32 off
    (:func:`full_float32`): it stands for float32 rounding. ``problem`` says why the twin could
    not be evaluated, once a caller has found out (callers then stop trying).
    """

    def __init__(self, model: Callable[..., Any], dtype: torch.dtype) -> None:
        self.model = model
        self.dtype = dtype
        self.problem = ""
        self.in_place = False
        self._copy: Callable[..., Any] | None = None if isinstance(model, nn.Module) else model

    def refuse(self, failure: ModelFailure) -> None:
        """Record that the twin cannot be evaluated (``problem``), so that callers stop trying."""
        self.problem = f"no {str(self.dtype).removeprefix('torch.')} evaluation: {failure}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._copy is None and not self.in_place:
            try:
                self._copy = dtype_copy(self.model, self.dtype)
            except Exception:  # noqa: BLE001 - any copying problem: cast the module itself for each call
                self.in_place = True
        with full_float32() if self.dtype == torch.float32 else nullcontext():
            if self.in_place:
                with cast_in_place(self.model, self.dtype):
                    return self.model(*args, **kwargs)
            return self._copy(*args, **kwargs)


@contextmanager
def cast_in_place(module: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Every real floating parameter and buffer of ``module`` holds a ``dtype`` copy of its values inside the block.

    The original storages are put back afterwards (the very same tensors, so nothing is lost
    even for float64 -> float32 -> float64), also when the block raises.
    """
    saved = []
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point() and tensor.dtype != dtype:
            saved.append((tensor, tensor.data))
            tensor.data = tensor.data.to(dtype)
    try:
        yield
    finally:
        for tensor, data in saved:
            tensor.data = data


def cast_model(model: Any, dtype: torch.dtype) -> Any:
    """``model`` with its real floating parameters and buffers in ``dtype`` (a module; anything else unchanged).

    Integer and complex tensors keep their dtype, as in :func:`dtype_copy`.
    """
    if isinstance(model, nn.Module):
        return model._apply(lambda t: t.to(dtype) if t.is_floating_point() else t)
    return model


@contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and cuDNN convolutions inside the block, restored after (no effect on the CPU).

    On Ampere and later GPUs cuDNN convolutions default to TF32, whose 2^-11 rounding is not
    float32's 2^-24.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
