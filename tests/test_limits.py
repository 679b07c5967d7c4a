"""RateLimiter on a virtual clock: pace, token debt, 429 slow-down and recovery."""

from __future__ import annotations

import asyncio

from summarizer.limits import RateLimiter


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(t: VirtualTime, **kwargs) -> RateLimiter:
    return RateLimiter(clock=t.clock, sleep=t.sleep, **kwargs)


def starts(t: VirtualTime, lim: RateLimiter, n: int, tokens: int = 0) -> list[float]:
    async def go() -> list[float]:
        out = []
        for _ in range(n):
            await lim.acquire(tokens)
            out.append(t.now)
        return out

    return asyncio.run(go())


def test_no_limits_never_waits() -> None:
    t = VirtualTime()
    assert starts(t, limiter(t), 100) == [0.0] * 100


def test_rpm_paces_requests_evenly() -> None:
    t = VirtualTime()
    times = starts(t, limiter(t, rpm=600), 51)  # 10 a second
    assert times[0] == 0.0
    assert abs(times[-1] - 5.0) < 0.1
    in_any_second = max(sum(1 for x in times if a <= x < a + 1) for a in times)
    assert in_any_second <= 11


def test_tpm_allows_one_large_request_then_pays_the_debt() -> None:
    t = VirtualTime()
    lim = limiter(t, tpm=60_000)  # 1,000 tokens a second
    times = starts(t, lim, 3, tokens=3_000)
    assert times[0] == 0.0  # never refused, even above the per-second budget
    assert 1.9 < times[1] - times[0] < 2.1  # one second's credit, then 2,000 tokens of debt
    assert 2.9 < times[2] - times[1] < 3.1  # the steady pace: 3,000 tokens at 1,000/s


def test_settle_returns_unused_tokens() -> None:
    t = VirtualTime()
    lim = limiter(t, tpm=60_000)
    starts(t, lim, 1, tokens=3_000)
    lim.settle(estimated=3_000, actual=1_000)
    assert starts(t, lim, 1, tokens=500)[0] < 1.1


def test_429_halves_the_pace_for_the_time_asked_then_recovers() -> None:
    t = VirtualTime()
    lim = limiter(t, rpm=1200)  # 20 a second
    starts(t, lim, 40)
    lim.backoff(5.0)
    lim.backoff(5.0)  # the same burst: halves once
    slow = starts(t, lim, 41)
    rate = 40 / (slow[-1] - slow[0])
    assert 9 < rate < 11 and lim.throttled == 2
    t.now += 10  # past the server's Retry-After
    fast = starts(t, lim, 41)
    assert 19 < 40 / (fast[-1] - fast[0]) < 21
