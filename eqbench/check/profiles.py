"""Hypothesis profiles for tests that use eqbench strategies directly.

``eqbench-quick`` (20 examples, for the default test run) and ``eqbench-thorough`` (1000
examples, with the explain phase, for a long search) set every hypothesis setting
explicitly, so neither inherits anything from the active profile. Load one with
``hypothesis.settings.load_profile("eqbench-quick")``. (``check_equivariance`` itself never
reads a profile: its search uses its own explicit settings, :func:`eqbench.check.search.search_settings`.)
"""
from __future__ import annotations

from hypothesis import Phase, Verbosity, settings

from eqbench.check.search import explicit_settings

QUICK = "eqbench-quick"
THOROUGH = "eqbench-thorough"


def register_hypothesis_profiles() -> tuple[str, str]:
    """Register ``eqbench-quick`` and ``eqbench-thorough``; returns their names."""
    quick = explicit_settings(
        max_examples=20,
        verbosity=Verbosity.normal,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
        stateful_step_count=10,
        report_multiple_bugs=False,
        print_blob=True,
    )
    thorough = explicit_settings(
        max_examples=1000,
        verbosity=Verbosity.normal,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink, Phase.explain),
        stateful_step_count=50,
        report_multiple_bugs=True,
        print_blob=True,
    )
    settings.register_profile(QUICK, quick)
    settings.register_profile(THOROUGH, thorough)
    return QUICK, THOROUGH
