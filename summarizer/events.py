"""The events task: an event report (who did what, when, where), every event backed by verbatim quotes.

Its answer is JSON in the EventReport schema; a quote the source lacks makes
it invalid (re-asked), unsupported dates and participants are warnings.
Grammar-bound decoders get a schema narrowed to the document's own spans
(``candidates`` and ``constraints``).
"""

from __future__ import annotations

import json
from typing import Any

from .backends.base import OutputSpec
from .candidates import offer
from .constraints import grounded_schema
from .grounding import SourceIndex
from .options import TaskOptions
from .registry import OutputContext, TaskSpec
from .schemas import EventReport, event_report_schema
from .validation import validate_events

__all__ = ["SCHEMA", "SPEC"]

# Built once: the schema goes with every events request. Backends get the full form
# (bounds included) and adapt it: strict mode drops the bounds, a local grammar enforces them.
SCHEMA = event_report_schema(strict=False)
SCHEMA_JSON = json.dumps(SCHEMA, separators=(",", ":"))  # for custom prompts that still place $schema


def _validate(raw: str, finish: str | None, source: SourceIndex, options: TaskOptions) -> tuple[EventReport, list[str]]:
    return validate_events(raw, finish, source)


def _output(context: OutputContext[EventReport]) -> OutputSpec:
    # Grammar decoders choose among the document's own spans (names, places,
    # times, sentences); they may only quote the text in front of them: the
    # document (or part), or for a combine step the quotes the part reports carry.
    parts = context.parts

    def grounded() -> dict[str, Any]:
        quotes = [q for report in parts for event in report.events for q in event.evidence] if parts else None
        offered = offer(context.source.text if parts else context.text, context.source.published)
        return grounded_schema(SCHEMA, offered, list(dict.fromkeys(quotes)) if quotes else None)

    return OutputSpec(json_schema=SCHEMA, name="event_report", grammar_schema=grounded)


SPEC: TaskSpec[EventReport] = TaskSpec(
    name="events", value_model=EventReport, validate=_validate, output=_output, schema=SCHEMA,
    description="Extract an event report (JSON) from a document; every event backed by verbatim quotes.",
    options=("language",), evidence=("events[].evidence[]",),
    as_part=lambda value, n: f"Part {n}: " + value.model_dump_json(exclude={"schema_version"}),
    render=lambda value: value.model_dump_json(indent=2),
)
