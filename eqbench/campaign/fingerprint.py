"""Content fingerprints for the result cache: of code, of configuration objects, of weights, of eqbench itself.

* :func:`code_digest` hashes what a model's code *is*: for each function its bytecode,
  constants and names (not its file or line numbers), and, following the globals its code
  names, every function, class and value it reaches inside user or model code; classes by
  their methods and attributes. Code outside that (the standard library, third-party
  packages, torch) enters as ``package==version``; eqbench's framework (checker, groups,
  actions, inputs, registry, tasks) as :func:`framework_digest`. So editing one model's
  factory or class changes that model's digest and no other's, even when several models share
  a file.
* :func:`describe` turns a configuration object (a group, an action, an input generator, check
  options) into plain JSON: its class and, recursively, its attributes.
* :func:`weights_digest` hashes a module's ``state_dict`` (names, dtypes, shapes, values).
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
import math
import sys
import sysconfig
import types
from pathlib import Path, PurePath
from collections.abc import Iterable, Mapping
from typing import Any

import torch

#: eqbench modules whose behaviour is shared by every check (hashed as source files, as a whole).
CHECK_FRAMEWORK = ("check", "groups", "actions", "inputs", "registry.py", "__init__.py")
#: ... and by every training run.
TRAIN_FRAMEWORK = (*CHECK_FRAMEWORK, "tasks")
#: eqbench's model code, walked like user code; every other eqbench module is framework.
MODEL_PACKAGES = ("eqbench.models", "eqbench.catalog")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def digest_json(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def framework_digest(parts: tuple[str, ...] = CHECK_FRAMEWORK) -> str:
    """SHA-256 over the source files of the given parts of the eqbench package (paths and contents)."""
    sha = hashlib.sha256()
    for part in parts:
        path = _PACKAGE_ROOT / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            sha.update(str(file.relative_to(_PACKAGE_ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return sha.hexdigest()


def weights_digest(model: Any) -> str | None:
    """SHA-256 of a module's ``state_dict`` (name, dtype, shape and bytes of each entry); ``None`` for a non-module."""
    if not isinstance(model, torch.nn.Module):
        return None
    sha = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        sha.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return sha.hexdigest()


