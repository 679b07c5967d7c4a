"""The state of a batch run, in one SQLite file beside the output (``OUT.batch.sqlite3``).

Everything needed to pick a run up again after a crash, a kill or a week: the
run's task and options, the documents still in progress (their text and their
TaskRun state), every request (its body, which batch carries it, which round),
every batch and file, and the tokens each round used. Each change is one
transaction, so the file is never half-written. Documents that are done are in
the output file and leave no trace here but their request rows' status.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["BatchState", "RequestRow", "state_path", "unreadable"]

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS formats (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, document TEXT NOT NULL, run TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS requests (custom_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, round INTEGER NOT NULL,
       status TEXT NOT NULL, batch TEXT, state TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS requests_by_status ON requests (status, round)",
    "CREATE INDEX IF NOT EXISTS requests_by_batch ON requests (batch, status)",
    """CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, round INTEGER NOT NULL, file_id TEXT NOT NULL,
       status TEXT NOT NULL, requests INTEGER NOT NULL, collected INTEGER NOT NULL DEFAULT 0, info TEXT NOT NULL,
       created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, prompt_tokens INTEGER NOT NULL DEFAULT 0,
       completion_tokens INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
       answered INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, resent INTEGER NOT NULL DEFAULT 0)""",
]


SUFFIX = ".batch.sqlite3"


def state_path(out: Path) -> Path:
    return out.with_name(out.name + SUFFIX)


def unreadable(path: Path, error: BaseException) -> UsageError:
    """The one line for a state file that cannot be read."""
    reason = " ".join(str(error).split())[:120] or type(error).__name__
    return UsageError(f"{path} is not a readable batch state ({reason}): the run it tracked cannot be resumed "
                      f"from it; move it aside to start that output over")


@dataclass(frozen=True)
class RequestRow:
    custom_id: str
    doc_id: str
    round: int
    status: str  # pending (to submit), submitted (in a batch), answered, failed
    batch: str | None
    state: dict[str, Any]
    body: dict[str, Any]
    attempts: int


class BatchState:
    """The run's memory; every write is a transaction."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open the state at ``path``; with ``create=False`` a missing file is a UsageError, not a new run.

        A file that is not a readable state (truncated, overwritten, not SQLite) is a UsageError
        naming it, never a traceback: every later read goes through the same check (``unreadable``).
        """
        self.path = path
        self._formats: dict[str, Any] = {}  # response_format by digest: every request of a run shares one
        if not create and not path.exists():
            out = path.with_name(path.name.removesuffix(SUFFIX))
            raise UsageError(f"{out} has no batch run (no {path.name} beside it): start one with "
                             f"`summarizer bulk SOURCE --via batch --out {out}`")
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute("SELECT key, value FROM meta").fetchall()  # a cut file fails here, not mid-run
        except sqlite3.DatabaseError as exc:
            raise unreadable(path, exc) from None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``with state.transaction(): ...``: the writes inside land together or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- the run ------------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- documents in progress -------------------------------------------------------------------------

    def add_doc(self, doc_id: str, document: dict[str, Any], run: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO docs (id, document, run) VALUES (?, ?, ?)",
                         (doc_id, json.dumps(document), json.dumps(run)))

    def doc(self, doc_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        row = self._db.execute("SELECT document, run FROM docs WHERE id = ?", (doc_id,)).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def save_run(self, doc_id: str, run: dict[str, Any]) -> None:
        self._db.execute("UPDATE docs SET run = ? WHERE id = ?", (json.dumps(run), doc_id))

    def drop_doc(self, doc_id: str) -> None:
        self._db.execute("DELETE FROM docs WHERE id = ?", (doc_id,))

    def has_doc(self, doc_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM docs WHERE id = ?", (doc_id,)).fetchone() is not None

    def open_doc_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT id FROM docs ORDER BY id")]

    # -- requests -------------------------------------------------------------------------------------

    def add_request(self, custom_id: str, doc_id: str, round_: int, state: dict[str, Any],
                    body: dict[str, Any], attempts: int = 0) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO requests (custom_id, doc_id, round, status, batch, state, body, attempts) "
            "VALUES (?, ?, ?, 'pending', NULL, ?, ?, ?)",
            (custom_id, doc_id, round_, json.dumps(state), json.dumps(self._compact(body)), attempts))

    def request(self, custom_id: str) -> RequestRow | None:
        row = self._db.execute("SELECT * FROM requests WHERE custom_id = ?", (custom_id,)).fetchone()
        return self._request(row) if row else None

    def pending(self, round_: int) -> Iterator[RequestRow]:
        """The requests waiting to be submitted, streamed (do not write to the state while iterating)."""
        cursor = self._db.execute(
            "SELECT * FROM requests WHERE status = 'pending' AND round <= ? ORDER BY rowid", (round_,))
        while rows := cursor.fetchmany(500):
            yield from (self._request(r) for r in rows)

    def count(self, status: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM requests WHERE status = ?", (status,)).fetchone()[0])

    def in_batch(self, batch_id: str, status: str = "submitted") -> list[RequestRow]:
        """The batch's requests in the order of its file's lines (rows are written in rowid order)."""
        return [self._request(r) for r in self._db.execute(
            "SELECT * FROM requests WHERE batch = ? AND status = ? ORDER BY rowid", (batch_id, status)).fetchall()]

    def set_request(self, custom_id: str, *, status: str, batch: str | None = None, round_: int | None = None,
                    attempts: int | None = None) -> None:
        self._db.execute(
            "UPDATE requests SET status = ?, batch = COALESCE(?, batch), round = COALESCE(?, round), "
            "attempts = COALESCE(?, attempts) WHERE custom_id = ?", (status, batch, round_, attempts, custom_id))

    # -- batches --------------------------------------------------------------------------------------

    def add_batch(self, batch_id: str, round_: int, file_id: str, requests: int, info: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO batches (id, round, file_id, status, requests, collected, info, created) "
            "VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (batch_id, round_, file_id, info.get("status", "validating"), requests, json.dumps(info), time.time()))

    def update_batch(self, batch_id: str, info: dict[str, Any]) -> None:
        self._db.execute("UPDATE batches SET status = ?, info = ? WHERE id = ?",
                         (info.get("status", "unknown"), json.dumps(info), batch_id))

    def collected(self, batch_id: str) -> None:
        self._db.execute("UPDATE batches SET collected = 1 WHERE id = ?", (batch_id,))

    def batches(self, *, uncollected: bool = False) -> list[dict[str, Any]]:
        query = "SELECT id, round, file_id, status, requests, collected, info FROM batches"
        if uncollected:
            query += " WHERE collected = 0"
        rows = self._db.execute(query + " ORDER BY created").fetchall()
        return [{"id": r[0], "round": r[1], "file_id": r[2], "status": r[3], "requests": r[4],
                 "collected": bool(r[5]), "info": json.loads(r[6])} for r in rows]

    def batch_for_file(self, file_id: str) -> str | None:
        row = self._db.execute("SELECT id FROM batches WHERE file_id = ?", (file_id,)).fetchone()
        return row[0] if row else None

    # -- rounds ---------------------------------------------------------------------------------------

    def tally(self, round_: int, **counts: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO rounds (round) VALUES (?)", (round_,))
        for name, value in counts.items():
            self._db.execute(f"UPDATE rounds SET {name} = {name} + ? WHERE round = ?", (value, round_))  # noqa: S608

    def rounds(self) -> list[dict[str, int]]:
        rows = self._db.execute("SELECT round, prompt_tokens, completion_tokens, requests, answered, failed, resent "
                                "FROM rounds ORDER BY round").fetchall()
        keys = ("round", "prompt_tokens", "completion_tokens", "requests", "answered", "failed", "resent")
        return [dict(zip(keys, row, strict=True)) for row in rows]


    def _compact(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with its response_format (the schema, the same for every request) stored once."""
        fmt = body.get("response_format")
        if fmt is None:
            return body
        blob = json.dumps(fmt, sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        if key not in self._formats:
            self._db.execute("INSERT OR IGNORE INTO formats (key, value) VALUES (?, ?)", (key, blob))
            self._formats[key] = fmt
        return {**body, "response_format": {"$format": key}}

    def _expand(self, body: dict[str, Any]) -> dict[str, Any]:
        fmt = body.get("response_format")
        if not isinstance(fmt, dict) or "$format" not in fmt:
            return body
        key = fmt["$format"]
        if key not in self._formats:
            row = self._db.execute("SELECT value FROM formats WHERE key = ?", (key,)).fetchone()
            self._formats[key] = json.loads(row[0])
        return {**body, "response_format": self._formats[key]}

    def _request(self, row: tuple[Any, ...]) -> RequestRow:
        custom_id, doc_id, round_, status, batch, state, body, attempts = row
        return RequestRow(custom_id, doc_id, round_, status, batch, json.loads(state), self._expand(json.loads(body)),
                          attempts)
