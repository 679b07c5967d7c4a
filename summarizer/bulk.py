"""Bulk runs: a stream of documents through one task, concurrently, into a sink.

At most ``concurrency`` documents are in flight (never more than the backend
can take at once: one for the embedded model), input is pulled only as fast
as results leave, and every item ends as exactly one record: a Result, or a
Failure naming why — a bad record, a document that failed, even a bug costs
one document, never the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .backends import Backend
from .cache import ResultCache
from .errors import UsageError
from .limits import Pacer
from .pipeline import DocumentPipeline, failure
from .schemas import Record, Usage
from .sinks import JsonlSink
from .sources import BulkItem

__all__ = ["BulkRunner", "BulkSummary", "Tally", "failure", "run_bulk"]  # failure: the pipeline's, here too

log = logging.getLogger(__name__)

_END = object()


@dataclass
class Tally:
    """The records a run wrote and skipped, counted the same way by every driver (direct, batch, Ray)."""

    ok: int = 0
    failed: int = 0
    unsupported: int = 0  # of the ok, documents with content the source does not back (warnings about it)
    cached: int = 0
    skipped: int = 0
    skipped_failed: int = 0  # of the skipped, error records already in the output
    failed_by_code: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)
    wall_s: float = 0.0

    def add(self, record: Record) -> None:
        if record.status == "ok":
            self.ok += 1
            self.unsupported += record.unsupported > 0
        else:
            self.failed += 1
            code = record.error.code if record.error else "error"
            self.failed_by_code[code] = self.failed_by_code.get(code, 0) + 1
        self.cached += record.cached
        self.usage.add(record.usage)

    def counts(self) -> dict[str, Any]:
        """The shared head of every summary's ``--json``."""
        return {"ok": self.ok, "failed": self.failed, "failed_by_code": self.failed_by_code,
                "unsupported": self.unsupported, "cached": self.cached,
                "skipped": self.skipped, "skipped_failed": self.skipped_failed, **self.usage.model_dump()}


@dataclass
class BulkSummary(Tally):
    """What a bulk run did, for the final table and ``--json``."""

    throttled: int = 0
    concurrency: int = 0
    cache_problem: str | None = None

    def add(self, record: Record) -> None:
        super().add(record)
        self.wall_s = time.monotonic() - self.started

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def complete(self) -> bool:
        """Every input id has an ok record (this run's or an earlier one's)."""
        return self.failed == 0 and self.skipped_failed == 0

    @property
    def docs_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(), "throttled": self.throttled, "concurrency": self.concurrency,
            "cache_problem": self.cache_problem, "wall_s": round(self.wall_s, 3),
            "docs_per_s": round(self.docs_per_s, 3),
        }


class BulkRunner:
    """Runs one pipeline over many items with bounded concurrency."""

    def __init__(self, pipeline: DocumentPipeline, *, concurrency: int = 16, limiter: Pacer | None = None) -> None:
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        self.pipeline, self.limiter = pipeline, limiter
        self.task = pipeline.task
        self.requested_concurrency = concurrency
        self.concurrency = min(concurrency, pipeline.backend.max_concurrency or concurrency)

    @property
    def cache(self) -> ResultCache | None:
        return self.pipeline.cache

    @property
    def backend(self) -> Backend:
        return self.pipeline.backend

    async def results(self, items: Iterable[BulkItem] | AsyncIterable[BulkItem]) -> AsyncGenerator[Record, None]:
        """Records in completion order; at most ``concurrency`` documents in flight or waiting."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.concurrency)
        gate = asyncio.Semaphore(self.concurrency)
        closing = asyncio.Event()

        async def feed() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for item in _aiter(items):
                        await gate.acquire()
                        group.create_task(self._process(item, gate, queue))
            finally:
                # The end marker is for a reader; one that has gone (a cancelled job, a stopping
                # server) leaves the queue full, and waiting for room would hang its close forever.
                if not closing.is_set():
                    await queue.put(_END)

        await self._prime()
        feeder = asyncio.create_task(feed())
        try:
            while (record := await queue.get()) is not _END:
                yield record
        finally:
            closing.set()
            if not feeder.done():
                feeder.cancel()
            try:
                await feeder
            except asyncio.CancelledError:
                pass

    async def _prime(self) -> None:
        # Set-up the first request would otherwise do while others wait on their permits.
        # Only an optimisation: a run whose priming fails goes on, the first request finds out.
        try:
            await self.backend.prime()
        except Exception:  # noqa: BLE001
            log.debug("priming the backend failed", exc_info=True)

    async def _process(self, item: BulkItem, gate: asyncio.Semaphore, queue: asyncio.Queue[Any]) -> None:
        try:
            await queue.put(await self.record(item))
        finally:
            gate.release()

    async def record(self, item: BulkItem) -> Record:
        """One item's record: from the cache, from the model, or a Failure."""
        return await self.pipeline.record(item)


async def _aiter(items: Iterable[BulkItem] | AsyncIterable[BulkItem]) -> AsyncIterator[BulkItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def run_bulk(
    runner: BulkRunner, items: Iterable[BulkItem], sink: JsonlSink,
    on_record: Callable[[Record, BulkSummary], None] | None = None,
) -> BulkSummary:
    """Skip what ``sink`` already holds, run the rest, write every record; return the summary."""
    summary = BulkSummary(concurrency=runner.concurrency)

    def pending() -> Iterator[BulkItem]:
        for item in items:
            if sink.skip(item.id):
                summary.skipped += 1
                summary.skipped_failed += sink.done[item.id] == "error"
            else:
                yield item

    try:
        # aclosing: a failed write stops the run here, with every task finished, before the sink closes.
        async with contextlib.aclosing(runner.results(pending())) as records:
            async for record in records:
                record = sink.write(record)
                summary.add(record)
                if on_record is not None:
                    on_record(record, summary)
    finally:
        sink.close()
        summary.throttled = runner.limiter.throttled if runner.limiter else 0
        summary.cache_problem = runner.cache.problem if runner.cache else None
        summary.wall_s = time.monotonic() - summary.started
    return summary
