"""Bulk jobs over HTTP: the store that remembers them and the manager that runs them.

A job is a folder under ``data_dir/jobs/<id>/`` holding ``input.jsonl`` (what
was submitted, as UTF-8 NDJSON) and ``output.jsonl`` (the Result records, written
by the same bulk engine and sink as ``summarizer bulk``), plus a row in
``jobs.sqlite3``: who owns it, its task and options, its state. Nothing else is
state: a restarted server resumes every unfinished job from its output file,
exactly as a CLI rerun does, so no finished document is requested twice.

The manager holds the caps: at most ``max_jobs`` queued or running jobs in all,
and at most ``per_owner`` for one token (fewer than ``max_jobs``, so one tenant
cannot shut out the others). A place is taken before the body is read, in one
step with no await between the check and the take. Documents are parsed in the
parse pool, a few ahead, never on the event loop; each tenant has its own
result cache, so no tenant can learn through a cache hit what another submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..client import Summarizer
from ..documents import Document, check_web_url
from ..errors import ConfigError, SummarizerError
from ..fetch import fetch
from ..limits import Pacer
from ..schemas import ErrorInfo, Record, TaskName, Usage
from ..sinks import _HEAD, JsonlSink, scan_output
from ..sources import MAX_LINE_BYTES, BulkItem, oversized_line
from .parsing import ParsePool, job_item, line_id, parse_fetched
from .queue import STATES, Job, JobsFull

__all__ = ["Job", "JobManager", "JobStore", "JobsFull", "SqliteQueue", "job_date", "read_line", "read_url"]

log = logging.getLogger("summarizer")
_OWNER = re.compile(r"^(t-[0-9a-f]{10}|anonymous)$")  # token ids: safe as file names

_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, task TEXT NOT NULL, options TEXT NOT NULL,
    status TEXT NOT NULL, total INTEGER NOT NULL, ok INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, usage TEXT NOT NULL DEFAULT '{}', error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, unsupported INTEGER NOT NULL DEFAULT 0)"""
_COLUMNS = "id, owner, task, options, status, total, ok, failed, usage, error, created, updated, unsupported"


