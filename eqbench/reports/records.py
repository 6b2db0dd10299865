"""Readers for the result files that reports are built from.

* check records: the JSON written by ``eqbench check --json FILE``, an object whose
  ``records`` list holds them under a run header (``eqbench_version``, ``torch_version``,
  ``git_commit``, ``machine``, ``created``; :mod:`eqbench.cli.output`), or a plain list of
  records (files of earlier versions); each record has at
  least ``model, group, verdict, expected, max_rel_error, mean_rel_error, noise_floor,
  n_elements, seed`` (``seconds`` and ``tolerance`` are used when present);
* training rows: CSV, JSON (a list of objects) or JSON-lines files under a folder, as the
  trainer writes them under ``reports/training/``. Each row names ``model`` and ``task``; a
  row with an ``epoch`` value is one epoch of a run's history, a row without one is a run's
  final result. Metrics are the columns named ``train_*``, ``valid_*`` or ``test_*``, and
``baseline_*`` for a trivial baseline's score on the same split (chance, "no motion").

Malformed files raise :class:`~eqbench.reports.files.ReportInputError` naming the file and
the line or record at fault.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from eqbench.check.result import RECORD_FIELDS as CHECK_FIELDS
from eqbench.reports.files import ReportInputError, read_json

VERDICTS = ("exact", "approximate", "violated", "error")
TRAINING_FIELDS = ("model", "task")
METRIC_PREFIXES = ("train_", "valid_", "test_", "baseline_")
TRAINING_SUFFIXES = (".csv", ".json", ".jsonl")


def load_check_records(paths: Sequence[Path | str]) -> pd.DataFrame:
    """All records of the given ``eqbench check --json`` files, one row each, with a ``source`` column."""
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        records = read_json(path)
        if isinstance(records, dict) and "records" in records:
            records = records["records"]
        if not isinstance(records, list):
            raise ReportInputError(f"{path}: expected check records (an object with a 'records' list, or a list), got {type(records).__name__}")
        for index, record in enumerate(records):
            rows.append(_validated_check_record(path, index, record))
    if not rows:
        raise ReportInputError(f"no check records in {', '.join(map(str, paths))}")
    return pd.DataFrame(rows)


def load_training_rows(directory: Path | str) -> pd.DataFrame:
    """Every training row in the CSV / JSON / JSON-lines files under ``directory`` (recursive).

    Adds a ``source`` column (the file, relative to ``directory``).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportInputError(f"{directory}: training results folder does not exist")
    frames = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix in TRAINING_SUFFIXES and p.is_file()):
        frame = _read_training_file(path)
        missing = [field for field in TRAINING_FIELDS if field not in frame.columns]
        if missing:
            raise ReportInputError(f"{path}: training rows lack the column(s) {missing} (have {list(frame.columns)})")
        frames.append(frame.assign(source=str(path.relative_to(directory))))
    if not frames:
        raise ReportInputError(f"{directory}: no training result files ({', '.join(TRAINING_SUFFIXES)})")
    return pd.concat(frames, ignore_index=True)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a training frame (``train_*``, ``valid_*``, ``test_*``, ``baseline_*``), in that order."""
    return [c for prefix in METRIC_PREFIXES for c in frame.columns if c.startswith(prefix)]


# ------------------------------------------------------------------ helpers
def _validated_check_record(path: Path, index: int, record: Any) -> dict[str, Any]:
    where = f"{path}: record {index}"
    if not isinstance(record, dict):
        raise ReportInputError(f"{where} is a {type(record).__name__}, expected an object")
    missing = [field for field in CHECK_FIELDS if field not in record]
    if missing:
        raise ReportInputError(f"{where} ({record.get('model', '?')}) lacks the field(s) {missing}")
    if record["verdict"] not in VERDICTS:
        raise ReportInputError(f"{where} ({record['model']}): verdict {record['verdict']!r} is not one of {VERDICTS}")
    for field in ("max_rel_error", "mean_rel_error", "noise_floor"):
        value = record[field]
        if value is not None and not isinstance(value, (int, float)):
            raise ReportInputError(f"{where} ({record['model']}): {field} must be a number or null, got {value!r}")
    return {**record, "source": str(path)}


def _read_training_file(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise ReportInputError(f"{path}: malformed CSV ({error})") from error
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ReportInputError(f"{path}:{number}: malformed JSON line ({error.msg})") from error
            if not isinstance(row, dict):
                raise ReportInputError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
            rows.append(row)
        return pd.DataFrame(rows)
    rows = read_json(path)
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ReportInputError(f"{path}: expected a JSON list of row objects")
    return pd.DataFrame(rows)
