"""Atomic writes, JSON reads and input errors for report files.

Every report file is written to a temporary file in the destination folder and then moved
into place with ``os.replace``, so a reader never sees half a table or half a PNG.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


class ReportInputError(ValueError):
    """A results file that reports cannot read: names the file, the line or record, and the problem."""


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Create ``path``'s folder, let ``write`` fill a temporary file beside it, then ``os.replace`` it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_atomic(path, lambda stream: stream.write(text.encode("utf-8")))


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


def _umask() -> int:
    """The process umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
