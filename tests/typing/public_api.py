"""Type assertions on the public API: `mypy` checks this file (it is never run).

If a change erases a return type (``Any``) or makes a success value Optional,
``assert_type`` fails the type check in CI.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import assert_type

from summarizer import (
    Brief, BulkSummary, EventReport, Evidence, Failure, OutputMode, Record, Result, Span, Summarizer, Usage,
)


def sync_api(s: Summarizer) -> None:
    brief = s.brief("text", words=(40, 60))
    assert_type(brief, Result[Brief])
    assert_type(brief.value.text, str)
    assert_type(brief.usage, Usage)
    events = s.events("text", language="en")
    assert_type(events, Result[EventReport])
    assert_type(events.value.events[0].evidence, list[Evidence])
    assert_type(events.value.events[0].evidence[0].start, int)
    assert_type(brief.value.sentences[0].citations, list[Span])
    assert_type(s.run("brief", "text"), Result[Brief])
    assert_type(s.run("events", "text"), Result[EventReport])
    records = s.bulk(["a", ("id", "b")], task="events", concurrency=8)
    assert_type(records, Iterator[Record])
    assert_type(s.bulk_to_jsonl("in.jsonl", "out.jsonl", task="brief"), BulkSummary)
    for record in records:
        if isinstance(record, Failure):
            assert_type(record.error.code, str)


async def async_api(s: Summarizer) -> None:
    assert_type(await s.abrief("text"), Result[Brief])
    assert_type(await s.aevents("text"), Result[EventReport])
    assert_type(await s.arun("events", "text"), Result[EventReport])
    assert_type(s.abulk(["a"]), AsyncGenerator[Record, None])
    assert_type(await s.abulk_to_jsonl("in.jsonl", "out.jsonl"), BulkSummary)


def construction() -> None:
    Summarizer(model="m", base_url="http://localhost:8000/v1", timeout=5, output_mode=OutputMode.JSON_OBJECT)
    Summarizer(timeuot=5)  # type: ignore[call-arg]  # a typo is an error, not a silent default
