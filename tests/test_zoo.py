"""The adversarial zoo (``tests/zoo``): every model's verdict meets its known truth on seeds 0..19, default settings.

Truth ``exact`` must read ``exact``; ``broken`` anything but ``exact`` and ``error``; ``error``
must read ``error``. One test per model and seed, so that ``-n`` spreads the sweep; the table
of it is ``reports/self_evaluation.md`` (``PYTHONPATH=tests python -m zoo.report``).
"""
from __future__ import annotations

import pytest

pytest.importorskip("e3nn", reason="the zoo's e3nn models need the dev extra")
pytest.importorskip("torch_geometric", reason="the zoo's SchNet needs the dev extra")

from eqbench import registry  # noqa: E402
from zoo.plugin import SUITE, TRUTH  # noqa: E402

SEEDS = range(20)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(TRUTH))
def test_zoo_verdict_meets_the_truth(name: str, seed: int) -> None:
    entry = registry.get_entry(name)
    result = registry.run_entry(entry, seed=seed)
    truth, why = TRUTH[name]
    assert entry.matches(result.verdict), f"{name} ({truth}: {why}), seed {seed}:\n{result}"
    if truth == "error":
        assert result.message and "\n" not in result.message, result.message


def test_the_zoo_is_large_and_covers_every_truth() -> None:
    assert len(TRUTH) >= 25
    assert {truth for truth, _ in TRUTH.values()} == {"exact", "broken", "error"}
    assert {e.name for e in registry.entries(suite=SUITE)} == set(TRUTH)
