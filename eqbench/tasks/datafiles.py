"""Data files of the training tasks: the error for malformed files and the on-disk array cache.

Parsed data sets (rotated MNIST ``.amat`` files, QM9 ``.xyz`` folders, simulated n-body
trajectories) are cached as ``.npz`` archives under :func:`cache_dir`, written atomically
(temporary file then ``os.replace``), so an interrupted run never leaves half a cache behind.
A cache built from a user's file is keyed by that file's :func:`fingerprint` (resolved path,
size, modification time), so editing or replacing the file invalidates it.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from eqbench.atomic import write_atomic

CACHE_ENV = "EQBENCH_CACHE"


class DataFileError(ValueError):
    """A data file that cannot be read: names the file, the 1-based line (when there is one) and what was expected."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = Path(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def cache_dir() -> Path:
    """The cache folder: ``$EQBENCH_CACHE`` when set, else ``~/.cache/eqbench``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "eqbench"


def fingerprint(*paths: Path | str) -> str:
    """A short hex digest of each file's resolved path, size and modification time (``ns``)."""
    digest = hashlib.sha1()
    for path in map(Path, paths):
        try:
            stat = path.stat()
        except OSError as error:
            raise DataFileError(path, None, f"cannot read ({error.strerror})") from error
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` (an ``.npz``); on a miss (or an unreadable cache) ``build()`` them and store them atomically."""
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            pass  # a cache written by another version or damaged on disk: rebuild it
    arrays = build()
    write_atomic(path, lambda stream: np.savez(stream, **arrays))
    return arrays
