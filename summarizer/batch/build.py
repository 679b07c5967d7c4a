"""Round 1 and every round's submission: requests rendered as direct mode would send them, in files, in batches.

Every document's first requests are rendered exactly as direct mode would
send them (the same body, structured-output mode included) and kept in the
state; each round writes the pending ones into request files within the
provider's limits — streamed, so memory stays flat however many — uploads them
and creates a batch per file. A file uploaded before a crash is found again
and batched, never uploaded twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..documents import Document
from ..errors import ProviderError, SummarizerError
from ..pipeline import failure
from ..sinks import JsonlSink
from ..sources import BulkItem
from ..tasks import Request
from .context import BatchLimits, RunContext
from .provider import Provider
from .state import BatchState, RequestRow

__all__ = ["Builder", "custom_id", "is_limit", "line", "write_files"]

_CHUNK = 500  # documents per state transaction while building
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,40}")
_LIMIT_WORDS = ("limit", "maximum", "at most", "too large", "too many", "too_many", "exceed")


class Builder:
    """Queues documents' requests and puts pending requests into batches."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def build(self, items: Iterator[BulkItem], state: BatchState, sink: JsonlSink) -> None:
        """Every document's first requests into the state (or its record into OUT: unreadable, cached)."""
        run, pipeline = self.run, self.run.pipeline
        chunk: list[tuple[BulkItem, Document]] = []
        for item in items:
            if sink.skip(item.id):
                run.summary.skipped += 1
                run.summary.skipped_failed += sink.done[item.id] == "error"
                continue
            if state.has_doc(item.id):
                continue  # queued by an earlier, interrupted build
            item = await pipeline.prepared(item)
            if item.document is None:
                run.write(sink, pipeline.unreadable(item))
                continue
            hit = pipeline.cached(item.id, item.document)
            if hit is not None:
                run.write(sink, hit)
                continue
            chunk.append((item, item.document))
            if len(chunk) >= _CHUNK:
                self._queue(chunk, state, sink)
                chunk = []
        self._queue(chunk, state, sink)

    def _queue(self, chunk: list[tuple[BulkItem, Document]], state: BatchState, sink: JsonlSink) -> None:
        pipeline = self.run.pipeline
        with state.transaction():
            for item, document in chunk:
                task_run = pipeline.start(document)
                try:
                    requests = task_run.start()
                except SummarizerError as exc:
                    self.run.write(sink, failure(item.id, pipeline.task, exc, pipeline.backend.model))
                    continue
                state.add_doc(item.id, document.to_state(), task_run.snapshot())
                for request in requests:
                    add_request(state, item.id, request, self.run.body(request), round_=1)

    async def submit(self, state: BatchState, provider: Provider, round_: int) -> None:
        """Put every pending request into batches: staged files first (a crash after upload), then new files."""
        for file_id, custom_ids in (state.get("staged") or {}).items():
            await self._create(state, provider, file_id, custom_ids, round_)
        with tempfile.TemporaryDirectory() as tmp:
            files = write_files(state.pending(round_), Path(tmp), f"{state.get('run_id')}-r{round_}", self.run.limits)
            for path, custom_ids in files:  # written first, from a stream: memory stays flat however many
                try:
                    file_id = await provider.upload(path)
                except ProviderError as exc:
                    if not is_limit({"message": str(exc)}) or len(custom_ids) < 2:
                        raise
                    self.run.halve(state, len(custom_ids), path.stat().st_size, str(exc))
                    return await self.submit(state, provider, round_)  # the rest, in smaller files
                path.unlink()
                with state.transaction():
                    for custom in custom_ids:
                        state.set_request(custom, status="staged", batch=file_id)
                    state.set("staged", {**(state.get("staged") or {}), file_id: custom_ids})
                await self._create(state, provider, file_id, custom_ids, round_)

    async def _create(self, state: BatchState, provider: Provider, file_id: str, custom_ids: list[str],
                      round_: int) -> None:
        metadata = {"summarizer_run": str(state.get("run_id")), "round": str(round_)}
        info = await provider.find(file_id, str(state.get("run_id"))) or await provider.create(file_id, metadata)
        with state.transaction():
            state.add_batch(info["id"], round_, file_id, len(custom_ids), info)
            for custom in custom_ids:
                state.set_request(custom, status="submitted", batch=info["id"])
            staged = dict(state.get("staged") or {})
            staged.pop(file_id, None)
            state.set("staged", staged)
            state.tally(round_, requests=len(custom_ids))
        self.run.summary.batches += 1
        self.run.summary.submitted += len(custom_ids)


def add_request(state: BatchState, doc_id: str, request: Request, body: dict[str, Any], *, round_: int) -> None:
    state.add_request(custom_id(doc_id, request), doc_id, round_, request.to_state(), body)


def custom_id(doc_id: str, request: Request) -> str:
    """``<id>/<slot>/<reasks>`` when the id is short and plain, else a digest (the state maps it back)."""
    base = doc_id if _SAFE_ID.fullmatch(doc_id) else "h" + hashlib.sha256(doc_id.encode()).hexdigest()[:24]
    return f"{base}/{request.slot}/{request.reasks}"


def line(row: RequestRow) -> bytes:
    """A request file's line for ``row``."""
    return json.dumps({"custom_id": row.custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": row.body}, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def write_files(rows: Iterator[RequestRow], folder: Path, stem: str,
                limits: BatchLimits) -> list[tuple[Path, list[str]]]:
    """The request lines in files within the per-file request and byte limits; each file's custom ids."""
    files: list[tuple[Path, list[str]]] = []
    handle = None
    size = 0
    try:
        for row in rows:
            text = line(row)
            if handle is None or len(files[-1][1]) >= limits.max_requests or size + len(text) > limits.max_bytes:
                if handle is not None:
                    handle.close()
                files.append((folder / f"{stem}-{len(files) + 1}.jsonl", []))
                handle, size = files[-1][0].open("wb"), 0
            handle.write(text)
            size += len(text)
            files[-1][1].append(row.custom_id)
    finally:
        if handle is not None:
            handle.close()
    return files


def is_limit(error: dict[str, Any]) -> bool:
    """A refusal for size (requests, bytes or tokens in one file): a smaller file can pass."""
    text = f"{error.get('code') or ''} {error.get('message') or ''}".lower()
    return any(word in text for word in _LIMIT_WORDS)
