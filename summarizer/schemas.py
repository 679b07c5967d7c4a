"""Pydantic models for what summarizer returns: Brief, EventReport and the Result envelope.

The EventReport JSON Schema is strict-mode compatible (every property
required, nullable instead of optional, no additional properties), so the
same model drives OpenAI structured outputs, local constrained decoding and
validation of whatever comes back.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import GenerateJsonSchema

__all__ = [
    "DEFAULT_WORDS", "EVENT_TYPES", "TASK_NAMES", "Brief", "CheckedSentence", "ErrorInfo", "Event", "EventAnswer",
    "EventReport", "Evidence", "Failure", "Issue", "Participant", "ParticipantAnswer", "Place", "PlaceAnswer", "Record",
    "ReportAnswer", "Result", "SourceText", "Span", "TaskName", "Usage", "When", "WhenAnswer", "count_words",
    "event_report_schema", "strict_schema", "writable",
]

TaskName = str
"""A task in the registry: "brief", "events", or one a user or plugin defines (``registry.TaskSpec``)."""
TASK_NAMES: tuple[TaskName, ...] = ("brief", "events")  # the built-in tasks
DEFAULT_WORDS = (40, 120)  # a brief's word range unless the caller says otherwise

EventType = Literal[
    "diplomacy.meeting", "diplomacy.statement", "politics.election", "politics.policy",
    "conflict.attack", "conflict.protest", "justice.arrest", "justice.trial",
    "disaster.natural", "disaster.accident", "business.deal", "economy.report",
    "health.outbreak", "science.discovery", "sports.result", "other",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

_ISO_DATE = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"  # [0-9], not \d: llama.cpp grammars reject \d
_DATE_PARTS = {"year": 1, "month": 2, "day": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(BaseModel):
    """``[start, end)``: Python string indices into the text it belongs to (a result's ``source.text``)."""

    model_config = ConfigDict(frozen=True)

    start: int = Field(ge=0)
    end: int = Field(ge=0)

    def of(self, text: str) -> str:
        return text[self.start:self.end]


class SourceText(BaseModel):
    """The text the model saw (after extraction and de-duplication): every span of a result points into it."""

    text: str
    digest: str  # SHA-256 of the text and the publication date: the document part of a cache key


# -- what a model writes: the answer shapes (schema version 1) -------------------------------------------
# Quotes and values are plain strings; offsets are found afterwards, never asked of a model.


class ParticipantAnswer(_Strict):
    name: str = Field(min_length=1, max_length=120)
    kind: Literal["person", "organization", "country", "location", "other"]
    role: Literal["agent", "target", "partner", "victim", "other"]
    description: str | None = Field(
        max_length=160, description='Who they are per the document, e.g. "Russian Foreign Minister".'
    )


class PlaceAnswer(_Strict):
    name: str = Field(min_length=1, max_length=120)
    country: str | None = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.")


class WhenAnswer(_Strict):
    text: str = Field(min_length=1, max_length=80, description='Verbatim from the document, e.g. "on Friday".')
    date: str | None = Field(
        pattern=_ISO_DATE,
        description="ISO date (YYYY-MM-DD, YYYY-MM or YYYY) only when the document states or fixes it; else null.",
    )
    precision: Literal["day", "month", "year", "unknown"]

    @model_validator(mode="after")
    def _date_matches_precision(self) -> WhenAnswer:
        _check_date(self.date, self.precision)
        return self


class EventAnswer(_Strict):
    type: EventType
    summary: str = Field(min_length=1, max_length=240, description="One sentence, at most 40 words: what happened.")
    participants: list[ParticipantAnswer] = Field(max_length=8)
    where: PlaceAnswer | None
    when: WhenAnswer | None
    status: Literal["occurred", "ongoing", "planned", "reported", "denied"]
    evidence: list[Annotated[str, Field(min_length=1, max_length=400)]] = Field(
        min_length=1, max_length=4,
        description="Verbatim quotes copied from the document that support this event.",
    )

    @field_validator("participants")
    @classmethod
    def _distinct_participants(cls, value: list[ParticipantAnswer]) -> list[ParticipantAnswer]:
        # Small models repeat an entry until the array bound; a repeat says nothing.
        return list({p.model_dump_json(): p for p in value}.values())

    @field_validator("summary")
    @classmethod
    def _summary_is_short(cls, value: str) -> str:
        if count_words(value) > 40:
            raise ValueError(f"summary has {count_words(value)} words; at most 40")
        return value


class ReportAnswer(_Strict):
    # An event report as a model writes it (no docstring: it would join the schema the model is sent);
    # the events task's finish step turns it into an EventReport with offsets.
    schema_version: Literal["1"]
    headline: str = Field(min_length=1, max_length=120)
    language: str = Field(pattern=r"^[a-z]{2}$", description="ISO 639-1 code of the document's language.")
    events: list[EventAnswer] = Field(min_length=1, max_length=10, description="The main event first.")

    @field_validator("events")
    @classmethod
    def _distinct_events(cls, value: list[EventAnswer]) -> list[EventAnswer]:
        # The same event twice (a small model repeats to the array bound) is one event.
        return list({e.model_dump_json(): e for e in value}.values())


def _check_date(date: str | None, precision: str) -> None:
    if date is None:
        return
    parts = date.split("-")
    expected = _DATE_PARTS.get(precision)
    if expected is not None and len(parts) != expected:
        raise ValueError(f"date {date!r} does not match precision {precision!r}")
    try:
        _dt.date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1, int(parts[2]) if len(parts) > 2 else 1)
    except ValueError:
        raise ValueError(f"date {date!r} is not a real calendar date") from None


