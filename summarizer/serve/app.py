"""The HTTP API: routes, auth, limits, streaming and the web page — over the library.

Nothing here summarises, validates or retries: a brief is ``Summarizer.arun``,
a job is the bulk engine into a ``JsonlSink``. This module adds transport (JSON,
SSE, NDJSON), who may call (bearer tokens), how much (body caps, per-token
RPM, one bounded pool of model calls, job caps), and what happened (access log,
metrics). A document is ``text``, ``html`` or an http(s) ``url`` — nothing a
client sends ever names a local file — and it is parsed in the parse pool,
never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from .._version import __version__
from ..bulk import failure
from ..client import Summarizer
from ..documents import Document, check_web_url
from ..errors import ConfigError, InputError, OutputValidationError, ProviderError, SummarizerError, UsageError
from ..fetch import fetch
from ..schemas import Brief, EventReport, Failure, Result, TaskName
from ..sinks import _HEAD
from ..tasks import Reask, StreamEvent
from .admission import Door, Gated
from .auth import RateWindow, TokenCheck
from .config import ServiceConfig
from .jobs import JobManager, JobsFull, JobStore
from .metrics import Metrics
from .models import DocumentIn, ErrorBody, JobRequest, SummaryRequest, one_line
from .parsing import ParsePool, json_job, parse_fetched, parse_markup, parse_text
from .uploads import receive_ndjson, receive_raw

__all__ = ["create_app"]

access_log = logging.getLogger("summarizer.access")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


# -- the app -------------------------------------------------------------------------------------


def create_app(config: ServiceConfig, summarizer: Summarizer, store: JobStore, *,
               backend_problem: str | None = None) -> FastAPI:
    """The service over ``summarizer`` (whose backend should be ``Gated``: one pool for everything).

    ``store`` is opened by the caller, so that a bad data dir is refused before the server listens.
    """
    metrics = Metrics()
    tokens = TokenCheck(config.tokens)
    rates = RateWindow(config.rpm_per_token)
    door = Door(config.max_pending)
    pool = ParsePool(config.parse_workers, config.parse_timeout)
    state: dict[str, Any] = {"ready": False, "problem": backend_problem}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        manager = JobManager(store, summarizer, pool, concurrency=config.job_concurrency, max_jobs=config.max_jobs,
                             per_owner=config.max_jobs_per_token, on_record=metrics.record)
        app.state.store, app.state.manager = store, manager

        def stop_taking() -> None:
            manager.checkpoint()
            pool.stop_taking()

        app.state.stop_taking = stop_taking
        resumed = manager.resume()
        if resumed:
            access_log.info(json.dumps({"event": "jobs_resumed", "count": resumed}))
        loader = asyncio.create_task(_warm_up(summarizer, state))
        try:
            yield
        finally:
            loader.cancel()
            await manager.stop()
            await pool.close()
            store.close()
            await summarizer.aclose()

    app = FastAPI(
        title="summarizer", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        redirect_slashes=False,  # a redirect would build its Location from the client's Host header
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
            document = await _document(body, task, summarizer, pool)
            if task == "brief" and (body.stream or "text/event-stream" in request.headers.get("accept", "")):
                return _sse(task, document, body, summarizer, config, metrics, door)  # counts itself while it runs
            return await _answer(task, document, body, summarizer, config, metrics)
        finally:
            door.leave()

    responses: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
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

    @app.post("/v1/jobs", status_code=202, tags=["jobs"],
              responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": JobRequest.model_json_schema()},
                  "application/x-ndjson": {"schema": {"type": "string", "description": "One document per line"}}}}})
    async def create_job(
        request: Request, who: Caller, task: Literal["brief", "events"] | None = None, words: str | None = None,
        language: Annotated[str | None, Query(max_length=40)] = None, strict: bool = False,
        published: dt.date | None = None,
    ) -> JSONResponse:
        """Submit many documents: JSON `{"task", "documents": [...]}` or NDJSON with `?task=`.

        The body is streamed to disk as it arrives; a place under the job caps (per token and
        in all) is taken before it is read, or the answer is 429 at once.
        """
        manager: JobManager = request.app.state.manager
        ndjson = _media(request) != "application/json"
        if ndjson:
            if task is None:
                raise HTTPException(422, "an NDJSON job needs ?task=brief or ?task=events")
            options = _options(summarizer, _words_param(words), language, strict, published)
        try:
            manager.reserve(who)
        except JobsFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None
        job_id = store.new_id()
        folder = store.folder(job_id)
        submitted = False
        try:
            folder.mkdir(parents=True)
            if ndjson:
                total = await receive_ndjson(request.stream(), folder / "input.jsonl")
                chosen: TaskName = task  # type: ignore[assignment]
            else:
                chosen, options, total = await _json_job(request, folder, summarizer, pool, config)
            if not total:
                raise HTTPException(422, "the job has no documents")
            job = store.create(job_id, who, chosen, options, total=total)
            manager.submit(job)
            submitted = True
        except ClientDisconnect:
            raise HTTPException(400, "the client went away before the body ended") from None
        finally:
            if not submitted:
                manager.release(who)
                shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse(job.as_dict(_base(request)), status_code=202)

    @app.get("/v1/jobs", tags=["jobs"], responses={404: {"model": ErrorBody}})
    async def list_jobs(request: Request, who: Caller, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                        after: Annotated[str | None, Query(max_length=64)] = None) -> JSONResponse:
        """The caller's jobs, newest first, `limit` at a time; `next` is the `after` of the next page."""
        jobs = request.app.state.manager.owned(who, limit + 1, after)
        if jobs is None:
            raise HTTPException(404, f"no job {after}")
        page = jobs[:limit]
        return JSONResponse({"jobs": [job.as_dict(_base(request)) for job in page],
                             "next": page[-1].id if len(jobs) > limit else None})

    def owned(request: Request, job_id: str, who: str) -> Any:
        job = request.app.state.manager.get(job_id)
        if job is None or job.owner != who:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], responses={404: {"model": ErrorBody}})
    async def job_status(job_id: Annotated[str, PathParam(max_length=64)], request: Request, who: Caller,
                         wait: Annotated[float, Query(ge=0, le=300)] = 0) -> JSONResponse:
        """State, counts (ok, failed, pending), usage and ETA of a job.

        `?wait=30` holds the answer until the job ends or 30 s pass (long polling).
        """
        job = owned(request, job_id, who)
        if wait and job.status in ("queued", "running"):
            await request.app.state.manager.wait(job.id, wait)
            job = owned(request, job_id, who)
        return JSONResponse(job.as_dict(_base(request)))

    @app.get("/v1/jobs/{job_id}/results", tags=["jobs"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {}}}, 404: {"model": ErrorBody}})
    async def job_results(job_id: Annotated[str, PathParam(max_length=64)], request: Request, who: Caller,
                          status: Literal["ok", "error"] | None = Query(None)) -> StreamingResponse:
        """The Result records so far, one JSON per line (each id once); readable while the job runs."""
        job = owned(request, job_id, who)
        path = store.folder(job.id) / "output.jsonl"
        return StreamingResponse(_results(path, status), media_type="application/x-ndjson")

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"], responses={404: {"model": ErrorBody}})
    async def cancel_job(job_id: Annotated[str, PathParam(max_length=64)], request: Request,
                         who: Caller) -> JSONResponse:
        """Cancel a queued or running job; what it finished stays readable."""
        job = request.app.state.manager.cancel(owned(request, job_id, who))
        return JSONResponse(job.as_dict(_base(request)))

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
        for name, count in store.count_by_state().items():
            metrics.jobs.labels(name).set(count)
        body, media = metrics.render()
        return Response(body, media_type=media)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (resources.files("summarizer.serve") / "static" / "index.html").read_text("utf-8")
        return HTMLResponse(html.replace("{{version}}", __version__), headers={"Content-Security-Policy": _PAGE_CSP})

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI from files this server serves itself: it works offline."""
        return _docs_page()

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        found = _asset(name)
        if found is None:
            raise HTTPException(404, "no such file")
        content, media = found
        return Response(content, media_type=media, headers={"Cache-Control": "public, max-age=3600"})

    app.state.config, app.state.tokens, app.state.rates = config, tokens, rates
    return app


_bearer = HTTPBearer(auto_error=False, description="A service token: `Authorization: Bearer <token>`.")


async def caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str:
    """The caller's token id, or 401; 429 with Retry-After past the token's requests a minute."""
    who = request.app.state.tokens.identify(request.headers.get("authorization"))
    if who is None:
        raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
    wait = request.app.state.rates.admit(who)
    if wait is not None:
        limit = request.app.state.config.rpm_per_token
        raise HTTPException(429, f"more than {limit:g} requests a minute for this token",
                            headers={"Retry-After": str(int(wait) + 1)})
    return str(who)


Caller = Annotated[str, Depends(caller)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _options(summarizer: Summarizer, words: tuple[int, int] | None, language: str | None, strict: bool,
             published: dt.date | None) -> dict[str, Any]:
    """A job's options, checked now as /v1/brief checks them (422 with the same message), not when it runs."""
    try:
        summarizer.options(words=words, language=language, strict=strict)
    except SummarizerError as exc:
        raise _Refusal(422, str(exc), code=exc.code) from None
    return {"words": list(words) if words else None, "language": language, "strict": strict,
            "published": published.isoformat() if published else None}


