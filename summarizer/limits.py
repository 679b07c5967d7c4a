"""Requests- and tokens-per-minute limiter for bulk runs.

Two token buckets that may go briefly into debt (one large request is never
refused, it just delays the next ones). A 429 does not pause everyone for a
fixed time: it halves the pace for as long as the server asked, then the pace
recovers. Requests already in flight are never held back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["LeasedPacer", "Pacer", "RateLimiter", "Schedule"]

_WINDOW = 10.0  # seconds of history used to measure the current pace


class _Bucket:
    """``burst`` seconds' worth of capacity at most, refilled continuously, allowed into debt."""

    def __init__(self, per_minute: float | None, now: float, *, burst_units: float | None = None) -> None:
        self.rate = per_minute / 60 if per_minute else None  # units per second
        self.cap = burst_units if burst_units is not None else (self.rate or 0.0)
        self.level = self.cap
        self.stamp = now

    def refill(self, now: float, rate: float | None) -> None:
        if rate is not None:
            self.level = min(self.cap, self.level + (now - self.stamp) * rate)
        self.stamp = now

    def wait(self, rate: float | None) -> float:
        if rate is None or self.level > 0:
            return 0.0
        return -self.level / rate + 1e-3


class Pacer(Protocol):
    """What paces requests: this module's RateLimiter, or one shared by many processes (Ray)."""

    throttled: int

    async def acquire(self, tokens: int = 0) -> None: ...

    def settle(self, estimated: int, actual: int) -> None: ...

    def backoff(self, seconds: float) -> None: ...


