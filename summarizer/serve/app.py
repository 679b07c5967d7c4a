"""The HTTP API: the app, made of routers over the library — nothing here summarises, validates or retries.

A task on one document is ``Summarizer.arun`` (``routes.summarise``), a job the
bulk engine into a ``JsonlSink`` (``routes.jobs``, ``jobs``). The app adds
transport (JSON, SSE, NDJSON), who may call (bearer tokens), how much (body caps,
per-token RPM, one bounded pool of model calls, job caps), and what happened
(access log, metrics, traces): the edge (``edge``), the routes' shared services
(``services``, handed out by ``deps``) and one error shape (``errors``). A
document is ``text``, ``html`` or an http(s) ``url`` — nothing a client sends
ever names a local file — and it is parsed in the parse pool, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from .._version import __version__
from ..client import Summarizer
from ..errors import SummarizerError
from .config import ServiceConfig
from .edge import Edge
from .errors import install_error_handlers
from .jobs import JobManager, JobStore
from .routes import jobs, operations, page, summarise
from .services import Services

__all__ = ["create_app"]

access_log = logging.getLogger("summarizer.access")


def create_app(config: ServiceConfig, summarizer: Summarizer, store: JobStore, *,
               backend_problem: str | None = None) -> FastAPI:
    """The service over ``summarizer`` (whose backend should be ``Gated``: one pool for everything).

    ``store`` is opened by the caller, so that a bad data dir is refused before the server listens.
    """
    found = Services(config, summarizer, store)
    found.readiness.problem = backend_problem
    app = FastAPI(
        title="summarizer", version=__version__, lifespan=_lifespan, docs_url=None, redoc_url=None,
        redirect_slashes=False,  # a redirect would build its Location from the client's Host header
        description="Grounded one-paragraph briefs, structured event reports and any registered task, as a "
                    "service. Authenticate with `Authorization: Bearer <token>`.",
    )
    app.state.services = found
    app.add_middleware(Edge, config=config, metrics=found.metrics, tokens=found.tokens)
    install_error_handlers(app)
    app.include_router(summarise.router)
    app.include_router(summarise.named_routes(found))
    app.include_router(jobs.router)
    app.include_router(operations.router)
    app.include_router(page.router)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    found: Services = app.state.services
    config = found.config
    found.pool.start()
    manager = found.manager = JobManager(
        found.store, found.summarizer, found.pool, concurrency=config.job_concurrency, max_jobs=config.max_jobs,
        per_owner=config.max_jobs_per_token, on_record=found.metrics.record)

    def stop_taking() -> None:
        manager.checkpoint()
        found.pool.stop_taking()

    app.state.stop_taking = stop_taking  # the server calls it on SIGTERM, before the connections drain
    resumed = manager.resume()
    if resumed:
        access_log.info(json.dumps({"event": "jobs_resumed", "count": resumed}))
    loader = asyncio.create_task(_warm_up(found))
    try:
        yield
    finally:
        loader.cancel()
        await manager.stop()
        await found.pool.close()
        found.store.close()
        await found.summarizer.aclose()


async def _warm_up(found: Services) -> None:
    """Build the backend (and load the embedded model) now, so that /readyz can say when it is ready."""
    readiness = found.readiness
    if readiness.problem:
        return
    try:
        await found.summarizer.backend_unwrapped.prime()  # the embedded model loads here, off the event loop
        readiness.ready = True
    except SummarizerError as exc:
        readiness.problem = str(exc)
