"""Bulk jobs over HTTP: the store that remembers them and the manager that runs them.

A job is a folder under ``data_dir/jobs/<id>/`` holding ``input.jsonl`` (what
was submitted) and ``output.jsonl`` (the Result records, written by the same
bulk engine and sink as ``summarizer bulk``), plus a row in ``jobs.sqlite3``:
who owns it, its task and options, its state. Nothing else is state: a
restarted server resumes every unfinished job from its output file, exactly as
a CLI rerun does, so no finished document is requested twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bulk import BulkSummary, run_bulk
from ..client import Summarizer
from ..errors import SummarizerError
from ..schemas import Record, TaskName, Usage
from ..sinks import JsonlSink, scan_output
from ..sources import BulkItem, read_source

__all__ = ["Job", "JobManager", "JobStore"]

STATES = ("queued", "running", "completed", "failed", "cancelled")
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, task TEXT NOT NULL, options TEXT NOT NULL,
    status TEXT NOT NULL, total INTEGER NOT NULL, ok INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, usage TEXT NOT NULL DEFAULT '{}', error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL)"""


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
            "counts": {"total": self.total, "ok": self.ok, "failed": self.failed, "pending": self.pending},
            "usage": self.usage.model_dump(), "eta_seconds": eta, "error": self.error, "options": self.options,
            "created": self.created, "updated": self.updated,
            "status_url": f"{base_url}/v1/jobs/{self.id}", "results_url": f"{base_url}/v1/jobs/{self.id}/results",
        }


class JobStore:
    """Jobs in SQLite: one row each; the documents and results live in the job's folder."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / "jobs.sqlite3", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, owner: str, task: TaskName, options: dict[str, Any], total: int) -> Job:
        job = Job(id="job_" + secrets.token_hex(8), owner=owner, task=task, options=options, status="queued",
                  total=total)
        self.folder(job.id).mkdir(parents=True)
        self.save(job)
        return job

    def save(self, job: Job) -> None:
        job.updated = time.time()
        self._db.execute(
            "INSERT OR REPLACE INTO jobs (id, owner, task, options, status, total, ok, failed, usage, error, "
            "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.owner, job.task, json.dumps(job.options), job.status, job.total, job.ok, job.failed,
             job.usage.model_dump_json(), job.error, job.created, job.updated),
        )

    def get(self, job_id: str) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def unfinished(self) -> list[Job]:
        rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created")
        return [_job(row) for row in rows.fetchall()]

    def count_by_state(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall():
            counts[status] = n
        return counts

    def close(self) -> None:
        self._db.close()


def _job(row: tuple[Any, ...]) -> Job:
    (job_id, owner, task, options, status, total, ok, failed, usage, error, created, updated) = row
    return Job(id=job_id, owner=owner, task=task, options=json.loads(options), status=status, total=total, ok=ok,
               failed=failed, usage=Usage.model_validate_json(usage), error=error, created=created, updated=updated)


class JobManager:
    """Runs jobs on the bulk engine in the server's event loop, a few at a time."""

    def __init__(
        self, store: JobStore, summarizer: Summarizer, *, concurrency: int, max_running: int = 2,
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        self.store, self.summarizer, self.concurrency = store, summarizer, concurrency
        self._slots = asyncio.Semaphore(max_running)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Job] = {}
        self._stopping = asyncio.Event()
        self._on_record = on_record

    @property
    def active(self) -> int:
        return len(self._tasks)

    def resume(self) -> int:
        """Schedule every job a previous run left unfinished; return how many."""
        jobs = self.store.unfinished()
        for job in jobs:
            self._schedule(job)
        return len(jobs)

    def submit(self, job: Job) -> None:
        self._schedule(job)

    def get(self, job_id: str) -> Job | None:
        return self._live.get(job_id) or self.store.get(job_id)

    async def wait(self, job_id: str, timeout: float) -> None:
        """Until the job's run ends (done, failed, cancelled, or the server stops), at most ``timeout`` s."""
        task = self._tasks.get(job_id)
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout)

    def cancel(self, job: Job) -> Job:
        task = self._tasks.get(job.id)
        if job.status in ("queued", "running"):
            job.status = "cancelled"
            self.store.save(job)
            if task is not None:
                task.cancel()
        return job

    async def stop(self, drain: float = 15.0) -> None:
        """Checkpoint: take no new documents, let those in flight finish (up to ``drain`` s), then stop.

        Unfinished jobs stay "running" in the store, so the next start resumes them from
        their output: a document is requested twice only if it outlived the drain.
        """
        self._stopping.set()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=drain)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _schedule(self, job: Job) -> None:
        self._live[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks[job.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.id, None))

    async def _run(self, job: Job) -> None:
        folder = self.store.folder(job.id)
        try:
            async with self._slots:
                if job.status == "cancelled":
                    return
                job.status = "running"
                self.store.save(job)
                finished = await self._bulk(job, folder)
            job.ok, job.failed = _counts(folder / "output.jsonl")
            if not finished:  # the server is stopping: leave it "running", to resume
                self.store.save(job)
                self._live.pop(job.id, None)
                return
            job.status = "completed" if job.status == "running" else job.status
        except asyncio.CancelledError:
            if job.status != "cancelled":  # the server is stopping: leave it "running", to resume
                self.store.save(job)
                self._live.pop(job.id, None)
                raise
        except (SummarizerError, OSError) as exc:
            job.status, job.error = "failed", str(exc)
        finally:
            if job.status != "running":
                self.store.save(job)
                self._live.pop(job.id, None)

    async def _bulk(self, job: Job, folder: Path) -> bool:
        """Run the job's documents into its output; False if the server stopped it before the end."""
        output = folder / "output.jsonl"
        job.ok, job.failed = _counts(output)
        options = job.options
        words = tuple(options["words"]) if options.get("words") else None
        runner = self.summarizer.bulk_runner(
            job.task, concurrency=self.concurrency, cache=self.store.root.parent / "cache.sqlite3",
            words=words, language=options.get("language"), strict=bool(options.get("strict")),
        )
        started, last_save = time.monotonic(), time.monotonic()

        def progress(record: Record, summary: BulkSummary) -> None:
            nonlocal last_save
            job.ok += record.status == "ok"
            job.failed += record.status != "ok"
            job.usage.add(record.usage)
            job.rate = summary.done / max(1e-6, time.monotonic() - started)
            if self._on_record is not None:
                self._on_record(record)
            if time.monotonic() - last_save >= 1.0:
                self.store.save(job)
                last_save = time.monotonic()

        stopped = False

        def until_stopping(items: Iterator[BulkItem]) -> Iterator[BulkItem]:
            nonlocal stopped
            for item in items:
                if self._stopping.is_set():
                    stopped = True
                    return
                yield item

        try:
            items = read_source(folder / "input.jsonl", published=_date(options.get("published")))
            await run_bulk(runner, until_stopping(items), JsonlSink(output), progress)
        finally:
            if runner.cache is not None:
                runner.cache.close()
        return not stopped


def _counts(output: Path) -> tuple[int, int]:
    if not output.exists():
        return 0, 0
    done = dict(scan_output(output))
    ok = sum(1 for status in done.values() if status == "ok")
    return ok, len(done) - ok


def _date(value: Any) -> Any:
    from ..extract import parse_date

    return parse_date(value)