async def _json_job(request: Request, folder: Path, summarizer: Summarizer, pool: ParsePool,
                    config: ServiceConfig) -> tuple[TaskName, dict[str, Any], int]:
    """A JSON job body: to disk as it arrives, then parsed (into input.jsonl) by a parser process."""
    upload = folder / "upload.json"
    await receive_raw(request.stream(), upload)
    try:
        fields, total = await pool.call("body", json_job, str(upload), str(folder / "input.jsonl"),
                                        budget=max(30.0, config.parse_timeout))
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        upload.unlink(missing_ok=True)
    words = tuple(fields["words"]) if fields.get("words") else None
    published = dt.date.fromisoformat(fields["published"]) if fields.get("published") else None
    options = _options(summarizer, words, fields.get("language"), bool(fields.get("strict")), published)
    return fields["task"], options, total


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


_INLINE_TEXT = 64 * 1024  # plain text this short is normalised in a millisecond: no process round trip


async def _document(body: DocumentIn, task: TaskName, summarizer: Summarizer, pool: ParsePool) -> Document:
    """The request's document: text, html, or an http(s) URL fetched under the server's policy — nothing else."""
    try:
        if body.url is not None:
            url = check_web_url(body.url)  # one message for every other string: never a path, never a file read
            fetched = await asyncio.to_thread(fetch, url, summarizer.fetch_policy)
            return await pool.call(url, parse_fetched, fetched, id=body.id, published=body.published, source=url)
        if body.html is not None:
            return await pool.call("request", parse_markup, body.html, id=body.id, published=body.published,
                                   source="request")
        text = body.text or ""
        if len(text) <= _INLINE_TEXT:
            return Document.from_text(text, id=body.id, source="request", html=False, published=body.published)
        return await pool.call("request", parse_text, text, id=body.id, published=body.published, source="request")
    except SummarizerError as exc:
        raise _Failed(failure(body.id or "request", task, exc), 503 if isinstance(exc, ConfigError) else 422) from None


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


