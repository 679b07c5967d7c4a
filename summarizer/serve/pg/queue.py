"""The web tier's side of the PostgreSQL job store: places under the caps, ingestion, reads, long polls, cancel.

A job is a row in ``jobs``; each input line a row in ``documents`` (its raw bytes,
parsed by whichever worker claims it); each record a row in ``results``, keyed by
(job, line) so that a document has one record whoever finished it. The job caps
are taken under one advisory lock — one lock for every submission, so there is
no lock order to get wrong — by an INSERT whose WHERE counts the active jobs: the
check and the take are one statement. An upload holds its place as a row in the
state ``uploading``; one whose replica died is forgotten after an hour.

Long polls wait on ``LISTEN summarizer_jobs``: a worker that ends a job, and a
replica that cancels one, NOTIFY its id; each replica has one listening
connection, whatever the number of waiting clients.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from psycopg.copy import AsyncLibpqWriter

from ...schemas import TaskName, Usage
from ..parsing import ParsePool, line_ids
from ..queue import STATES, Job, JobsFull
from .db import NOW
from .pool import Database, listen

__all__ = ["ACTIVE", "JOB_COLUMNS", "PgQueue", "job_from_row"]

ACTIVE = "('uploading', 'queued', 'running')"
_CAPS_LOCK = 2_100_022
JOB_COLUMNS = "id, owner, task, options, status, total, ok, failed, usage, error, created, updated, started, unsupported"
_STALE_UPLOAD = 3600.0
_JOB_ID = re.compile(r"^job_[0-9a-f]{16}$")


def job_from_row(row: tuple[Any, ...], now: float | None = None) -> Job:
    (job_id, owner, task, options, status, total, ok, failed, usage, error, created, updated, started, unsupported) = row
    job = Job(id=job_id, owner=owner, task=task, options=json.loads(options or "{}"), status=status, total=total, ok=ok,
              failed=failed, unsupported=unsupported, usage=Usage.model_validate(usage or {}), error=error, created=created, updated=updated)
    if status == "running" and started:
        job.rate = (ok + failed) / max(1e-6, (now or time.time()) - started)
    return job


class PgQueue:
    """Jobs in PostgreSQL, for any number of web replicas; workers (``pg.worker``) run them."""

    kind = "postgres"

    def __init__(self, url: str, data_dir: Path, parse_pool: ParsePool, *, max_jobs: int, per_owner: int,
                 pool_size: int = 10) -> None:
        self.db = Database(url, size=pool_size)
        self.url, self.data_dir, self.parse_pool = url, data_dir, parse_pool
        self.max_jobs, self.per_owner = max_jobs, per_owner
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.open()
        self._listener = asyncio.get_running_loop().create_task(
            listen(self.url, ("summarizer_jobs",), self._note, on_connect=self._wake_all))

    def stop_taking(self) -> None:
        pass  # the web tier runs no documents; an in-process worker has its own stop

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        self._wake_all()
        await self.db.close()

    # -- submission --------------------------------------------------------------------------

    async def reserve(self, owner: str) -> str:
        job_id = "job_" + secrets.token_hex(8)
        async with self.db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CAPS_LOCK,))
            await conn.execute(f"DELETE FROM jobs WHERE status = 'uploading' AND updated < {NOW} - %s",
                               (_STALE_UPLOAD,))
            taken = await (await conn.execute(
                f"INSERT INTO jobs (id, owner, status, created, updated) SELECT %(id)s, %(owner)s, 'uploading', "
                f"{NOW}, {NOW} WHERE (SELECT count(*) FROM jobs WHERE status IN {ACTIVE}) < %(max)s "
                f"AND (SELECT count(*) FROM jobs WHERE owner = %(owner)s AND status IN {ACTIVE}) < %(per)s "
                "RETURNING id", {"id": job_id, "owner": owner, "max": self.max_jobs, "per": self.per_owner},
            )).fetchone()
            if taken is None:
                mine = (await (await conn.execute(
                    f"SELECT count(*) FROM jobs WHERE owner = %s AND status IN {ACTIVE}", (owner,))).fetchone())[0]
        if taken is None:
            if mine >= self.per_owner:
                raise JobsFull(f"this token has {mine} jobs queued or running (at most {self.per_owner}); "
                               "wait for one to end")
            raise JobsFull(f"{self.max_jobs} jobs are queued or running; try again later")
        return job_id

    async def release(self, owner: str, job_id: str) -> None:
        await self.db.rows("DELETE FROM jobs WHERE id = %s AND owner = %s AND status = 'uploading'", (job_id, owner))

    def spool(self, job_id: str) -> Path:
        return self.data_dir / "spool" / job_id

    async def submit(self, job_id: str, owner: str, task: TaskName, options: dict[str, Any], total: int) -> Job:
        """Copy the spooled input into ``documents`` (a repeated id marked, as bulk does) and queue the job."""
        folder = self.spool(job_id)
        path = folder / "input.jsonl"
        ids = await self.parse_pool.call("body", line_ids, str(path), budget=max(30.0, self.parse_pool.budget))
        seen: set[str] = set()
        try:
            async with self.db.transaction() as conn:
                cursor = conn.cursor()
                # Written straight to the connection (not queued): a body faster than the database
                # waits for it instead of piling up in memory; binary, so bytes are not hex-doubled.
                async with cursor.copy("COPY documents (job_id, line, raw, dup) FROM STDIN (FORMAT BINARY)",
                                       writer=AsyncLibpqWriter(cursor)) as copy:
                    copy.set_types(["text", "int4", "bytea", "bool"])
                    with path.open("rb") as handle:
                        for number, (line, doc_id) in enumerate(zip(handle, ids), 1):
                            await copy.write_row((job_id, number, line.rstrip(b"\r\n"), doc_id in seen))
                            seen.add(doc_id)
                row = await (await conn.execute(
                    f"UPDATE jobs SET status = 'queued', task = %s, options = %s, total = %s, updated = {NOW} "
                    f"WHERE id = %s AND status = 'uploading' RETURNING {JOB_COLUMNS}",
                    (task, json.dumps(options), len(ids), job_id))).fetchone()
                await conn.execute("SELECT pg_notify('summarizer_work', %s)", (job_id,))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if row is None:
            raise JobsFull("the job's place was given up while it uploaded; submit it again")
        return job_from_row(row)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        if not _JOB_ID.match(job_id):
            return None  # not one of ours (and nothing a text column refuses, like a NUL, reaches the database)
        rows = await self.db.rows(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s AND status <> 'uploading'", (job_id,))
        return job_from_row(rows[0]) if rows else None

    async def owned(self, owner: str, limit: int, after: str | None) -> list[Job] | None:
        anchor: tuple[float, str] = (float("inf"), "")
        if after is not None:
            if not _JOB_ID.match(after):
                return None
            found = await self.db.rows("SELECT created, id FROM jobs WHERE id = %s AND owner = %s "
                                       "AND status <> 'uploading'", (after, owner))
            if not found:
                return None
            anchor = (found[0][0], found[0][1])
        rows = await self.db.rows(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE owner = %s AND status <> 'uploading' AND (created < %s OR "
            "(created = %s AND id < %s)) ORDER BY created DESC, id DESC LIMIT %s",
            (owner, anchor[0], anchor[0], anchor[1], limit))
        return [job_from_row(row) for row in rows]

    async def wait(self, job_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = asyncio.Event()
            self._waiters.setdefault(job_id, set()).add(event)
            try:
                job = await self.get(job_id)  # after registering: an end notified meanwhile is not missed
                if job is None or job.status not in ("queued", "running"):
                    return
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    return
            finally:
                waiting = self._waiters.get(job_id, set())
                waiting.discard(event)
                if not waiting:
                    self._waiters.pop(job_id, None)

    async def cancel(self, job_id: str) -> Job | None:
        async with self.db.transaction() as conn:
            await conn.execute(f"UPDATE jobs SET status = 'cancelled', updated = {NOW} WHERE id = %s "
                               "AND status IN ('queued', 'running')", (job_id,))
            await conn.execute("SELECT pg_notify('summarizer_jobs', %s)", (job_id,))
        return await self.get(job_id)

    async def results(self, job_id: str, status: str | None) -> AsyncIterator[bytes]:
        """The records, in input order, from a server-side cursor: any number in constant memory."""
        where = "job_id = %s" + (" AND status = %s" if status else "")
        params = (job_id, status) if status else (job_id,)
        async with self.db.transaction() as conn:
            async with conn.cursor(name="results_" + secrets.token_hex(4)) as cursor:
                await cursor.execute(f"SELECT record FROM results WHERE {where} ORDER BY line", params)
                while rows := await cursor.fetchmany(500):
                    yield b"".join(bytes(record) + b"\n" for (record,) in rows)

    async def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for status, n in await self.db.rows("SELECT status, count(*) FROM jobs GROUP BY status"):
            if status in counts:
                counts[status] = n
        return counts

    async def problem(self) -> str | None:
        from ..queue import QueueUnavailable

        try:
            await asyncio.wait_for(self.db.rows("SELECT 1", timeout=2), 3)
        except (QueueUnavailable, TimeoutError) as exc:
            return str(exc) or "the job database did not answer within 3 s"
        return None

    # -- notifications ---------------------------------------------------------------------------

    def _note(self, channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiting in self._waiters.values():
            for event in waiting:
                event.set()
