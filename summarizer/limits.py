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

__all__ = ["Pacer", "RateLimiter"]

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