class JobStore:
    """Jobs in SQLite: one row each; the documents and results live in the job's folder.

    Opening refuses, with one line (ConfigError), a data dir that is not a folder and a
    jobs database that is not one, so that ``serve`` says so before it listens.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.root = data_dir, data_dir / "jobs"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--data-dir {data_dir}: cannot use it as the jobs folder "
                              f"({exc.strerror or exc}); pass a folder") from None
        path = data_dir / "jobs.sqlite3"
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "unsupported" not in columns:  # a jobs database written before the count existed
                self._db.execute("ALTER TABLE jobs ADD COLUMN unsupported INTEGER NOT NULL DEFAULT 0")
            self._db.execute(f"SELECT {_COLUMNS} FROM jobs LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"jobs database {path} is unusable ({exc}); move it away to start afresh") from None

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    @staticmethod
    def new_id() -> str:
        return "job_" + secrets.token_hex(8)

    def cache_path(self, owner: str) -> Path:
        """The result cache of one tenant: tenants never share cached answers."""
        if not _OWNER.match(owner):
            raise ValueError(f"not a token id: {owner!r}")
        return self.data_dir / "cache" / f"{owner}.sqlite3"

    def create(self, job_id: str, owner: str, task: TaskName, options: dict[str, Any], total: int) -> Job:
        """Record a job whose folder (with its input) is ready."""
        job = Job(id=job_id, owner=owner, task=task, options=options, status="queued", total=total)
        self.save(job)
        return job

    def save(self, job: Job) -> None:
        job.updated = time.time()
        self._db.execute(
            f"INSERT OR REPLACE INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.owner, job.task, json.dumps(job.options), job.status, job.total, job.ok, job.failed,
             job.usage.model_dump_json(), job.error, job.created, job.updated, job.unsupported),
        )

    def get(self, job_id: str) -> Job | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def owned(self, owner: str, limit: int, after: str | None = None) -> list[Job] | None:
        """``owner``'s jobs, newest first, ``limit`` of them after job ``after`` (None: no such job of theirs)."""
        anchor = (float("inf"), "")
        if after is not None:
            row = self._db.execute("SELECT created, id FROM jobs WHERE id = ? AND owner = ?", (after, owner)).fetchone()
            if row is None:
                return None
            anchor = (row[0], row[1])
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND (created < ? OR (created = ? AND id < ?)) "
            "ORDER BY created DESC, id DESC LIMIT ?", (owner, anchor[0], anchor[0], anchor[1], limit))
        return [_job(row) for row in rows.fetchall()]

    def unfinished(self) -> list[Job]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') ORDER BY created")
        return [_job(row) for row in rows.fetchall()]

    def count_by_state(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall():
            counts[status] = n
        return counts

    def close(self) -> None:
        self._db.close()


def _job(row: tuple[Any, ...]) -> Job:
    (job_id, owner, task, options, status, total, ok, failed, usage, error, created, updated, unsupported) = row
    return Job(id=job_id, owner=owner, task=task, options=json.loads(options), status=status, total=total, ok=ok,
               failed=failed, unsupported=unsupported, usage=Usage.model_validate_json(usage), error=error,
               created=created, updated=updated)


class JobManager:
    """Runs jobs on the bulk engine in the server's event loop, a few at a time, within the caps."""

    def __init__(
        self, store: JobStore, summarizer: Summarizer, pool: ParsePool, *, concurrency: int, max_jobs: int = 16,
        per_owner: int = 4, max_running: int = 2, on_record: Callable[[Record], None] | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.store, self.summarizer, self.pool, self.concurrency = store, summarizer, pool, concurrency
        self.max_jobs, self.per_owner = max_jobs, per_owner
        self._slots = asyncio.Semaphore(max_running)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Job] = {}
        self._places: dict[str, int] = {}  # owner -> jobs queued, running or being uploaded
        self._stopping = asyncio.Event()
        self._on_record = on_record
        self._pacer = pacer  # the provider's RPM/TPM for every job of this process (--rpm/--tpm)

    @property
    def active(self) -> int:
        return sum(self._places.values())

    def reserve(self, owner: str) -> None:
        """Take a place for one more job of ``owner``, or raise JobsFull. Check and take are one step."""
        mine = self._places.get(owner, 0)
        if mine >= self.per_owner:
            raise JobsFull(f"this token has {mine} jobs queued or running (at most {self.per_owner}); "
                           "wait for one to end")
        if self.active >= self.max_jobs:
            raise JobsFull(f"{self.max_jobs} jobs are queued or running; try again later")
        self._places[owner] = mine + 1

    def release(self, owner: str) -> None:
        left = self._places.get(owner, 0) - 1
        if left > 0:
            self._places[owner] = left
        else:
            self._places.pop(owner, None)

    def resume(self) -> int:
        """Schedule every job a previous run left unfinished (each holds a place); return how many."""
        jobs = self.store.unfinished()
        for job in jobs:
            self._places[job.owner] = self._places.get(job.owner, 0) + 1
            self._schedule(job)
        return len(jobs)

    def submit(self, job: Job) -> None:
        """Run ``job``, whose owner reserved its place; the place is given back when the job ends."""
        self._schedule(job)

    def get(self, job_id: str) -> Job | None:
        return self._live.get(job_id) or self.store.get(job_id)

    def owned(self, owner: str, limit: int, after: str | None) -> list[Job] | None:
        jobs = self.store.owned(owner, limit, after)
        return None if jobs is None else [self._live.get(job.id, job) for job in jobs]

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

    def checkpoint(self) -> None:
        """Take no new documents from now on (SIGTERM): what is in flight finishes, the rest waits for the restart."""
        self._stopping.set()

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

        def ended(_: object) -> None:
            self._tasks.pop(job.id, None)
            self.release(job.owner)

        task.add_done_callback(ended)

    async def _run(self, job: Job) -> None:
        folder = self.store.folder(job.id)
        try:
            async with self._slots:
                if job.status == "cancelled":
                    return
                job.status = "running"
                self.store.save(job)
                finished = await self._bulk(job, folder)
            job.ok, job.failed, job.unsupported = await asyncio.to_thread(_counts, folder / "output.jsonl")
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
        except Exception as exc:  # noqa: BLE001 — a bug fails this job once, never every restart
            log.error("job %s failed: %s", job.id, type(exc).__name__)
            job.status, job.error = "failed", f"internal error ({type(exc).__name__}); it was logged"
        finally:
            if job.status != "running":
                self.store.save(job)
                self._live.pop(job.id, None)

    async def _bulk(self, job: Job, folder: Path) -> bool:
        """Run the job's documents into its output; False if the server stopped it before the end."""
        output = folder / "output.jsonl"
        job.ok, job.failed, job.unsupported = await asyncio.to_thread(_counts, output)  # a whole output: not on the loop
        options = job.options
        words = tuple(options["words"]) if options.get("words") else None
        runner = self.summarizer.bulk_runner(
            job.task, concurrency=self.concurrency, cache=self.store.cache_path(job.owner),
            words=words, language=options.get("language"), strict=bool(options.get("strict")),
            verify=bool(options.get("verify")), pacer=self._pacer,
        )
        runner.pipeline.url_reader = self._read_url
        started = time.monotonic()
        last_save, done, stopped = started, 0, False
        sink = JsonlSink(output)

        async def pending() -> AsyncIterator[BulkItem]:
            nonlocal stopped
            async for item in self._items(folder / "input.jsonl", job_date(options.get("published"))):
                if self._stopping.is_set():
                    stopped = True
                    return
                if not sink.skip(item.id):
                    yield item

        try:
            async with contextlib.aclosing(runner.results(pending())) as records:
                async for record in records:
                    sink.write(record)
                    done += 1
                    job.ok += record.status == "ok"
                    job.failed += record.status != "ok"
                    job.unsupported += record.status == "ok" and record.unsupported > 0
                    job.usage.add(record.usage)
                    job.rate = done / max(1e-6, time.monotonic() - started)
                    if self._on_record is not None:
                        self._on_record(record)
                    if time.monotonic() - last_save >= 1.0:
                        self.store.save(job)
                        last_save = time.monotonic()
        finally:
            sink.close()
            if runner.cache is not None:
                runner.cache.close()
        return not stopped

    async def _items(self, path: Path, published: dt.date | None) -> AsyncIterator[BulkItem]:
        """The input's lines as items, parsed in the pool a few ahead and handed on in order.

        Ids are checked for repeats here, as ``summarizer bulk`` does: a repeated id
        becomes ``<id>#line-N`` with the error ``duplicate_id``.
        """
        seen: set[str] = set()
        ahead: deque[tuple[int, asyncio.Task[BulkItem]]] = deque()
        try:
            with path.open("rb") as handle:
                number = 0
                while line := handle.readline():
                    number += 1
                    ahead.append((number, asyncio.ensure_future(self._item(line, number, published))))
                    if len(ahead) > 2 * self.pool.size:
                        at, task = ahead.popleft()
                        yield _once(await task, at, seen)
            while ahead:
                at, task = ahead.popleft()
                yield _once(await task, at, seen)
        finally:
            for _, task in ahead:
                task.cancel()

    async def _item(self, line: bytes, number: int, published: dt.date | None) -> BulkItem:
        return await read_line(self.pool, line, number, published)

    async def _read_url(self, url: str, doc_id: str, published: dt.date | None) -> Document:
        return await read_url(self.pool, self.summarizer, url, doc_id, published)


async def read_line(pool: ParsePool, line: bytes, number: int, published: dt.date | None, *,
                    in_flight: bool = False) -> BulkItem:
    """Line ``number`` of a job's input as an item, parsed in the pool; a line that cannot be one is its error.

    ``in_flight``: a document already in hand (leased) is parsed even once the server is stopping.
    """
    if len(line) > MAX_LINE_BYTES:
        return oversized_line(number)
    try:
        return await pool.call(f"line {number}", job_item, line, number, published, in_flight=in_flight)
    except SummarizerError as exc:  # over the time budget, or the parser died: that line's error
        try:
            doc_id = await pool.call(f"line {number}", line_id, line, number, in_flight=in_flight)
        except SummarizerError:
            doc_id = f"#line-{number}"
        return BulkItem(doc_id, error=ErrorInfo(code=exc.code, message=str(exc)))


async def read_url(pool: ParsePool, summarizer: Summarizer, url: str, doc_id: str,
                   published: dt.date | None) -> Document:
    """A job's "url" record: an http(s) URL fetched within the server's policy, parsed in the pool."""
    check_web_url(url)
    fetched = await asyncio.to_thread(fetch, url, summarizer.fetch_policy)
    return await pool.call(url, parse_fetched, fetched, id=doc_id, published=published, source=url,
                           in_flight=True)


def _once(item: BulkItem, number: int, seen: set[str]) -> BulkItem:
    """``item``, or the duplicate_id error of its line if an earlier line had its id."""
    if item.id in seen:
        return BulkItem(f"{item.id}#line-{number}", error=ErrorInfo(
            code="duplicate_id", message=f"line {number}: id {item.id!r} appeared on an earlier line"))
    seen.add(item.id)
    return item


# A record's top-level count (a key, so never inside a JSON string, where a quote is escaped).
_UNSUPPORTED = re.compile(rb'(?<!\\)"unsupported":\s*[1-9]')


def _counts(output: Path) -> tuple[int, int, int]:
    """ok, failed and unsupported records of an output (a resumed job counts what it holds)."""
    if not output.exists():
        return 0, 0, 0
    done = dict(scan_output(output))
    ok = sum(1 for status in done.values() if status == "ok")
    with output.open("rb") as handle:
        unsupported = sum(1 for line in handle if _UNSUPPORTED.search(line))
    return ok, len(done) - ok, unsupported


def job_date(value: Any) -> Any:
    from ..extract import parse_date

    return parse_date(value)


class SqliteQueue:
    """The embedded store: jobs in SQLite and a folder each, run by a JobManager in this process."""

    kind = "sqlite"

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._manager: JobManager | None = None

    def attach(self, manager: JobManager) -> None:
        self._manager = manager

    @property
    def manager(self) -> JobManager:
        if self._manager is None:
            raise RuntimeError("the job manager starts with the app")
        return self._manager

    async def start(self) -> None:
        resumed = self.manager.resume()
        if resumed:
            logging.getLogger("summarizer.access").info(json.dumps({"event": "jobs_resumed", "count": resumed}))

    def stop_taking(self) -> None:
        self.manager.checkpoint()

    async def close(self) -> None:
        await self.manager.stop()
        self.store.close()

    async def reserve(self, owner: str) -> str:
        self.manager.reserve(owner)
        return self.store.new_id()

    async def release(self, owner: str, job_id: str) -> None:
        self.manager.release(owner)

    def spool(self, job_id: str) -> Path:
        return self.store.folder(job_id)

    async def submit(self, job_id: str, owner: str, task: TaskName, options: dict[str, Any], total: int) -> Job:
        job = self.store.create(job_id, owner, task, options, total=total)
        self.manager.submit(job)
        return job

    async def get(self, job_id: str) -> Job | None:
        return self.manager.get(job_id)

    async def owned(self, owner: str, limit: int, after: str | None) -> list[Job] | None:
        return self.manager.owned(owner, limit, after)

    async def wait(self, job_id: str, timeout: float) -> None:
        await self.manager.wait(job_id, timeout)

    async def cancel(self, job_id: str) -> Job | None:
        job = self.manager.get(job_id)
        return None if job is None else self.manager.cancel(job)

    async def results(self, job_id: str, status: str | None) -> AsyncIterator[bytes]:
        """Complete lines of the output file as it is now, filtered by status."""
        path = self.store.folder(job_id) / "output.jsonl"
        if not path.exists():
            return
        with path.open("rb") as handle:
            more = True
            while more:  # read in a thread a block at a time: a filter matching nothing yields nothing to wait on
                lines, more = await asyncio.to_thread(_read_lines, handle, status)
                for line in lines:
                    yield line

    async def counts(self) -> dict[str, int]:
        return self.store.count_by_state()

    async def problem(self) -> str | None:
        return None


_READ_BLOCK = 1024 * 1024  # bytes of output read per thread hop


def _read_lines(handle: IO[bytes], status: str | None) -> tuple[list[bytes], bool]:
    """The complete lines of the next block of ``handle`` with ``status`` (any: None), and whether more may follow."""
    lines: list[bytes] = []
    read = 0
    while read < _READ_BLOCK:
        line = handle.readline()
        if not line.endswith(b"\n"):
            return lines, False  # the end, or a line still being written
        read += len(line)
        if status is None or line_status(line) == status:
            lines.append(line)
    return lines, True


def line_status(line: bytes) -> str | None:
    """The status of one output line, read from its head (the sink writes id, task, status first)."""
    head = _HEAD.match(line)
    return None if head is None else head.group(3).decode()
