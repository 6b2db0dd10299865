"""Markdown and CSV renderings of report tables (pandas frames).

Markdown goes through ``tabulate`` in GitHub-flavoured pipe format with numbers formatted
beforehand (``disable_numparse`` keeps ``1.0e-07`` from being re-parsed and re-printed).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd
from tabulate import tabulate

from eqbench.reports.files import write_text_atomic

Formatter = Callable[[object], str]


def scientific(value: object) -> str:
    """``1.2e-07`` style for errors and noise floors; ``-`` for missing values."""
    return "-" if _missing(value) else f"{float(value):.2e}"


def fixed(digits: int) -> Formatter:
    """Fixed-point formatter with ``digits`` decimals; ``-`` for missing values."""
    return lambda value: "-" if _missing(value) else f"{float(value):.{digits}f}"


def significant(digits: int) -> Formatter:
    """``digits`` significant figures (``0.9812``, ``30.12``, ``1.2e-05``); ``-`` for missing values."""
    return lambda value: "-" if _missing(value) else f"{float(value):.{digits}g}"


def integer(value: object) -> str:
    """A count (``3``, not ``3.0`` after pandas widened the column to float); ``-`` for missing values."""
    return "-" if _missing(value) else str(int(value))


def plain(value: object) -> str:
    """``str`` of the value; ``-`` for missing values."""
    return "-" if _missing(value) else str(value)


def markdown_table(frame: pd.DataFrame, formats: Mapping[str, Formatter] | None = None) -> str:
    """The frame as a GitHub pipe table; ``formats`` maps column names to formatters (default :func:`plain`)."""
    formats = formats or {}
    rows = [[formats.get(column, plain)(value) for column, value in row.items()] for _, row in frame.iterrows()]
    return tabulate(rows, headers=list(frame.columns), tablefmt="github", disable_numparse=True)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write the frame as CSV (no index) atomically."""
    return write_text_atomic(path, frame.to_csv(index=False))


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT
