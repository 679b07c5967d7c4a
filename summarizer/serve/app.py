"""The HTTP API: routes, auth, limits, streaming and the web page — over the library.

Nothing here summarises, validates or retries: a brief is ``Summarizer.arun``,
a job is ``run_bulk`` into a ``JsonlSink``. This module adds transport (JSON,
SSE, NDJSON), who may call (bearer tokens), how much (body caps, per-token
RPM, one bounded pool of model calls), and what happened (access log, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._version import __version__
from ..bulk import failure
from ..client import Summarizer
from ..documents import Document, read_document
from ..errors import ConfigError, InputError, OutputValidationError, ProviderError, SummarizerError, UsageError
from ..schemas import Brief, EventReport, Failure, Result, TaskName
from ..sinks import _HEAD
from ..tasks import Reask, StreamEvent
from .admission import Door, Gated
from .auth import RateWindow, TokenCheck
from .config import ServiceConfig
from .jobs import JobManager, JobStore
from .metrics import Metrics

__all__ = ["create_app"]

access_log = logging.getLogger("summarizer.access")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


# -- request bodies --------------------------------------------------------------------------------


class DocumentIn(BaseModel):
    """One document: exactly one of text, html or url."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="Plain text or Markdown.")
    html: str | None = Field(None, description="A web page; its article is extracted, its date kept.")
    url: str | None = Field(None, description="An http(s) URL to fetch (only where the server allows it).")
    id: str | None = Field(None, max_length=512)
    published: dt.date | None = Field(None, description="Publication date, to resolve \"on Friday\".")

    @model_validator(mode="after")
    def _one_source(self) -> DocumentIn:
        given = [name for name in ("text", "html", "url") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, html or url")
        return self


class SummaryRequest(DocumentIn):
    words: tuple[int, int] | None = Field(None, description="Brief word range [min, max]; default [40, 120].")
    language: str | None = Field(None, max_length=40, description="Output language; default: the document's.")
    strict: bool = Field(False, description="Brief: names and numbers absent from the source are re-asked.")
    stream: bool = Field(False, description="Brief: Server-Sent Events (delta, retry, result | error).")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: TaskName
    documents: list[dict[str, Any]] = Field(
        description='Each {"id", "text" | "html" | "url", "published"?}; a bad one becomes an error record.')
    words: tuple[int, int] | None = None
    language: str | None = Field(None, max_length=40)
    strict: bool = False
    published: dt.date | None = Field(None, description="Publication date of documents that carry none.")


class ErrorBody(BaseModel):
    error: dict[str, str]


# -- the app -------------------------------------------------------------------------------------


def create_app(config: ServiceConfig, summarizer: Summarizer, *, backend_problem: str | None = None) -> FastAPI:
    """The service over ``summarizer`` (whose backend should be ``Gated``: one pool for everything)."""
    metrics = Metrics()
    tokens = TokenCheck(config.tokens)
    rates = RateWindow(config.rpm_per_token)
    door = Door(config.max_pending)
    state: dict[str, Any] = {"ready": False, "problem": backend_problem}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = JobStore(config.data_dir)
        manager = JobManager(store, summarizer, concurrency=config.job_concurrency, on_record=metrics.record)
        app.state.store, app.state.manager = store, manager
        resumed = manager.resume()
        if resumed:
            access_log.info(json.dumps({"event": "jobs_resumed", "count": resumed}))
        loader = asyncio.create_task(_warm_up(summarizer, state))
        try:
            yield
        finally:
            loader.cancel()
            await manager.stop()
            store.close()
            await summarizer.aclose()

    app = FastAPI(
        title="summarizer", version=__version__, lifespan=lifespan,
        description="Grounded one-paragraph briefs and structured event reports, as a service. "
                    "Authenticate with `Authorization: Bearer <token>`.",
    )
    app.add_middleware(_Edge, config=config, metrics=metrics, tokens=tokens)
    _install_error_handlers(app)

    async def summarise(task: TaskName, body: SummaryRequest, request: Request) -> Response:
        if state["problem"]:
            raise HTTPException(503, state["problem"])
        if not door.enter():
            raise HTTPException(429, "the server is at capacity; try again shortly", headers={"Retry-After": "1"})
        try:
            document = await _document(body, task, summarizer)
            if task == "brief" and (body.stream or "text/event-stream" in request.headers.get("accept", "")):
                return _sse(task, document, body, summarizer, config, metrics, door)  # counts itself while it runs
            return await _answer(task, document, body, summarizer, config, metrics)
        finally:
            door.leave()

    responses: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
        422: {"model": Failure, "description": "Bad input, or model output invalid after re-asks (error.code)"},
        429: {"model": ErrorBody}, 502: {"model": Failure}, 503: {"model": ErrorBody}, 504: {"model": Failure},
    }

    @app.post("/v1/brief", response_model=Result[Brief], responses=responses, tags=["summarise"])
    async def brief(body: SummaryRequest, request: Request, who: Caller) -> Response:
        """A one-paragraph brief. `"stream": true` (or `Accept: text/event-stream`) streams it as SSE."""
        return await summarise("brief", body, request)

    @app.post("/v1/events", response_model=Result[EventReport], responses=responses, tags=["summarise"])
    async def events(body: SummaryRequest, request: Request, who: Caller) -> Response:
        """An event report: who did what, when, where — every event backed by verbatim quotes."""
        return await summarise("events", body, request)

    @app.post("/v1/jobs", status_code=202, tags=["jobs"], responses={413: {"model": ErrorBody}, 429: {"model": ErrorBody}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": JobRequest.model_json_schema()},
                  "application/x-ndjson": {"schema": {"type": "string", "description": "One document per line"}}}}})
    async def create_job(
        request: Request, who: Caller, task: Literal["brief", "events"] | None = None, words: str | None = None,
        language: str | None = None, strict: bool = False, published: dt.date | None = None,
    ) -> JSONResponse:
        """Submit many documents: JSON `{"task", "documents": [...]}` or NDJSON with `?task=`."""
        manager: JobManager = request.app.state.manager
        store: JobStore = request.app.state.store
        if manager.active >= config.max_jobs:
            raise HTTPException(429, f"{config.max_jobs} jobs are queued or running; try again later",
                                headers={"Retry-After": "30"})
        raw = await request.body()
        if _media(request) == "application/json":
            spec = _parse(JobRequest, raw)
            lines = [json.dumps(d, ensure_ascii=False).encode() for d in spec.documents]
            options = {"words": spec.words, "language": spec.language, "strict": spec.strict,
                       "published": spec.published.isoformat() if spec.published else None}
            chosen: TaskName = spec.task
        else:
            if task is None:
                raise HTTPException(422, "an NDJSON job needs ?task=brief or ?task=events")
            lines = [line for line in raw.splitlines() if line.strip()]
            options = {"words": _words_param(words), "language": language, "strict": strict,
                       "published": published.isoformat() if published else None}
            chosen = task
        if not lines:
            raise HTTPException(422, "the job has no documents")
        job = store.create(who, chosen, options, total=len(lines))
        (store.folder(job.id) / "input.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
        manager.submit(job)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(job.as_dict(base), status_code=202)

    def owned(request: Request, job_id: str, who: str) -> Any:
        job = request.app.state.manager.get(job_id)
        if job is None or job.owner != who:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], responses={404: {"model": ErrorBody}})
    async def job_status(job_id: str, request: Request, who: Caller,
                         wait: Annotated[float, Query(ge=0, le=300)] = 0) -> JSONResponse:
        """State, counts (ok, failed, pending), usage and ETA of a job.

        `?wait=30` holds the answer until the job ends or 30 s pass (long polling).
        """
        job = owned(request, job_id, who)
        if wait and job.status in ("queued", "running"):
            await request.app.state.manager.wait(job.id, wait)
            job = owned(request, job_id, who)
        return JSONResponse(job.as_dict(str(request.base_url).rstrip("/")))

    @app.get("/v1/jobs/{job_id}/results", tags=["jobs"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {}}}, 404: {"model": ErrorBody}})
    async def job_results(job_id: str, request: Request, who: Caller,
                          status: Literal["ok", "error"] | None = Query(None)) -> StreamingResponse:
        """The Result records so far, one JSON per line (each id once); readable while the job runs."""
        job = owned(request, job_id, who)
        path = request.app.state.store.folder(job.id) / "output.jsonl"
        return StreamingResponse(_results(path, status), media_type="application/x-ndjson")

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"], responses={404: {"model": ErrorBody}})
    async def cancel_job(job_id: str, request: Request, who: Caller) -> JSONResponse:
        """Cancel a queued or running job; what it finished stays readable."""
        job = request.app.state.manager.cancel(owned(request, job_id, who))
        return JSONResponse(job.as_dict(str(request.base_url).rstrip("/")))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"model": ErrorBody}})
    async def readyz() -> JSONResponse:
        """The backend is configured (and, for the embedded model, loaded)."""
        if state["problem"]:
            return JSONResponse({"status": "not ready", "reason": state["problem"]}, status_code=503)
        if not state["ready"]:
            return JSONResponse({"status": "not ready", "reason": "loading the model"}, status_code=503)
        return JSONResponse({"status": "ready", "model": summarizer.backend.model})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics."""
        gated = summarizer.backend_unwrapped
        if isinstance(gated, Gated):
            metrics.queue_depth.set(gated.waiting)
            metrics.in_flight.set(gated.in_flight)
        for name, count in request.app.state.store.count_by_state().items():
            metrics.jobs.labels(name).set(count)
        body, media = metrics.render()
        return Response(body, media_type=media)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (resources.files("summarizer.serve") / "static" / "index.html").read_text("utf-8")
        return HTMLResponse(html.replace("{{version}}", __version__))

    app.state.config, app.state.tokens, app.state.rates = config, tokens, rates
    return app


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller's token id, or 401; 429 with Retry-After past the token's requests a minute."""
    who = request.app.state.tokens.identify(authorization)
    if who is None:
        raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
    wait = request.app.state.rates.admit(who)
    if wait is not None:
        limit = request.app.state.config.rpm_per_token
        raise HTTPException(429, f"more than {limit:g} requests a minute for this token",
                            headers={"Retry-After": str(int(wait) + 1)})
    return str(who)