def describe(value: Any, _depth: int = 0) -> Any:
    """Plain-JSON description of a configuration value: primitives as they are, containers element-wise,
    tensors by digest, objects as ``{"class": module.qualname, "state": describe(vars(obj))}``."""
    if _depth > 20:
        return "<deep>"
    recurse = functools.partial(describe, _depth=_depth + 1)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return {"bytes": hashlib.sha256(value).hexdigest()}
    if isinstance(value, enum.Enum):
        return f"{_qualname(type(value))}.{value.name}"
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, torch.Tensor):
        return {"tensor": weights_digest(_TensorHolder(value))}
    if isinstance(value, (list, tuple)):
        return [recurse(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((recurse(item) for item in value), key=repr)
    if isinstance(value, (types.FunctionType, type, types.ModuleType, types.BuiltinFunctionType)):
        return _qualname(value)
    if isinstance(value, Mapping):
        return {str(key): recurse(item) for key, item in value.items()}
    state = getattr(value, "__dict__", None)
    if state is None:
        slots = [s for cls in type(value).__mro__ for s in getattr(cls, "__slots__", ())]
        state = {slot: getattr(value, slot) for slot in slots if hasattr(value, slot)}
    return {"class": _qualname(type(value)), "state": {key: recurse(item) for key, item in sorted(state.items())}}


def code_digest(roots: Iterable[Any]) -> str:
    """SHA-256 of the code reachable from ``roots`` (functions, classes, instances); see the module docstring."""
    return hashlib.sha256("\n".join(sorted(_CodeWalk(roots).items)).encode()).hexdigest()


class _TensorHolder(torch.nn.Module):
    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", tensor)


class _CodeWalk:
    """Collects one line per reachable object: ``kind name digest`` (local code) or ``name==version`` (outside code)."""

    def __init__(self, roots: Iterable[Any]) -> None:
        self.items: set[str] = set()
        self.seen: set[int] = set()
        self.alive: list[Any] = []  # keeps visited objects alive so that their ids stay unique
        self.pending = list(roots)
        while self.pending:
            self.visit(self.pending.pop())

    def visit(self, value: Any) -> None:
        if id(value) in self.seen:
            return
        self.seen.add(id(value))
        self.alive.append(value)
        if isinstance(value, (classmethod, staticmethod)):
            self.pending.append(value.__func__)
        elif isinstance(value, property):
            self.pending.extend(f for f in (value.fget, value.fset, value.fdel) if f is not None)
        elif isinstance(value, functools.partial):
            self.pending.extend([value.func, *value.args, *value.keywords.values()])
        elif isinstance(value, types.MethodType):
            self.pending.append(value.__func__)
        elif isinstance(value, types.FunctionType):
            self.function(value)
        elif isinstance(value, type):
            self.cls(value)
        elif isinstance(value, types.ModuleType):
            self.items.add(f"module {value.__name__} {_outside_version(value.__name__)}")
        elif hasattr(value, "__dict__"):
            self.instance(value)
        else:
            self.items.add(f"object {_qualname(type(value))} {_outside_version(type(value).__module__)}")

    def function(self, function: types.FunctionType) -> None:
        module = function.__module__ or ""
        if not _is_local(module):
            self.items.add(f"function {module}.{function.__qualname__} {_outside_version(module)}")
            return
        self.items.add(f"function {module}.{function.__qualname__} {_code_hash(function.__code__)}")
        names = _code_names(function.__code__)
        for name in names:
            if name in function.__globals__:
                target = function.__globals__[name]
                if isinstance(target, types.ModuleType) and _is_local(target.__name__):
                    self.pending.extend(getattr(target, attr) for attr in names if hasattr(target, attr))
                self.pending.append(target) if _reachable(target) else self.items.add(f"global {module}.{name} {_value_text(target)}")
        for cell in function.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.pending.append(content) if _reachable(content) else self.items.add(f"cell {function.__qualname__} {_value_text(content)}")
        defaults = {**dict(enumerate(function.__defaults__ or ())), **(function.__kwdefaults__ or {})}
        for position, default in defaults.items():
            self.pending.append(default) if _reachable(default) else self.items.add(f"default {function.__qualname__}[{position}] {_value_text(default)}")

    def cls(self, cls: type) -> None:
        module = cls.__module__ or ""
        if not _is_local(module):
            self.items.add(f"class {module}.{cls.__qualname__} {_outside_version(module)}")
            return
        attributes = []
        for name, attribute in sorted(vars(cls).items()):
            if name in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__annotations__"):
                continue
            if _reachable(attribute):
                attributes.append(name)
                self.pending.append(attribute)
            else:
                attributes.append(f"{name}={_value_text(attribute)}")
        bases = [_qualname(base) for base in cls.__bases__]
        self.items.add(f"class {module}.{cls.__qualname__} bases={bases} attributes={attributes}")
        self.pending.extend(cls.__bases__)

    def instance(self, value: Any) -> None:
        self.pending.append(type(value))
        if isinstance(value, torch.nn.Module):  # weights are hashed separately; walk the submodules' classes
            self.pending.extend(type(module) for module in value.modules())
            return
        state = getattr(value, "__dict__", {})
        for name, item in sorted(state.items()):
            self.pending.append(item) if _reachable(item) else self.items.add(f"state {_qualname(type(value))}.{name} {_value_text(item)}")


def _reachable(value: Any) -> bool:
    """Whether ``value`` is code (or holds code) to walk rather than a plain value to print."""
    if isinstance(value, (types.FunctionType, type, types.ModuleType, types.MethodType, classmethod, staticmethod, property, functools.partial)):
        return True
    if value is None or isinstance(value, (bool, int, float, str, bytes, tuple, list, dict, set, frozenset, PurePath, torch.Tensor, torch.dtype, enum.Enum)):
        return False
    return hasattr(value, "__dict__")


def _value_text(value: Any) -> str:
    return json.dumps(describe(value), sort_keys=True, default=str)


def _code_names(code: types.CodeType) -> list[str]:
    """Global and attribute names used by ``code`` and the code objects nested in it."""
    names = list(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names.extend(_code_names(constant))
    return list(dict.fromkeys(names))


def _code_hash(code: types.CodeType) -> str:
    """Digest of a code object's bytecode, constants (recursively), names and signature, not of its file or lines."""
    sha = hashlib.sha256(code.co_code)
    for constant in code.co_consts:
        sha.update((_code_hash(constant) if isinstance(constant, types.CodeType) else repr(constant)).encode() + b"\0")
    sha.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars, code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    return sha.hexdigest()[:32]


def _qualname(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', getattr(value, '__name__', repr(value)))}"


@functools.lru_cache(maxsize=None)
def _is_local(module_name: str) -> bool:
    """Whether a module is model or user code to walk: eqbench's models and catalog, ``__main__``, or a
    file outside the standard library and the installed packages (a plugin file, a project module)."""
    if module_name == "eqbench" or module_name.startswith("eqbench."):
        return module_name.startswith(MODEL_PACKAGES)
    if module_name == "__main__":
        return True
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file:
        return False
    resolved = Path(file).resolve()
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not any(resolved.is_relative_to(path) for path in installed)


@functools.lru_cache(maxsize=None)
def _outside_version(module_name: str) -> str:
    """``package==version`` for code outside the walk; eqbench's framework is keyed by :func:`framework_digest` instead."""
    top = module_name.split(".", 1)[0]
    if top == "eqbench":  # a framework module (model modules are walked)
        return "eqbench-framework"
    version = getattr(sys.modules.get(top), "__version__", None)
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version(top)
        except (metadata.PackageNotFoundError, ValueError):
            version = sys.version.split()[0] if top in sys.stdlib_module_names or top == "builtins" else "?"
    return f"{top}=={version}"
