"""Backends: one interface over any OpenAI-compatible endpoint; ``local`` adds the embedded model.

Structured output degrades per endpoint: ``json_schema`` strict, then
``json_object`` carrying the schema (what llama.cpp-style servers turn into a
grammar), then bare ``json_object``, then plain text (the task layer extracts
JSON from prose or code fences). The mode that worked is remembered for the
process.

Transport retries live here (tenacity); re-asks for invalid output live in
``tasks``. The openai client's own retries are off so that one policy rules.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from .config import Settings
from .documents import estimate_tokens
from .errors import ConfigError, ProviderError
from .limits import RateLimiter
from .schemas import Usage, strict_schema

if TYPE_CHECKING:
    import openai

__all__ = ["Backend", "Completion", "OpenAIBackend", "make_backend"]

Messages = list[dict[str, str]]
Sleep = Callable[[float], Awaitable[None]]

_RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_CONFIG_STATUS = {401: "rejected the API key", 403: "refused access", 404: "has no such model or path"}
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|structured output|guided", re.I)
_MODES = ("json_schema", "json_object_schema", "json_object", "text")
# (endpoint, model) -> the structured-output mode that endpoint accepted.
_WORKING_MODE: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class OutputSpec:
    """The shape an answer must take, in the forms different decoders understand."""

    json_schema: dict[str, Any] | None = None  # full schema, bounds included; None: plain text
    name: str = "output"
    # A tighter schema for grammar decoders (e.g. evidence limited to the
    # document's own sentences), built only when a grammar decoder asks.
    grammar_schema: Callable[[], dict[str, Any]] | None = None
    grammar: str | None = None  # GBNF for plain-text answers

    def schema_for_grammar(self) -> dict[str, Any] | None:
        return self.grammar_schema() if self.grammar_schema else self.json_schema


TEXT = OutputSpec()


@dataclass
class Completion:
    """One model answer and what it cost (all transport attempts included)."""

    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    refusal: str | None = None
    mode: str = "text"


class Backend(Protocol):
    """What tasks need from a model."""

    model: str
    limiter: RateLimiter | None  # set by bulk runs; paces every attempt

    async def complete(
        self, messages: Messages, *, output: OutputSpec = TEXT, params: dict[str, Any] | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


def make_backend(settings: Settings, *, sleep: Sleep | None = None) -> Backend:
    """The backend the settings ask for, or ConfigError saying what to set.

    ``auto``: an endpoint when one is configured (base URL or API key), else the
    embedded local model when installed.
    """
    from .local import INSTALL_HINT, LocalBackend, local_available

    endpoint_configured = settings.base_url is not None or settings.api_key is not None
    choice = settings.backend
    if choice == "auto":
        if not endpoint_configured and not local_available():
            raise ConfigError(
                "no model endpoint configured and the embedded model is not installed: set "
                "OPENAI_API_KEY (OpenAI) or SUMMARIZER_BASE_URL and SUMMARIZER_MODEL (any "
                f"OpenAI-compatible server), or run offline after `{INSTALL_HINT}`"
            )
        choice = "openai" if endpoint_configured else "local"
    if choice == "local":
        return LocalBackend(settings)
    if not endpoint_configured:
        raise ConfigError(
            "no model endpoint configured: set OPENAI_API_KEY to use OpenAI, or "
            "SUMMARIZER_BASE_URL and SUMMARIZER_MODEL (or --base-url/--model) for any "
            "OpenAI-compatible server"
        )
    if settings.resolved_model is None:
        raise ConfigError(
            f"no model named for {safe_url(settings.endpoint)}: pass --model or set SUMMARIZER_MODEL"
        )
    return OpenAIBackend(settings, sleep=sleep)


def safe_url(url: str) -> str:
    """``url`` without user:password or query string, fit for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class _Attempts:
    count: int = 0
    usage: Usage = field(default_factory=Usage)


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions endpoint, through the ``openai`` client."""

    def __init__(self, settings: Settings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        self.model = settings.resolved_model or ""
        self.endpoint = safe_url(settings.endpoint)
        self._sleep = sleep or asyncio.sleep
        self._pool: _ClientShards | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._tls: Any = None
        self._strict_cache: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.limiter: RateLimiter | None = None

    async def complete(
        self, messages: Messages, *, output: OutputSpec = TEXT, params: dict[str, Any] | None = None,
    ) -> Completion:
        import openai

        key = (self.endpoint, self.model)
        json_schema = output.json_schema
        mode = _WORKING_MODE.get(key, "json_schema") if json_schema else "text"
        attempts = _Attempts()
        while True:
            request = self._request(messages, mode, output, params or {})
            try:
                response = await self._send(request, attempts)
            except openai.APIStatusError as exc:
                if json_schema and mode != "text" and _rejects_format(exc):
                    mode = _MODES[_MODES.index(mode) + 1]
                    _WORKING_MODE[key] = mode
                    continue
                raise self._status_error(exc, attempts) from None
            except openai.APITimeoutError:
                raise ProviderError(
                    f"{self.endpoint} did not answer within {self.settings.timeout:g}s "
                    f"({attempts.count} attempts)", usage=attempts.usage,
                ) from None
            except openai.APIConnectionError as exc:
                raise ProviderError(
                    f"cannot reach {self.endpoint} ({_cause(exc)}) after {attempts.count} attempts",
                    usage=attempts.usage,
                ) from None
            if json_schema:
                _WORKING_MODE[key] = mode
            return _completion(response, attempts.usage, self.model, mode)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    # -- internals ---------------------------------------------------------------

    def _request(self, messages: Messages, mode: str, output: OutputSpec, params: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": messages, **params}
        if self.settings.temperature is not None:
            request["temperature"] = self.settings.temperature
        if mode == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": output.name, "schema": self._strict(output.json_schema), "strict": True},
            }
        elif mode == "json_object_schema":
            request["response_format"] = {"type": "json_object", "schema": output.schema_for_grammar()}
        elif mode == "json_object":
            request["response_format"] = {"type": "json_object"}
        elif output.grammar and self.settings.server_grammar:
            request["grammar"] = output.grammar
        return request

    async def _send(self, request: dict[str, Any], attempts: _Attempts) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=_RetryAfterOrBackoff(self.settings.max_retry_wait),
            retry=retry_if_exception(_is_transient),
            sleep=self._sleep,
            reraise=True,
        )
        estimate = _estimate_request_tokens(request) if self.limiter else 0
        async for attempt in retrying:
            with attempt:
                attempts.count += 1
                attempts.usage.requests += 1
                if attempts.count > 1:
                    attempts.usage.retries += 1
                return await self._attempt(request, estimate)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, request: dict[str, Any], estimate: int) -> dict[str, Any]:
        if self.limiter is None:
            return await self._post(request)
        import openai

        await self.limiter.acquire(estimate)
        try:
            data = await self._post(request)
        except openai.RateLimitError as exc:
            self.limiter.backoff(retry_after_seconds(exc.response.headers) or 1.0)
            raise
        total = (data.get("usage") or {}).get("total_tokens")
        if total is not None:
            self.limiter.settle(estimate, total)
        return data

    async def _post(self, request: dict[str, Any]) -> dict[str, Any]:
        # client.post with a raw httpx.Response: the openai client still builds the
        # request, authenticates and maps error statuses to its exceptions, but we
        # skip its per-request deep transform of params and response models — the
        # largest client-side costs in bulk after connection-pool bookkeeping.
        import httpx

        shard = self._shards.pick()
        try:
            response = await shard.client.post("/chat/completions", cast_to=httpx.Response, body=request)
        finally:
            shard.in_flight -= 1
        try:
            data = json.loads(response.content)
        except ValueError:
            raise ProviderError(f"{self.endpoint} answered HTTP {response.status_code} with a body that is not JSON") from None
        if not isinstance(data, dict):
            raise ProviderError(f"{self.endpoint} answered with JSON that is not a chat completion")
        return data

    @property
    def _shards(self) -> _ClientShards:
        # An httpx pool belongs to the event loop that opened its connections.
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:
            self._pool = _ClientShards(self._new_client)
            self._pool_loop = loop
        return self._pool

    def _new_client(self) -> openai.AsyncOpenAI:
        import httpx
        import openai

        if self._tls is None:  # loading the CA bundle costs ~20 ms: once per backend, not per shard
            self._tls = httpx.create_ssl_context()
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else "not-needed"
        return openai.AsyncOpenAI(
            api_key=key, base_url=self.settings.endpoint, max_retries=0, timeout=self.settings.timeout,
            http_client=openai.DefaultAsyncHttpxClient(verify=self._tls),
        )

    def _strict(self, schema: dict[str, Any] | None) -> dict[str, Any]:
        # The same schema object comes with every request of a run: adapt it once.
        cached = self._strict_cache.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = (schema, strict_schema(schema or {}))
            self._strict_cache[id(schema)] = cached
        return cached[1]

    def _status_error(self, exc: openai.APIStatusError, attempts: _Attempts) -> Exception:
        status = exc.status_code
        detail = _short_detail(exc, self.settings)
        if status in _CONFIG_STATUS:
            hint = " (check --api-key / OPENAI_API_KEY)" if status in (401, 403) else " (check --model and --base-url)"
            return ConfigError(
                f"{self.endpoint} {_CONFIG_STATUS[status]} (HTTP {status}){hint}: {detail}",
                usage=attempts.usage,
            )
        tries = f" after {attempts.count} attempts" if attempts.count > 1 else ""
        return ProviderError(
            f"{self.endpoint} answered HTTP {status}{tries}: {detail}", status=status, usage=attempts.usage
        )


@dataclass
class _Shard:
    client: openai.AsyncOpenAI
    in_flight: int = 0


class _ClientShards:
    """Clients, each with its own connection pool, opened as concurrency grows.

    httpcore assigns a request to a connection by scanning every queued request
    against every connection (and polls each idle socket): the cost of one
    request grows with the square of what is in flight in that pool. Keeping
    each pool to a handful of requests keeps that cost flat; a single call
    uses a single client.
    """

    PER_CLIENT = 8
    MAX_CLIENTS = 128

    def __init__(self, factory: Callable[[], openai.AsyncOpenAI]) -> None:
        self._factory = factory
        self._shards: list[_Shard] = []

    def pick(self) -> _Shard:
        shard = min(self._shards, key=lambda s: s.in_flight, default=None)
        if shard is None or (shard.in_flight >= self.PER_CLIENT and len(self._shards) < self.MAX_CLIENTS):
            shard = _Shard(self._factory())
            self._shards.append(shard)
        shard.in_flight += 1
        return shard

    @property
    def clients(self) -> list[openai.AsyncOpenAI]:
        return [s.client for s in self._shards]

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.client.close()
        self._shards.clear()


class _RetryAfterOrBackoff:
    """Wait what the server asked (Retry-After / retry-after-ms), else jittered backoff."""

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait
        self._backoff = wait_random_exponential(multiplier=0.5, max=min(max_wait, 20.0))

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
        if asked is not None:
            return min(asked, self.max_wait)
        return self._backoff(state)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``retry-after``."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _estimate_request_tokens(request: dict[str, Any]) -> int:
    prompt = sum(estimate_tokens(m["content"]) + 4 for m in request["messages"])
    return prompt + int(request.get("max_tokens") or 0)


def _is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRYABLE_STATUS and not _rejects_format(exc)
    return isinstance(exc, openai.APIConnectionError)  # timeouts and resets included


def _rejects_format(exc: openai.APIStatusError) -> bool:
    # 400 and 422 are usual; some servers (llama-cpp-python's) answer a request
    # they cannot validate with 500, naming the field. Retrying cannot help.
    return exc.status_code in (400, 422, 500) and bool(_FORMAT_WORDS.search(str(exc.message) + str(exc.body)))


def _short_detail(exc: openai.APIStatusError, settings: Settings) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    text = " ".join(str(message or exc.message or "").split())[:200]
    if settings.api_key is not None:
        text = text.replace(settings.api_key.get_secret_value(), "***")
    return text or "no detail"


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause else "connection error"


def _completion(data: dict[str, Any], usage: Usage, model: str, mode: str) -> Completion:
    reported = data.get("usage") or {}
    usage.prompt_tokens += reported.get("prompt_tokens") or 0
    usage.completion_tokens += reported.get("completion_tokens") or 0
    choices = data.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    return Completion(
        text=message.get("content") or "",
        usage=usage,
        model=data.get("model") or model,
        finish_reason=choice.get("finish_reason"),
        refusal=message.get("refusal"),
        mode=mode,
    )
