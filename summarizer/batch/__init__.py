"""Bulk through the provider's Batch API: half the price, same pipeline, same Result JSONL.

Round 1 renders every document's first requests exactly as direct mode would
send them (the same body, structured-output mode included), splits them into
request files within the provider's limits, uploads them and creates batches.
Collecting reads the output and error files as streams and feeds each answer
to the document's TaskRun — the same validation, grounding and re-asks as
direct mode. What needs another request goes into the next round: re-asks
(carrying their errors), the combine step of a long document, answers lost to
a 5xx, requests missing from both files, the undone part of an expired or
cancelled batch. After ``max_rounds`` the stragglers become error records, or
(``finish="direct"``) are sent directly. Every input id ends in OUT exactly once.

State lives beside OUT (``state.py``): a killed run, rerun with the same
command, polls the batches it already made instead of making them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.base import Backend
from ..backends.openai import OpenAIBackend, parse_completion
from ..backends.retry import RetryPolicy
from ..bulk import Tally, failure
from ..cache import ResultCache, result_key
from ..documents import Document, fetch_document
from ..errors import ConfigError, OutputValidationError, ProviderError, SummarizerError, TransientError, UsageError
from ..fetch import FetchPolicy
from ..prompts import PromptLibrary
from ..schemas import Brief, ErrorInfo, EventReport, Failure, Record, Result, TaskName, Usage
from ..sinks import JsonlSink
from ..sources import BulkItem
from ..tasks import Request, TaskOptions, TaskRun, task_prompts
from .provider import Provider
from .state import BatchState, RequestRow, state_path

__all__ = ["BatchLimits", "BatchRunner", "BatchSummary", "batch_status", "cancel_batches", "state_path"]

Finish = Literal["batch", "direct"]
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,40}")
_RETRYABLE = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_RESULT: dict[TaskName, type[Result[Any]]] = {"brief": Result[Brief], "events": Result[EventReport]}
_CHUNK = 500  # lines per state transaction while collecting


@dataclass(frozen=True)
class BatchLimits:
    """Per input file: OpenAI's limits by default (50,000 requests, 200 MB), with a little room."""

    max_requests: int = 50_000
    max_bytes: int = 190 * 1024 * 1024


