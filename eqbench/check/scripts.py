"""Counterexamples saved as standalone scripts: ``DIR/<model>-<group>.py`` and the tensors in ``.pt`` beside it.

``python DIR/<model>-<group>.py`` needs nothing but eqbench and the model's own code. It

1. rebuilds the model: a registered one by name, with the check's seed (``build_model``),
   after loading the plugin file or module that registered it (and the ``eqbench.models``
   entry points); a model checked directly (``assert_equivariant``) is unpickled from the
   ``.pt`` file, its class or function found by import, from the folder its source file lives
   in, so a fix made to that source is what the script runs;
2. loads the input tensors and the group element as its ``matrix`` / ``translation`` /
   ``permutation`` (``Element(**parts)``) from the ``.pt`` file;
3. prints the input, the element (rotation angle and axis), and the relative equivariance error
   of this one pair (:func:`eqbench.check.equivariance_error`, the check's precision) to 3
   significant digits, the same figure the check printed;
4. exits 1 while the error exceeds the check's failure threshold for the model's expectation
   (the exact threshold for ``exact``, else the tolerance), 0 once the model is fixed.

A stochastic check (``check_stochastic``) compares distributions, not one input: its script
reruns the registered check with its seed and exits 1 while the verdict is ``violated`` or
``error``.
"""
from __future__ import annotations

import inspect
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch

from eqbench.atomic import write_atomic, write_text_atomic

#: Version of the ``.pt`` layout.
FORMAT = 1

SCRIPT = '''\
"""Counterexample: {model} under {group}, seed {seed} (saved by eqbench {version}).

Run `python {script_name}`: prints the relative equivariance error of one input and group element
({saved_error}, as the check found) and exits 1 while it is above {threshold:.3g} ({why}), 0 once fixed.
The tensors (input, element as matrix / translation / permutation) are in {data_name}.
"""
import sys
from pathlib import Path

import torch

from eqbench.check import equivariance_error
from eqbench.check.reproduce import describe_element, describe_input
from eqbench.groups.element import Element

{model_lines}
x = saved["input"]
g = Element(**saved["element"])
print("input:", describe_input(x))
print("element:", describe_element(g))
error = equivariance_error(model, x, g, saved["in_action"], saved["out_action"], dtype=getattr(torch, saved["dtype"]))
print(f"relative equivariance error {{error:.3g}} (the check found {{saved['error']:.3g}}; broken above {{saved['threshold']:.3g}})")
sys.exit(1 if not error <= saved["threshold"] else 0)
'''

REGISTERED = '''\
from eqbench import registry

registry.load_all({plugins!r})  # the builtin suite, entry points{plugin_note}
model = registry.build_model(registry.get_entry({name!r}), seed={seed})
saved = torch.load(Path(__file__).with_suffix(".pt"), weights_only=False)
'''

PICKLED = '''\
sys.path[:0] = {paths!r}  # where the model's code lives: the .pt file refers to it by import
saved = torch.load(Path(__file__).with_suffix(".pt"), weights_only=False)
model = saved["model"]
'''

STOCHASTIC = '''\
"""Stochastic check: {model} under {group}, seed {seed} (saved by eqbench {version}).

Run `python {script_name}`: reruns the registered check (independent draws compared in distribution,
or common random numbers) and exits 1 while its verdict is violated or error (it was {verdict},
max relative error {saved_error}), 0 once fixed.
"""
import sys

from eqbench import registry

registry.load_all({plugins!r})
entry = registry.get_entry({name!r})
result = registry.run_entry(entry, seed={seed})
print(result)
print(f"max relative error {{result.max_rel_error:.3g}}")
sys.exit(1 if str(result.verdict) in ("violated", "error") else 0)
'''


def script_path(directory: Path | str, model: str, group: str) -> Path:
    """``DIR/<model>-<group>.py`` with every character outside ``[A-Za-z0-9._-]`` dropped (``SE(3) x S_n`` -> ``SE3xS_n``)."""
    stem = "-".join(re.sub(r"[^A-Za-z0-9._-]", "", part) or "model" for part in (model, group))
    return Path(directory) / f"{stem}.py"


