"""The model registry: which model is checked against which group, actions, inputs and verdict.

Models stay plain ``nn.Module``s; a registration joins one to the checker::

    @register_model("my-gnn", group=SE3() * Symmetric(), in_action=Points(), out_action=Invariant(),
                    inputs=PointCloudInputs(), expected="exact")
    def my_gnn():
        return MyGNN(hidden=32)

Registrations come from three places: eqbench's own suite (:func:`load_builtin`), other
packages through the entry point group ``eqbench.models`` (:func:`load_entry_points`), and a
user's Python file or module (:func:`load_plugin`, ``eqbench check --plugin``).

How an entry is checked: by :func:`eqbench.check.check_equivariance` (the default), or, for a
model that samples inside its forward pass, by :func:`eqbench.check.check_stochastic` in the mode
named by ``stochastic``: ``"crn"`` (common random numbers: ``f(x)`` and ``f(g.x)`` from the same
draws, for randomness that commutes with the group) or ``"distribution"`` (independent draws,
the means over ``repeats`` compared: for a model whose output *distribution* is invariant, such
as a random lift). ``check_options`` are keyword arguments of that checker (e.g. ``n_inputs``,
``n_elements``, ``search_examples`` for ``check_equivariance``; ``repeats``, ``n_inputs``,
``n_elements`` for ``check_stochastic``) and are checked against its signature at registration::

    @register_model("my-mc-net", group=SO3(), in_action=Points(), out_action=Invariant(),
                    inputs=PointCloudInputs(), expected="approximate", tolerance=0.05,
                    stochastic="distribution", check_options={"repeats": 32})
    def my_mc_net():
        return MyMonteCarloNet(samples=8)

Expected verdicts: ``"exact"`` is met only by the verdict ``exact``; ``"approximate"`` is met
by ``approximate`` *and* by ``exact`` (a model declared approximately equivariant that turns
out exact keeps its promise); ``"violated"`` (a negative control) is met by any verdict that
is neither ``exact`` nor ``error``: the point of a control is that the check notices, and the
tolerance only separates ``approximate`` from ``violated`` for a model that declares one (a
small real leak reads ``approximate`` under the default tolerance); ``"error"`` is met only by
``error`` (a deliberately broken model: it raises, returns the wrong shape, is not
deterministic); ``"none"`` promises no symmetry (a baseline that is measured, not judged) and
is met by every verdict but ``error``. The verdict ``error`` meets no other expectation.

A ``dtype`` in ``check_options`` casts the model's floating parameters and buffers to it
before the check (``check_options={"dtype": torch.float64}`` checks a float32-built model in
float64). :func:`run_entry` never raises because of the model: an exception in the factory,
the forward pass, an action or the error computation becomes the verdict ``error`` with a
one-line message.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import torch

if TYPE_CHECKING:
    from eqbench.actions.base import Action
    from eqbench.check import CheckResult, StochasticResult
    from eqbench.groups.base import Group
    from eqbench.inputs.base import InputGenerator

    #: What :func:`run_entry` returns: both carry the check-record fields (``to_record``, ``str``).
    EntryResult = CheckResult | StochasticResult

#: The verdicts a registration may expect, and the verdicts that meet each expectation.
EXPECTATIONS: Mapping[str, frozenset[str]] = {
    "exact": frozenset({"exact"}),
    "approximate": frozenset({"exact", "approximate"}),
    "violated": frozenset({"approximate", "violated"}),
    "error": frozenset({"error"}),
    "none": frozenset({"exact", "approximate", "violated"}),
}
#: The expectation that promises nothing: the check runs without one (``expected=None``).
NO_EXPECTATION = "none"
#: The checker's own arguments, set by :func:`run_entry` from the entry (never in ``check_options``).
ENTRY_ARGUMENTS = frozenset({"model", "group", "inputs", "in_action", "out_action", "expected", "tolerance", "seed", "name", "mode"})
ENTRY_POINT_GROUP = "eqbench.models"
DEFAULT_SUITE = "default"
BUILTIN_SUITE_MODULE = "eqbench.catalog"


class RegistryError(ValueError):
    """A registration or look-up that cannot be honoured (duplicate or unknown name, bad settings)."""


class PluginError(RegistryError):
    """A plugin file, module or entry point that cannot be loaded; the message names it."""


@dataclass(frozen=True, eq=False)
class ModelEntry:
    """One registered model: how to build it and how to check it.

    ``factory`` is a zero-argument callable returning the model (an ``nn.Module`` or any
    callable); ``stochastic`` is ``None`` (checked by :func:`eqbench.check.check_equivariance`)
    or a mode of :func:`eqbench.check.check_stochastic` (``"crn"`` or ``"distribution"``; see the
    module docstring); ``check_options`` are extra keyword arguments for that checker;
    ``source`` names where the registration came from (``module:qualname``); ``plugin`` is the
    plugin (a file's resolved path or a module name, as given to :func:`load_plugin`) that was
    loading when the registration ran, ``""`` for the builtin suite, entry points and direct
    calls, so that a factory or class the plugin imports from another module and registers
    counts as the plugin's. Entries compare and hash by identity: each registration is one object.
    """

    name: str
    factory: Callable[[], Any]
    group: Group
    in_action: Action
    out_action: Action
    inputs: InputGenerator
    expected: str = "exact"
    tolerance: float = 1e-2
    description: str = ""
    suites: tuple[str, ...] = (DEFAULT_SUITE,)
    check_options: Mapping[str, Any] = field(default_factory=dict)
    stochastic: str | None = None
    source: str = ""
    plugin: str = ""

    def matches(self, verdict: str) -> bool:
        """Whether a check's ``verdict`` (a string or :class:`~eqbench.check.Verdict`) meets the expectation.

        The rule is the module docstring's, the same as ``CheckResult.matches_expected``.
        """
        return str(getattr(verdict, "value", verdict)) in EXPECTATIONS[self.expected]


_ENTRIES: dict[str, ModelEntry] = {}
#: The plugins being loaded (innermost last): a registration made meanwhile belongs to the innermost.
_LOADING: list[str] = []


def register_model(
    name: str,
    *,
    group: Group,
    in_action: Action,
    out_action: Action,
    inputs: InputGenerator,
    expected: str = "exact",
    tolerance: float = 1e-2,
    description: str = "",
    suites: Iterable[str] = (DEFAULT_SUITE,),
    check_options: Mapping[str, Any] | None = None,
    stochastic: str | None = None,
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorator registering a zero-argument model factory under ``name``; returns the factory unchanged.

    ``stochastic`` routes the entry to :func:`eqbench.check.check_stochastic` in that mode
    (module docstring). Raises :class:`RegistryError` for an empty name, an unknown
    ``expected`` verdict, a non-positive tolerance, an unknown ``stochastic`` mode, a
    ``check_options`` key the entry's checker does not take, or a name already registered
    from a different source (the same source may re-register, so re-loading a plugin file is
    harmless).
    """
    if not isinstance(name, str) or not name.strip():
        raise RegistryError(f"model name must be a non-empty string, got {name!r}")
    if expected not in EXPECTATIONS:
        raise RegistryError(f"model {name!r}: expected must be one of {sorted(EXPECTATIONS)}, got {expected!r}")
    if not tolerance > 0:
        raise RegistryError(f"model {name!r}: tolerance must be positive, got {tolerance!r}")
    from eqbench.check.stochastic import MODES  # the modes of check_stochastic (eqbench.check loads here anyway)

    if stochastic is not None and stochastic not in MODES:
        raise RegistryError(f"model {name!r}: stochastic must be None or one of {MODES}, got {stochastic!r}")
    _check_options_fit(name, stochastic, check_options or {})
    if isinstance(suites, str):
        suites = (suites,)

    def decorate(factory: Callable[[], Any]) -> Callable[[], Any]:
        if not callable(factory):
            raise RegistryError(f"model {name!r}: register_model decorates a zero-argument factory, got {factory!r}")
        entry = ModelEntry(
            name=name,
            factory=factory,
            group=group,
            in_action=in_action,
            out_action=out_action,
            inputs=inputs,
            expected=expected,
            tolerance=float(tolerance),
            description=description,
            suites=tuple(suites),
            check_options=MappingProxyType(dict(check_options or {})),
            stochastic=stochastic,
            source=_source_of(factory),
            plugin=_LOADING[-1] if _LOADING else "",
        )
        previous = _ENTRIES.get(name)
        if previous is not None and previous.source != entry.source:
            raise RegistryError(
                f"model {name!r} is already registered by {previous.source}; {entry.source} cannot register it again "
                "(pick another name)"
            )
        _ENTRIES[name] = entry
        return factory

    return decorate


def entries(suite: str | None = None, group: str | Group | None = None) -> list[ModelEntry]:
    """Registered entries sorted by name, optionally only those in ``suite`` and/or checked under ``group``.

    ``group`` is a group or a group name (normalised by :func:`eqbench.groups.group_from_name`,
    so ``"so3"`` and ``"SO(3)"`` agree); an entry matches when its group is that group or a
    direct product with it as a factor (``--group SE3`` selects SE(3) x S_n entries too).
    """
    selected = sorted(_ENTRIES.values(), key=lambda e: e.name)
    if suite is not None:
        selected = [e for e in selected if suite in e.suites]
    if group is not None:
        wanted = _group_name(group)
        selected = [e for e in selected if wanted in _group_names(e.group)]
    return selected


def get_entry(name: str) -> ModelEntry:
    """The entry registered as ``name``; an unknown name raises :class:`RegistryError` listing close names."""
    try:
        return _ENTRIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_ENTRIES), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; {len(_ENTRIES)} models are registered (see `eqbench list`)"
        raise RegistryError(f"unknown model {name!r}{hint}") from None