class _Refusal(HTTPException):
    """An HTTP error whose ``error.code`` is not the status's default (e.g. usage_error for a 422)."""

    def __init__(self, status: int, message: str, *, code: str) -> None:
        super().__init__(status, message)
        self.code = code


# -- the page, the docs and their files ------------------------------------------------------------------

# No inline script or style anywhere in the page: its code and CSS are files of this server.
_PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
             "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


_ASSETS = {"app.js": "summarizer.serve", "app.css": "summarizer.serve",  # ours; Swagger UI's from its wheel:
           "swagger-ui-bundle.js": "fastapi_offline", "swagger-ui.css": "fastapi_offline",
           "favicon.png": "fastapi_offline"}


def _asset(name: str) -> tuple[bytes, str] | None:
    """A file the page or the docs load (a fixed list: a made-up name never reaches the disk or a cache)."""
    package = _ASSETS.get(name)
    return _load_asset(package, name) if package is not None else None


@functools.cache
def _load_asset(package: str, name: str) -> tuple[bytes, str] | None:
    try:
        return (resources.files(package) / "static" / name).read_bytes(), _TYPES[Path(name).suffix]
    except (ModuleNotFoundError, OSError):
        return None


@functools.cache
def _docs_html() -> tuple[bytes, str]:
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="summarizer — API",
                               swagger_js_url="/static/swagger-ui-bundle.js",
                               swagger_css_url="/static/swagger-ui.css", swagger_favicon_url="/static/favicon.png")
    body = bytes(page.body)
    # Its one inline script (the Swagger UI set-up) is allowed by its hash, and nothing else inline.
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                      for m in _INLINE_SCRIPT.findall(body.decode()))
    csp = (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; "
           "frame-ancestors 'none'")
    return body, csp


