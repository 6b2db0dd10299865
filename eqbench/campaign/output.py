"""Streamed result files: a JSON list and/or a CSV table rewritten atomically as records arrive.

Each file is rewritten whole (temporary file + ``os.replace``, :mod:`eqbench.atomic`), at most
once per ``interval`` seconds while records arrive and always on :meth:`RecordStream.close`, so
a reader (or an interrupted run) always finds a complete file holding every result finished up
to the last write. The JSON is what ``eqbench check --json`` writes (the provenance header of
:func:`eqbench.provenance.run_header`, taken once when the stream opens, and ``records``) and
:func:`eqbench.reports.records.load_check_records` reads; the CSV has one column per field seen
(the union over records, in first-seen order). Non-finite numbers become ``null`` / empty.
"""
from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from eqbench.atomic import write_text_atomic
from eqbench.provenance import run_header


class RecordStream:
    """Collects records and keeps ``json_path`` / ``csv_path`` (either may be ``None``) up to date."""

    def __init__(self, json_path: Path | None = None, csv_path: Path | None = None, *, interval: float = 1.0) -> None:
        self.json_path, self.csv_path, self.interval = json_path, csv_path, interval
        self.records: list[dict[str, Any]] = []
        self.header = run_header() if json_path is not None else {}
        self._written_at = -math.inf
        self._dirty = False

    def add(self, record: dict[str, Any]) -> None:
        self.records.append({key: _finite(value) for key, value in record.items()})
        self._dirty = True
        if time.monotonic() - self._written_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        if self.json_path is not None:
            write_text_atomic(self.json_path, json.dumps({**self.header, "records": self.records}, indent=2) + "\n")
        if self.csv_path is not None:
            write_text_atomic(self.csv_path, records_csv(self.records))
        self._written_at = time.monotonic()
        self._dirty = False

    def close(self, order: Callable[[dict[str, Any]], Any] | None = None) -> None:
        """Write the final files, with the records sorted by ``order`` when given."""
        if order is not None:
            self.records.sort(key=order)
            self._dirty = True
        self._dirty = self._dirty or not self.records
        self.flush()


def records_csv(records: list[dict[str, Any]]) -> str:
    """The records as a CSV table, one column per field seen (the union over records, first-seen order)."""
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