Caller = Annotated[str, Depends(caller)]


async def _warm_up(summarizer: Summarizer, state: dict[str, Any]) -> None:
    """Build the backend (and load the embedded model) now, so that /readyz can say when it is ready."""
    if state["problem"]:
        return
    try:
        await summarizer.backend_unwrapped.prime()  # the embedded model loads here, off the event loop
        state["ready"] = True
    except SummarizerError as exc:
        state["problem"] = str(exc)


# -- one document --------------------------------------------------------------------------------


async def _document(body: DocumentIn, task: TaskName, summarizer: Summarizer) -> Document:
    try:
        if body.url is not None:
            return await asyncio.to_thread(read_document, body.url, id=body.id, published=body.published,
                                           fetch_policy=summarizer.fetch_policy)
        if body.html is not None:
            return Document.from_text(body.html, id=body.id, source="request", html=True, published=body.published)
        return Document.from_text(body.text or "", id=body.id, source="request", html=False,
                                  published=body.published)
    except SummarizerError as exc:
        raise _Failed(failure(body.id or "request", task, exc)) from None


class _Failed(Exception):
    """A request that ends as a Failure envelope with a status code."""

    def __init__(self, record: Failure, status: int = 422) -> None:
        self.record, self.status = record, status


_STATUS = [(OutputValidationError, 422), (InputError, 422), (UsageError, 422), (ConfigError, 503),
           (ProviderError, 502)]


