"""Content-addressed SQLite cache of successful results.

The key hashes everything that shapes an answer (task, model, prompt
versions, options, normalised document), so a hit is the answer the same
request would have produced. WAL mode and a busy timeout make it safe for
several processes at once. Only values and warnings are stored: never keys.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

__all__ = ["ResultCache", "default_cache_path", "cache_key"]


def default_cache_path() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("summarizer") / "results.sqlite3"


def cache_key(**parts: Any) -> str:
    """A stable hash of ``parts`` (JSON-serialisable values)."""
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._setup()

    @_when_locked
    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL)"
        )

    @_when_locked
    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT payload FROM results WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @_when_locked
    def put(self, key: str, payload: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO results (key, payload, created) VALUES (?, ?, ?)",
            (key, json.dumps(payload, separators=(",", ":")), time.time()),
        )

    def close(self) -> None:
        self._db.close()
