"""Content-addressed SQLite cache of successful results.

The key hashes everything that shapes an answer — task, backend (kind,
endpoint without credentials, model, temperature), the prompts' full text,
the options and the normalised document — so a hit is the answer the same
request would have produced. WAL mode and a busy timeout make it safe for
several processes at once. Only values and warnings are stored: never keys.

A broken cache never stops a run: the first failure (a corrupt file, a path
that cannot be created) is kept in ``problem`` and the cache turns itself off.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

__all__ = ["ResultCache", "default_cache_path", "result_key"]

R = TypeVar("R")


def default_cache_path() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("summarizer") / "results.sqlite3"


def result_key(
    *, task: str, document: str, backend: str, prompts: list[str], options: list[Any],
) -> str:
    """The cache key: a stable hash of what shapes an answer (``document`` is the text's digest)."""
    parts = {"task": task, "document": document, "backend": backend, "prompts": prompts, "options": options}
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# SQLite's busy timeout covers ordinary write contention, but switching a new
# file to WAL (and WAL recovery) can answer "database is locked" at once while
# another process does the same: retry those, briefly.
_when_locked = retry(
    retry=retry_if_exception(lambda exc: isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    stop=stop_after_delay(30),
    reraise=True,
)


class ResultCache:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        self.problem: str | None = None
        self._db: sqlite3.Connection | None = None
        self._guard(self._open)

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._guard(lambda db: db.execute("SELECT payload FROM results WHERE key = ?", (key,)).fetchone())
        if not row:
            return None
        try:
            value: dict[str, Any] = json.loads(row[0])
        except ValueError:
            return None
        return value

    def put(self, key: str, payload: dict[str, Any]) -> None:
        """Store ``payload`` — unless it could not be written as UTF-8 (a lone surrogate in an answer):
        a cached answer that every later run fails to write would fail that document forever."""
        try:
            blob = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            blob.encode("utf-8")
        except (UnicodeEncodeError, ValueError):
            return
        self._guard(lambda db: db.execute(
            "INSERT OR REPLACE INTO results (key, payload, created) VALUES (?, ?, ?)", (key, blob, time.time()),
        ))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _open(self, _: sqlite3.Connection | None) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL)"
        )

    def _guard(self, action: Callable[[Any], R]) -> R | None:
        if self.problem is not None or (self._db is None and action != self._open):
            return None
        try:
            return _when_locked(action)(self._db)
        except (sqlite3.Error, OSError) as exc:
            self.problem = f"result cache {self.path} is unusable ({exc}); running without it"
            self.close()
            return None
