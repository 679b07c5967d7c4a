"""``summarizer serve``: the library as an HTTP service (the ``serve`` extra: FastAPI, uvicorn).

``app`` holds the routes; ``jobs`` the job store and runner; ``auth``,
``admission`` and ``metrics`` who gets in, how much, and what happened;
``config`` the knobs. ``run`` starts uvicorn on a socket it binds itself and
says on stderr where it listens once it can take requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sys
from typing import Any

from ..backends import from_settings
from ..client import Summarizer
from ..config import Settings
from ..errors import ConfigError, SummarizerError
from ..fetch import FetchPolicy
from .admission import Gated
from .app import create_app
from .config import ServiceConfig, default_data_dir, load_tokens
from .jobs import JobStore

__all__ = ["ServiceConfig", "create_app", "default_data_dir", "load_tokens", "run", "run_worker"]


def run(config: ServiceConfig, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT: stop accepting, finish or checkpoint in-flight work, return."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the service needs its extra: pip install 'summarizer[serve]'") from None
    config.check()
    store = _open_store(config)  # a bad data dir or database URL, a corrupt database: one line, before listening
    try:
        summarizer, problem = _summarizer(config, settings)
        app = create_app(config, summarizer, store, backend_problem=problem)
        _log_to_stderr()
        sock = _bind(config.host, config.port)
    except BaseException:
        if store is not None:
            store.close()
        raise
    host, port = sock.getsockname()[:2]

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # Everything loaded so far lives as long as the process: take it out of the
            # collector's sight, so that collections under load stay short (tail latency).
            gc.collect()
            gc.freeze()
            print(f"summarizer: serving on http://{host}:{port} (docs at /docs)", file=sys.stderr, flush=True)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # a clean stop exits 0; uvicorn would re-raise the signal
            # Jobs take no new documents and nothing new is parsed from now on, not only once the
            # open connections are drained: what is waiting to be parsed would outlast the drain.
            with contextlib.suppress(RuntimeError, AttributeError):
                asyncio.get_running_loop().call_soon_threadsafe(app.state.stop_taking)

    server = Server(uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=20,
        timeout_keep_alive=30, backlog=2048, loop=_fastest("uvloop", "asyncio"), http=_fastest("httptools", "h11"),
    ))
    server.run(sockets=[sock])


def _open_store(config: ServiceConfig) -> JobStore | None:
    """The SQLite store in the data dir; or, with a database URL, the database migrated (and None)."""
    if config.database_url is None:
        return JobStore(config.data_dir)
    from .pg.db import migrate

    _data_dir(config)
    migrate(config.database_url.get_secret_value())
    return None


def _data_dir(config: ServiceConfig) -> None:
    try:
        (config.data_dir / "spool").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir {config.data_dir}: cannot use it ({exc.strerror or exc}); pass a folder") from None


def _fastest(preferred: str, fallback: str) -> Any:
    import importlib.util

    return preferred if importlib.util.find_spec(preferred) is not None else fallback


def _summarizer(config: ServiceConfig, settings: Settings) -> tuple[Summarizer, str | None]:
    from ..otel import observer_from_env

    policy = FetchPolicy(allow_private=False, enabled=config.allow_urls)
    observer = observer_from_env()  # OTEL_* variables: spans for every request and job document
    try:
        backend = Gated(from_settings(settings), config.max_in_flight)
    except SummarizerError as exc:  # serve anyway: /readyz says why it cannot summarise
        return Summarizer(settings=settings, fetch_policy=policy, observer=observer), str(exc)
    return Summarizer(backend=backend, settings=settings, fetch_policy=policy, observer=observer), None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _log_to_stderr() -> None:
    """Access log as JSON lines, errors as one line: on stderr, never a token or a document."""
    handler: Any = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("summarizer.access", "summarizer"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # psycopg's pool logs each failed reconnect over several lines: ours says it once, on one line.
    logging.getLogger("psycopg").setLevel(logging.ERROR)


def run_worker(config: ServiceConfig, settings: Settings) -> None:
    """``summarizer worker``: run documents from the database until SIGTERM/SIGINT, then hand back what is left."""
    import signal

    from .pg.db import mask, migrate
    from .pg.limits import PgPacer
    from .pg.pool import Database
    from .pg.worker import Worker
    from .parsing import ParsePool

    if config.database_url is None:
        raise ConfigError("summarizer worker needs --database-url (or SUMMARIZER_DATABASE_URL): postgresql://…")
    url = config.database_url.get_secret_value()
    _data_dir(config)
    migrate(url)
    summarizer, problem = _summarizer(config, settings)
    if problem:
        raise ConfigError(problem)
    _log_to_stderr()

    async def main() -> None:
        pool = ParsePool(config.parse_workers, config.parse_timeout)
        pool.start()
        db = Database(url, size=4)
        await db.open()
        pacer = PgPacer(db, config.rpm, config.tpm) if config.rpm or config.tpm else None
        worker = Worker(url, summarizer, pool, config.data_dir, concurrency=config.job_concurrency, pacer=pacer,
                        lease_seconds=config.lease_seconds, db=db)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop_taking)
        print(f"summarizer: worker {worker.name} taking jobs from {mask(url)}", file=sys.stderr, flush=True)
        try:
            await worker.run()
        finally:
            await pool.close()
            await db.close()
            await summarizer.aclose()
        print(f"summarizer: worker {worker.name} stopped: {worker.written} record(s) written, "
              f"{worker.dropped} already written by another worker", file=sys.stderr, flush=True)

    asyncio.run(main())