async def _answer(task: TaskName, document: Document, body: SummaryRequest, summarizer: Summarizer,
                  config: ServiceConfig, metrics: Metrics) -> Response:
    try:
        result = await asyncio.wait_for(
            summarizer.arun(task, document, words=body.words, language=body.language, strict=body.strict),
            config.request_timeout)
    except TimeoutError:
        record = Failure(id=document.id, task=task, error={"code": "timeout",  # type: ignore[arg-type]
                         "message": f"no answer within {config.request_timeout:g} s"})
        metrics.record(record)
        return JSONResponse(record.model_dump(mode="json"), status_code=504)
    except SummarizerError as exc:
        record = failure(document.id, task, exc, summarizer.backend.model)
        metrics.record(record)
        status = next(code for kind, code in [*_STATUS, (SummarizerError, 500)] if isinstance(exc, kind))
        return JSONResponse(record.model_dump(mode="json"), status_code=status)
    metrics.record(result)
    return Response(result.model_dump_json(), media_type="application/json")


def _sse(task: TaskName, document: Document, body: SummaryRequest, summarizer: Summarizer,
         config: ServiceConfig, metrics: Metrics, door: Door) -> StreamingResponse:
    """Server-Sent Events: ``delta`` as the model writes, ``retry`` before a re-ask, then ``result`` or ``error``."""
    queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()

    def on_event(event: StreamEvent) -> None:
        if isinstance(event, Reask):
            queue.put_nowait(("retry", {"errors": event.errors}))
        else:
            queue.put_nowait(("delta", {"text": event.text}))

    async def work() -> None:
        try:
            result = await asyncio.wait_for(summarizer.arun(
                task, document, words=body.words, language=body.language, strict=body.strict, on_event=on_event),
                config.request_timeout)
            metrics.record(result)
            queue.put_nowait(("result", result.model_dump(mode="json")))
        except TimeoutError:
            queue.put_nowait(("error", {"id": document.id, "task": task, "status": "error", "error": {
                "code": "timeout", "message": f"no answer within {config.request_timeout:g} s"}}))
        except SummarizerError as exc:
            record = failure(document.id, task, exc, summarizer.backend.model)
            metrics.record(record)
            queue.put_nowait(("error", record.model_dump(mode="json")))
        finally:
            queue.put_nowait(None)

    async def events() -> AsyncIterator[bytes]:
        door.inside += 1  # a running stream holds its place like any request
        runner = asyncio.create_task(work())
        try:
            while (item := await queue.get()) is not None:
                name, data = item
                yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
        finally:
            runner.cancel()  # the client went away: stop the model call
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            door.leave()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# -- jobs -------------------------------------------------------------------------------------------