def _docs_page() -> HTMLResponse:
    body, csp = _docs_html()
    return HTMLResponse(body, headers={"Content-Security-Policy": csp})


def _install_error_handlers(app: FastAPI) -> None:
    def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    codes = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
             413: "too_large", 415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
             503: "not_ready"}

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(HTTPException)
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when json.loads raises anything but a decode error (RecursionError on
            # deep nesting): bad input like any other JSON that does not parse.
            return error(422, "invalid_request", "body: not valid JSON (nested too deeply)")
        code = getattr(exc, "code", None) or codes.get(exc.status_code, "error")
        return error(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", one_line(exc))

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
    """Pure ASGI: refuse oversized bodies, wrong content types and doubled credentials early; add the
    security headers; log and measure every request.

    Metrics and the access log name a request by its route *template* (``/v1/jobs/{job_id}``),
    never by its path: a path the client made up is ``unmatched``, so the label set is fixed
    however many random paths arrive, and no job id ever becomes a label.
    """

    _JSON_ONLY = ("/v1/brief", "/v1/events")
    _METHODS = frozenset({"GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT", "PATCH"})
    _HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer")]

    def __init__(self, app: Callable[..., Awaitable[None]], config: ServiceConfig, metrics: Metrics,
                 tokens: TokenCheck) -> None:
        self.app, self.config, self.metrics, self.tokens = app, config, metrics, tokens
        self._fixed = {"/v1/brief", "/v1/events", "/v1/jobs", "/healthz", "/readyz", "/metrics", "/docs",
                       "/openapi.json", "/"}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        method = scope["method"] if scope["method"] in self._METHODS else "other"
        status = {"code": 500}
        refusal = self._refusal(scope)

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *self._HEADERS]}
            await send(message)

        try:
            if refusal is not None:
                await _send_error(sending, *refusal)
            else:
                await self.app(scope, self._capped(receive, self._cap(path)), sending)
        except _TooLarge:
            await _send_error(sending, 413, "too_large", f"request body over {self._cap(path) // 1024} KiB")
        finally:
            template = getattr(scope.get("route"), "path", None)
            route = template if isinstance(template, str) else path if path in self._fixed else "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, method, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "method": method, "route": route, "status": status["code"],
                "latency_ms": round(elapsed * 1000, 1), "token": self._caller(scope),
            }))

    def _caller(self, scope: dict[str, Any]) -> str | None:
        """The token id (never the token) of the caller, for the access log: the one auth checked."""
        if self.tokens.open:
            return None
        given = [v for k, v in scope["headers"] if k.lower() == b"authorization"]
        return self.tokens.identify(given[0].decode("latin-1")) if len(given) == 1 else None

    def _cap(self, path: str) -> int:
        return self.config.max_job_bytes if path == "/v1/jobs" else self.config.max_body_bytes

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str, str] | None:
        if sum(1 for k, _ in scope["headers"] if k.lower() == b"authorization") > 1:
            return 400, "bad_request", "more than one Authorization header"  # which one would count?
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

