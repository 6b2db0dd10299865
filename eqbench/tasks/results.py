"""Tidy result tables of a run, in the layout :mod:`eqbench.reports.records` reads.

A run folder holds:

* ``history.csv`` and ``history.json``: one row per epoch (with an ``epoch`` value), the same
  rows in both formats, rewritten atomically after every epoch;
* ``result.json``: the run's final row (no ``epoch`` value; ``epochs`` instead), written when
  the run ends.

Every row names ``task, model, preset, seed, device``; metrics are ``train_*``, ``valid_*`` and
``test_*`` columns. Reports take a run's final row from ``result.json`` and its curves from the
history (duplicate history rows across the two formats average to themselves).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from eqbench.atomic import write_text_atomic

HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
RESULT_JSON = "result.json"


def write_history(folder: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the per-epoch rows as CSV and JSON, atomically."""
    buffer = io.StringIO()
    pd.DataFrame(list(rows)).to_csv(buffer, index=False)
    write_text_atomic(folder / HISTORY_CSV, buffer.getvalue())
    write_text_atomic(folder / HISTORY_JSON, _json_rows(rows))


def write_result(folder: Path, row: dict[str, Any]) -> None:
    """Write the final row (a one-element JSON list), atomically."""
    write_text_atomic(folder / RESULT_JSON, _json_rows([row]))


def _json_rows(rows: Sequence[dict[str, Any]]) -> str:
    """JSON list of rows; non-finite floats become ``null`` (JSON has no NaN)."""
    clean = [{key: (None if isinstance(value, float) and not math.isfinite(value) else value) for key, value in row.items()} for row in rows]
    return json.dumps(clean, indent=1) + "\n"
