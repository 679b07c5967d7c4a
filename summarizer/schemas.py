"""Pydantic models for what summarizer returns, and the shape rules of a brief.

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

__all__ = [
    "EVENT_TYPES",
    "Brief",
    "EventReport",
    "Event",
    "Participant",
    "Place",
    "When",
    "Usage",
    "ErrorInfo",
    "Result",
    "brief_problems",
    "count_words",
    "event_report_schema",
    "strict_schema",
    "with_evidence_choices",
]

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


class Participant(_Strict):
    name: str = Field(min_length=1, max_length=120)
    kind: Literal["person", "organization", "country", "location", "other"]
    role: Literal["agent", "target", "partner", "victim", "other"]
    description: str | None = Field(
        max_length=160, description='Who they are per the document, e.g. "Russian Foreign Minister".'
    )


class Place(_Strict):
    name: str = Field(min_length=1, max_length=120)
    country: str | None = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.")


class When(_Strict):
    text: str = Field(min_length=1, max_length=80, description='Verbatim from the document, e.g. "on Friday".')
    date: str | None = Field(
        pattern=_ISO_DATE,
        description="ISO date (YYYY-MM-DD, YYYY-MM or YYYY) only when the document states or fixes it; else null.",
    )
    precision: Literal["day", "month", "year", "unknown"]

    @model_validator(mode="after")
    def _date_matches_precision(self) -> When:
        if self.date is None:
            return self
        parts = self.date.split("-")
        expected = _DATE_PARTS.get(self.precision)
        if expected is not None and len(parts) != expected:
            raise ValueError(f"date {self.date!r} does not match precision {self.precision!r}")
        try:
            _dt.date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1, int(parts[2]) if len(parts) > 2 else 1)
        except ValueError:
            raise ValueError(f"date {self.date!r} is not a real calendar date") from None
        return self


class Event(_Strict):
    type: EventType
    summary: str = Field(min_length=1, max_length=240, description="One sentence, at most 40 words: what happened.")
    participants: list[Participant] = Field(max_length=8)
    where: Place | None
    when: When | None
    status: Literal["occurred", "ongoing", "planned", "reported", "denied"]
    evidence: list[Annotated[str, Field(min_length=1, max_length=400)]] = Field(
        min_length=1, max_length=4,
        description="Verbatim quotes copied from the document that support this event.",
    )

    @field_validator("participants")
    @classmethod
    def _distinct_participants(cls, value: list[Participant]) -> list[Participant]:
        # Small models repeat an entry until the array bound; a repeat says nothing.
        return list({p.model_dump_json(): p for p in value}.values())

    @field_validator("summary")
    @classmethod
    def _summary_is_short(cls, value: str) -> str:
        if count_words(value) > 40:
            raise ValueError(f"summary has {count_words(value)} words; at most 40")
        return value


class EventReport(_Strict):
    schema_version: Literal["1"]
    headline: str = Field(min_length=1, max_length=120)
    language: str = Field(pattern=r"^[a-z]{2}$", description="ISO 639-1 code of the document's language.")
    events: list[Event] = Field(min_length=1, max_length=10, description="The main event first.")


class Brief(BaseModel):
    """One paragraph of plain prose."""

    text: str
    word_count: int


class Usage(BaseModel):
    """Tokens and requests summed over every attempt, retries and re-asks included."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    retries: int = 0
    reasks: int = 0

    def add(self, other: Usage) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ErrorInfo(BaseModel):
    code: str
    message: str
    raw_output: str | None = None


T = TypeVar("T", Brief, EventReport)


class Result(BaseModel, Generic[T]):
    """The envelope every call returns: value or error, plus how it was made."""

    id: str
    task: Literal["brief", "events"]
    status: Literal["ok", "error"]
    value: T | None = None
    error: ErrorInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None
    prompt_version: str | None = None
    latency_ms: int = 0
    cached: bool = False


# --- brief shape rules ------------------------------------------------------

_WORD = re.compile(r"\w[\w'’-]*")
_PREAMBLE = re.compile(
    r"^\s*(here\s+is|here's|here\s+are|sure\b|certainly\b|of\s+course\b|below\s+is|"
    r"summary\s*:|brief\s*:|in\s+summary\b|this\s+(article|document|text)\s+(is|describes|discusses|reports))",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*([-*•·▪–]|\d+[.)])\s+", re.MULTILINE)


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def brief_problems(text: str, min_words: int, max_words: int) -> list[str]:
    """What is wrong with ``text`` as a brief, one sentence per problem."""
    problems: list[str] = []
    if not text.strip():
        return ["the brief is empty"]
    if _BULLET.search(text):
        problems.append("it uses bullets or a numbered list; write plain prose")
    if "\n" in text.strip():
        problems.append("it has line breaks; write exactly one paragraph")
    if _PREAMBLE.match(text):
        problems.append("it starts with a preamble; start directly with the facts")
    words = count_words(text)
    if not min_words <= words <= max_words:
        problems.append(f"it has {words} words; it must have {min_words}-{max_words}")
    return problems


# --- JSON Schema --------------------------------------------------------------

# OpenAI strict mode rejects these keywords; local grammars can use them.
_STRICT_UNSUPPORTED = {"minLength", "maxLength", "title", "default"}


def event_report_schema(*, strict: bool = True) -> dict[str, Any]:
    """The EventReport JSON Schema; ``strict`` drops keywords OpenAI strict mode rejects.

    The full form keeps string and array bounds: a local grammar uses them to
    stop a small model from rambling.
    """
    full = _strip(copy.deepcopy(_BASE_SCHEMA), {"title"})
    return strict_schema(full) if strict else full


def with_evidence_choices(schema: dict[str, Any], quotes: list[str]) -> dict[str, Any]:
    """A copy of the EventReport schema whose evidence items must be one of ``quotes``.

    For grammar-constrained decoders: a quote can then only be copied from
    the document, never invented, however small the model.
    """
    schema = copy.deepcopy(schema)
    if quotes:
        schema["$defs"]["Event"]["properties"]["evidence"]["items"] = {"type": "string", "enum": quotes}
    return schema


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` without the keywords OpenAI strict mode rejects."""
    return _strip(copy.deepcopy(schema), _STRICT_UNSUPPORTED)


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


_BASE_SCHEMA = EventReport.model_json_schema()
