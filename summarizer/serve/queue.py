"""What the job routes need from a job store, whatever holds the jobs: the ``JobQueue`` protocol.

Two stores keep it: ``jobs.SqliteQueue`` (the embedded default: one process, a
SQLite file and a folder per job, jobs run in the web process) and
``pg.PgQueue`` (PostgreSQL: jobs, documents and results are rows that any number
of web replicas read and any number of workers run). The routes see only this:
a place under the caps, the upload's spool folder, the job's rows, a long poll,
the results as NDJSON lines — nothing says whether there is a file behind them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..schemas import TaskName, Usage

__all__ = ["STATES", "Job", "JobQueue", "JobsFull", "QueueUnavailable", "Rates"]

STATES = ("queued", "running", "completed", "failed", "cancelled")


@dataclass
class Job:
    id: str
    owner: str
    task: TaskName
    options: dict[str, Any]
    status: str
    total: int
    ok: int = 0
    failed: int = 0
    unsupported: int = 0  # of the ok, documents with content the source does not back
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    rate: float = 0.0  # documents a second in this run, for the ETA

    @property
    def pending(self) -> int:
        return max(0, self.total - self.ok - self.failed)

    def as_dict(self, base_url: str = "") -> dict[str, Any]:
        eta = round(self.pending / self.rate, 1) if self.status == "running" and self.rate > 0 else None
        return {
            "id": self.id, "task": self.task, "status": self.status,
            "counts": {"total": self.total, "ok": self.ok, "failed": self.failed, "unsupported": self.unsupported,
                       "pending": self.pending},
            "usage": self.usage.model_dump(), "eta_seconds": eta, "error": self.error, "options": self.options,
            "created": self.created, "updated": self.updated,
            "status_url": f"{base_url}/v1/jobs/{self.id}", "results_url": f"{base_url}/v1/jobs/{self.id}/results",
        }


class JobsFull(Exception):
    """No place for another job now (HTTP 429)."""


class QueueUnavailable(Exception):
    """The job store cannot be reached now (HTTP 503): the database is down or restarting."""


class JobQueue(Protocol):
    """Jobs as the routes see them. Every method may raise QueueUnavailable."""

    kind: str  # "sqlite" or "postgres": for /readyz and logs

    async def start(self) -> None:
        """Connect and begin (in the app's lifespan, on its loop)."""

    def stop_taking(self) -> None:
        """SIGTERM: run no new documents from now on (what is in flight may finish)."""

    async def close(self) -> None:
        """Finish or hand back what is in flight, then disconnect."""

    async def reserve(self, owner: str) -> str:
        """A place for one more job of ``owner`` under the caps (checked and taken at once): its id; else JobsFull."""

    async def release(self, owner: str, job_id: str) -> None:
        """Give back a place whose upload failed."""

    def spool(self, job_id: str) -> Path:
        """The folder the upload of ``job_id`` is written into (``input.jsonl``)."""

    async def submit(self, job_id: str, owner: str, task: TaskName, options: dict[str, Any], total: int) -> Job:
        """Queue the job whose input is in its spool folder."""

    async def get(self, job_id: str) -> Job | None: ...

    async def owned(self, owner: str, limit: int, after: str | None) -> list[Job] | None:
        """``owner``'s jobs, newest first, after job ``after`` (None: no such job of theirs)."""

    async def wait(self, job_id: str, timeout: float) -> None:
        """Until the job ends, at most ``timeout`` s — woken by the store, never by polling it."""

    async def cancel(self, job_id: str) -> Job | None: ...

    def results(self, job_id: str, status: str | None) -> AsyncIterator[bytes]:
        """The job's records so far as NDJSON lines (each id once), streamed."""

    async def counts(self) -> dict[str, int]:
        """Jobs by state (for /metrics)."""

    async def problem(self) -> str | None:
        """Why the store cannot serve now (for /readyz), or None."""


class Rates(Protocol):
    """Requests a minute per caller: in this process, or shared by every replica."""

    async def admit(self, caller: str) -> float | None:
        """None if ``caller`` may go ahead now, else the seconds until it may."""
