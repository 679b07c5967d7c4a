"""A worker: claims documents from the PostgreSQL store, runs them through the pipeline, writes their records.

Claims take up to a batch of open documents (``FOR UPDATE SKIP LOCKED``: workers
never wait on each other's rows) and *lease* them: the row says which worker holds
it and until when. A heartbeat extends the leases every third of their length; a
worker that dies stops extending them, and once they lapse any worker claims
those documents again. A record is written in the same transaction that marks its
document done, and only if it was not done already, so a document has exactly
one record even when two workers ran it (a lapsed lease whose holder was only
slow). Finished records are written in batches (one transaction for many), and
the job's counters are added once per batch, not per document. A worker holds at
most ``max_held`` documents leased and unwritten (4 × its concurrency): when the
database writes slower than the model answers it stops claiming, so a SIGKILL
costs at most that many documents run again.

Locks are always taken in one order — a document's row, then its result, then its
job's row — by the claim, the write and the cancel alike.

SIGTERM (``stop_taking`` then ``stop``): no new claims; what is in hand finishes
within the drain and is written; what is left is handed back at once (its lease
cleared), so another worker takes it without waiting for the lease to lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...cache import ResultCache
from ...client import Summarizer
from ...errors import SummarizerError
from ...limits import Pacer
from ...pipeline import DocumentPipeline
from ...schemas import ErrorInfo, Failure, Record, Usage, writable
from ...sources import BulkItem
from ..jobs import job_date, read_line, read_url
from ..parsing import ParsePool
from ..queue import QueueUnavailable
from .db import NOW
from .pool import Database, listen

__all__ = ["Worker"]

log = logging.getLogger("summarizer")
_INLINE = 64 * 1024  # documents up to this size come with their claim; larger ones are read one by one


@dataclass
class _Claim:
    job_id: str
    line: int
    raw: bytes | None  # None: a large document, read when its turn comes (not a batch of them at once)
    dup: bool


class Worker:
    """Runs documents of any job in the store, ``concurrency`` at a time."""

    def __init__(self, url: str, summarizer: Summarizer, parse_pool: ParsePool, data_dir: Path, *,
                 concurrency: int = 16, pacer: Pacer | None = None, lease_seconds: float = 30.0,
                 flush_every: float = 0.2, on_record: Callable[[Record], None] | None = None,
                 db: Database | None = None, max_held: int | None = None) -> None:
        self.url, self.summarizer, self.parse_pool, self.data_dir = url, summarizer, parse_pool, data_dir
        self.db = db or Database(url, size=4)
        self._own_db = db is None
        self.concurrency, self.pacer, self.lease = concurrency, pacer, lease_seconds
        self.flush_every, self.on_record = flush_every, on_record
        # Documents leased and not yet written, at most: when the database writes slower than the model
        # answers, the worker stops claiming instead of hoarding (all of it runs again if it dies).
        self.max_held = max_held or 4 * concurrency
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._held: set[tuple[str, int]] = set()  # leased to this worker and not yet written or handed back
        self._done: list[tuple[str, int, Record]] = []
        self._pipelines: OrderedDict[str, tuple[DocumentPipeline, str]] = OrderedDict()
        self._wake = asyncio.Event()  # work may be there (a notification, a finished document)
        self._stopping = asyncio.Event()
        self._background: list[asyncio.Task[Any]] = []
        self.claimed = self.written = self.dropped = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and run documents until ``stop_taking``; then finish what is in hand and hand back the rest."""
        if self._own_db:
            await self.db.open()
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._heartbeat()), loop.create_task(self._flusher()),
                            loop.create_task(listen(self.url, ("summarizer_work", "summarizer_jobs"), self._note,
                                                    on_connect=self._wake.set))]
        try:
            await self._loop()
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            for pipeline, _ in self._pipelines.values():
                if pipeline.cache is not None:
                    pipeline.cache.close()
            if self._own_db:
                await self.db.close()

    def stop_taking(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def stop(self, drain: float = 15.0) -> None:
        """Finish what is in hand (up to ``drain`` s), write it, hand back the rest."""
        self.stop_taking()
        deadline = time.monotonic() + drain
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=drain)
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        while self._done:
            try:
                await self._write_all()
            except QueueUnavailable as exc:
                if time.monotonic() >= deadline:
                    # Not lost: their documents are still leased to this worker, and run again once it lapses.
                    log.warning("worker %s: %d record(s) not written (%s); their documents will run again",
                                self.name, len(self._done), exc)
                    break
                await asyncio.sleep(0.5)
        await self._hand_back()

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            self._wake.clear()
            free = self._room()
            claims: list[_Claim] = []
            if free >= max(1, self.concurrency // 4):
                try:
                    claims = await self._claim(free)
                    backoff = 0.5
                except QueueUnavailable as exc:
                    log.warning("worker %s: %s; retrying in %g s", self.name, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
                except Exception as exc:  # noqa: BLE001 — a bug costs a pause, never the worker
                    log.error("worker %s: claiming failed (%s: %s)", self.name, type(exc).__name__, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
            for claim in claims:
                try:
                    pipeline = await self._pipeline(claim.job_id)
                except QueueUnavailable:
                    await self._give_back([claim])
                    continue
                task = asyncio.get_running_loop().create_task(self._run(claim, pipeline))
                self._tasks[(claim.job_id, claim.line)] = task
            if not claims or free - len(claims) <= 0:
                # Nothing more to claim now: wait for a notification, a finished document, or
                # (for leases of dead workers lapsing) a third of a lease.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.lease / 3)
        await self.stop()

    def _room(self) -> int:
        """How many documents to claim now: free run slots, within what may be held unwritten."""
        return max(0, min(self.concurrency - len(self._tasks), self.max_held - len(self._held)))

    async def _claim(self, limit: int) -> list[_Claim]:
        async with self.db.transaction() as conn:
            rows = await (await conn.execute(
                f"""WITH picked AS (
                    SELECT d.job_id, d.line FROM documents d JOIN jobs j ON j.id = d.job_id
                    WHERE NOT d.done AND (d.worker IS NULL OR d.lease_until < {NOW})
                      AND j.status IN ('queued', 'running')
                    ORDER BY j.created, d.job_id, d.line LIMIT %(n)s FOR UPDATE OF d SKIP LOCKED)
                UPDATE documents d SET worker = %(me)s, lease_until = {NOW} + %(lease)s, attempts = d.attempts + 1
                FROM picked WHERE d.job_id = picked.job_id AND d.line = picked.line
                RETURNING d.job_id, d.line, CASE WHEN octet_length(d.raw) <= %(inline)s THEN d.raw END, d.dup""",
                {"n": limit, "me": self.name, "lease": self.lease, "inline": _INLINE})).fetchall()
            jobs = sorted({row[0] for row in rows})
            if jobs:
                await conn.execute(f"UPDATE jobs SET status = 'running', started = {NOW}, updated = {NOW} "
                                   "WHERE id = ANY(%s) AND status = 'queued'", (jobs,))
        self.claimed += len(rows)
        self._held.update((job_id, line) for job_id, line, _, _ in rows)
        return [_Claim(job_id, line, None if raw is None else bytes(raw), dup) for job_id, line, raw, dup in rows]

    async def _pipeline(self, job_id: str) -> DocumentPipeline:
        if job_id in self._pipelines:
            self._pipelines.move_to_end(job_id)
            return self._pipelines[job_id][0]
        rows = await self.db.rows("SELECT owner, task, options FROM jobs WHERE id = %s", (job_id,))
        owner, task, stored = rows[0]
        options = json.loads(stored)  # text, not jsonb: JSON's \u0000 is a string jsonb refuses
        words = tuple(options["words"]) if options.get("words") else None
        chosen = self.summarizer.options(words=words, language=options.get("language"),
                                         strict=bool(options.get("strict")), verify=bool(options.get("verify")))
        cache = ResultCache(self.data_dir / "cache" / f"{owner}.sqlite3")
        pipeline = self.summarizer.pipeline(task, chosen, cache=cache, pacer=self.pacer)
        pool, summarizer = self.parse_pool, self.summarizer
        pipeline.url_reader = lambda url, doc_id, published: read_url(pool, summarizer, url, doc_id, published)
        self._pipelines[job_id] = (pipeline, json.dumps(options.get("published")))
        while len(self._pipelines) > 8:
            evicted, (old, _) = self._pipelines.popitem(last=False)
            if old.cache is not None and not any(key[0] == evicted for key in self._tasks):
                old.cache.close()  # (one still in use is closed by the collector when its tasks end)
        return pipeline

    async def _run(self, claim: _Claim, pipeline: DocumentPipeline) -> None:
        key, answered = (claim.job_id, claim.line), False
        try:
            published = job_date(json.loads(self._pipelines[claim.job_id][1]) if claim.job_id in self._pipelines
                                 else None)
            raw = claim.raw
            if raw is None:
                rows = await self.db.rows("SELECT raw FROM documents WHERE job_id = %s AND line = %s",
                                          (claim.job_id, claim.line))
                raw = bytes(rows[0][0])
            item = await read_line(self.parse_pool, raw, claim.line, published, in_flight=True)
            if claim.dup:
                item = BulkItem(f"{item.id}#line-{claim.line}", error=ErrorInfo(
                    code="duplicate_id", message=f"line {claim.line}: id {item.id!r} appeared on an earlier line"))
            record = await pipeline.record(item)
            self._done.append((claim.job_id, claim.line, record))
            answered = True
            if self.on_record is not None:
                self.on_record(record)
        finally:
            self._tasks.pop(key, None)
            if not answered:  # (the database went away mid-read): not renewed, its lease lapses, it runs again
                self._held.discard(key)
            self._wake.set()

    # -- writing records -----------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            try:
                await self._write_all()
            except QueueUnavailable:
                pass  # kept, written when the database is back
            except Exception as exc:  # noqa: BLE001 — the writer must outlive a bug
                log.error("worker %s: writing records failed (%s)", self.name, type(exc).__name__)

    async def _write_all(self) -> None:
        while self._done:
            batch, self._done = self._done, []
            try:
                await self._write(batch)
            except QueueUnavailable:
                self._done = batch + self._done  # kept: written when the database is back
                raise
            except Exception as exc:  # noqa: BLE001 — a row the database refuses must not stall the rest
                log.error("worker %s: a batch of records was refused (%s); writing them one by one",
                          self.name, type(exc).__name__)
                await self._write_singly(batch)
            self._wake.set()  # written: room to claim again (the loop may be waiting on max_held)

    async def _write_singly(self, batch: list[tuple[str, int, Record]]) -> None:
        """Each record alone; one the database still refuses becomes its document's error record."""
        for at, (job_id, line, record) in enumerate(batch):
            try:
                await self._write([(job_id, line, record)])
            except QueueUnavailable:
                self._done = batch[at:] + self._done
                raise
            except Exception as exc:  # noqa: BLE001
                stand_in = Failure(id=record.id, task=record.task, error=ErrorInfo(
                    code="internal_error", message=f"the record could not be stored ({type(exc).__name__}); it was logged"))
                await self._write([(job_id, line, stand_in)])

    async def _write(self, batch: list[tuple[str, int, Record]]) -> None:
        """One transaction: documents done (in line order), their records, the jobs' counters, jobs ended."""
        batch.sort(key=lambda entry: (entry[0], entry[1]))
        by_job: dict[str, list[tuple[int, Record]]] = {}
        for job_id, line, record in batch:
            by_job.setdefault(job_id, []).append((line, record))
        ended: list[str] = []
        async with self.db.transaction() as conn:
            for job_id, entries in by_job.items():
                lines = [line for line, _ in entries]
                fresh = {row[0] for row in await (await conn.execute(
                    "UPDATE documents d SET done = true, worker = NULL, lease_until = NULL FROM "
                    "(SELECT line FROM documents WHERE job_id = %s AND line = ANY(%s) AND NOT done ORDER BY line "
                    "FOR UPDATE) o WHERE d.job_id = %s AND d.line = o.line RETURNING d.line",
                    (job_id, lines, job_id))).fetchall()}
                rows, usage, ok, failed, unsupported = [], Usage(), 0, 0, 0
                for line, record in entries:
                    if line not in fresh:
                        self.dropped += 1  # another worker wrote it first (this one's lease had lapsed)
                        continue
                    record, text = writable(record)
                    doc_id = record.id.replace("\x00", "\ufffd")  # a text column holds no NUL (the record keeps it)
                    rows.append((job_id, line, doc_id, record.status, text.encode("utf-8")))
                    usage.add(record.usage)
                    ok += record.status == "ok"
                    failed += record.status != "ok"
                    unsupported += record.status == "ok" and record.unsupported > 0
                if not rows:
                    continue
                async with conn.cursor().copy("COPY results (job_id, line, doc_id, status, record) FROM STDIN") as copy:
                    for row in rows:
                        await copy.write_row(row)
                self.written += len(rows)
                done = await (await conn.execute(
                    f"UPDATE jobs SET ok = ok + %(ok)s, failed = failed + %(failed)s, "
                    f"unsupported = unsupported + %(unsupported)s, updated = {NOW}, "
                    "usage = (SELECT jsonb_object_agg(k, coalesce((usage->>k)::bigint, 0) + (%(u)s::jsonb->>k)::bigint) "
                    "FROM jsonb_object_keys(%(u)s::jsonb) k), "
                    "status = CASE WHEN status = 'running' AND NOT EXISTS (SELECT 1 FROM documents WHERE job_id = "
                    "%(id)s AND NOT done) THEN 'completed' ELSE status END "
                    "WHERE id = %(id)s RETURNING status",
                    {"ok": ok, "failed": failed, "unsupported": unsupported, "u": usage.model_dump_json(), "id": job_id})).fetchone()
                if done is not None and done[0] == "completed":
                    ended.append(job_id)
            for job_id in ended:
                await conn.execute("SELECT pg_notify('summarizer_jobs', %s)", (job_id,))
        self._held.difference_update((job_id, line) for job_id, line, _ in batch)

    # -- leases ----------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._renew()
                await self._drop_cancelled()
            except QueueUnavailable as exc:
                log.warning("worker %s: heartbeat: %s", self.name, exc)
            except Exception as exc:  # noqa: BLE001 — the heartbeat must outlive a bug, or leases lapse
                log.error("worker %s: heartbeat failed (%s)", self.name, type(exc).__name__)

    async def _renew(self) -> None:
        """Extend the leases of the documents in hand; hand back any other this worker's name is on.

        A claim whose answer was lost with the connection (the database committed it, this
        process never saw the rows) leaves documents under this name that nothing here runs:
        renewing every row with this name would keep them from every worker for ever.
        """
        held = sorted(self._held)
        jobs, lines = [job_id for job_id, _ in held], [line for _, line in held]
        async with self.db.transaction() as conn:
            await conn.execute(
                f"UPDATE documents d SET lease_until = CASE WHEN h.line IS NULL THEN NULL ELSE {NOW} + %(lease)s END, "
                "worker = CASE WHEN h.line IS NULL THEN NULL ELSE d.worker END "
                "FROM documents o LEFT JOIN unnest(%(jobs)s::text[], %(lines)s::int[]) AS h(job_id, line) "
                "ON h.job_id = o.job_id AND h.line = o.line "
                "WHERE o.worker = %(me)s AND NOT o.done AND d.job_id = o.job_id AND d.line = o.line",
                {"lease": self.lease, "jobs": jobs, "lines": lines, "me": self.name})

    async def _drop_cancelled(self, only: str | None = None) -> None:
        """Stop running documents of jobs that were cancelled, and hand them back."""
        held = sorted({job_id for job_id, _ in self._tasks} if only is None else {only})
        if not held:
            return
        rows = await self.db.rows("SELECT id FROM jobs WHERE id = ANY(%s) AND status = 'cancelled'", (held,))
        for (job_id,) in rows:
            for key, task in list(self._tasks.items()):
                if key[0] == job_id:
                    task.cancel()
            await self.db.rows("UPDATE documents SET worker = NULL, lease_until = NULL WHERE job_id = %s "
                               "AND worker = %s AND NOT done", (job_id, self.name))
            self._held = {key for key in self._held if key[0] != job_id}

    async def _hand_back(self) -> None:
        with contextlib.suppress(QueueUnavailable):
            async with self.db.transaction() as conn:
                await conn.execute("UPDATE documents SET worker = NULL, lease_until = NULL WHERE worker = %s "
                                   "AND NOT done", (self.name,))
                await conn.execute("SELECT pg_notify('summarizer_work', '')")
            self._held.clear()

    async def _give_back(self, claims: list[_Claim]) -> None:
        """Hand documents back now; with the database away, let their leases lapse (never renew them: a
        document held by name but run by nothing was renewed for ever, and its job never ended)."""
        for claim in claims:
            self._held.discard((claim.job_id, claim.line))
        with contextlib.suppress(QueueUnavailable):
            for claim in claims:
                await self.db.rows("UPDATE documents SET worker = NULL, lease_until = NULL WHERE job_id = %s AND "
                                   "line = %s AND worker = %s", (claim.job_id, claim.line, self.name))

    def _note(self, channel: str, payload: str) -> None:
        if channel == "summarizer_jobs" and any(key[0] == payload for key in self._tasks):
            task = asyncio.get_running_loop().create_task(self._drop_cancelled(payload))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        self._wake.set()