@dataclass
class BatchSummary(Tally):
    """What this invocation did, and where the run stands."""

    submitted: int = 0  # requests put into new batches
    batches: int = 0  # batches created
    pending: int = 0  # requests still waiting for an answer
    finished: bool = False  # every document has its record in OUT
    rounds: list[dict[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.finished and self.failed == 0 and self.skipped_failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(), "submitted": self.submitted, "batches": self.batches, "pending": self.pending, "finished": self.finished,
            "rounds": self.rounds, "wall_s": round(self.wall_s, 3),
        }


class BatchRunner:
    """One batch run over one output file."""

    def __init__(
        self, backend: Backend, prompts: PromptLibrary, task: TaskName, options: TaskOptions, out: Path, *,
        policy: RetryPolicy, cache: ResultCache | None = None, limits: BatchLimits = BatchLimits(),
        max_rounds: int = 3, finish: Finish = "batch", poll_interval: float = 10.0, max_poll_interval: float = 60.0,
        fetch_policy: FetchPolicy | None = None, input_path: Path | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_rounds < 1:
            raise UsageError("max_rounds must be at least 1")
        if not isinstance(backend, OpenAIBackend):
            raise ConfigError("the Batch API needs an OpenAI-compatible endpoint (--base-url/--model), "
                              "not the embedded model")
        self.backend, self.prompts, self.task, self.options, self.out = backend, prompts, task, options, out
        self.policy, self.cache, self.limits = policy, cache, limits
        self.max_rounds, self.finish = max_rounds, finish
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.fetch_policy, self.input_path = fetch_policy, input_path
        self.on_progress, self._sleep = on_progress, sleep
        self.summary = BatchSummary()
        self._fingerprints = [t.fingerprint for t in task_prompts(task, prompts)]

    async def run(self, items: Iterator[BulkItem] | None, *, wait: bool = True) -> BatchSummary:
        """Build (``items``; None: resume only), submit, and — with ``wait`` — poll and collect to the end."""
        sink = JsonlSink(self.out, input_path=self.input_path, task=self.task)
        state = BatchState(state_path(self.out))
        client = self.backend.client()
        provider = Provider(client, self.backend.endpoint, secrets=[self.backend.api_key or ""], sleep=self._sleep,
                            refused_wait=self.max_poll_interval)
        try:
            self._begin(state)
            if state.get("phase") == "build" and items is not None:
                await self._build(items, state, sink)
                state.set("phase", "rounds")
            await self._rounds(state, sink, provider, wait=wait)
        finally:
            self.summary.pending = state.count("pending") + state.count("submitted") + state.count("staged")
            self.summary.rounds = state.rounds()
            self.summary.wall_s = time.monotonic() - self.summary.started
            state.close()
            sink.close()
            await client.close()
        return self.summary

    # -- the run's identity -------------------------------------------------------------------------

    def _begin(self, state: BatchState) -> None:
        identity = {"task": self.task, "options": self.options.cache_parts(), "backend": self.backend.identity}
        known = state.get("identity")
        if known is None:
            state.set("run_id", "sum_" + secrets.token_hex(6))
            state.set("identity", identity)
            state.set("round", 1)
            state.set("phase", "build")
        elif known != identity:
            raise UsageError(f"{self.out} belongs to a batch run with other settings ({known['task']}, "
                             f"{known['backend']}); use another --out, or the same settings")

    # -- round 1: every document's first requests ------------------------------------------------------

    async def _build(self, items: Iterator[BulkItem], state: BatchState, sink: JsonlSink) -> None:
        chunk: list[tuple[BulkItem, Document]] = []
        for item in items:
            if sink.skip(item.id):
                self.summary.skipped += 1
                self.summary.skipped_failed += sink.done[item.id] == "error"
                continue
            if state.has_doc(item.id):
                continue  # queued by an earlier, interrupted build
            if item.url is not None:
                item = await self._fetched(item)
            if item.document is None:
                self._write(sink, Failure(id=item.id, task=self.task, error=item.error or ErrorInfo(
                    code="error", message="unreadable")))
                continue
            hit = self._cached(item.document)
            if hit is not None:
                self._write(sink, hit)
                continue
            chunk.append((item, item.document))
            if len(chunk) >= _CHUNK:
                self._queue(chunk, state, sink)
                chunk = []
        self._queue(chunk, state, sink)

    def _queue(self, chunk: list[tuple[BulkItem, Document]], state: BatchState, sink: JsonlSink) -> None:
        with state.transaction():
            for item, document in chunk:
                run: TaskRun[Any] = TaskRun(self.task, document, self.prompts, self.options, model=self.backend.model)
                try:
                    requests = run.start()
                except SummarizerError as exc:
                    self._write(sink, failure(item.id, self.task, exc, self.backend.model))
                    continue
                state.add_doc(item.id, _document_state(document), run.snapshot())
                for request in requests:
                    self._add_request(state, item.id, request, self._body(request), round_=1)

    async def _fetched(self, item: BulkItem) -> BulkItem:
        assert item.url is not None
        try:
            document = await asyncio.to_thread(fetch_document, item.url, id=item.id, published=item.published,
                                               fetch_policy=self.fetch_policy)
        except SummarizerError as exc:
            return BulkItem(item.id, error=ErrorInfo(code=exc.code, message=str(exc)))
        return BulkItem(item.id, document=dataclasses.replace(document, notes=item.notes + document.notes))

    def _cached(self, document: Document) -> Result[Any] | None:
        if self.cache is None:
            return None
        hit = self.cache.get(self._key(document))
        if hit is None:
            return None
        with contextlib.suppress(ValueError):
            return _RESULT[self.task].model_validate({**hit, "id": document.id, "task": self.task, "cached": True})
        return None

    def _key(self, document: Document) -> str:
        return result_key(task=self.task, document=document.digest, backend=self.backend.identity,
                          prompts=self._fingerprints, options=self.options.cache_parts())

    # -- rounds -----------------------------------------------------------------------------------------

    async def _rounds(self, state: BatchState, sink: JsonlSink, provider: Provider, *, wait: bool) -> None:
        while True:
            round_ = int(state.get("round"))
            await self._submit(state, provider, round_)
            await (self._poll(state, provider) if wait else self._refresh(state, provider))
            await self._collect_finished(state, sink, provider)
            if state.batches(uncollected=True) or not state.count("pending"):
                return self._settle(state)  # still running (no wait), or nothing left to ask
            if round_ >= self.max_rounds:
                await self._finish(state, sink)
                return self._settle(state)
            state.set("round", round_ + 1)

    def _settle(self, state: BatchState) -> None:
        self.summary.finished = not state.open_doc_ids() and state.get("phase") == "rounds"

    async def _submit(self, state: BatchState, provider: Provider, round_: int) -> None:
        """Put every pending request into batches: staged files first (a crash after upload), then new files."""
        for file_id, custom_ids in (state.get("staged") or {}).items():
            await self._create(state, provider, file_id, custom_ids, round_)
        with tempfile.TemporaryDirectory() as tmp:
            files = _write_files(state.pending(round_), Path(tmp), f"{state.get('run_id')}-r{round_}", self.limits)
            for path, custom_ids in files:  # written first, from a stream: memory stays flat however many
                file_id = await provider.upload(path)
                path.unlink()
                with state.transaction():
                    for custom_id in custom_ids:
                        state.set_request(custom_id, status="staged", batch=file_id)
                    state.set("staged", {**(state.get("staged") or {}), file_id: custom_ids})
                await self._create(state, provider, file_id, custom_ids, round_)

    async def _create(self, state: BatchState, provider: Provider, file_id: str, custom_ids: list[str],
                      round_: int) -> None:
        metadata = {"summarizer_run": str(state.get("run_id")), "round": str(round_)}
        info = await provider.find(file_id, str(state.get("run_id"))) or await provider.create(file_id, metadata)
        with state.transaction():
            state.add_batch(info["id"], round_, file_id, len(custom_ids), info)
            for custom_id in custom_ids:
                state.set_request(custom_id, status="submitted", batch=info["id"])
            staged = dict(state.get("staged") or {})
            staged.pop(file_id, None)
            state.set("staged", staged)
            state.tally(round_, requests=len(custom_ids))
        self.summary.batches += 1
        self.summary.submitted += len(custom_ids)

    async def _refresh(self, state: BatchState, provider: Provider) -> None:
        for batch in state.batches(uncollected=True):
            if not provider.terminal(batch["status"]):
                state.update_batch(batch["id"], await provider.retrieve(batch["id"]))

    async def _poll(self, state: BatchState, provider: Provider) -> None:
        """Until every batch is done one way or another, looking less often as time passes."""
        interval = self.poll_interval
        while True:
            await self._refresh(state, provider)
            waiting = [b for b in state.batches(uncollected=True) if not provider.terminal(b["status"])]
            if self.on_progress is not None:
                self.on_progress({"round": state.get("round"), "batches": state.batches(uncollected=True)})
            if not waiting:
                return
            await self._sleep(interval)
            interval = min(self.max_poll_interval, interval * 1.5)

    async def _collect_finished(self, state: BatchState, sink: JsonlSink, provider: Provider) -> None:
        for batch in state.batches(uncollected=True):
            if provider.terminal(batch["status"]):
                await self._collect(batch, state, sink, provider)

    async def _collect(self, batch: dict[str, Any], state: BatchState, sink: JsonlSink, provider: Provider) -> None:
        """Every answer of a finished batch, then whatever it left undone, into the next round."""
        info, round_ = batch["info"], batch["round"]
        for file_key in ("output_file_id", "error_file_id"):
            if not info.get(file_key):
                continue
            lines = provider.lines(info[file_key])
            done = False
            while not done:
                chunk = []
                async for line in lines:
                    chunk.append(line)
                    if len(chunk) >= _CHUNK:
                        break
                else:
                    done = True
                with state.transaction():
                    for line in chunk:
                        self._answer(line, batch["id"], round_, state, sink)
        with state.transaction():
            for row in state.in_batch(batch["id"]):  # in neither file: lost, or left undone by expiry
                self._resend(row, round_, state, sink, reason=f"batch {batch['status']} without an answer for it")
            state.collected(batch["id"])

    def _answer(self, line: dict[str, Any], batch_id: str, round_: int, state: BatchState, sink: JsonlSink) -> None:
        row = state.request(str(line.get("custom_id")))
        if row is None or row.status != "submitted" or row.batch != batch_id:
            return  # not ours, or answered already (a collect interrupted and started again)
        response = line.get("response") or {}
        status = response.get("status_code")
        if status == 200:
            try:
                completion = parse_completion(response.get("body"), self.backend.endpoint, self.backend.model,
                                              _mode(row.body))
            except ProviderError as exc:
                self._resend(row, round_, state, sink, reason=str(exc))
                return
            completion.usage.batched = 1
            state.tally(round_, answered=1, prompt_tokens=completion.usage.prompt_tokens,
                        completion_tokens=completion.usage.completion_tokens)
            self._feed(row, completion, round_ + 1, state, sink)
        elif isinstance(status, int) and status not in _RETRYABLE:
            state.tally(round_, failed=1)
            message = _error_message(response, line)
            self._fail(row, ProviderError(f"{self.backend.endpoint} answered HTTP {status} in the batch: {message}"),
                       state, sink)
        else:
            self._resend(row, round_, state, sink, reason=f"HTTP {status} in the batch: {_error_message(response, line)}")

    def _feed(self, row: RequestRow, completion: Any, next_round: int, state: BatchState, sink: JsonlSink) -> None:
        """An answer for a request: validate it in the document's TaskRun; write the result or queue what follows."""
        restored = self._restore(row.doc_id, state)
        if restored is None:
            state.set_request(row.custom_id, status="answered")
            return
        run = restored
        request = Request.from_state(row.state, self.prompts)
        try:
            follow_ups = run.receive(request, completion)
        except OutputValidationError as exc:
            state.set_request(row.custom_id, status="answered")
            self._finish_doc(row.doc_id, failure(row.doc_id, self.task, exc, run.model), state, sink)
            return
        state.set_request(row.custom_id, status="answered")
        if run.done:
            result = run.result()
            if self.cache is not None:
                self.cache.put(self._key(run.document), result.model_dump(
                    mode="json", include={"value", "warnings", "model", "prompt_version"}))
            self._finish_doc(row.doc_id, result, state, sink)
            return
        for follow_up in follow_ups:
            body = _reasked(row.body, follow_up) if follow_up.reasks > request.reasks and follow_up.stage == \
                request.stage and follow_up.index == request.index else self._body(follow_up)
            self._add_request(state, row.doc_id, follow_up, body, round_=next_round)
        state.save_run(row.doc_id, run.snapshot())

    def _resend(self, row: RequestRow, round_: int, state: BatchState, sink: JsonlSink, *, reason: str) -> None:
        """The same request in the next round, counted as a retry."""
        restored = self._restore(row.doc_id, state)
        if restored is None:
            state.set_request(row.custom_id, status="answered")
            return
        restored.usage.requests += 1
        restored.usage.retries += 1
        state.save_run(row.doc_id, restored.snapshot())
        state.set_request(row.custom_id, status="pending", round_=round_ + 1, attempts=row.attempts + 1)
        state.tally(round_, resent=1)
        state.set(f"last_error:{row.doc_id}", reason[:300])

    def _fail(self, row: RequestRow, error: SummarizerError, state: BatchState, sink: JsonlSink) -> None:
        restored = self._restore(row.doc_id, state)
        state.set_request(row.custom_id, status="answered")
        if restored is not None:
            restored.usage.requests += 1
            error.usage = restored.usage
            self._finish_doc(row.doc_id, failure(row.doc_id, self.task, error, restored.model), state, sink)

    def _finish_doc(self, doc_id: str, record: Record, state: BatchState, sink: JsonlSink) -> None:
        self._write(sink, record)  # OUT first: a crash now leaves the document done, never lost
        state.drop_doc(doc_id)

    def _restore(self, doc_id: str, state: BatchState) -> TaskRun[Any] | None:
        found = state.doc(doc_id)
        if found is None:
            return None
        document, run = found
        return TaskRun.restore(self.task, _document(doc_id, document), self.prompts, self.options, run)

    async def _finish(self, state: BatchState, sink: JsonlSink) -> None:
        """After the last round: stragglers become error records, or go direct."""
        if self.finish == "direct":
            await self._direct(state, sink)
        for doc_id in state.open_doc_ids():
            restored = self._restore(doc_id, state)
            reason = state.get(f"last_error:{doc_id}") or "no valid answer"
            error = SummarizerError(f"no valid answer after {self.max_rounds} batch round(s): {reason}")
            error.code = "batch_incomplete"
            error.usage = restored.usage if restored else Usage()
            with state.transaction():
                for custom_id in [r.custom_id for r in state.pending(10**9) if r.doc_id == doc_id]:
                    state.set_request(custom_id, status="answered")
                self._finish_doc(doc_id, failure(doc_id, self.task, error, self.backend.model), state, sink)

    async def _direct(self, state: BatchState, sink: JsonlSink) -> None:
        """Send the pending requests straight to the endpoint, round after round, until none is left."""
        while rows := list(state.pending(10**9)):
            gate = asyncio.Semaphore(16)

            async def send(row: RequestRow) -> tuple[RequestRow, Any]:
                async with gate:
                    try:
                        async for attempt in self.policy.retrying():
                            with attempt:
                                return row, await self.backend.send_body(row.body)
                    except SummarizerError as exc:
                        return row, exc
                raise AssertionError("unreachable")  # pragma: no cover

            answers = await asyncio.gather(*(send(row) for row in rows))
            with state.transaction():
                for row, answer in answers:
                    if isinstance(answer, SummarizerError):
                        self._fail(row, answer, state, sink)
                    else:
                        self._feed(row, answer, row.round, state, sink)

    # -- requests ---------------------------------------------------------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        return self.backend.request_body(request.messages, output=request.output, params=request.params)

    def _add_request(self, state: BatchState, doc_id: str, request: Request, body: dict[str, Any], *,
                     round_: int) -> None:
        state.add_request(_custom_id(doc_id, request), doc_id, round_, request.to_state(), body)

    def _write(self, sink: JsonlSink, record: Record) -> None:
        sink.write(record)
        self.summary.add(record)


def batch_status(out: Path) -> dict[str, Any]:
    """Where a batch run stands, from its state file alone (no network)."""
    path = state_path(out)
    if not path.exists():
        raise UsageError(f"{out} has no batch run (no {path.name} beside it)")
    state = BatchState(path)
    try:
        return {
            "run_id": state.get("run_id"), "round": state.get("round"), "phase": state.get("phase"),
            "identity": state.get("identity"),
            "requests": {s: state.count(s) for s in ("pending", "staged", "submitted", "answered")},
            "open_documents": len(state.open_doc_ids()), "rounds": state.rounds(),
            "batches": [{"id": b["id"], "round": b["round"], "status": b["status"], "requests": b["requests"],
                         "collected": b["collected"], "counts": b["info"].get("counts", {})}
                        for b in state.batches()],
        }
    finally:
        state.close()


async def cancel_batches(backend: OpenAIBackend, out: Path) -> list[str]:
    """Cancel every batch of the run that is still going; return their ids."""
    state = BatchState(state_path(out))
    client = backend.client()
    provider = Provider(client, backend.endpoint, secrets=[backend.api_key or ""])
    try:
        cancelled = []
        for batch in state.batches(uncollected=True):
            if not provider.terminal(batch["status"]):
                state.update_batch(batch["id"], await provider.cancel(batch["id"]))
                cancelled.append(batch["id"])
        return cancelled
    finally:
        state.close()
        await client.close()


# -- helpers -------------------------------------------------------------------------------------------


def _custom_id(doc_id: str, request: Request) -> str:
    """``<id>/<slot>/<reasks>`` when the id is short and plain, else a digest (the state maps it back)."""
    base = doc_id if _SAFE_ID.fullmatch(doc_id) else "h" + hashlib.sha256(doc_id.encode()).hexdigest()[:24]
    return f"{base}/{request.slot}/{request.reasks}"


def _line(row: RequestRow) -> bytes:
    return json.dumps({"custom_id": row.custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": row.body}, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _write_files(rows: Iterator[RequestRow], folder: Path, stem: str,
                 limits: BatchLimits) -> list[tuple[Path, list[str]]]:
    """The request lines in files within the per-file request and byte limits; each file's custom ids."""
    files: list[tuple[Path, list[str]]] = []
    handle = None
    size = 0
    try:
        for row in rows:
            line = _line(row)
            if handle is None or len(files[-1][1]) >= limits.max_requests or size + len(line) > limits.max_bytes:
                if handle is not None:
                    handle.close()
                files.append((folder / f"{stem}-{len(files) + 1}.jsonl", []))
                handle, size = files[-1][0].open("wb"), 0
            handle.write(line)
            size += len(line)
            files[-1][1].append(row.custom_id)
    finally:
        if handle is not None:
            handle.close()
    return files


def _reasked(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """The body of a re-ask: the same request (mode, schema, parameters) with the longer conversation."""
    messages = list(request.messages)
    if body["messages"] and body["messages"][0].get("role") == "system" and messages[0].get("role") == "system":
        messages[0] = body["messages"][0]  # keep a format guide the backend appended
    return {**body, "messages": messages}


def _mode(body: dict[str, Any]) -> Any:
    from ..backends.openai import _mode_of

    return _mode_of(body)


def _error_message(response: dict[str, Any], line: dict[str, Any]) -> str:
    body = response.get("body") if isinstance(response, dict) else None
    error = (body or {}).get("error") if isinstance(body, dict) else None
    error = error or line.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    return " ".join(str(message or "no detail").split())[:200]


def _document_state(document: Document) -> dict[str, Any]:
    return {"paragraphs": list(document.paragraphs), "dropped": document.dropped_repeats, "source": document.source,
            "title": document.title, "published": document.published.isoformat() if document.published else None,
            "notes": list(document.notes)}


def _document(doc_id: str, state: dict[str, Any]) -> Document:
    import datetime as dt

    published = dt.date.fromisoformat(state["published"]) if state.get("published") else None
    return Document(id=doc_id, paragraphs=tuple(state["paragraphs"]), dropped_repeats=state["dropped"],
                    source=state["source"], title=state["title"], published=published, notes=tuple(state["notes"]))


_ = TransientError  # the retry policy retries these in the direct finish
