"""The service's request bodies (pydantic only: the parser workers import them without FastAPI).

Every string a client sends is checked to be valid Unicode here: JSON allows a
lone surrogate escape (``"\\ud800"``), which no UTF-8 encoder, prompt or log can
carry, so it is a 422 at the door rather than a failure deep inside.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..schemas import TaskName

__all__ = ["DocumentIn", "ErrorBody", "JobRequest", "SummaryRequest", "one_line"]


def _unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (not valid Unicode text)") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]


class DocumentIn(BaseModel):
    """One document: exactly one of text, html or url."""

    model_config = ConfigDict(extra="forbid")

    text: Text | None = Field(None, description="Plain text or Markdown.")
    html: Text | None = Field(None, description="A web page; its article is extracted, its date kept.")
    url: Text | None = Field(None, description="An http(s) URL to fetch (only where the server allows it).")
    id: Text | None = Field(None, max_length=512)
    published: dt.date | None = Field(None, description="Publication date, to resolve \"on Friday\".")

    @model_validator(mode="after")
    def _one_source(self) -> DocumentIn:
        given = [name for name in ("text", "html", "url") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, html or url")
        return self


class SummaryRequest(DocumentIn):
    words: tuple[int, int] | None = Field(None, description="Brief word range [min, max]; default [40, 120].")
    language: Text | None = Field(None, max_length=40, description="Output language; default: the document's.")
    strict: bool = Field(False, description="Brief: names, numbers and unsupported sentences are re-asked.")
    verify: bool = Field(False, description="The model judges each claim against the source text cited for it.")
    stream: bool = Field(False, description="Prose tasks (brief): Server-Sent Events (delta, retry, result | error).")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: TaskName = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="brief, events, or any registered task.")
    documents: list[dict[str, Any] | str] = Field(
        description='Each {"id", "text" | "html" | "url", "published"?}, or a string (its text); '
                    "a bad one becomes an error record.")
    words: tuple[int, int] | None = None
    language: Text | None = Field(None, max_length=40)
    strict: bool = False
    verify: bool = False
    published: dt.date | None = Field(None, description="Publication date of documents that carry none.")


class ErrorBody(BaseModel):
    error: dict[str, str]


class _Invalid(Protocol):
    def errors(self) -> Sequence[Any]: ...


def one_line(exc: _Invalid) -> str:
    """The first validation error as one line: where, and what is wrong (never the value)."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}{more}"
