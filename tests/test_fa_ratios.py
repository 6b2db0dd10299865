"""suites/fa_ratios.py runs end to end in --quick mode and prints its ratios beside the paper's figures.

No timing is asserted (the ratios are the benchmark's output, not a unit-test goal); this guards
the script against rotting as the models change.
"""
from __future__ import annotations

import re

import pytest

from suites import fa_ratios


@pytest.mark.slow
def test_fa_ratios_prints_every_model_with_the_paper_figures(capsys):
    assert fa_ratios.main(["--quick", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    for name in ("FA-GNN", "EGNN", "GNN", fa_ratios.WRAPPER):
        assert re.search(rf"^{re.escape(name)} +\d+\.\d+ +[\d.]+ +[\d.]+ ", out, re.MULTILINE), out
    assert re.search(r"^FA-GNN .* 0\.0041 +0\.66$", out, re.MULTILINE), out
    assert re.search(r"FA-GNN / EGNN = \d+\.\d+ here vs 0\.66 in the paper", out), out