def save_counterexample(
    result: Any,
    directory: Path | str,
    *,
    model: Any = None,
    entry: Any = None,
) -> Path:
    """Write ``result``'s worst counterexample as a standalone script (module docstring); returns its path.

    ``result`` is a :class:`~eqbench.check.CheckResult` (or, with ``entry``, a
    :class:`~eqbench.check.StochasticResult`). Give ``entry`` (a registered
    :class:`~eqbench.registry.ModelEntry`) for a registered model, else ``model`` (the checked
    object, which is pickled: its class or function must be importable, i.e. not defined in
    ``__main__``). Sets ``result.script``. ``ValueError`` when the result has nothing to replay
    (an ``exact`` verdict) or the model cannot be saved.
    """
    from eqbench import __version__

    path = script_path(directory, result.model, result.group)
    shown = getattr(result, "worst_example", None) or getattr(result, "counterexample", None)
    common = {"model": result.model, "group": result.group, "seed": result.seed, "version": __version__, "script_name": path.name}
    if shown is None or shown.replay is None:
        if entry is None or not hasattr(result, "spread"):
            raise ValueError(f"{result.model}: the check has no counterexample to save (verdict {result.verdict})")
        text = STOCHASTIC.format(
            **common, plugins=_plugins(entry), name=entry.name, verdict=result.verdict, saved_error=f"{result.max_rel_error:.3g}"
        )
        write_text_atomic(path, text)
        result.script = str(path)
        return path
    replay = shown.replay
    data: dict[str, Any] = {
        "format": FORMAT,
        "model_name": result.model,
        "group_name": result.group,
        "seed": result.seed,
        "input": replay.input,
        "element": replay.element,
        "params": replay.params,
        "in_action": replay.in_action,
        "out_action": replay.out_action,
        "dtype": replay.dtype,
        "error": shown.rel_error,
        "threshold": replay.threshold,
    }
    if entry is not None:
        plugins = _plugins(entry)
        note = f" and {', '.join(plugins)}" if plugins else ""
        model_lines = REGISTERED.format(plugins=plugins, plugin_note=note, name=entry.name, seed=result.seed)
    elif model is not None:
        data["model"] = model
        model_lines = PICKLED.format(paths=_code_folders(model))
    else:
        raise ValueError("save_counterexample needs the registered entry or the model object")
    why = "the exact threshold" if result.expected == "exact" else f"the tolerance {result.tolerance:.3g}"
    text = SCRIPT.format(
        **common,
        saved_error=f"{shown.rel_error:.3g}",
        threshold=replay.threshold,
        why=why,
        data_name=path.with_suffix(".pt").name,
        model_lines=model_lines,
    )
    try:
        write_atomic(path.with_suffix(".pt"), lambda stream: torch.save(data, stream))
    except (AttributeError, TypeError, pickle.PicklingError) as error:
        raise ValueError(f"{result.model}: cannot save the model for a standalone script ({error})") from error
    write_text_atomic(path, text)
    result.script = str(path)
    return path


def _plugins(entry: Any) -> list[str]:
    """The plugin that registered ``entry`` (a resolved file path or a module name), as a list for ``load_all``."""
    return [entry.plugin] if entry.plugin else []


def _code_folders(model: Any) -> list[str]:
    """The folders from which the model's class (or function) and its module import, for the script's ``sys.path``."""
    target = model if inspect.isfunction(model) or inspect.isclass(model) else type(model)
    module_name = getattr(target, "__module__", "")
    if module_name == "__main__":
        raise ValueError(
            f"{target.__qualname__} is defined in __main__, which another process cannot import: "
            "move it into a module (or register it) to save a standalone script"
        )
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    if source is None:
        return []
    folder = Path(source).resolve().parent
    for _ in module_name.split(".")[1:]:  # a package module: the folder above the top package
        folder = folder.parent
    return [str(folder)]
