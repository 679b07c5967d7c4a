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
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from .._version import __version__
from ..client import Summarizer
from ..errors import SummarizerError
from .config import ServiceConfig
from .edge import Edge
from .errors import install_error_handlers
from ..limits import RateLimiter
from .auth import RateWindow
from .jobs import JobManager, JobStore, SqliteQueue
from .parsing import ParsePool
from .routes import jobs, operations, page, summarise
from .services import Services

__all__ = ["create_app"]

access_log = logging.getLogger("summarizer.access")


def create_app(config: ServiceConfig, summarizer: Summarizer, store: JobStore | None = None, *,
               backend_problem: str | None = None) -> FastAPI:
    """The service over ``summarizer`` (whose backend should be ``Gated``: one pool for everything).

    Jobs go to ``store`` (SQLite, opened by the caller, so that a bad data dir is refused before
    the server listens), or with ``config.database_url`` to PostgreSQL (migrated by the caller).
    """
    found = _services(config, summarizer, store)
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


def _services(config: ServiceConfig, summarizer: Summarizer, store: JobStore | None) -> Services:
    """The job queue, the per-token rates and (PostgreSQL) the in-process worker the config asks for."""
    pool = ParsePool(config.parse_workers, config.parse_timeout)
    url = config.database_url.get_secret_value() if config.database_url else None
    if url is None:
        if store is None:
            raise ValueError("a SQLite job store, or a database URL")
        return Services(config, summarizer, pool, SqliteQueue(store), RateWindow(config.rpm_per_token))
    from .pg.limits import PgPacer, PgRates
    from .pg.queue import PgQueue
    from .pg.worker import Worker

    queue = PgQueue(url, config.data_dir, pool, max_jobs=config.max_jobs, per_owner=config.max_jobs_per_token)
    found = Services(config, summarizer, pool, queue, PgRates(queue.db, config.rpm_per_token))
    if config.worker:
        pacer = PgPacer(queue.db, config.rpm, config.tpm) if config.rpm or config.tpm else None
        found.worker = Worker(url, summarizer, pool, config.data_dir, concurrency=config.job_concurrency,
                              pacer=pacer, lease_seconds=config.lease_seconds, on_record=found.metrics.record,
                              db=queue.db)
    return found


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    found: Services = app.state.services
    config = found.config
    found.pool.start()
    queue = found.queue
    if isinstance(queue, SqliteQueue):
        pacer = RateLimiter(config.rpm, config.tpm) if config.rpm or config.tpm else None
        queue.attach(JobManager(
            queue.store, found.summarizer, found.pool, concurrency=config.job_concurrency, max_jobs=config.max_jobs,
            per_owner=config.max_jobs_per_token, on_record=found.metrics.record, pacer=pacer))
    worker = found.worker

    def stop_taking() -> None:
        queue.stop_taking()
        if worker is not None:
            worker.stop_taking()
        found.pool.stop_taking()

    app.state.stop_taking = stop_taking  # the server calls it on SIGTERM, before the connections drain
    await queue.start()
    working = asyncio.create_task(worker.run()) if worker is not None else None
    loader = asyncio.create_task(_warm_up(found))
    try:
        yield
    finally:
        loader.cancel()
        if working is not None and worker is not None:
            worker.stop_taking()
            await working
        await queue.close()
        await found.pool.close()
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