# ------------------------------------------------------------------------------ loading
def load_builtin() -> None:
    """Register eqbench's own suite (control and reference models)."""
    importlib.import_module(BUILTIN_SUITE_MODULE)


def load_all(plugins: Iterable[str | Path] = ()) -> list[ModelEntry]:
    """The builtin suite, every entry point, then each plugin; returns the plugins' entries (in order)."""
    load_builtin()
    load_entry_points()
    loaded: dict[str, ModelEntry] = {}
    for plugin in plugins:
        loaded.update((e.name, e) for e in load_plugin(plugin))
    return list(loaded.values())


def load_entry_points() -> list[str]:
    """Load every ``eqbench.models`` entry point; returns their names.

    An entry point names a module whose import registers models, or a zero-argument
    function that registers them (it is called). A plugin that fails raises
    :class:`PluginError` naming the entry point, its target and the error.
    """
    loaded = []
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = point.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as error:  # a third-party plugin may fail in any way; name it
            raise PluginError(
                f"{ENTRY_POINT_GROUP} entry point {point.name!r} ({point.value}) failed to load: {_describe(error)}"
            ) from error
        loaded.append(point.name)
    return loaded


def load_plugin(file_or_module: str | Path) -> list[ModelEntry]:
    """Import a user's ``.py`` file or importable module so that its ``register_model`` calls run.

    A path (anything ending in ``.py`` or naming an existing file) is executed afresh under a
    module name derived from its resolved path, so loading it twice re-registers the same
    sources harmlessly. Returns the entries the plugin registered (sorted by name): those whose
    registration ran while it loaded (factories or classes it imports from elsewhere
    included), and, for a module imported earlier, those whose factory it defines. A missing
    file, a module that cannot be imported, or an error while importing raises :class:`PluginError`.
    """
    text = str(file_or_module)
    path = Path(text).expanduser()
    if text.endswith(".py") or path.is_file():
        owner = str(path.resolve())
        _LOADING.append(owner)
        try:
            module_name = _load_file(path)
        finally:
            _LOADING.pop()
    else:
        owner = text
        _LOADING.append(owner)
        try:
            module_name = _import_module(text)
        finally:
            _LOADING.pop()
    return sorted(
        (e for e in _ENTRIES.values() if e.plugin == owner or (not e.plugin and e.source.split(":", 1)[0] == module_name)),
        key=lambda e: e.name,
    )


