"""The OpenAI-compatible backend: request bodies, structured-output fallback, transport retries."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx
from conftest import SECRET, chat_response, sent

from summarizer import ConfigError, OpenAIBackend, OutputSpec, ProviderError, RetryPolicy, Retrying
from summarizer.backends.retry import retry_after_seconds
from summarizer.schemas import event_report_schema

URL = "https://llm.test/v1"
COMPLETIONS = f"{URL}/chat/completions"
MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


class FakeClock:
    """Records the waits tenacity asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def backend(clock: FakeClock | None = None, *, max_attempts: int = 3, max_retry_wait: float = 60.0,
            **options) -> Retrying:
    """The OpenAI backend as single calls get it: with the retry layer, on a virtual clock."""
    values = {"base_url": URL, "model": "m1", "api_key": SECRET, **options}
    policy = RetryPolicy(max_attempts=max_attempts, max_wait=max_retry_wait, sleep=(clock or FakeClock()).sleep)
    return Retrying(OpenAIBackend(**values), policy)


def complete(b: OpenAIBackend, **kwargs):
    return asyncio.run(b.complete(MESSAGES, **kwargs))


def error_body(message: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error"}}


@respx.mock
def test_request_carries_model_messages_and_strict_schema() -> None:
    route = respx.post(COMPLETIONS).mock(return_value=httpx.Response(200, json=chat_response("{}")))
    schema = event_report_schema()
    completion = complete(backend(), output=OutputSpec(json_schema=schema, name="event_report"), params={"temperature": 0})
    body = sent(route)[0]
    assert body["model"] == "m1"
    assert body["messages"] == MESSAGES
    assert body["temperature"] == 0
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "event_report", "schema": schema, "strict": True}
    }
    assert route.calls[0].request.headers["authorization"] == f"Bearer {SECRET}"
    assert completion.mode == "json_schema"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (100, 50)
    assert completion.usage.requests == 1 and completion.usage.retries == 0


@respx.mock
def test_plain_text_task_sends_no_response_format() -> None:
    route = respx.post(COMPLETIONS).mock(return_value=httpx.Response(200, json=chat_response("hello")))
    assert complete(backend(), output=OutputSpec(grammar="root ::= [a-z]+")).text == "hello"
    assert "response_format" not in sent(route)[0] and "grammar" not in sent(route)[0]


@respx.mock
def test_server_grammar_sends_gbnf_with_plain_text_requests() -> None:
    route = respx.post(COMPLETIONS).mock(return_value=httpx.Response(200, json=chat_response("hello")))
    complete(backend(server_grammar=True), output=OutputSpec(grammar="root ::= [a-z]+"))
    assert sent(route)[0]["grammar"] == "root ::= [a-z]+"


