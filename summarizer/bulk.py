"""Bulk runs: a stream of documents through one task, concurrently, to JSONL.

Input is read lazily and results are written as they arrive, so memory stays
bounded whatever the corpus size. Nothing is ever lost: a record that cannot
be read becomes an error record, a document that fails becomes an error
record, and a rerun with the same output file resumes where the last run
stopped (``retry_failed`` redoes only the error records).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .cache import ResultCache
from .documents import Document, read_document
from .errors import InputError, SummarizerError
from .limits import RateLimiter
from .prompts import PromptLibrary
from .llm import Backend
from .schemas import ErrorInfo, Result, Usage
from .tasks import TaskName, TaskOptions, result_cache_key, run_task

__all__ = [
    "BulkItem", "BulkRunner", "BulkSummary", "JsonlSink", "as_items", "read_folder", "read_jsonl", "read_source",
]

FOLDER_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm"})
_HEAD = re.compile(rb'^\{"id":("(?:[^"\\]|\\.)*"),"task":"\w+","status":"(ok|error)"')
_END = object()


@dataclass(frozen=True)
class BulkItem:
    """One input record: a readable document, or the reason it is not one."""

    id: str
    document: Document | None = None
    error: ErrorInfo | None = None


# --- input ---------------------------------------------------------------------------


def read_source(source: str | Path, *, id_field: str = "id", text_field: str = "text") -> Iterator[BulkItem]:
    """Items from a JSONL file, ``-`` (JSONL on stdin) or a folder of documents."""
    if str(source) == "-":
        return read_jsonl(sys.stdin.buffer, id_field=id_field, text_field=text_field)
    path = Path(source)
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise InputError(f"{source}: no such file or folder")
    return _read_jsonl_file(path, id_field, text_field)


def _read_jsonl_file(path: Path, id_field: str, text_field: str) -> Iterator[BulkItem]:
    with path.open("rb") as lines:
        yield from read_jsonl(lines, id_field=id_field, text_field=text_field)


def read_jsonl(lines: Iterable[bytes | str], *, id_field: str = "id", text_field: str = "text") -> Iterator[BulkItem]:
    """One item per non-blank line. Records without an id get ``line-N``."""
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield _record(line, number, id_field, text_field, seen)


def _record(line: bytes | str, number: int, id_field: str, text_field: str, seen: set[str]) -> BulkItem:
    fallback = f"line-{number}"
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return BulkItem(fallback, error=ErrorInfo(code="invalid_record", message=f"line {number}: not valid JSON"))
    if not isinstance(record, dict):
        return BulkItem(fallback, error=ErrorInfo(code="invalid_record", message=f"line {number}: not a JSON object"))
    raw_id = record.get(id_field)
    doc_id = str(raw_id) if raw_id not in (None, "") else fallback
    if doc_id in seen:
        return BulkItem(f"{doc_id}#line-{number}", error=ErrorInfo(
            code="duplicate_id", message=f"line {number}: id {doc_id!r} appeared on an earlier line"))
    seen.add(doc_id)
    text = record.get(text_field)
    if not isinstance(text, str):
        return BulkItem(doc_id, error=ErrorInfo(
            code="invalid_record", message=f"line {number}: no string field {text_field!r}"))
    try:
        return BulkItem(doc_id, document=Document.from_text(text, id=doc_id, source=f"line {number}"))
    except InputError as exc:
        return BulkItem(doc_id, error=ErrorInfo(code=exc.code, message=str(exc)))


def read_folder(root: Path) -> Iterator[BulkItem]:
    """Every .txt, .md and .html file under ``root``, in sorted order; ids are relative paths."""
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory, name)
            if path.suffix.lower() not in FOLDER_SUFFIXES:
                continue
            doc_id = path.relative_to(root).as_posix()
            try:
                yield BulkItem(doc_id, document=read_document(path, id=doc_id))
            except InputError as exc:
                yield BulkItem(doc_id, error=ErrorInfo(code=exc.code, message=str(exc)))


def as_items(documents: Iterable[Any]) -> Iterator[BulkItem]:
    """Accept what a library caller has: Documents, strings, (id, text) pairs, dicts or BulkItems."""
    for number, entry in enumerate(documents, 1):
        if isinstance(entry, BulkItem):
            yield entry
        elif isinstance(entry, Document):
            yield BulkItem(entry.id, document=entry)
        elif isinstance(entry, dict):
            yield _record(json.dumps(entry), number, "id", "text", set())
        else:
            doc_id, text = entry if isinstance(entry, tuple) else (None, entry)
            try:
                document = Document.from_text(text, id=doc_id and str(doc_id))
                yield BulkItem(document.id, document=document)
            except InputError as exc:
                yield BulkItem(str(doc_id or f"item-{number}"), error=ErrorInfo(code=exc.code, message=str(exc)))


# --- output --------------------------------------------------------------------------


class JsonlSink:
    """Append-only JSONL: whole lines, flushed one by one, fsynced at least every second.

    Opening an existing file repairs a torn last line (a crash mid-write) and
    learns which ids it already holds, so a rerun can skip them.
    """

    def __init__(self, target: str | Path, *, retry_failed: bool = False, fsync_every: float = 1.0) -> None:
        self.done: dict[str, str] = {}
        self.repaired = False
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()
        if str(target) == "-":
            self._file: IO[bytes] = sys.stdout.buffer
            self._owned = False
            return
        path = Path(target)
        if path.exists():
            self.done, self.repaired = _prepare_existing(path, retry_failed)
        self._file = path.open("ab")
        self._owned = True

    def skip(self, item_id: str) -> bool:
        return item_id in self.done

    def write(self, result: Result[Any]) -> None:
        self._file.write(result.model_dump_json().encode("utf-8") + b"\n")
        self._file.flush()
        if self._owned and time.monotonic() - self._last_sync >= self._fsync_every:
            os.fsync(self._file.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        self._file.flush()
        if self._owned:
            os.fsync(self._file.fileno())
            self._file.close()


def _prepare_existing(path: Path, retry_failed: bool) -> tuple[dict[str, str], bool]:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    repaired = end != len(data)
    keep: list[bytes] = []
    done: dict[str, str] = {}
    for line in data[:end].splitlines():
        parsed = _id_and_status(line)
        if parsed is None:
            repaired = True  # not one of our records: drop it
            continue
        if retry_failed and parsed[1] == "error":
            continue
        done[parsed[0]] = parsed[1]
        keep.append(line)
    if repaired or retry_failed:
        _replace(path, b"".join(line + b"\n" for line in keep))
    return done, repaired


def _id_and_status(line: bytes) -> tuple[str, str] | None:
    match = _HEAD.match(line)
    if match:
        return json.loads(match.group(1)), match.group(2).decode()
    try:
        record = json.loads(line)
        return str(record["id"]), str(record["status"])
    except (ValueError, KeyError, TypeError):
        return None


def _replace(path: Path, content: bytes) -> None:
    temp = path.with_name(path.name + ".tmp")
    with temp.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


# --- the run -------------------------------------------------------------------------


@dataclass
class BulkSummary:
    """What a bulk run did, for the final table and ``--json``."""

    ok: int = 0
    failed: int = 0
    cached: int = 0
    skipped: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    throttled: int = 0
    started: float = field(default_factory=time.monotonic)
    wall_s: float = 0.0

    def add(self, result: Result[Any]) -> None:
        if result.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
            code = result.error.code if result.error else "error"
            self.failed_by_code[code] = self.failed_by_code.get(code, 0) + 1
        self.cached += result.cached
        self.usage.add(result.usage)
        self.wall_s = time.monotonic() - self.started

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def docs_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "failed": self.failed, "failed_by_code": self.failed_by_code,
            "cached": self.cached, "skipped": self.skipped, **self.usage.model_dump(),
            "throttled": self.throttled, "wall_s": round(self.wall_s, 3), "docs_per_s": round(self.docs_per_s, 2),
        }


class BulkRunner:
    """Runs one task over many items with bounded concurrency, a rate limiter and a cache."""

    def __init__(
        self, backend: Backend, prompts: PromptLibrary, task: TaskName, options: TaskOptions, *,
        concurrency: int = 16, cache: ResultCache | None = None, limiter: RateLimiter | None = None,
        temperature: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise InputError("concurrency must be at least 1")
        self.backend, self.prompts, self.task, self.options = backend, prompts, task, options
        self.concurrency, self.cache, self.temperature = concurrency, cache, temperature
        self.limiter = limiter or RateLimiter()
        backend.limiter = self.limiter

    async def results(self, items: Iterable[BulkItem] | AsyncIterable[BulkItem]) -> AsyncIterator[Result[Any]]:
        """Results in completion order; at most ``concurrency`` documents in flight or waiting."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.concurrency)
        gate = asyncio.Semaphore(self.concurrency)

        async def feed() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for item in _aiter(items):
                        await gate.acquire()
                        group.create_task(self._process(item, gate, queue))
            finally:
                await queue.put(_END)

        feeder = asyncio.create_task(feed())
        try:
            while (result := await queue.get()) is not _END:
                yield result
        finally:
            if not feeder.done():
                feeder.cancel()
            try:
                await feeder
            except asyncio.CancelledError:
                pass

    async def _process(self, item: BulkItem, gate: asyncio.Semaphore, queue: asyncio.Queue[Any]) -> None:
        try:
            await queue.put(await self._result(item))
        finally:
            gate.release()

    async def _result(self, item: BulkItem) -> Result[Any]:
        if item.document is None:
            return Result[Any](id=item.id, task=self.task, status="error", error=item.error)
        key = None
        if self.cache is not None:
            key = result_cache_key(self.task, item.document, self.options, self.prompts,
                                   self.backend.model, self.temperature)
            hit = self.cache.get(key)
            if hit is not None:
                return Result[Any](id=item.id, task=self.task, status="ok", cached=True, **hit)
        try:
            result = await run_task(self.task, item.document, self.backend, self.prompts, self.options)
        except SummarizerError as exc:
            return _error_result(item.id, self.task, exc.code, str(exc), exc.usage,
                                 getattr(exc, "raw_output", None), self.backend.model)
        except Exception as exc:  # a bug must cost one document, not the run
            return _error_result(item.id, self.task, "internal_error", f"{type(exc).__name__}: {exc}",
                                 None, None, self.backend.model)
        if key is not None:
            self.cache.put(key, result.model_dump(
                mode="json", include={"value", "warnings", "model", "prompt_version"}))
        return result


def _error_result(
    doc_id: str, task: TaskName, code: str, message: str, usage: Usage | None, raw: str | None, model: str
) -> Result[Any]:
    return Result[Any](
        id=doc_id, task=task, status="error", error=ErrorInfo(code=code, message=message, raw_output=raw),
        usage=usage or Usage(), model=model,
    )


async def _aiter(items: Iterable[BulkItem] | AsyncIterable[BulkItem]) -> AsyncIterator[BulkItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def run_bulk(
    runner: BulkRunner, items: Iterable[BulkItem], sink: JsonlSink,
    on_result: Callable[[Result[Any], BulkSummary], None] | None = None,
) -> BulkSummary:
    """Skip what ``sink`` already holds, run the rest, write every result; return the summary."""
    summary = BulkSummary()

    def pending() -> Iterator[BulkItem]:
        for item in items:
            if sink.skip(item.id):
                summary.skipped += 1
            else:
                yield item

    try:
        async for result in runner.results(pending()):
            sink.write(result)
            summary.add(result)
            if on_result is not None:
                on_result(result, summary)
    finally:
        sink.close()
        summary.throttled = runner.limiter.throttled
        summary.wall_s = time.monotonic() - summary.started
    return summary
