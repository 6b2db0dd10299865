"""Import hygiene: LieConv and its measuring child load what running the network needs, not the checker's libraries.

The memory benchmark (:mod:`suites.lieconv_ratios`) measures the child's whole resident set,
imports included, so ``import eqbench.models.lieconv`` must not pull in hypothesis (the
checker's search library: :mod:`eqbench.groups.strategies` imports it when a strategy is
built), and the child (:mod:`suites.lieconv_ours`) must not load the harness's tables, flop
counter or task presets. Each import runs in a fresh interpreter; the checker, which does use
hypothesis, is the negative control of the detection.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("hypothesis", "tabulate", "torch.utils.flop_counter", "eqbench.tasks", "eqbench.check")


def loaded_after(module: str) -> set[str]:
    """Which of :data:`HEAVY` a fresh interpreter has loaded after ``import module``."""
    code = f"import sys, json, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["eqbench.models.lieconv", "suites.lieconv_ours", "eqbench.groups"])
def test_lieconv_and_its_measuring_child_import_no_checker_or_harness_library(module):
    assert loaded_after(module) == set()


def test_the_detection_sees_the_checker_load_hypothesis():
    assert {"hypothesis", "eqbench.check"} <= loaded_after("eqbench.check")


def test_group_strategies_still_draw_after_the_deferred_import():
    """The deferred import serves the strategies: SO(2)'s angle and a cyclic group's index draw as before."""
    from hypothesis import given, settings

    from eqbench.groups import SO2, Cyclic

    @settings(max_examples=5, database=None)
    @given(SO2().param_choices().strategy(), Cyclic(4).param_choices().strategy())
    def draws(angle, index):
        assert -3.15 < float(angle["angle"]) < 3.15
        assert 0 <= int(index["k"]) < 4

    draws()
