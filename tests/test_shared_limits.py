"""Limits shared by many processes: the timeline, leases in blocks, the database's rows, masked URLs."""

from __future__ import annotations

import asyncio

import pytest

from summarizer.limits import LeasedPacer, Schedule


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_schedule_hands_out_contiguous_blocks_and_no_burst_after_a_pause() -> None:
    clock = _Clock()
    schedule = Schedule(600, None, clock=clock)  # a slot every 0.1 s
    assert schedule.lease(5, 0) == (0.0, 0.1, 0.0)
    first, step, _ = schedule.lease(5, 0)  # the next block starts where the last one ended
    assert first == pytest.approx(0.5) and step == pytest.approx(0.1)
    clock.now += 60  # a long pause banks nothing: the next slot is now, not a minute of them
    assert schedule.lease(1, 0)[0] == 0.0
    schedule.backoff(2.0)  # a 429: twice the interval while it is fresh
    assert schedule.lease(1, 0)[1] == pytest.approx(0.2)
    clock.now += 3
    assert schedule.lease(1, 0)[1] == pytest.approx(0.1)


def test_tokens_may_run_a_second_ahead_then_wait() -> None:
    clock = _Clock()
    schedule = Schedule(None, 6000, clock=clock)  # 100 tokens a second
    assert schedule.lease(0, 100)[2] == 0.0  # the second of credit
    assert schedule.lease(0, 100)[2] == 0.0
    assert schedule.lease(0, 100)[2] == pytest.approx(1.0)


class _Counted(LeasedPacer):
    def __init__(self, schedule: Schedule, rpm: float) -> None:
        super().__init__(rpm, None)
        self.schedule, self.leases, self.delays = schedule, 0, []  # type: ignore[var-annotated]

    async def lease(self, requests: int, tokens: float) -> tuple[float, float, float]:
        self.leases += 1
        return self.schedule.lease(requests, tokens)

    async def _sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_a_leased_pacer_asks_the_shared_timeline_once_a_block() -> None:
    pacer = _Counted(Schedule(6000, None), 6000)  # 100 a second: blocks of 50 slots

    async def run() -> None:
        for _ in range(130):
            await pacer.acquire()

    asyncio.run(run())
    assert pacer.leases == 3  # not 130
    assert pacer.delays[-1] == pytest.approx(1.29, abs=0.05)  # the 130th slot, 1.29 s after the first


def test_two_processes_sharing_one_timeline_interleave_without_overlap() -> None:
    shared = Schedule(600, None)
    a, b = _Counted(shared, 600), _Counted(shared, 600)

    async def run() -> None:
        for _ in range(10):
            await a.acquire()
            await b.acquire()

    asyncio.run(run())
    assert a.leases == b.leases == 2  # blocks of 5: each holds its own half-seconds


@pytest.mark.parametrize(("url", "secret", "shown"), [
    ("postgresql://app:s3cr%40t@db:5432/jobs", "s3cr@t", "postgresql://app:***@db:5432/jobs"),
    ("postgresql://app@db/jobs?password=s3cr3t&sslmode=require", "s3cr3t",
     "postgresql://app@db/jobs?password=***&sslmode=require"),
    ("postgres://db/jobs", None, "postgres://db/jobs"),
])
def test_a_database_url_is_shown_without_its_password(url: str, secret: str | None, shown: str) -> None:
    from summarizer.serve.pg.db import mask, redacted

    assert mask(url) == shown
    said = redacted(f"FATAL: password authentication failed ({secret}) for {url}", url)
    assert "s3cr" not in said and "\n" not in said


def test_per_token_rpm_is_shared_through_the_database(database_url: str) -> None:
    pytest.importorskip("psycopg")
    from summarizer.serve.pg.db import migrate
    from summarizer.serve.pg.limits import PgRates
    from summarizer.serve.pg.pool import Database

    migrate(database_url)

    async def run() -> tuple[list[float | None], float | None]:
        db = Database(database_url, size=2)
        await db.open()
        try:
            replica_a, replica_b = PgRates(db, 5), PgRates(db, 5)  # two replicas' views of one budget
            answers = [await (replica_a if n % 2 else replica_b).admit("t-one") for n in range(7)]
            return answers, await replica_b.admit("t-two")
        finally:
            await db.close()

    answers, other = asyncio.run(run())
    assert answers[:5] == [None] * 5 and all(wait is not None and wait >= 1 for wait in answers[5:])
    assert other is None  # another token has its own budget


def test_the_provider_pacer_shares_requests_and_tokens_through_one_row(database_url: str) -> None:
    pytest.importorskip("psycopg")
    from summarizer.serve.pg.db import migrate
    from summarizer.serve.pg.limits import PgPacer
    from summarizer.serve.pg.pool import Database

    migrate(database_url)

    class Recorded(PgPacer):
        delays: list[float]

        async def _sleep(self, seconds: float) -> None:
            self.delays.append(seconds)

    async def run() -> tuple[list[float], list[float], list[float]]:
        db = Database(database_url, size=2)
        await db.open()
        try:
            a, b = Recorded(db, 600, None), Recorded(db, 600, None)  # two workers, one account: 10 a second
            tokens = Recorded(db, None, 6000, name="tokens")  # 100 tokens a second, a second ahead allowed
            for pacer in (a, b, tokens):
                pacer.delays = []
            for _ in range(10):
                await a.acquire()
                await b.acquire()
            for _ in range(4):
                await tokens.acquire(100)
            return a.delays, b.delays, tokens.delays
        finally:
            await db.close()

    a, b, tokens = asyncio.run(run())
    # 20 requests from two processes fill 2 s of one schedule: the last waits ~1.5 s+, never all at once
    assert max(a + b) > 1.4
    assert tokens and max(tokens) > 0.9  # 400 tokens at 100/s with a second of credit: the 4th waits ~1 s
