"""Atomic writes, JSON reads and input errors for report files.

Every report file is written atomically (:mod:`eqbench.atomic`), so a reader never sees half a
table or half a PNG.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eqbench.atomic import write_atomic, write_text_atomic

__all__ = ["ReportInputError", "read_json", "write_atomic", "write_text_atomic"]


class ReportInputError(ValueError):
    """A results file that reports cannot read: names the file, the line or record, and the problem."""


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ReportInputError(f"{path}: cannot read ({error.strerror})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportInputError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from error
