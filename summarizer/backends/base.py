"""What tasks need from a model, and what a model gives back.

A backend makes *one attempt*: it sends a request once (falling back between
structured-output modes if the server rejects one) and returns a Completion or
raises. Retries and pacing are layers around it (``Retrying``, ``Paced``), so
that every backend gets both and a bulk run can pace the attempts of a shared
backend without changing it.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..schemas import Usage

__all__ = ["TEXT", "Backend", "Completion", "Delta", "Message", "OutputMode", "OutputSpec"]

Message = dict[str, str]


class OutputMode(str, enum.Enum):
    """How a structured answer is asked for. ``auto`` starts strict and steps down on rejection."""

    AUTO = "auto"
    JSON_SCHEMA = "json_schema"  # OpenAI structured outputs, strict
    JSON_OBJECT_SCHEMA = "json_object_schema"  # json_object carrying the schema (llama.cpp servers compile it)
    JSON_OBJECT = "json_object"  # JSON mode without a schema
    TEXT = "text"  # plain text; JSON is extracted from the answer


# The order ``auto`` tries them in.
FALLBACK_ORDER = (OutputMode.JSON_SCHEMA, OutputMode.JSON_OBJECT_SCHEMA, OutputMode.JSON_OBJECT, OutputMode.TEXT)


@dataclass(frozen=True)
class OutputSpec:
    """The shape an answer must take, in the forms different decoders understand."""

    json_schema: dict[str, Any] | None = None  # full schema, bounds included; None: plain text
    name: str = "output"
    # A tighter schema for grammar decoders (e.g. evidence limited to the
    # document's own sentences), built only when a grammar decoder asks.
    grammar_schema: Callable[[], dict[str, Any]] | None = None
    # A GBNF template for plain-text answers (from the prompt TOML) and the values
    # to fill it with; lists become GBNF alternatives (see ``backends.grammar``).
    grammar: str | None = None
    grammar_values: Mapping[str, Any] = field(default_factory=dict)
    # The answer's shape in words, for modes that cannot carry the schema (bare
    # json_object, text): the backend appends it to the system message then.
    format_guide: str | None = None
    # (text, digest): a long text placed in the prompt, and what a grammar decoder reads in its
    # place — the sentences its grammar can choose from (see ``extractive.grammar_digest``).
    grammar_digest: tuple[str, str] | None = None

    def schema_for_grammar(self) -> dict[str, Any] | None:
        return self.grammar_schema() if self.grammar_schema else self.json_schema

    def messages_for_grammar(self, messages: list[Message]) -> list[Message]:
        """The messages a grammar-bound decoder is sent: a long text replaced by its digest."""
        if self.grammar_digest is None:
            return messages
        text, digest = self.grammar_digest
        return [{**m, "content": m["content"].replace(text, digest)} for m in messages]


TEXT = OutputSpec()


@dataclass
class Completion:
    """One model answer and what it cost (every attempt included, once wrapped by Retrying)."""

    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    refusal: str | None = None
    mode: str = "text"


@dataclass(frozen=True)
class Delta:
    """A piece of an answer as the model writes it (streaming)."""

    text: str


class Backend:
    """A model. Subclass it and implement ``complete``; the rest has working defaults."""

    model: str = ""
    # At most this many requests at once make sense (one for an in-process model);
    # None: as many as the caller likes.
    max_concurrency: int | None = None

    @property
    def identity(self) -> str:
        """What distinguishes this backend's answers in a cache key: kind, endpoint, model — never a key."""
        return f"{type(self).__name__}:{self.model}"

    async def complete(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> Completion:
        raise NotImplementedError

    async def stream(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Delta | Completion]:
        """Deltas as the model writes, then the Completion. Default: the whole answer as one delta."""
        completion = await self.complete(messages, output=output, params=params)
        yield Delta(completion.text)
        yield completion

    async def prime(self) -> None:
        """One-time set-up ahead of the first request (a bulk run calls it before it starts pacing)."""
        return None

    async def aclose(self) -> None:
        return None
