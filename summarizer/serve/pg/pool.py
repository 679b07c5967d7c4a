"""Connections to the database for one process: a pool, driver errors as QueueUnavailable, a LISTEN loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..queue import QueueUnavailable
from .db import mask, redacted

__all__ = ["Database", "listen"]

log = logging.getLogger("summarizer")
_BREAK = 1.0  # seconds after a failure during which the database is taken as down without asking


class Database:
    """A psycopg pool (autocommit connections) whose failures are one line without the password."""

    def __init__(self, url: str, *, size: int = 10) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.url = url
        self._down_until: float = 0.0
        self._down_reason: str = ""
        # reconnect_timeout: the pool's retries back off exponentially without a cap; giving up after
        # 5 s lets the next request start a fresh attempt, so a database back from a restart is used
        # within seconds, not after the next doubling.
        self._pool = AsyncConnectionPool(url, min_size=1, max_size=size, open=False, timeout=5,
                                         reconnect_timeout=5, kwargs={"autocommit": True, "connect_timeout": 5})

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    def unavailable(self, exc: BaseException) -> QueueUnavailable:
        return QueueUnavailable(f"the job database {mask(self.url)} is unavailable ({redacted(str(exc), self.url)})")

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """A connection (autocommit); QueueUnavailable when none can be had (within ``timeout``) or it breaks."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if time.monotonic() < self._down_until:  # it failed a moment ago: say so at once, not after a wait
            raise QueueUnavailable(self._down_reason)
        try:
            async with self._pool.connection(timeout=timeout) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            failure = self.unavailable(exc)
            self._down_until, self._down_reason = time.monotonic() + _BREAK, str(failure)
            raise failure from None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def rows(self, sql: str, params: Any = None, *, timeout: float | None = None) -> list[tuple[Any, ...]]:
        async with self.connection(timeout) as conn:
            cursor = await conn.execute(sql, params)
            return list(await cursor.fetchall()) if cursor.description else []


async def listen(url: str, channels: tuple[str, ...], on_note: Callable[[str, str], None],
                 on_connect: Callable[[], Awaitable[None] | None] | None = None) -> None:
    """LISTEN on ``channels`` for ever, calling ``on_note(channel, payload)``; reconnect when the link drops.

    ``on_connect`` runs after each (re)connection: notifications sent while nobody listened are lost,
    so whoever waits re-reads the state then.
    """
    import psycopg

    backoff, said = 0.5, False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
            async with conn:
                for channel in channels:
                    await conn.execute(f"LISTEN {channel}")
                backoff, said = 0.5, False
                if on_connect is not None:
                    done = on_connect()
                    if done is not None:
                        await done
                async for note in conn.notifies():
                    on_note(note.channel, note.payload)
        except psycopg.Error as exc:
            if not said:
                log.warning("listening for job events: %s; reconnecting", redacted(str(exc), url))
                said = True
            await asyncio.sleep(backoff)
            backoff = min(5.0, backoff * 2)