# -- what summarizer returns: every quote and value tied to its place in the source (schema version 2) ------


class Evidence(BaseModel):
    """A quote and where it is: ``source.text[start:end]`` is the quote (``exact``) or reads as it (``fuzzy``)."""

    quote: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    match: Literal["exact", "fuzzy"]

    def of(self, text: str) -> str:
        return text[self.start:self.end]


class Participant(BaseModel):
    name: str
    kind: Literal["person", "organization", "country", "location", "other"]
    role: Literal["agent", "target", "partner", "victim", "other"]
    description: str | None
    span: Span | None = None  # where the name is in the source; None: not found there
    description_span: Span | None = None


class Place(BaseModel):
    name: str
    country: str | None
    span: Span | None = None


class When(BaseModel):
    text: str
    date: str | None
    precision: Literal["day", "month", "year", "unknown"]
    span: Span | None = None


class Event(BaseModel):
    type: EventType
    summary: str
    participants: list[Participant]
    where: Place | None
    when: When | None
    status: Literal["occurred", "ongoing", "planned", "reported", "denied"]
    evidence: list[Evidence]


class EventReport(BaseModel):
    """Who did what, when, where, with whom; every quote and value located in ``source.text``."""

    schema_version: Literal["2"] = "2"
    headline: str
    language: str
    events: list[Event]


# -- briefs ------------------------------------------------------------------------------------------------


class Issue(BaseModel):
    """Something a summary sentence says that its cited source text does not back."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["name", "number", "date", "quantity", "negation", "place", "role", "unsupported_content"]
    text: str  # the words of the summary sentence at fault
    detail: str  # what the source says instead, or that it says nothing of it
    span: Span | None = None  # where ``text`` is in the summary


class CheckedSentence(BaseModel):
    """One summary sentence: where it is, the source sentences that back it, and the verdict."""

    text: str
    span: Span  # in the summary
    citations: list[Span]  # in the source
    support: Literal["supported", "partial", "unsupported"]
    issues: list[Issue]
    judged: Literal["supported", "unsupported"] | None = None  # --verify: the model's verdict on its citations
    judge_reason: str | None = None


class Brief(BaseModel):
    """One paragraph of plain prose; each sentence cited to the source sentences that back it."""

    text: str
    word_count: int
    sentences: list[CheckedSentence] = Field(default_factory=list)


class Usage(BaseModel):
    """Tokens and requests summed over every attempt, retries and re-asks included."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    retries: int = 0
    reasks: int = 0
    batched: int = 0  # of the requests, those answered through the provider's Batch API (its batch price)

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.requests += other.requests
        self.retries += other.retries
        self.reasks += other.reasks
        self.batched += other.batched


class ErrorInfo(BaseModel):
    """Why a document has no value: a stable ``code`` for programs, a ``message`` for people."""

    code: str
    message: str
    raw_output: str | None = None


T = TypeVar("T", bound=BaseModel)


