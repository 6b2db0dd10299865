"""The pytest plugin, run through pytester: collected model items, the marker and the ``eqbench_check`` fixture."""
from __future__ import annotations

import subprocess
import sys

# In-process pytester runs drop the modules they import when they finish; importing the checker
# (and scipy, numpy.fft behind it) here keeps them loaded, since C extensions cannot be re-imported.
import eqbench.check  # noqa: F401

USER_PLUGIN = """
from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DeepSets, IndexWeightedPooling
from eqbench.registry import register_model

QUICK = {"n_inputs": 1, "n_elements": 4, "search_examples": 5}
SETTINGS = dict(group=Symmetric(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs(max_points=8),
                check_options=QUICK)

@register_model("pt-good", **SETTINGS)
def good():
    return DeepSets()

@register_model("pt-broken", **SETTINGS)
def broken():
    return IndexWeightedPooling()
"""

TESTS_WITH_FIXTURE = """
import pytest
import torch

from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DeepSets, IndexWeightedPooling

QUICK = dict(n_inputs=1, n_elements=4, search_examples=5)


def test_registered_broken_control_meets_its_expectation(eqbench_check):
    assert str(eqbench_check("chiral-o3", seed=1, examples=5).verdict) == "violated"


@pytest.mark.eqbench(model="deepsets", seed=2, examples=3)
def test_marker_gives_the_defaults(eqbench_check):
    result = eqbench_check()
    assert result.model == "deepsets" and result.seed == 2


def test_explicit_model_passes(eqbench_check):
    torch.manual_seed(0)
    result = eqbench_check(DeepSets(), Symmetric(), PointCloudInputs(max_points=8), Points(), Invariant(), **QUICK)
    assert str(result.verdict) == "exact"


def test_explicit_broken_model_fails(eqbench_check):
    torch.manual_seed(0)
    eqbench_check(IndexWeightedPooling(), Symmetric(), PointCloudInputs(max_points=8), Points(), Invariant(), **QUICK)


def test_unknown_name_fails_readably(eqbench_check):
    eqbench_check("deepset")
"""


def test_plugin_module_imports_neither_torch_nor_the_checker():
    code = "import sys, eqbench.pytest_plugin; print(sorted(m for m in ('torch', 'eqbench.check') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_eqbench_plugin_option_turns_user_models_into_tests(pytester, fresh_registry):
    plugin = pytester.makepyfile(user_models=USER_PLUGIN)
    result = pytester.runpytest("--eqbench-plugin", str(plugin))
    result.assert_outcomes(passed=1, failed=1)
    # The counterexample is the search's shrunk failure or, when 5 examples did not draw the random
    # phase's failing input and element together, the random phase's own: hypothesis mixes constants
    # from the source of the modules loaded so far into its draws, and pytester runs in-process, so
    # which one depends on the tests this worker ran before. Either is a counterexample to show.
    result.stdout.fnmatch_lines(
        [
            "*_ eqbench check of pt-broken (seed 0) _*",
            "pt-broken: verdict 'violated', expected 'exact' (group S_n*",
            "*counterexample (*): output <value>, relative error*",
            "*reproduce with:*",
            "FAILED eqbench::pt-broken*",
        ]
    )


def test_eqbench_option_collects_the_default_suite(pytester, fresh_registry):
    result = pytester.runpytest("--eqbench", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["eqbench::chiral-o3", "eqbench::deepsets", "eqbench::truncated-neighbourhood"], consecutive=False)


def test_fixture_checks_registered_names_marked_tests_and_explicit_models(pytester, fresh_registry):
    pytester.makepyfile(test_models=TESTS_WITH_FIXTURE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_explicit_broken_model_fails _*",
            "IndexWeightedPooling under S_n: violated*",
            "*reproduce with:*",
            "*_ test_unknown_name_fails_readably _*",
            "unknown model 'deepset'; did you mean deepsets*",
        ]
    )


IMPORTED_FACTORY_PLUGIN = """
from eqbench.actions import Invariant, Points
from eqbench.groups import Symmetric
from eqbench.inputs import PointCloudInputs
from eqbench.models.controls import DeepSets          # classes from another module, registered here
from eqbench.registry import register_model

SETTINGS = dict(group=Symmetric(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs(max_points=8),
                check_options={"n_inputs": 1, "n_elements": 4, "search_examples": 0})
register_model("pt-imported-a", **SETTINGS)(DeepSets)
register_model("pt-imported-b", **SETTINGS)(DeepSets)
"""


def test_plugin_option_alone_collects_only_the_plugins_models_imported_classes_included(pytester, fresh_registry):
    plugin = pytester.makepyfile(imported=IMPORTED_FACTORY_PLUGIN)
    alone = pytester.runpytest("--eqbench-plugin", str(plugin), "--collect-only", "-q")
    assert [line for line in alone.stdout.lines if line.startswith("eqbench::")] == ["eqbench::pt-imported-a", "eqbench::pt-imported-b"]
    with_suite = pytester.runpytest("--eqbench", "--eqbench-plugin", str(plugin), "--collect-only", "-q")
    with_suite.stdout.fnmatch_lines(["eqbench::chiral-o3", "eqbench::pt-imported-a"], consecutive=False)