class RateLimiter:
    """Paces request starts to ``rpm`` and estimated tokens to ``tpm``."""

    def __init__(
        self, rpm: float | None = None, tpm: float | None = None, *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock, self._sleep = clock, sleep
        now = clock()
        # Requests are paced evenly (no burst): whatever window the server counts
        # over, it never sees more than one request above its limit.
        self._requests = _Bucket(rpm, now, burst_units=1.0)
        self._tokens = _Bucket(tpm, now)
        self._slow_until = 0.0
        self._slow_rate: float | None = None
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.throttled = 0  # 429s seen

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until a request of ``tokens`` estimated tokens may start."""
        async with self._lock:  # FIFO: waiters are served in arrival order
            while True:
                now = self._clock()
                request_rate = self._request_rate(now)
                self._requests.refill(now, request_rate)
                self._tokens.refill(now, self._tokens.rate)
                delay = max(self._requests.wait(request_rate), self._tokens.wait(self._tokens.rate))
                if delay <= 0:
                    break
                await self._sleep(delay)
            self._requests.level -= 1
            self._tokens.level -= tokens
            self._starts.append(now)
            while self._starts and now - self._starts[0] > _WINDOW:
                self._starts.popleft()

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the server reports what a request really used."""
        self._tokens.level += estimated - actual

    def backoff(self, seconds: float) -> None:
        """A 429: halve the pace we were keeping, for ``seconds`` (the server's Retry-After)."""
        self.throttled += 1
        now = self._clock()
        if now >= self._slow_until:  # a new episode; 429s of the same burst halve only once
            span = min(_WINDOW, now - self._starts[0]) if self._starts else 0.0
            pace = len(self._starts) / span if span > 0 else 1.0
            base = min(self._requests.rate or pace, pace)
            self._slow_rate = max(0.5, base / 2)
        self._slow_until = max(self._slow_until, now + max(seconds, 1.0))
        self._requests.level = min(self._requests.level, 0.0)

    def _request_rate(self, now: float) -> float | None:
        if now < self._slow_until and self._slow_rate is not None:
            return self._slow_rate if self._requests.rate is None else min(self._slow_rate, self._requests.rate)
        return self._requests.rate


class Schedule:
    """The account's request and token timeline, kept in one place (a Ray actor): leases of blocks of slots.

    A generic cell rate algorithm: ``next_request`` is when the next request may
    start; a lease of n slots moves it on by n intervals (no burst, however long
    the pause before). Tokens may run one second ahead. While a 429 is fresh
    (``backoff``), every interval is doubled. The same rules as ``serve.pg.limits``
    keeps in a database row.
    """

    def __init__(self, rpm: float | None, tpm: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.per_token = 60.0 / tpm if tpm else 0.0
        self._clock = clock
        self._next_request = self._next_token = self._slow_until = 0.0
        self.throttled = 0

    def lease(self, requests: int, tokens: float) -> tuple[float, float, float]:
        """(seconds to the first slot, seconds between slots, seconds until the tokens may be spent)."""
        now = self._clock()
        step = self.interval * (2 if now < self._slow_until else 1)
        first = max(self._next_request, now)
        self._next_request = first + requests * step
        start = max(self._next_token, now - 1.0)
        self._next_token = start + tokens * self.per_token
        return first - now, step, max(0.0, start - now)

    def backoff(self, seconds: float) -> None:
        self.throttled += 1
        self._slow_until = max(self._slow_until, self._clock() + max(1.0, seconds))


class LeasedPacer:
    """A Pacer whose permits come in blocks from a timeline shared by many processes (``lease``).

    One round trip buys half a second's worth of request slots (and tokens), spent
    here at their times: the shared timeline sees a call per block, not per request.
    A slot this process could not use in time lapses (never sent late, where it would
    crowd another's); unspent tokens are kept for the next request.
    """

    max_block = 64

    def __init__(self, rpm: float | None, tpm: float | None, *, block_seconds: float = 0.5) -> None:
        self.rpm, self.tpm, self.throttled = rpm, tpm, 0
        self._interval = 60.0 / rpm if rpm else 0.0
        # How late a slot may still be used: one interval, or 50 ms where intervals are tiny
        # (a GC pause, a busy loop), so that a high RPM does not cost a lease per request.
        self._grace = max(self._interval, 0.05)
        self._block = min(self.max_block, max(1, round(rpm / 60 * block_seconds))) if rpm else 0
        self._token_block = max(1, int(tpm / 60 * block_seconds)) if tpm else 0
        self._slots: deque[float] = deque()
        self._budget = 0.0  # tokens leased and not yet spent (negative: owed)
        self._lock = asyncio.Lock()

    async def lease(self, requests: int, tokens: float) -> tuple[float, float, float]:
        """(seconds to the first slot, seconds between slots, seconds until the tokens may be spent)."""
        raise NotImplementedError

    def slow_down(self, seconds: float) -> None:
        """Tell the shared timeline about a 429 (every process halves its pace for ``seconds``)."""

    async def acquire(self, tokens: int = 0) -> None:
        async with self._lock:  # FIFO, as the local limiter
            await self._acquire(tokens)

    async def _acquire(self, tokens: int) -> None:
        now = time.monotonic()
        while self._slots and self._slots[0] < now - self._grace:
            self._slots.popleft()  # a slot long past: sent now, it would crowd the slots after it
        want_requests = self._block if self.rpm and not self._slots else 0
        want_tokens = max(float(self._token_block), tokens - self._budget) if self.tpm and tokens > self._budget \
            else 0.0
        ready = now
        if want_requests or want_tokens:
            first, step, token_wait = await self.lease(want_requests, want_tokens)
            at = time.monotonic()
            self._slots.extend(at + first + i * step for i in range(want_requests))
            self._budget += want_tokens
            ready = at + token_wait
        start = self._slots.popleft() if self.rpm else now
        self._budget -= tokens
        delay = max(start, ready) - time.monotonic()
        if delay > 0:
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def settle(self, estimated: int, actual: int) -> None:
        self._budget += estimated - actual

    def backoff(self, seconds: float) -> None:
        self.throttled += 1
        self._slots.clear()  # leased at the old pace
        self.slow_down(seconds)
