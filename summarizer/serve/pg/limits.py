"""Limits that hold across replicas and workers: per-token requests a minute and the provider's RPM/TPM.

Each is one row, checked and taken in one UPDATE (a generic cell rate algorithm:
the row holds the *theoretical arrival time* of the next request, and a take
moves it on), so there is no read-then-write window and no lock other than that
row's. Counters that every request would otherwise hit are leased in blocks: a
process takes a few permits at once — half a second's worth of the provider's
rate, a few of a busy token's — and spends them locally, so the database sees a
statement per block, not per request. A block's unspent permits lapse: the
limit can be under-used a little, never exceeded.

When the database cannot be reached, pacing goes on locally at the configured
rate (said once in the log): a provider limit is not worth stopping the work for.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ...limits import LeasedPacer, RateLimiter
from ..queue import QueueUnavailable
from .db import NOW
from .pool import Database

__all__ = ["PgPacer", "PgRates"]

log = logging.getLogger("summarizer")


class PgRates:
    """Requests a minute per token, shared: a burst of the minute's number, then that pace."""

    def __init__(self, db: Database, per_minute: float | None, *, block: int | None = None) -> None:
        from ..auth import RateWindow

        self.db, self.per_minute = db, per_minute
        self._local = RateWindow(per_minute)  # while the database is unreachable: this replica's own count
        self._down_until = 0.0
        self._block = block or (1 if not per_minute or per_minute < 200 else min(10, int(per_minute // 100)))
        self._leases: dict[str, tuple[float, int]] = {}  # caller -> (lapses at, permits left)

    async def admit(self, caller: str) -> float | None:
        if not self.per_minute:
            return None
        now = time.monotonic()
        lapses, left = self._leases.get(caller, (0.0, 0))
        if left > 0 and now < lapses:
            self._leases[caller] = (lapses, left - 1)
            return None
        if now < self._down_until:
            return await self._local.admit(caller)
        try:
            for block in dict.fromkeys((self._block, 1)):
                if await self._take(caller, block):
                    self._leases[caller] = (now + 1.0, block - 1)
                    return None
            rows = await self.db.rows(f"SELECT tat - {NOW} - 60 + %s FROM token_rates WHERE owner = %s",
                                      (60.0 / self.per_minute, caller), timeout=1.0)
        except QueueUnavailable:
            # A summary does not need the database: count here for a while (per replica, not shared),
            # rather than make every request wait for a connection that is not coming.
            self._down_until = time.monotonic() + 5.0
            return await self._local.admit(caller)
        return max(0.1, float(rows[0][0]) if rows else 1.0)

    async def _take(self, caller: str, block: int) -> bool:
        cost = block * 60.0 / (self.per_minute or 1.0)
        rows = await self.db.rows(
            f"INSERT INTO token_rates (owner, tat) VALUES (%(who)s, {NOW} + %(cost)s) ON CONFLICT (owner) DO UPDATE "
            f"SET tat = GREATEST(token_rates.tat, {NOW}) + %(cost)s "
            f"WHERE GREATEST(token_rates.tat, {NOW}) + %(cost)s - {NOW} <= 60 RETURNING tat",
            {"who": caller, "cost": cost}, timeout=1.0)
        return bool(rows)


class PgPacer(LeasedPacer):
    """The provider's RPM/TPM for every worker of a deployment (a ``limits.Pacer``): even starts, no burst.

    A lease moves the row's next start on by a block of request slots (and tokens) in one
    UPDATE, and says where the block begins on the database's clock; this process starts
    its requests at those slots. A 429 anywhere halves everyone's pace for its Retry-After.
    """

    def __init__(self, db: Database, rpm: float | None, tpm: float | None, *, name: str = "provider",
                 block_seconds: float = 0.5) -> None:
        super().__init__(rpm, tpm, block_seconds=block_seconds)
        self.db, self.name = db, name
        self._fallback: RateLimiter | None = None
        self._made = False
        self._background: set[asyncio.Task[None]] = set()

    async def acquire(self, tokens: int = 0) -> None:
        if self._fallback is None:
            try:
                await super().acquire(tokens)
                return
            except QueueUnavailable as exc:
                log.warning("pacing locally (not shared) until the database is back: %s", exc)
                self._fallback = RateLimiter(self.rpm, self.tpm)
                asyncio.get_running_loop().call_later(30.0, self._retry_shared)
        await self._fallback.acquire(tokens)

    async def lease(self, requests: int, tokens: float) -> tuple[float, float, float]:
        if not self._made:
            await self.db.rows("INSERT INTO pacers (name) VALUES (%s) ON CONFLICT DO NOTHING", (self.name,))
            self._made = True
        per_token = 60.0 / self.tpm if self.tpm else 0.0
        slow = f"(CASE WHEN slow_until > {NOW} THEN 2 ELSE 1 END)"
        rows = await self.db.rows(
            f"UPDATE pacers SET next_request = GREATEST(next_request, {NOW}) + %(n)s * %(iv)s * {slow}, "
            f"next_token = GREATEST(next_token, {NOW} - 1) + %(t)s * %(pt)s WHERE name = %(name)s "
            f"RETURNING next_request, next_token, {NOW}, %(iv)s * {slow}",
            {"n": requests, "iv": self._interval, "t": tokens, "pt": per_token, "name": self.name}, timeout=2.0)
        next_request, next_token, now, step = rows[0]
        return next_request - requests * step - now, step, max(0.0, next_token - tokens * per_token - now)

    def settle(self, estimated: int, actual: int) -> None:
        super().settle(estimated, actual)
        if self._fallback is not None:
            self._fallback.settle(estimated, actual)

    def slow_down(self, seconds: float) -> None:
        if self._fallback is not None:
            self._fallback.backoff(seconds)
            return
        task = asyncio.get_running_loop().create_task(self._slow_down(max(1.0, seconds)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _slow_down(self, seconds: float) -> None:
        try:
            await self.db.rows(f"UPDATE pacers SET slow_until = GREATEST(slow_until, {NOW} + %s) WHERE name = %s",
                               (seconds, self.name))
        except QueueUnavailable:
            pass

    def _retry_shared(self) -> None:
        self._fallback = None
