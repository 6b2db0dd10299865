"""A content-addressed result cache: one JSON file per result, named by the SHA-256 of what produced it.

The key of a check is the digest of the model's code and weights, the group, actions and input
generator, the checker settings, the seed, and the eqbench framework / torch / hypothesis / numpy
versions (:mod:`eqbench.campaign.jobs` builds it); a training run's key is the digest of its
task, model code, preset, seed, data and versions. An entry lives at ``DIR/ab/abcdef....json``
(``ab`` the key's first two hex digits) and holds ``{"key", "kind", "payload", "created"}``.

Writes are atomic (:mod:`eqbench.atomic`), so an interrupted run leaves whole entries or none.
An entry that cannot be read back (truncated, not JSON, a different key inside) is reported
with a :class:`CorruptCacheWarning` and treated as missing; the recomputed result replaces it.
The default folder is ``eqbench/campaign`` under the user cache directory
(``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, via ``platformdirs``).
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from eqbench.atomic import write_text_atomic

ENTRY_FIELDS = ("key", "kind", "payload")


class CorruptCacheWarning(UserWarning):
    """A cache entry that could not be read; it is recomputed."""


class CacheWriteWarning(UserWarning):
    """A result that could not be cached (read-only or full disk); the campaign goes on."""


def default_cache_dir() -> Path:
    """``<user cache dir>/eqbench/campaign`` (honours ``$XDG_CACHE_HOME`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("eqbench")) / "campaign"


class ResultCache:
    """Results by key in the folder ``root`` (see the module docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The payload stored under ``key``; ``None`` when absent or corrupt (with a :class:`CorruptCacheWarning`)."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            warnings.warn(f"cache entry {path} cannot be read ({error.strerror or error}); recomputing it", CorruptCacheWarning, stacklevel=2)
            return None
        try:
            entry = json.loads(text)
            problem = _problem(entry, key)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            problem = f"not JSON: {error}"
        if problem:
            warnings.warn(f"cache entry {path} is corrupt ({problem}); recomputing it", CorruptCacheWarning, stacklevel=2)
            return None
        return entry["payload"]

    def put(self, key: str, kind: str, payload: dict[str, Any]) -> Path | None:
        """Store ``payload`` under ``key`` atomically; returns the entry's path (``None``, with a warning, when it cannot be written)."""
        entry = {"key": key, "kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "payload": payload}
        try:
            return write_text_atomic(self.path(key), json.dumps(entry, default=str) + "\n")
        except OSError as error:
            warnings.warn(f"cannot write cache entry {self.path(key)} ({error.strerror or error}); the result is not cached", CacheWriteWarning, stacklevel=2)
            return None


def _problem(entry: Any, key: str) -> str:
    """What is wrong with a decoded entry ('' when nothing)."""
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not an object"
    missing = [name for name in ENTRY_FIELDS if name not in entry]
    if missing:
        return f"lacks {missing}"
    if entry["key"] != key:
        return f"holds key {str(entry['key'])[:16]}..., not {key[:16]}..."
    if not isinstance(entry["payload"], dict):
        return "payload is not an object"
    return ""
