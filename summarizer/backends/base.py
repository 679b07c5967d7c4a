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
from typing import Any, Protocol

from ..schemas import Usage

__all__ = ["TEXT", "Backend", "BatchEndpoint", "Capabilities", "Completion", "Delta", "Message", "OutputMode", "OutputSpec"]

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
    strict: bool = True  # the schema suits OpenAI's strict mode (every property required, no extras)
    # A tighter schema for grammar decoders (e.g. evidence limited to the
    # document's own sentences), built only when a grammar decoder asks.
    grammar_schema: Callable[[], dict[str, Any]] | None = None
    # A GBNF template for plain-text answers (from the prompt TOML) and the values
    # to fill it with; lists become GBNF alternatives (see ``backends.grammar``).
    # A callable is computed only when a grammar decoder asks (ranking sentences costs).
    grammar: str | None = None
    grammar_values: Mapping[str, Any] | Callable[[], Mapping[str, Any]] = field(default_factory=dict)
    # The answer's shape in words, for modes that cannot carry the schema (bare
    # json_object, text): the backend appends it to the system message then.
    format_guide: str | None = None
    # (text, digest): a long text placed in the prompt, and what a grammar decoder reads in its
    # place — the sentences its grammar can choose from (see ``extractive.grammar_digest``);
    # computed when a grammar decoder asks.
    grammar_digest: Callable[[], tuple[str, str] | None] | None = None

    def schema_for_grammar(self) -> dict[str, Any] | None:
        return self.grammar_schema() if self.grammar_schema else self.json_schema

    def values_for_grammar(self) -> Mapping[str, Any]:
        return self.grammar_values() if callable(self.grammar_values) else self.grammar_values

    def messages_for_grammar(self, messages: list[Message]) -> list[Message]:
        """The messages a grammar-bound decoder is sent: a long text replaced by its digest."""
        digested = self.grammar_digest() if self.grammar_digest else None
        if digested is None:
            return messages
        text, digest = digested
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


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared (callers ask, never probe with isinstance or getattr)."""

    streaming: bool = False  # deltas as the model writes (else ``stream`` yields the whole answer once)
    grammar: bool = False  # a grammar-bound decoder: honours GBNF grammars and grounded schemas
    json_schema: bool = False  # takes a JSON Schema for structured answers (strict or as json_object)
    batch: bool = False  # offers the provider's Batch API (``batch_endpoint``)
    judge: bool = True  # judges claims against their source well enough for --verify (a tiny model does not)


class BatchEndpoint(Protocol):
    """What the Batch API driver needs of a backend that declares ``capabilities.batch``."""

    endpoint: str  # the base URL, without credentials (for messages)

    @property
    def secrets(self) -> list[str]:
        """What to mask in any text the provider sends back."""
        ...

    def request_body(self, messages: list[Message], *, output: OutputSpec = ...,
                     params: Mapping[str, Any] | None = ...) -> dict[str, Any]:
        """The exact JSON body a direct request would carry: a batch line's ``body``."""
        ...

    def parse(self, data: Any, body: dict[str, Any]) -> Completion:
        """A batch line's response body (a chat completion) as a Completion."""
        ...

    def client(self) -> Any:
        """A client of the provider's Files and Batches APIs (``openai.AsyncOpenAI``); the caller closes it."""
        ...

    async def send_body(self, body: dict[str, Any]) -> Completion:
        """Send a batch line's body directly: one attempt."""
        ...


class Backend:
    """A model. Subclass it and implement ``complete``; the rest has working defaults."""

    model: str = ""
    # At most this many requests at once make sense (one for an in-process model);
    # None: as many as the caller likes.
    max_concurrency: int | None = None
    provider: str = "custom"  # who serves the model (OpenTelemetry's gen_ai.provider.name)
    server: str | None = None  # where: an HTTP endpoint's base URL without credentials; None in-process
    capabilities: Capabilities = Capabilities()

    @property
    def notice(self) -> str | None:
        """What a person should be told once about this backend (the embedded model says what it is)."""
        return None

    def batch_endpoint(self) -> BatchEndpoint:
        """The provider's Batch API; only for backends whose ``capabilities.batch`` is true."""
        from ..errors import ConfigError

        raise ConfigError("the Batch API needs an OpenAI-compatible endpoint (--base-url/--model), "
                          "not the embedded model")

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
        """One-time set-up ahead of the first request (loading a model, building a client pool).

        A bulk run calls it before it starts pacing; the service calls it at start-up so that
        ``/readyz`` can say when the backend is ready.
        """
        return None

    async def aclose(self) -> None:
        return None
