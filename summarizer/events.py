"""The events task: an event report (who did what, when, where), every event backed by verbatim quotes.

A model answers in the answer schema (``ReportAnswer``: quotes and values as
plain strings); a quote the source does not hold — exactly, or fuzzily above
the alignment threshold — makes it invalid (re-asked), unsupported dates and
participants are warnings. Once the document is done, ``_locate`` ties every
quote and value to its place in the source: the EventReport (schema 2) carries
``{"quote", "start", "end", "match"}`` evidence and a ``span`` on names,
descriptions, places and time expressions. Grammar-bound decoders get a schema
narrowed to the document's own spans (``candidates`` and ``constraints``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any


from .backends.base import OutputSpec
from .registry import OutputContext, TaskSpec
from .schemas import (
    Event, EventAnswer, EventReport, Evidence, Participant, Place, ReportAnswer, Span, When, event_report_schema,
)
from .verify import Claim

if TYPE_CHECKING:
    from .grounding import SourceIndex
    from .options import TaskOptions

__all__ = ["SCHEMA", "SPEC"]

# Built once: the schema goes with every events request. Backends get the full form
# (bounds included) and adapt it: strict mode drops the bounds, a local grammar enforces them.
SCHEMA = event_report_schema(strict=False)
SCHEMA_JSON = json.dumps(SCHEMA, separators=(",", ":"))  # for custom prompts that still place $schema


def _validate(raw: str, finish: str | None, source: SourceIndex, options: TaskOptions) -> tuple[ReportAnswer, list[str]]:
    from .validation import validate_events

    return validate_events(raw, finish, source)


def _locate(answer: ReportAnswer, source: SourceIndex, options: TaskOptions) -> tuple[EventReport, list[str]]:
    """The answer with every quote and value tied to its place in ``source.text``."""
    events = [_located_event(event, source) for event in answer.events]
    report = EventReport(headline=answer.headline, language=answer.language, events=events)
    return report, []


def _located_event(event: EventAnswer, source: SourceIndex) -> Event:
    evidence = []
    for quote in event.evidence:
        found = source.locate(quote)
        if found is None:  # validation refuses these; a combine step's answer is checked against the whole text
            continue
        evidence.append(Evidence(quote=quote, start=found.span.start, end=found.span.end, match=found.match))
    near = evidence[0].start if evidence else 0
    participants = [
        Participant(**p.model_dump(), span=_value_span(p.name, source, near),
                    description_span=_value_span(p.description, source, near) if p.description else None)
        for p in event.participants
    ]
    where = Place(**event.where.model_dump(), span=_value_span(event.where.name, source, near)) if event.where else None
    when = When(**event.when.model_dump(), span=_value_span(event.when.text, source, near)) if event.when else None
    return Event(type=event.type, summary=event.summary, participants=participants, where=where, when=when,
                 status=event.status, evidence=evidence)


def _value_span(value: str, source: SourceIndex, near: int) -> Span | None:
    """Where a name, place or time expression is: its occurrence nearest the event's evidence.

    Values are short: only an exact occurrence, or one that differs in case, spacing or
    typography, counts (a fuzzy match of two words would point at anything).
    """
    text = value.strip()
    if not text:
        return None
    occurrences = [m.start() for m in re.finditer(re.escape(text), source.text)]
    if occurrences:
        start = min(occurrences, key=lambda at: abs(at - near))
        return Span(start=start, end=start + len(text))
    found = source.locate(text)
    return found.span if found is not None and found.score >= 1.0 else None


def _claims(report: EventReport, source: str) -> list[Claim]:
    """Each event's who, where and when, against its evidence quotes."""
    claims = []
    for i, event in enumerate(report.events):
        said = [f"{p.name} ({p.role}{', ' + p.description if p.description else ''}) took part in: {event.summary}"
                for p in event.participants]
        said += [f"It happened in {event.where.name}."] if event.where else []
        said += [f"It happened {event.when.text}" + (f" ({event.when.date})." if event.when.date else ".")] \
            if event.when else []
        if said:
            claims.append(Claim(label=f"events[{i}]", text=" ".join(said),
                                excerpt=" ".join(q.of(source) for q in event.evidence)))
    return claims


def _output(context: OutputContext[ReportAnswer]) -> OutputSpec:
    # Grammar decoders choose among the events the text reports as a reporter ranks them (names,
    # places, times, sentences of the document); combining, the whole document is ranked again.
    from .extractive import grammar_digest

    parts, source = context.parts, context.source

    def grounded() -> dict[str, Any]:
        from .candidates import offer
        from .constraints import grounded_schema

        return grounded_schema(SCHEMA, offer(source.text if parts else context.text, source.published))

    # Combining, the part reports are JSON: a grammar decoder reads the document's ranked sentences.
    text = context.text

    def digest() -> tuple[str, str] | None:
        return grammar_digest(text, of=source.text, budget=0) if parts else grammar_digest(text)

    return OutputSpec(json_schema=SCHEMA, name="event_report", grammar_schema=grounded, grammar_digest=digest)


SPEC: TaskSpec[EventReport] = TaskSpec(
    name="events", value_model=EventReport, answer_model=ReportAnswer, validate=_validate, finish=_locate,
    output=_output, schema=SCHEMA, version="2",
    description="Extract an event report (JSON) from a document; every event backed by verbatim quotes.",
    options=("language",), evidence=("events[].evidence[]",),
    as_part=lambda answer, n: f"Part {n}: " + answer.model_dump_json(exclude={"schema_version"}),
    render=lambda value: value.model_dump_json(indent=2),
    claims=_claims,
)
