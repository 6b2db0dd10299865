"""The model registry: the decorator, look-ups, plugins (file, module, entry point) and running an entry."""
from __future__ import annotations

import importlib.metadata
import sys

import pytest
import torch

from eqbench.actions import Invariant, Points
from eqbench.groups import SO3, Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DeepSets

PLUGIN_SOURCE = """
from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DeepSets
from eqbench.registry import register_model

@register_model("{name}", group=Symmetric(), in_action=Points(), out_action=Invariant(),
                inputs=PointCloudInputs(max_points=8), check_options={{"n_inputs": 1, "n_elements": 4, "search_examples": 2}})
def factory():
    return DeepSets()
"""


def register_deepsets(registry, name: str, **settings):
    options = dict(group=Symmetric(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs(max_points=8))
    options.update(settings)

    def factory() -> DeepSets:
        return DeepSets()

    return registry.register_model(name, **options)(factory)


def test_decorator_registers_an_entry_and_returns_the_factory(fresh_registry):
    factory = register_deepsets(fresh_registry, "test-deepsets", description="a set model", suites=("fast",))
    entry = fresh_registry.get_entry("test-deepsets")
    assert entry.factory is factory and isinstance(factory(), DeepSets)
    assert entry.expected == "exact" and entry.tolerance == 1e-2 and entry.suites == ("fast",)
    assert entry.source.endswith("register_deepsets.<locals>.factory")
    assert entry in fresh_registry.entries(suite="fast")
    assert entry not in fresh_registry.entries(suite="default")


def test_duplicate_name_from_another_source_is_refused_but_the_same_source_may_re_register(fresh_registry):
    register_deepsets(fresh_registry, "test-dup")
    with pytest.raises(fresh_registry.RegistryError, match="'test-dup' is already registered by .*register_deepsets"):
        fresh_registry.register_model(
            "test-dup", group=SO3(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs()
        )(lambda: DeepSets())
    register_deepsets(fresh_registry, "test-dup", tolerance=0.5)  # same factory qualname: a reload
    assert fresh_registry.get_entry("test-dup").tolerance == 0.5


@pytest.mark.parametrize(
    "settings, message",
    [({"expected": "equivariant"}, "expected must be one of"), ({"tolerance": 0.0}, "tolerance must be positive")],
)
def test_bad_settings_are_refused(fresh_registry, settings, message):
    with pytest.raises(fresh_registry.RegistryError, match=message):
        register_deepsets(fresh_registry, "test-bad", **settings)


def test_unknown_name_lists_close_names(fresh_registry):
    with pytest.raises(fresh_registry.RegistryError, match="unknown model 'distance-mpl'; did you mean distance-mlp"):
        fresh_registry.get_entry("distance-mpl")
    with pytest.raises(fresh_registry.RegistryError, match="models are registered"):
        fresh_registry.get_entry("zzzzzz")


def test_group_filter_normalises_names_and_sees_product_factors(fresh_registry):
    so3 = {e.name for e in fresh_registry.entries(group="so3")}
    assert so3 == {e.name for e in fresh_registry.entries(group=SO3())}
    assert {"chiral-so3", "coordinate-mlp"} <= so3 and "chiral-o3" not in so3
    symmetric = {e.name for e in fresh_registry.entries(group="S_n")}
    assert {"deepsets", "distance-mlp", "truncated-neighbourhood"} <= symmetric  # products with S_n too
    with pytest.raises(fresh_registry.RegistryError, match=r"unknown group 'SO\(7\)'"):
        fresh_registry.entries(group="SO(7)")


def test_expectations_approximate_accepts_exact(fresh_registry):
    """``violated`` (a negative control) is met by any verdict that notices the break; ``error`` only by ``error``."""
    verdicts = ("exact", "approximate", "violated", "error")
    table = {}
    for expected in ("exact", "approximate", "violated", "error", "none"):
        register_deepsets(fresh_registry, f"test-{expected}", expected=expected)
        table[expected] = [fresh_registry.get_entry(f"test-{expected}").matches(v) for v in verdicts]
    assert table == {
        "exact": [True, False, False, False],
        "approximate": [True, True, False, False],
        "violated": [False, True, True, False],
        "error": [False, False, False, True],
        "none": [True, True, True, False],
    }


def test_expectation_none_measures_without_judging(fresh_registry):
    """A model promising no symmetry is checked without an expectation; its verdict is reported, never a mismatch."""
    register_deepsets(fresh_registry, "test-rotated-deepsets", group=SO3(), expected="none",
                      check_options={"n_inputs": 1, "n_elements": 4, "search_examples": 0})
    entry = fresh_registry.get_entry("test-rotated-deepsets")
    result = fresh_registry.run_entry(entry)
    assert result.expected is None and result.matches_expected is None
    assert str(result.verdict) == "violated" and entry.matches(result.verdict)


def test_plugin_file_registers_its_models_and_reloads_harmlessly(fresh_registry, tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(PLUGIN_SOURCE.format(name="test-file-model"))
    first = fresh_registry.load_plugin(str(path))
    again = fresh_registry.load_plugin(path)
    assert [e.name for e in first] == [e.name for e in again] == ["test-file-model"]
    assert fresh_registry.get_entry("test-file-model").source.startswith("eqbench_plugin_my_models_")


def test_plugin_errors_name_the_plugin(fresh_registry, tmp_path):
    with pytest.raises(fresh_registry.PluginError, match="plugin file not found: .*missing.py"):
        fresh_registry.load_plugin(tmp_path / "missing.py")
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nraise RuntimeError('oops')\n")
    with pytest.raises(fresh_registry.PluginError, match=r"broken.py failed to load: RuntimeError: oops \(at .*broken.py:3\)"):
        fresh_registry.load_plugin(broken)
    with pytest.raises(fresh_registry.PluginError, match="plugin module 'no_such_plugin_module' not found"):
        fresh_registry.load_plugin("no_such_plugin_module")


def test_plugin_module_by_import_name(fresh_registry, tmp_path, monkeypatch):
    (tmp_path / "eqbench_test_plugin_module.py").write_text(PLUGIN_SOURCE.format(name="test-module-model"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "eqbench_test_plugin_module", raising=False)
    entries = fresh_registry.load_plugin("eqbench_test_plugin_module")
    assert [e.name for e in entries] == ["test-module-model"]
    monkeypatch.delitem(sys.modules, "eqbench_test_plugin_module")


def test_entry_points_load_modules_and_call_functions_and_name_broken_ones(fresh_registry, tmp_path, monkeypatch):
    (tmp_path / "eqbench_test_entry_point.py").write_text(
        PLUGIN_SOURCE.format(name="test-entry-point-model")
        + "\ncalls = []\n\ndef register():\n    calls.append(1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "eqbench_test_entry_point", raising=False)
    points = [
        importlib.metadata.EntryPoint("fake-module", "eqbench_test_entry_point", "eqbench.models"),
        importlib.metadata.EntryPoint("fake-function", "eqbench_test_entry_point:register", "eqbench.models"),
    ]
    monkeypatch.setattr(fresh_registry.metadata, "entry_points", lambda group: points if group == "eqbench.models" else [])
    assert fresh_registry.load_entry_points() == ["fake-module", "fake-function"]
    assert fresh_registry.get_entry("test-entry-point-model").name == "test-entry-point-model"
    assert sys.modules["eqbench_test_entry_point"].calls == [1]

    points.append(importlib.metadata.EntryPoint("broken", "no_such_package_xyz.models", "eqbench.models"))
    with pytest.raises(fresh_registry.PluginError, match=r"entry point 'broken' \(no_such_package_xyz.models\) failed"):
        fresh_registry.load_entry_points()
    monkeypatch.delitem(sys.modules, "eqbench_test_entry_point")


def test_build_model_is_seeded_and_leaves_the_global_rng_alone(fresh_registry):
    entry = fresh_registry.get_entry("deepsets")
    state = torch.random.get_rng_state()
    weights = [next(fresh_registry.build_model(entry, seed).parameters()) for seed in (0, 0, 1)]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_run_entry_checks_with_the_entry_settings(fresh_registry):
    register_deepsets(fresh_registry, "test-run", check_options={"n_inputs": 1, "n_elements": 4, "search_examples": 3})
    entry = fresh_registry.get_entry("test-run")
    result = fresh_registry.run_entry(entry, seed=2, examples=5)
    assert result.model == "test-run" and result.seed == 2 and result.search_examples <= 5
    assert str(result.verdict) == "exact" and entry.matches(result.verdict)


class NoisyEnergy(torch.nn.Module):
    """Sum of squared radii plus Gaussian noise drawn per row: SO(3)-invariant in distribution, and
    exactly under common random numbers (the same draw on both sides)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.square().sum(dim=(1, 2))[:, None] * (1 + 0.2 * torch.randn(x.shape[0], 1))


def register_noisy(registry, name: str, **settings):
    options = dict(group=SO3(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs(max_points=8))
    options.update(settings)
    return registry.register_model(name, **options)(NoisyEnergy)


@pytest.mark.parametrize("mode", ["crn", "distribution"])
def test_a_stochastic_entry_is_checked_by_check_stochastic_with_the_common_record_fields(fresh_registry, mode):
    from eqbench.check import StochasticResult
    from eqbench.check.result import RECORD_FIELDS

    register_noisy(fresh_registry, f"test-noisy-{mode}", expected="approximate", tolerance=0.05, stochastic=mode,
                   check_options={"repeats": 8, "n_inputs": 4, "n_elements": 2})
    entry = fresh_registry.get_entry(f"test-noisy-{mode}")
    result = fresh_registry.run_entry(entry, seed=2, examples=5)  # no search in a stochastic check: examples ignored
    assert isinstance(result, StochasticResult) and result.mode == mode and result.repeats == 8
    assert result.model == entry.name and result.seed == 2 and result.tolerance == 0.05 and result.spread > 0.05
    # crn: the noise multiplies an invariant, so equal draws cancel (exact); distribution: single draws differ (approximate)
    assert str(result.verdict) == {"crn": "exact", "distribution": "approximate"}[mode] and entry.matches(result.verdict), str(result)
    record = result.to_record()
    assert set(RECORD_FIELDS) <= set(record) and record["n_elements"] == 8 * 4 * 2 and record["mode"] == mode


def test_entries_without_stochastic_keep_check_equivariance(fresh_registry):
    from eqbench.check import CheckResult

    entry = fresh_registry.get_entry("deepsets")
    assert entry.stochastic is None
    assert isinstance(fresh_registry.run_entry(entry, examples=0), CheckResult)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"stochastic": "in-distribution"}, r"stochastic must be None or one of \('crn', 'distribution'\)"),
        ({"stochastic": "crn", "check_options": {"search_examples": 3}}, r"\['search_examples'\] are not options of check_stochastic"),
        ({"check_options": {"repeats": 8}}, r"\['repeats'\] are not options of check_equivariance"),
        ({"check_options": {"seed": 1}}, r"\['seed'\] are not options of check_equivariance"),
    ],
)
def test_stochastic_settings_that_cannot_run_are_refused_at_registration(fresh_registry, settings, message):
    with pytest.raises(fresh_registry.RegistryError, match=message):
        register_noisy(fresh_registry, "test-bad-stochastic", **settings)
