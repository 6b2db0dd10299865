"""Where the CLI writes its files: ``-`` for stdout, paths checked before any work, the JSON header.

``--json FILE`` / ``--csv FILE`` take a path or ``-`` (standard output; the human-readable
output then goes to standard error, so that ``eqbench check --json - | jq`` reads pure JSON).
:func:`output_target` checks a path when the options are parsed, before a check runs: its
folder must exist or be creatable and be writable, and the path must not be a folder, so a
typo costs a one-line usage error instead of a finished run's results.

The JSON that ``eqbench check --json`` writes is one object::

    {"eqbench_version": "0.1.0", "torch_version": "2.13.0", "git_commit": "a1b2c3..." or null,
     "machine": {"node": ..., "platform": ..., "processor": ..., "cpus": ..., "python": ...},
     "created": "2026-12-05T21:30:00+00:00",
     "records": [{"model": ..., "verdict": ..., ...}, ...]}

``records`` is the list of check records (one flat dict per model,
:meth:`eqbench.check.CheckResult.to_record`): ``pandas.DataFrame(json.load(f)["records"])``
loads it; :func:`eqbench.reports.records.load_check_records` reads it (and older plain lists).
The header comes from :func:`eqbench.provenance.run_header`. ``git_commit`` is ``HEAD`` of the git repository around the current folder, ``null`` outside one.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from eqbench.cli import UsageError, write_output

#: The path that means standard output.
STDOUT = "-"


def output_target(text: str) -> str | Path:
    """An argparse ``type``: ``-`` (stdout) or a writable file path (module docstring); a usage error otherwise."""
    if text == STDOUT:
        return STDOUT
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"cannot write {text}: it is a folder")
    _check_creatable(path.parent, f"cannot write {text}")
    if path.exists() and not os.access(path, os.W_OK):
        # os.replace would still succeed in a writable folder, but the user marked the file read-only
        raise UsageError(f"cannot write {text}: the file is read-only")
    return path


def output_folder(text: str) -> Path:
    """An argparse ``type``: a folder that exists or can be created, writable; a usage error otherwise."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"cannot write into {text}: it is a file, not a folder")
    _check_creatable(path, f"cannot write into {text}")
    return path


def _check_creatable(folder: Path, problem: str) -> None:
    """A usage error unless ``folder`` exists or can be made: its nearest existing ancestor is a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{problem}: {existing} is not a writable folder")


def to_stdout(target: str | Path | None) -> bool:
    """Whether ``target`` (an :func:`output_target` or ``None``) is standard output."""
    return target == STDOUT


def emit(target: str | Path, text: str, option: str) -> None:
    """Write ``text`` to standard output (``-``) or to the file ``target`` atomically."""
    if to_stdout(target):
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_output(Path(target), text, option)