@respx.mock
def test_rejected_formats_fall_back_to_json_object_then_text_and_are_remembered() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        fmt = json.loads(request.content).get("response_format")
        if fmt is not None:
            return httpx.Response(400, json=error_body(f"response_format {fmt['type']} is not supported"))
        return httpx.Response(200, json=chat_response('{"ok": true}'))

    route = respx.post(COMPLETIONS).mock(side_effect=reply)
    b = backend()
    spec = OutputSpec(json_schema={"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}},
                      grammar_schema=lambda: {"type": "object", "grounded": True})
    first = complete(b, output=spec)
    formats = [body.get("response_format") for body in sent(route)]
    assert [f and f["type"] for f in formats] == ["json_schema", "json_object", "json_object", None]
    assert "maxLength" not in json.dumps(formats[0])  # strict mode gets the stripped schema
    assert formats[1]["schema"] == {"type": "object", "grounded": True}  # grammar servers get the tight one
    assert "schema" not in formats[2]
    assert first.mode == "text" and first.text == '{"ok": true}'
    second = complete(b, output=spec)  # the endpoint's mode is remembered
    assert second.mode == "text"
    assert len(route.calls) == 5


@respx.mock
def test_json_object_is_used_when_only_json_schema_is_rejected() -> None:
    route = respx.post(COMPLETIONS).mock(side_effect=[
        httpx.Response(400, json=error_body("Unknown parameter: response_format.json_schema")),
        httpx.Response(200, json=chat_response("{}")),
    ])
    assert complete(backend(), output=OutputSpec(json_schema={"type": "object"})).mode == "json_object_schema"
    assert sent(route)[1]["response_format"] == {"type": "json_object", "schema": {"type": "object"}}


@respx.mock
def test_a_500_naming_response_format_falls_back_without_retries() -> None:
    # what llama-cpp-python's server answers to a json_schema response_format
    route = respx.post(COMPLETIONS).mock(side_effect=[
        httpx.Response(500, json={"message": "1 validation error: loc ('body', 'response_format', 'type')"}),
        httpx.Response(200, json=chat_response("{}")),
    ])
    clock = FakeClock()
    assert complete(backend(clock), output=OutputSpec(json_schema={"type": "object"})).mode == "json_object_schema"
    assert len(route.calls) == 2 and clock.waits == []


@respx.mock
def test_other_400s_are_not_mistaken_for_format_rejections() -> None:
    route = respx.post(COMPLETIONS).mock(return_value=httpx.Response(400, json=error_body("context length exceeded")))
    with pytest.raises(ProviderError, match="HTTP 400.*context length exceeded"):
        complete(backend(), output=OutputSpec(json_schema={"type": "object"}))
    assert len(route.calls) == 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
@respx.mock
def test_transient_statuses_are_retried(status: int) -> None:
    route = respx.post(COMPLETIONS).mock(side_effect=[
        httpx.Response(status, json=error_body("busy")), httpx.Response(200, json=chat_response("done")),
    ])
    clock = FakeClock()
    completion = complete(backend(clock))
    assert completion.text == "done"
    assert len(route.calls) == 2
    assert (completion.usage.requests, completion.usage.retries) == (2, 1)
    assert len(clock.waits) == 1 and 0 <= clock.waits[0] <= 20


@pytest.mark.parametrize(("status", "error"), [(400, ProviderError), (422, ProviderError),
                                                (401, ConfigError), (403, ConfigError), (404, ConfigError)])
@respx.mock
def test_client_errors_are_never_retried(status: int, error: type) -> None:
    route = respx.post(COMPLETIONS).mock(return_value=httpx.Response(status, json=error_body(f"nope {status}")))
    clock = FakeClock()
    with pytest.raises(error, match=f"HTTP {status}") as info:
        complete(backend(clock))
    assert len(route.calls) == 1 and clock.waits == []
    assert "llm.test" in str(info.value)


@respx.mock
def test_retry_after_header_is_honoured() -> None:
    respx.post(COMPLETIONS).mock(side_effect=[
        httpx.Response(429, headers={"retry-after": "7"}, json=error_body("slow down")),
        httpx.Response(429, headers={"retry-after-ms": "1500", "retry-after": "9"}, json=error_body("slow down")),
        httpx.Response(200, json=chat_response("ok")),
    ])
    clock = FakeClock()
    complete(backend(clock))
    assert clock.waits == [7.0, 1.5]


@respx.mock
def test_retry_after_is_capped() -> None:
    respx.post(COMPLETIONS).mock(side_effect=[
        httpx.Response(429, headers={"retry-after": "3600"}, json=error_body("later")),
        httpx.Response(200, json=chat_response("ok")),
    ])
    clock = FakeClock()
    complete(backend(clock, max_retry_wait=30))
    assert clock.waits == [30.0]


def test_retry_after_http_date() -> None:
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


@respx.mock
def test_persistent_5xx_becomes_provider_error_naming_endpoint_and_status_not_key() -> None:
    route = respx.post(COMPLETIONS).mock(return_value=httpx.Response(503, json=error_body(f"overloaded {SECRET}")))
    clock = FakeClock()
    with pytest.raises(ProviderError) as info:
        complete(backend(clock, max_attempts=4))
    message = str(info.value)
    assert len(route.calls) == 4 and len(clock.waits) == 3
    assert "https://llm.test/v1" in message and "HTTP 503" in message and "after 4 attempts" in message
    assert SECRET not in message
    assert info.value.exit_code == 4
    assert (info.value.usage.requests, info.value.usage.retries) == (4, 3)


@pytest.mark.parametrize("exc", [httpx.ConnectTimeout("t"), httpx.ReadTimeout("t"), httpx.ConnectError("refused"),
                                 httpx.RemoteProtocolError("reset")])
@respx.mock
def test_timeouts_and_connection_errors_are_retried_then_fail(exc: Exception) -> None:
    route = respx.post(COMPLETIONS).mock(side_effect=exc)
    with pytest.raises(ProviderError, match="llm.test") as info:
        complete(backend(max_attempts=3))
    assert len(route.calls) == 3
    assert SECRET not in str(info.value)


@respx.mock
def test_connection_error_then_success() -> None:
    route = respx.post(COMPLETIONS).mock(side_effect=[httpx.ConnectError("reset"),
                                                      httpx.Response(200, json=chat_response("ok"))])
    assert complete(backend()).usage.retries == 1
    assert len(route.calls) == 2


def test_credentials_in_base_url_never_appear_in_errors() -> None:
    b = OpenAIBackend(model="m", base_url="https://user:pw@llm.test/v1?key=abc")
    assert b.endpoint == "https://llm.test/v1" and "pw" not in b.identity