async def _results(path: Path, status: str | None) -> AsyncIterator[bytes]:
    """Complete lines of the output file as it is now, filtered by status."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # a line still being written
            if status is not None:
                head = _HEAD.match(line)
                if head is None or head.group(3).decode() != status:
                    continue
            yield line


def _words_param(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, sep, high = value.partition("-")
    if not (sep and low.isdecimal() and high.isdecimal()):
        raise HTTPException(422, f"words={value!r}: expected MIN-MAX, e.g. 60-90")
    return int(low), int(high)


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse(model: type[JobRequest], raw: bytes) -> JobRequest:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(422, _one_line(exc)) from None


def _one_line(exc: ValidationError | RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}{more}"


def _install_error_handlers(app: FastAPI) -> None:
    def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
             415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests", 503: "not_ready"}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail), exc.headers)

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", _one_line(exc))

    @app.exception_handler(_Failed)
    async def failed(request: Request, exc: _Failed) -> JSONResponse:
        return JSONResponse(exc.record.model_dump(mode="json"), status_code=exc.status)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("summarizer").error("internal error on %s: %s: %s", request.url.path,
                                              type(exc).__name__, exc)
        return error(500, "internal_error", "internal error; it was logged")


# -- the edge: body caps, content types, access log, metrics ----------------------------------------


class _Edge:
    """Pure ASGI: refuse oversized bodies and wrong content types early; log and measure every request."""

    _JSON_ONLY = ("/v1/brief", "/v1/events")

    def __init__(self, app: Callable[..., Awaitable[None]], config: ServiceConfig, metrics: Metrics,
                 tokens: TokenCheck) -> None:
        self.app, self.config, self.metrics, self.tokens = app, config, metrics, tokens

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        status = {"code": 500}
        refusal = self._refusal(scope)

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if refusal is not None:
                await _send_error(sending, *refusal)
            else:
                await self.app(scope, self._capped(receive, self._cap(path)), sending)
        except _TooLarge:
            await _send_error(sending, 413, "too_large", f"request body over {self._cap(path) // 1024} KiB")
        finally:
            route = getattr(scope.get("route"), "path", None) or ("unmatched" if status["code"] == 404 else path)
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, method, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "method": method, "route": route, "status": status["code"],
                "latency_ms": round(elapsed * 1000, 1), "token": self._caller(scope),
            }))

    def _caller(self, scope: dict[str, Any]) -> str | None:
        """The token id (never the token) of the caller, for the access log."""
        if self.tokens.open:
            return None
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        return self.tokens.identify(authorization)

    def _cap(self, path: str) -> int:
        return self.config.max_job_bytes if path == "/v1/jobs" else self.config.max_body_bytes

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str, str] | None:
        if scope["method"] != "POST":
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdecimal() and int(length) > self._cap(scope["path"]):
            return 413, "too_large", f"request body over {self._cap(scope['path']) // 1024} KiB"
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        allowed = ("application/json",) if scope["path"] in self._JSON_ONLY else \
            ("application/json", "application/x-ndjson", "application/jsonl") if scope["path"] == "/v1/jobs" else None
        if allowed and media not in allowed:
            return 415, "unsupported_media_type", f"send {' or '.join(allowed)}, not {media or 'no content type'}"
        return None

    @staticmethod
    def _capped(receive: Receive, cap: int) -> Receive:
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _TooLarge()
            return message

        return counted


class _TooLarge(Exception):
    pass


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

