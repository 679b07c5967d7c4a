"""Any OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

Structured output steps down per endpoint until the server accepts it:
``json_schema`` strict, then ``json_object`` carrying the schema (what
llama.cpp-style servers turn into a grammar), then bare ``json_object``, then
plain text (validation extracts JSON from prose or code fences). The mode that
worked is remembered by the backend instance; ``output_mode`` pins one.

One call is one attempt: the client's own retries are off and ``Retrying``
owns the policy. Requests go through ``client.post(..., cast_to=httpx.Response)``
and are spread over small connection pools (see ``_ClientShards``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import observe
from ..config import OPENAI_URL, check_api_key, check_base_url, safe_url
from ..errors import ConfigError, ProviderError, SummarizerError, TransientError, redact
from ..schemas import Usage, strict_schema
from .base import FALLBACK_ORDER, TEXT, Backend, Capabilities, Completion, Delta, Message, OutputMode, OutputSpec
from .grammar import llama_safe_schema, max_output_tokens, render_grammar
from .retry import retry_after_seconds

if TYPE_CHECKING:
    import httpx
    import openai

__all__ = ["OpenAIBackend"]

_RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_CONFIG_STATUS = {401: "rejected the API key", 403: "refused access", 404: "has no such model or path"}
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|structured output|guided", re.I)
_MIN_SECRET = 8  # the shortest API key masked in answers (errors mask any key, and runs of it)


class OpenAIBackend(Backend):
    """A chat-completions endpoint: OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, …"""

    provider = "openai"  # the API spoken (gen_ai.provider.name); the server behind it may be anyone's

    def __init__(
        self, *, model: str, base_url: str = OPENAI_URL, api_key: str | None = None, timeout: float = 60.0,
        output_mode: OutputMode = OutputMode.AUTO, temperature: float | None = None, server_grammar: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not model:
            raise ConfigError(f"no model named for {safe_url(base_url)}: pass --model or set SUMMARIZER_MODEL")
        # Import the client (~0.5 s) now rather than inside the first request, where it
        # would stall an event loop full of paced requests.
        import openai  # noqa: F401
        self.base_url = check_base_url(base_url)
        self.api_key = check_api_key(api_key) if api_key is not None else None
        self.model, self.timeout = model, timeout
        self.endpoint = self.server = safe_url(self.base_url)
        self.capabilities = Capabilities(streaming=True, grammar=server_grammar, json_schema=True, batch=True)
        self.output_mode, self.temperature, self.server_grammar = output_mode, temperature, server_grammar
        self._mode = FALLBACK_ORDER[0] if output_mode is OutputMode.AUTO else output_mode
        self._transport = transport
        self._pools: dict[asyncio.AbstractEventLoop, _ClientShards] = {}
        self._tls: Any = None
        self._strict_cache: dict[int, tuple[dict[str, Any] | None, dict[str, Any]]] = {}

    @property
    def identity(self) -> str:
        return f"openai:{self.endpoint}:{self.model}:t={self.temperature}"

    @property
    def secrets(self) -> list[str]:
        return [self.api_key] if self.api_key else []

    def batch_endpoint(self) -> OpenAIBackend:
        return self  # Files and Batches live beside chat completions, on the same client

    def parse(self, data: Any, body: dict[str, Any]) -> Completion:
        """A chat completion the provider returned for ``body`` (a batch line's answer)."""
        return self._masked(parse_completion(data, self.endpoint, self.model, _mode_of(body)))

    @property
    def _answer_secrets(self) -> list[str]:
        # Whole keys of 8 characters or more: a one-letter or placeholder key ("k", "EMPTY") is no
        # secret, and masking it would cut words out of every answer ("New Yor***").
        return [key for key in self.secrets if len(key) >= _MIN_SECRET]

    def _masked(self, completion: Completion) -> Completion:
        """The answer with our key masked: a model that echoes it must not put it into results, logs or caches."""
        if self._answer_secrets:
            completion.text = redact(completion.text, self._answer_secrets, whole_only=True)
            completion.refusal = (redact(completion.refusal, self._answer_secrets, whole_only=True)
                                  if completion.refusal else None)
        return completion

    @property
    def mode(self) -> OutputMode:
        """The structured-output mode this endpoint accepts, as far as we know."""
        return self._mode

    async def complete(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> Completion:
        sends = 0
        while True:
            mode = self._mode if output.json_schema is not None else OutputMode.TEXT
            body = self.request_body(messages, output=output, params=params, mode=mode)
            sends += 1
            try:
                data = await self._post(body, mode)
            except _FormatRejected:
                continue
            except SummarizerError as exc:
                exc.usage = Usage(requests=sends)
                raise
            return self._masked(parse_completion(data, self.endpoint, self.model, mode, requests=sends))

    async def stream(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Delta | Completion]:
        if output.json_schema is not None:  # structured answers arrive whole
            yield await self.complete(messages, output=output, params=params)
            return
        body = {**self.request_body(messages, output=output, params=params, mode=OutputMode.TEXT),
                "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        finish: str | None = None
        usage = Usage(requests=1)
        model = self.model
        async for chunk in self._post_stream(body):
            model = chunk.get("model") or model
            usage = _usage(chunk.get("usage"), usage)
            for choice in chunk.get("choices") or []:
                text = ((choice or {}).get("delta") or {}).get("content")
                if isinstance(text, str) and text:
                    parts.append(text)
                    yield Delta(redact(text, self._answer_secrets, whole_only=True) if self._answer_secrets else text)
                finish = (choice or {}).get("finish_reason") or finish
        yield self._masked(Completion(text="".join(parts), usage=usage, model=str(model), finish_reason=finish,
                                      mode="text"))

    async def prime(self) -> None:
        """Walk one request through the client against an in-memory answer.

        The client's first request builds lazily (imports, models, the pool):
        ~0.1 s of a busy event loop, and in a paced run the requests that were
        granted meanwhile would then go out together.
        """
        import httpx
        import openai

        answer = {"id": "prime", "object": "chat.completion", "model": self.model, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}]}
        offline = openai.AsyncOpenAI(api_key="prime", base_url=self.base_url, max_retries=0, http_client=httpx.AsyncClient(
            transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer))))
        async with offline:
            response = await offline.post("/chat/completions", cast_to=httpx.Response, body={"model": self.model})
            parse_completion(json.loads(response.content), self.endpoint, self.model, OutputMode.TEXT)
        self._shards.pick().in_flight -= 1  # this event loop's pool and its first client, made now

    async def send_body(self, body: dict[str, Any]) -> Completion:
        """Send a request body built earlier (``request_body``) as it is: one attempt, no mode fallback."""
        mode = _mode_of(body)
        try:
            data = await self._post(body, mode)
        except _FormatRejected:
            raise ProviderError(f"{self.endpoint} rejected output mode {mode.value}") from None
        return self._masked(parse_completion(data, self.endpoint, self.model, mode))

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.aclose()

    def request_body(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
        mode: OutputMode | None = None,
    ) -> dict[str, Any]:
        """The exact JSON body a chat-completions request carries (batch files reuse it)."""
        mode = mode or (self._mode if output.json_schema is not None else OutputMode.TEXT)
        if output.format_guide and output.json_schema is not None and mode in (OutputMode.JSON_OBJECT, OutputMode.TEXT):
            messages = _with_guide(messages, output.format_guide)
        body: dict[str, Any] = {"model": self.model, "messages": messages, **(params or {})}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if mode is OutputMode.JSON_SCHEMA:
            schema = self._strict(output.json_schema) if output.strict else output.json_schema
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": output.name, "schema": schema, "strict": output.strict},
            }
        elif mode is OutputMode.JSON_OBJECT_SCHEMA:
            schema = output.schema_for_grammar() or {}
            body["response_format"] = {"type": "json_object", "schema": llama_safe_schema(schema)}
            body["messages"] = output.messages_for_grammar(messages)
            if output.grammar_schema is not None:  # a grounded schema is bounded: the JSON always closes
                body["max_tokens"] = max_output_tokens(schema) or body.get("max_tokens")
        elif mode is OutputMode.JSON_OBJECT:
            body["response_format"] = {"type": "json_object"}
        elif output.grammar and self.server_grammar:
            body["grammar"] = render_grammar(output.grammar, output.values_for_grammar())
            body["messages"] = output.messages_for_grammar(messages)
        return body

    # -- internals ---------------------------------------------------------------

    async def _post(self, body: dict[str, Any], mode: OutputMode) -> Any:
        # client.post with a raw httpx.Response: the openai client still builds the
        # request, authenticates and maps error statuses to its exceptions, but we
        # skip its per-request deep transform of params and response models — the
        # largest client-side costs in bulk after connection-pool bookkeeping.
        import httpx

        shard = self._shards.pick()
        try:
            response = await self._call(shard.client.post("/chat/completions", cast_to=httpx.Response, body=body), mode)
        finally:
            shard.in_flight -= 1
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):
            raise ProviderError(
                f"{self.endpoint} answered HTTP {response.status_code} with a body that is not JSON") from None

    async def _post_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        import openai

        shard = self._shards.pick()
        try:
            stream = await self._call(shard.client.post(
                "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object],
            ), OutputMode.TEXT)
            try:
                async for chunk in stream:
                    if isinstance(chunk, dict):
                        yield chunk
            except (openai.APIError, ValueError) as exc:
                raise TransientError(f"{self.endpoint} broke off the stream", _cause(exc)) from None
        finally:
            shard.in_flight -= 1

    async def _call(self, request: Any, mode: OutputMode) -> Any:
        """Await one openai client call, turning its exceptions into ours."""
        import openai

        try:
            return await request
        except openai.APIStatusError as exc:
            raise self._status_error(exc, mode) from None
        except openai.APITimeoutError:
            raise TransientError(f"{self.endpoint} did not answer within {self.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise TransientError(f"cannot reach {self.endpoint}", _cause(exc)) from None

    def _status_error(self, exc: openai.APIStatusError, mode: OutputMode) -> Exception:
        status = exc.status_code
        detail = self._detail(exc)
        if mode is not OutputMode.TEXT and _rejects_format(exc):
            if self.output_mode is not OutputMode.AUTO:
                return ConfigError(f"{self.endpoint} rejected output mode {mode.value} (HTTP {status}): {detail}")
            if self._mode is mode:  # concurrent rejections of one mode step down once
                self._mode = FALLBACK_ORDER[FALLBACK_ORDER.index(mode) + 1]
                observe.current().mode_stepdown(self.endpoint, mode.value, self._mode.value)
            return _FormatRejected()
        if status in _CONFIG_STATUS:
            hint = " (check --api-key / OPENAI_API_KEY)" if status in (401, 403) else " (check --model and --base-url)"
            return ConfigError(f"{self.endpoint} {_CONFIG_STATUS[status]} (HTTP {status}){hint}: {detail}")
        what = f"{self.endpoint} answered HTTP {status}"
        if status in _RETRYABLE_STATUS:
            return TransientError(what, detail, status=status, retry_after=retry_after_seconds(exc.response.headers))
        return ProviderError(f"{what}: {detail}")

    def _detail(self, exc: openai.APIStatusError) -> str:
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
        text = " ".join(str(message or exc.message or "").split())
        # Mask first, then cut: a cut key is still a key.
        text = redact(text, [self.api_key] if self.api_key else [])
        return (text[:200] + "…" if len(text) > 200 else text) or "no detail"

    @property
    def _shards(self) -> _ClientShards:
        # An httpx pool belongs to the event loop that opened its connections.
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for stale in [other for other in self._pools if other.is_closed()]:
                del self._pools[stale]
            pool = self._pools[loop] = _ClientShards(self._new_client)
        return pool

    def client(self) -> openai.AsyncOpenAI:
        """A client of this endpoint, for its other APIs (Files, Batches): the caller closes it."""
        return self._new_client()

    def _new_client(self) -> openai.AsyncOpenAI:
        import httpx
        import openai

        if self._transport is not None:
            http_client = httpx.AsyncClient(transport=self._transport)
        else:
            if self._tls is None:  # loading the CA bundle costs ~20 ms: once per backend, not per shard
                self._tls = httpx.create_ssl_context()
            http_client = openai.DefaultAsyncHttpxClient(verify=self._tls)
        return openai.AsyncOpenAI(
            api_key=self.api_key or "not-needed", base_url=self.base_url, max_retries=0, timeout=self.timeout,
            http_client=http_client,
        )

    def _strict(self, schema: dict[str, Any] | None) -> dict[str, Any]:
        # The same schema object comes with every request of a run: adapt it once.
        cached = self._strict_cache.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = (schema, strict_schema(schema or {}))
            self._strict_cache[id(schema)] = cached
        return cached[1]


def _mode_of(body: dict[str, Any]) -> OutputMode:
    """The structured-output mode a request body asks for."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return OutputMode.JSON_SCHEMA
    if fmt.get("type") == "json_object":
        return OutputMode.JSON_OBJECT_SCHEMA if "schema" in fmt else OutputMode.JSON_OBJECT
    return OutputMode.TEXT


def _with_guide(messages: list[Message], guide: str) -> list[Message]:
    """The messages with the format guide appended to the system message (or first, if there is none)."""
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{guide}"}, *messages[1:]]
    return [{"role": "system", "content": guide}, *messages]


class _FormatRejected(Exception):
    """The server refused the response_format; the backend stepped down a mode: send again."""


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

    def __len__(self) -> int:
        return len(self._shards)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.client.close()
        self._shards.clear()


# -- the answer ---------------------------------------------------------------------


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Message(_Tolerant):
    content: str | None = None
    refusal: str | None = None


class _Choice(_Tolerant):
    message: _Message = Field(default_factory=_Message)
    finish_reason: str | None = None


class _ChatCompletion(_Tolerant):
    model: str | None = None
    choices: list[_Choice] = Field(min_length=1)
    usage: Any = None

    @field_validator("model", mode="before")
    @classmethod
    def _model_name(cls, value: Any) -> Any:
        return value if isinstance(value, str) else None


def parse_completion(data: Any, endpoint: str, model: str, mode: OutputMode, *, requests: int = 1) -> Completion:
    """A Completion from a chat.completion body; ProviderError if the body is not one."""
    try:
        parsed = _ChatCompletion.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ProviderError(f"{endpoint} answered with a malformed chat completion ({where}: {first['msg']})") from None
    choice = parsed.choices[0]
    return Completion(
        text=choice.message.content or "", usage=_usage(parsed.usage, Usage(requests=requests)),
        model=parsed.model or model, finish_reason=choice.finish_reason, refusal=choice.message.refusal,
        mode=mode.value,
    )


def _usage(reported: Any, usage: Usage) -> Usage:
    """Add what the server reports, ignoring what is not a count (usage is informational)."""
    if isinstance(reported, dict):
        for name in ("prompt_tokens", "completion_tokens"):
            value = reported.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(usage, name, value)
    return usage


def _rejects_format(exc: openai.APIStatusError) -> bool:
    # 400 and 422 are usual; some servers (llama-cpp-python's) answer a request
    # they cannot validate with 500, naming the field. Retrying cannot help.
    return exc.status_code in (400, 422, 500) and bool(_FORMAT_WORDS.search(str(exc.message) + str(exc.body)))


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause else type(exc).__name__