class _Envelope(BaseModel):
    # The field order is the JSONL line's order: resume reads id, task and status
    # from the head of each line without parsing the rest.
    id: str
    task: TaskName = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    status: Literal["ok", "error"]
    value: Any = None
    error: ErrorInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None
    prompt_version: str | None = None
    latency_ms: int = 0
    cached: bool = False
    # Of the warnings, those about content the source does not back (names, numbers, unsupported sentences,
    # the judge's verdicts) — not notes about the input: what --fail-on-warnings and the counts look at.
    unsupported: int = 0
    source: SourceText | None = None  # the text the model saw: every span in ``value`` points into it


class Result(_Envelope, Generic[T]):
    """A success: ``value`` is always there (a Brief, an EventReport, or a user task's value)."""

    status: Literal["ok"] = "ok"
    value: T
    error: None = None


class Failure(_Envelope):
    """A document that produced no value: bulk writes it as an error record and goes on."""

    status: Literal["error"] = "error"
    value: None = None
    error: ErrorInfo


Record = Result[Any] | Failure
"""One line of a bulk output: the same envelope for a success and a failure."""

def writable(record: Record) -> tuple[Record, str]:
    """``record`` and its JSON line — or, when it cannot be written as UTF-8 (a lone surrogate in a
    model's answer, say), an error record for the same id (code ``output_error``).

    Every driver writes through this, so that one unwritable record costs its document, never the run.
    """
    try:
        return record, record.model_dump_json()
    except ValueError:  # pydantic cannot encode a lone surrogate as UTF-8
        pass
    where = next((name for name in ("value", "warnings", "error", "model", "prompt_version", "id")
                  if not _encodes(record, name)), "record")
    failure = Failure(id=_escaped(record.id), task=record.task, usage=record.usage, model=_escaped(record.model),
                      error=ErrorInfo(code="output_error", message=f"the record's {where} holds a lone surrogate "
                                                                   "(not valid Unicode): it cannot be written"))
    return failure, failure.model_dump_json()


def _encodes(record: Record, name: str) -> bool:
    try:
        record.model_dump_json(include={name})
    except ValueError:
        return False
    return True


def _escaped(text: str | None) -> Any:
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- words ---------------------------------------------------------------------

# Scripts written without spaces between words: each character counts as a word.
_WIDE = "\u2e80-\u9fff\uac00-\ud7ff\uf900-\ufaff\u3040-\u30ff\u0e00-\u0e7f"
_WORD = re.compile(rf"[{_WIDE}]|[^\W{_WIDE}][^\W{_WIDE}'’-]*(?:['’-][^\W{_WIDE}]+)*")


def count_words(text: str) -> int:
    """Words as a reader counts them: "Asia-Pacific" and "Lavrov's" are one each, a Chinese character one."""
    return len(_WORD.findall(text))


# --- JSON Schema --------------------------------------------------------------

# OpenAI strict mode rejects these keywords; local grammars can use them.
_STRICT_UNSUPPORTED = {"minLength", "maxLength", "title", "default"}


def event_report_schema(*, strict: bool = True) -> dict[str, Any]:
    """The JSON Schema a model answers an event report in; ``strict`` drops keywords OpenAI strict mode rejects.

    The full form keeps string and array bounds: a local grammar uses them to
    stop a small model from rambling.
    """
    full = _strip(copy.deepcopy(_BASE_SCHEMA), {"title"})
    return strict_schema(full) if strict else full


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` without the keywords OpenAI strict mode rejects."""
    stripped: dict[str, Any] = _strip(copy.deepcopy(schema), _STRICT_UNSUPPORTED)
    return stripped


def _strip(node: Any, keys: set[str]) -> Any:
    if isinstance(node, dict):
        for key in keys & node.keys():
            if not (key == "title" and isinstance(node.get(key), dict)):
                del node[key]
        for value in node.values():
            _strip(value, keys)
    elif isinstance(node, list):
        for item in node:
            _strip(item, keys)
    return node


class _AnswerNames(GenerateJsonSchema):
    """The answer models' schema under their schema-1 names ("Event", not "EventAnswer"): the prompt stays the same."""

    def normalize_name(self, name: str) -> str:
        name = super().normalize_name(name)
        return "EventReport" if name == "ReportAnswer" else name.removesuffix("Answer")


_BASE_SCHEMA = ReportAnswer.model_json_schema(schema_generator=_AnswerNames)
