"""One document through one task: ``POST /v1/tasks/{task}``, and ``/v1/{task}`` for every registered task.

The document is read in the parse pool (never on the event loop), the task runs
through ``Summarizer.arun`` under the request timeout, and the answer is the
Result envelope — or, for a prose task asked with ``"stream": true`` (or
``Accept: text/event-stream``), Server-Sent Events: ``delta`` as the model writes,
``retry`` before a re-ask, then ``result`` or ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ...documents import Document, check_web_url
from ...errors import ConfigError, InputError, OutputValidationError, ProviderError, SummarizerError, UsageError
from ...fetch import fetch
from ...otel import joined_trace
from ...pipeline import failure
from ...registry import TaskSpec
from ...schemas import Failure, Result
from ...tasks import Reask, StreamEvent
from ..deps import Caller, ServicesDep, TaskDep
from ..errors import Failed
from ..models import DocumentIn, ErrorBody, SummaryRequest
from ..parsing import parse_fetched, parse_markup, parse_text
from ..services import Services

__all__ = ["RESPONSES", "named_routes", "router"]

router = APIRouter(tags=["summarise"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 413: {"model": ErrorBody},
    415: {"model": ErrorBody},
    422: {"model": Failure, "description": "Bad input, or model output invalid after re-asks (error.code)"},
    429: {"model": ErrorBody}, 502: {"model": Failure}, 503: {"model": ErrorBody}, 504: {"model": Failure},
}
_INLINE_TEXT = 64 * 1024  # plain text this short is normalised in a millisecond: no process round trip
_STATUS = [(OutputValidationError, 422), (InputError, 422), (UsageError, 422), (ConfigError, 503),
           (ProviderError, 502)]


@router.post("/v1/tasks/{task}", response_model=Result[Any], responses=RESPONSES)
async def run_any(body: SummaryRequest, request: Request, who: Caller, found: ServicesDep, spec: TaskDep) -> Response:
    """Any registered task on one document (built-in, shipped, a plugin's, or the server's --tasks-dir)."""
    return await summarise(spec, body, request, found)


def named_task(request: Request, found: ServicesDep) -> TaskSpec[Any]:
    """The task a ``/v1/{task}`` route was made for (its path's last segment)."""
    return found.summarizer.task(request.scope["route"].path.rsplit("/", 1)[1])


async def run_named(body: SummaryRequest, request: Request, who: Caller, found: ServicesDep,
                    spec: TaskSpec[Any] = Depends(named_task)) -> Response:  # noqa: B008 (FastAPI's way)
    return await summarise(spec, body, request, found)


def named_routes(found: Services) -> APIRouter:
    """``POST /v1/{task}`` for every task the service knows, typed by the task's value (for the API docs)."""
    named = APIRouter(tags=["summarise"])
    for spec in found.summarizer.tasks:
        value = Result[spec.value_model]  # type: ignore[name-defined]
        named.add_api_route(f"/v1/{spec.name}", run_named, methods=["POST"], response_model=value,
                            responses=RESPONSES, summary=spec.description.split(". ")[0][:80],
                            description=spec.description + _STREAMS * (not spec.structured))
    return named


_STREAMS = " `\"stream\": true` (or `Accept: text/event-stream`) streams it as Server-Sent Events."


async def summarise(spec: TaskSpec[Any], body: SummaryRequest, request: Request, found: Services) -> Response:
    if found.readiness.problem:
        raise HTTPException(503, found.readiness.problem)
    if not found.door.enter():
        raise HTTPException(429, "the server is at capacity; try again shortly", headers={"Retry-After": "1"})
    try:
        document = await _document(body, spec.name, found)
        wants_stream = body.stream or "text/event-stream" in request.headers.get("accept", "")
        with joined_trace(request.headers):
            if wants_stream and not spec.structured:
                return _sse(spec, document, body, found)  # holds its own place in the door while it runs
            return await _answer(spec, document, body, found)
    finally:
        found.door.leave()


async def _document(body: DocumentIn, task: str, found: Services) -> Document:
    """The request's document: text, html, or an http(s) URL fetched under the server's policy — nothing else."""
    pool = found.pool
    try:
        if body.url is not None:
            url = check_web_url(body.url)  # one message for every other string: never a path, never a file read
            fetched = await asyncio.to_thread(fetch, url, found.summarizer.fetch_policy)
            return await pool.call(url, parse_fetched, fetched, id=body.id, published=body.published, source=url)
        if body.html is not None:
            return await pool.call("request", parse_markup, body.html, id=body.id, published=body.published,
                                   source="request")
        text = body.text or ""
        if len(text) <= _INLINE_TEXT:
            return Document.from_text(text, id=body.id, source="request", html=False, published=body.published)
        return await pool.call("request", parse_text, text, id=body.id, published=body.published, source="request")
    except SummarizerError as exc:
        raise Failed(failure(body.id or "request", task, exc), 503 if isinstance(exc, ConfigError) else 422) from None


def _options(body: SummaryRequest) -> dict[str, Any]:
    return {"words": body.words, "language": body.language, "strict": body.strict, "verify": body.verify}


async def _answer(spec: TaskSpec[Any], document: Document, body: SummaryRequest, found: Services) -> Response:
    summarizer, timeout = found.summarizer, found.config.request_timeout
    try:
        result = await asyncio.wait_for(summarizer.arun(spec, document, **_options(body)), timeout)
    except TimeoutError:
        record = Failure(id=document.id, task=spec.name, error={"code": "timeout",  # type: ignore[arg-type]
                         "message": f"no answer within {timeout:g} s"})
        found.metrics.record(record)
        return JSONResponse(record.model_dump(mode="json"), status_code=504)
    except SummarizerError as exc:
        record = failure(document.id, spec.name, exc, summarizer.backend.model)
        found.metrics.record(record)
        status = next(code for kind, code in [*_STATUS, (SummarizerError, 500)] if isinstance(exc, kind))
        return JSONResponse(record.model_dump(mode="json"), status_code=status)
    found.metrics.record(result)
    return Response(result.model_dump_json(), media_type="application/json")


def _sse(spec: TaskSpec[Any], document: Document, body: SummaryRequest, found: Services) -> StreamingResponse:
    """Server-Sent Events: ``delta`` as the model writes, ``retry`` before a re-ask, then ``result`` or ``error``."""
    queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
    summarizer, timeout = found.summarizer, found.config.request_timeout

    def on_event(event: StreamEvent) -> None:
        if isinstance(event, Reask):
            queue.put_nowait(("retry", {"errors": event.errors}))
        else:
            queue.put_nowait(("delta", {"text": event.text}))

    async def work() -> None:
        try:
            result = await asyncio.wait_for(summarizer.arun(spec, document, on_event=on_event, **_options(body)),
                                            timeout)
            found.metrics.record(result)
            queue.put_nowait(("result", result.model_dump(mode="json")))
        except TimeoutError:
            queue.put_nowait(("error", {"id": document.id, "task": spec.name, "status": "error", "error": {
                "code": "timeout", "message": f"no answer within {timeout:g} s"}}))
        except SummarizerError as exc:
            record = failure(document.id, spec.name, exc, summarizer.backend.model)
            found.metrics.record(record)
            queue.put_nowait(("error", record.model_dump(mode="json")))
        finally:
            queue.put_nowait(None)

    async def events() -> AsyncIterator[bytes]:
        found.door.inside += 1  # a running stream holds its place like any request
        runner = asyncio.create_task(work())
        try:
            while (item := await queue.get()) is not None:
                name, data = item
                yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
        finally:
            runner.cancel()  # the client went away: stop the model call
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            found.door.leave()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