def _load_file(path: Path) -> str:
    if not path.is_file():
        raise PluginError(f"plugin file not found: {path}")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    module_name = f"eqbench_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', resolved.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin file {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise PluginError(f"plugin file {path} failed to load: {_describe(error)}") from error
    return module_name


def _import_module(name: str) -> str:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            raise PluginError(f"plugin module {name!r} not found (and no file of that name exists)") from error
        raise PluginError(f"plugin module {name!r} failed to load: {_describe(error)}") from error
    except Exception as error:
        raise PluginError(f"plugin module {name!r} failed to load: {_describe(error)}") from error
    return name


# ------------------------------------------------------------------------------ running
def build_model(entry: ModelEntry, seed: int = 0) -> Any:
    """Call the entry's factory with torch's global RNG seeded by ``seed`` and restored afterwards.

    Factories build models with default (global-RNG) initialisation; forking the RNG makes the
    weights a function of ``seed`` alone and leaves the caller's random state untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return entry.factory()


def run_entry(entry: ModelEntry, seed: int = 0, examples: int | None = None) -> EntryResult:
    """Build ``entry``'s model (seeded) and check it with the entry's checker, group, actions, inputs and settings.

    ``examples`` overrides the number of hypothesis search examples (``search_examples``) of a
    ``check_equivariance`` entry; a stochastic entry has no search and ignores it. A ``dtype``
    option casts the model (module docstring). The result (:class:`~eqbench.check.CheckResult`
    or :class:`~eqbench.check.StochasticResult`) carries the same record fields either way; its
    verdict is compared with the expectation by :meth:`ModelEntry.matches`. Any exception
    raised while building or checking the model (not ``KeyboardInterrupt``) gives the verdict
    ``error`` with a one-line message naming where it happened.
    """
    from eqbench.check.forward import cast_model

    options = dict(entry.check_options)
    if entry.stochastic is None:
        if examples is not None:
            options["search_examples"] = examples
    else:
        options["mode"] = entry.stochastic
    try:
        model = build_model(entry, seed)
    except Exception as error:  # noqa: BLE001 - a user's factory may fail in any way; it is this model's error
        return error_result(entry, seed, f"the model factory raised {_describe(error)}")
    try:
        if "dtype" in options:
            model = cast_model(model, options["dtype"])
        return _checker(entry.stochastic)(
            model,
            entry.group,
            entry.inputs,
            entry.in_action,
            entry.out_action,
            expected=None if entry.expected == NO_EXPECTATION else entry.expected,
            tolerance=entry.tolerance,
            seed=seed,
            name=entry.name,
            **options,
        )
    except Exception as error:  # noqa: BLE001 - an action, a metric or the model failed outside the checker's guards
        return error_result(entry, seed, f"the check raised {_describe(error)}")


def error_result(entry: ModelEntry, seed: int, message: str) -> CheckResult:
    """A :class:`~eqbench.check.CheckResult` with the verdict ``error`` and ``message`` (one line), no errors measured."""
    from eqbench.check.result import CheckResult, Verdict

    nan = float("nan")
    return CheckResult(
        model=entry.name, group=entry.group.name, verdict=Verdict.ERROR,
        expected=None if entry.expected == NO_EXPECTATION else entry.expected,
        max_rel_error=nan, mean_rel_error=nan, max_abs_error=nan, mean_abs_error=nan, noise_floor=nan,
        exact_threshold=nan, tolerance=entry.tolerance, n_elements=0, n_inputs=0, seed=seed, seconds=0.0,
        dtype=str(entry.check_options.get("dtype", torch.float32)).removeprefix("torch."), message=" ".join(message.split()),
    )


def _checker(stochastic: str | None) -> Callable[..., EntryResult]:
    """``check_equivariance``, or ``check_stochastic`` for a stochastic entry."""
    from eqbench.check import check_equivariance, check_stochastic

    return check_equivariance if stochastic is None else check_stochastic


def _check_options_fit(name: str, stochastic: str | None, options: Mapping[str, Any]) -> None:
    """Raise :class:`RegistryError` for a ``check_options`` key the entry's checker does not take (or that the entry sets)."""
    checker = _checker(stochastic)
    accepted = set(inspect.signature(checker).parameters) - ENTRY_ARGUMENTS
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise RegistryError(
            f"model {name!r}: check_options {unknown} are not options of {checker.__name__} "
            f"(it takes {', '.join(sorted(accepted))})"
        )


# ------------------------------------------------------------------------------ helpers
def _source_of(factory: Callable[[], Any]) -> str:
    module = getattr(factory, "__module__", None) or "?"
    qualname = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{module}:{qualname}"


def _describe(error: BaseException) -> str:
    """``Type: message`` plus the innermost file and line of the traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _group_name(group: str | Group) -> str:
    from eqbench.groups import group_from_name

    if isinstance(group, str):
        try:
            group = group_from_name(group)
        except (KeyError, ValueError) as error:
            detail = error.args[0] if error.args else type(error).__name__
            raise RegistryError(f"unknown group {group!r} ({detail})") from None
    return group.name


def _group_names(group: Group) -> set[str]:
    """The group's own name and, for a direct product, its factors' names (recursively)."""
    names = {group.name}
    for factor in getattr(group, "factors", ()):
        names |= _group_names(factor)
    return names
