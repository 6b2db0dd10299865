"""pytest plugin ``eqbench`` (entry point ``pytest11``): registered models as tests, a marker and a fixture.

Options
    ``--eqbench``: collect every model of the default suite (builtin, entry points and
    ``--eqbench-plugin`` files) as a test item ``eqbench::<model>``; the item passes when the
    check's verdict meets the model's expectation (see :mod:`eqbench.registry`).
    ``--eqbench-plugin FILE_OR_MODULE`` (repeatable): load a user's registrations; on its own it
    collects only that plugin's models (those registered while it loads, factories and classes
    it imports from elsewhere included: :func:`eqbench.registry.load_plugin`), not the default
    suite, so ``pytest --eqbench-plugin my_models.py`` costs the plugin's own checks; with
    ``--eqbench`` as well, the default suite too.
    ``--eqbench-seed N``: the seed of collected checks (default 0).
    Under ``pytest -n N`` (several checks at once) each collected check runs on one torch thread,
    so the workers do not oversubscribe the cores (:mod:`eqbench.cli.threads`).
Marker
    ``@pytest.mark.eqbench(model="name", seed=3)``: the defaults of the ``eqbench_check``
    fixture in that test (any other keyword is passed on to the checker).
Fixture
    ``eqbench_check(model=None, group=None, inputs=None, in_action=None, out_action=None, *, seed=None, **options)``:
    with a registered model name (or none, taking the marker's), runs the registered check and
    fails the test with a readable report unless the verdict meets the expectation; with a
    model object and its group, inputs and actions, runs
    :func:`eqbench.check.assert_equivariant`. Returns the result (a :class:`~eqbench.check.CheckResult`,
    or a :class:`~eqbench.check.StochasticResult` for a model registered with ``stochastic=``).

This module is imported by every pytest run where eqbench is installed, so it imports
neither torch nor the checker at the top: both load inside the hooks and the fixture.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from eqbench.registry import EntryResult, ModelEntry

_LOADED = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eqbench", "equivariance checks of registered models")
    group.addoption("--eqbench", action="store_true", help="collect every model of the default suite as a test")
    group.addoption(
        "--eqbench-plugin",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="a .py file or module registering models (repeatable); collects its models",
    )
    group.addoption("--eqbench-seed", type=int, default=0, metavar="N", help="seed of collected checks (default 0)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "eqbench(model=None, seed=None, **options): defaults for the eqbench_check fixture in this test",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Append one :class:`EqbenchItem` per selected model (before ``-k``/``-m`` deselection runs)."""
    plugins = config.getoption("eqbench_plugin")
    if not config.getoption("eqbench") and not plugins:
        return
    from eqbench import registry

    plugin_entries = _load_registrations(config)
    selected = {e.name: e for e in plugin_entries}
    if config.getoption("eqbench"):
        selected.update((e.name, e) for e in registry.entries(suite=registry.DEFAULT_SUITE))
    seed = config.getoption("eqbench_seed")
    for name in sorted(selected):
        items.append(EqbenchItem.from_parent(session, name=name, nodeid=f"eqbench::{name}", seed=seed))


class EqbenchMismatch(AssertionError):
    """A registered model's verdict did not meet its expectation; ``str`` is the readable report."""


class EqbenchItem(pytest.Item):
    """One registered model's check as a test item."""

    def __init__(self, *, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed

    def runtest(self) -> None:
        from eqbench import registry
        from eqbench.cli.threads import apply_threads

        if int(getattr(self.config, "workerinput", {}).get("workercount", 1)) > 1:  # pytest-xdist's -n: checks run at once
            apply_threads(1)
        check_registered(registry.get_entry(self.name), self.seed)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, EqbenchMismatch):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"eqbench check of {self.name} (seed {self.seed})"


def check_registered(entry: ModelEntry, seed: int, examples: int | None = None) -> EntryResult:
    """Run ``entry``'s registered check; raise :class:`EqbenchMismatch` when the verdict misses the expectation."""
    from eqbench import registry

    result = registry.run_entry(entry, seed=seed, examples=examples)
    if not entry.matches(result.verdict):
        raise EqbenchMismatch(
            f"{entry.name}: verdict {str(result.verdict)!r}, expected {entry.expected!r} "
            f"(group {entry.group}, seed {seed}, registered by {entry.source})\n{result}"
        )
    return result


@pytest.fixture
def eqbench_check(request: pytest.FixtureRequest) -> Callable[..., EntryResult]:
    """Check a registered model by name, or a model object against explicit settings (see the module docstring)."""
    marker = request.node.get_closest_marker("eqbench")
    defaults = dict(marker.kwargs) if marker is not None else {}
    config = request.config

    def check(
        model: Any = None,
        group: Any = None,
        inputs: Any = None,
        in_action: Any = None,
        out_action: Any = None,
        *,
        seed: int | None = None,
        **options: Any,
    ) -> EntryResult:
        settings = {**defaults, **options}
        model = settings.pop("model", None) if model is None else model
        marker_seed = settings.pop("seed", 0)
        seed = marker_seed if seed is None else seed
        if model is None:
            raise pytest.UsageError("eqbench_check needs a model (or a registered name, or @pytest.mark.eqbench(model=...))")
        if isinstance(model, str):
            return _check_by_name(config, model, seed, settings.pop("examples", None))
        missing = [n for n, v in (("group", group), ("inputs", inputs), ("in_action", in_action), ("out_action", out_action)) if v is None]
        if missing:
            raise pytest.UsageError(f"eqbench_check of a model object needs {', '.join(missing)}")
        from eqbench.check import EquivarianceError, assert_equivariant

        try:
            return assert_equivariant(model, group, inputs, in_action, out_action, seed=seed, **settings)
        except EquivarianceError as error:
            failure = str(error)
        pytest.fail(failure, pytrace=False)

    return check


def _check_by_name(config: pytest.Config, name: str, seed: int, examples: int | None) -> EntryResult:
    """The registered check of ``name``; an unknown name or a missed expectation fails the test readably."""
    from eqbench import registry

    _load_registrations(config)
    try:
        return check_registered(registry.get_entry(name), seed, examples)
    except (registry.RegistryError, EqbenchMismatch) as error:
        failure = str(error)
    pytest.fail(failure, pytrace=False)


def _load_registrations(config: pytest.Config) -> list[ModelEntry]:
    """Register builtin, entry-point and ``--eqbench-plugin`` models once per session; returns the plugins' entries."""
    if _LOADED not in config.stash:
        from eqbench import registry

        try:
            config.stash[_LOADED] = registry.load_all(config.getoption("eqbench_plugin"))
        except registry.RegistryError as error:
            raise pytest.UsageError(str(error)) from error
    return config.stash[_LOADED]
