"""One bounded pool of model requests for the whole service, and the door in front of it.

Sync requests and job documents share ``max_in_flight`` model requests
(``Gated``, a backend layer like ``Paced``). A sync request is admitted only
while fewer than ``max_pending`` are waiting or running; past that it gets 429
with Retry-After at once, so memory stays bounded whatever the load. Jobs never
get turned away mid-run: their documents wait for the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..backends import Backend, Completion, Delta, Message
from ..backends.layer import Attempt, Layer, StreamAttempt

__all__ = ["Door", "Gated"]


class Gated(Layer):
    """``inner`` with at most ``limit`` calls at once; ``waiting`` counts the calls queued for a place."""

    def __init__(self, inner: Backend, limit: int) -> None:
        super().__init__(inner)
        self._gate = asyncio.Semaphore(limit)
        self.waiting = 0
        self.in_flight = 0

    @asynccontextmanager
    async def _place(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._gate.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._gate.release()

    async def wrap(self, attempt: Attempt, messages: list[Message], params: Mapping[str, Any] | None) -> Completion:
        async with self._place():
            return await attempt()

    async def wrap_stream(
        self, attempt: StreamAttempt, messages: list[Message], params: Mapping[str, Any] | None,
    ) -> AsyncIterator[Delta | Completion]:
        async with self._place():
            async for event in super().wrap_stream(attempt, messages, params):
                yield event


class Door:
    """Counts the sync requests in the house; refuses the one past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0

    def enter(self) -> bool:
        if self.inside >= self.limit:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1
