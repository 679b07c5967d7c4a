"""A loopback fake OpenAI-compatible server for integration tests and benchmarks.

Real sockets, HTTP/1.1 keep-alive, one asyncio protocol: cheap enough to sit
beside a 320 requests/s client on two cores. It answers chat completions with
*valid* output built from the document it was sent (a brief from its first
sentences, an event report quoting it verbatim), unless told to misbehave:

* ``server.script`` — a queue of behaviours, one consumed per request;
* a marker in the document, ``[[fake:429 500 ok]]`` — the behaviour for the
  1st, 2nd, 3rd … request carrying that document (then ``ok``);
* ``supports`` — which ``response_format`` types it accepts (others get the
  400 a server without structured output returns).

Behaviours: ok, 429, 500, 503, 408, 400, 401, 404, reset, hang, malformed,
fenced, prose, truncated, refusal, invalid, badquote, preamble, bullets, short,
twoparas, badnumber, surrogate (a lone surrogate in the answer); and answers that are not proper chat completions:
notjson (a 200 whose body is not JSON), oddusage (usage counts that are
strings), oddchoices (``choices`` a string), oddcontent (``content`` a number),
deepjson (content nested 100,000 brackets deep), echokey (a 401 whose message
ends with the API key the request carried).

Run standalone: ``python tests/fake_server.py --port 8765 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fake_batches import FakeBatchAPI

_DOC = re.compile(r"<(document|part_briefs|part_reports)>\n(.*?)\n</\1>", re.DOTALL)
_MARKER = re.compile(r"\[\[fake:([^\]]*)\]\]")
_RANGE = re.compile(r"of (\d+) to (\d+) words")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class FakeServer:
    latency: float = 0.0
    supports: tuple[str, ...] = ("json_schema", "json_object")
    retry_after: str | None = "0"
    retry_after_ms: str | None = "20"
    rpm_limit: int | None = None
    rate_window: float = 60.0  # seconds the rpm_limit counts over (shorter in tests)
    record: bool = True
    on_request: Any = None  # called with the request count, from the server thread
    total: int = 0
    connections: int = 0  # TCP connections accepted
    host: str = "127.0.0.1"
    port: int = 0
    script: deque[str] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each chat request arrived (monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    _window: deque[float] = field(default_factory=deque)
    _batch_api: FakeBatchAPI | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def batch_api(self) -> FakeBatchAPI:
        """The Files and Batches routes (made on first use), answering with this server's behaviours."""
        if self._batch_api is None:
            self._batch_api = FakeBatchAPI(answer=self._batch_answer)
        return self._batch_api

    def _batch_answer(self, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        behaviour = self.behaviour_for(body)
        self._count(behaviour)
        if behaviour.isdigit() or behaviour in ("reset", "hang", "missing"):
            return ("500" if behaviour in ("reset", "hang") else behaviour), None
        return behaviour, _completion(body, behaviour)

    def start(self) -> FakeServer:
        """Serve from a background thread (for tests); returns once listening."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run_thread, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if getattr(self, "_loop", None):
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def _run_thread(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self.serve())
        ready.set()
        self._loop.run_forever()

    async def serve(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)

    # -- behaviour ----------------------------------------------------------------------

    def behaviour_for(self, body: dict[str, Any]) -> str:
        if self.script:
            return self.script.popleft()
        user = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"), "")
        marker = _MARKER.search(user)
        if not marker:
            return "ok"
        key = f"{_task(body)}:{hash(user)}"
        nth = self._seen.get(key, 0)
        self._seen[key] = nth + 1
        plan = marker.group(1).split()
        return plan[nth] if nth < len(plan) else "ok"

    def forget_rate_window(self) -> None:
        """Forget the requests counted against ``rpm_limit`` so far."""
        self._window.clear()

    def over_rpm(self) -> bool:
        if self.rpm_limit is None:
            return False
        now = time.monotonic()
        while self._window and now - self._window[0] > self.rate_window:
            self._window.popleft()
        if len(self._window) >= self.rpm_limit:
            return True
        self._window.append(now)
        return False

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes] | str:
        """(status, headers, body) for a request, or "reset" / "hang"."""
        if self.record:
            self.requests.append(body)
            self.times.append(time.monotonic())
        self.total += 1
        if self.on_request is not None:
            self.on_request(self.total)
        if self.over_rpm():
            return self._count(429), {"retry-after": "1"}, _error("rate limit: too many requests per minute")
        behaviour = self.behaviour_for(body)
        fmt = (body.get("response_format") or {}).get("type")
        if fmt and fmt not in self.supports:
            self._count("format_rejected")
            return 400, {}, _error(f"response_format type {fmt!r} is not supported by this server")
        self._count(behaviour)
        if behaviour in ("reset", "hang"):
            return behaviour
        if behaviour.isdigit():
            status = int(behaviour)
            headers = self._retry_headers() if status == 429 else {}
            return status, headers, _error(f"fake {status}")
        if behaviour in _ODD:
            return 200, {}, _ODD[behaviour](_completion(body, "ok"))
        if behaviour == "echokey":
            padding = "x" * self.echo_padding
            return 401, {}, _error(f"Incorrect API key provided: {padding}{self.last_key}")
        completion = _completion(body, behaviour)
        if body.get("stream"):
            return 200, {"content-type": "text/event-stream"}, _sse(completion)
        return 200, {}, json.dumps(completion).encode()

    last_key: str = ""  # the bearer token of the latest request (for "echokey")
    echo_padding: int = 0  # characters of message before the echoed key

    def _count(self, name: Any) -> Any:
        self.counts[str(name)] = self.counts.get(str(name), 0) + 1
        return name

    def _retry_headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = self.retry_after_ms
        return headers


class _Connection(asyncio.Protocol):
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = int(_header(head, "content-length") or 0)
            if len(self.buffer) < head_end + 4 + length:
                return
            payload = self.buffer[head_end + 4: head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length:]
            self._handle(head, payload)

    def _handle(self, head: str, payload: bytes) -> None:
        method, path = (head.split(" ", 2)[:2] + ["", ""])[:2]
        if method == "GET" and path.endswith("/models"):
            self._send(200, {}, json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode())
            return
        if "/files" in path or "/batches" in path:
            self._send(*self.server.batch_api.handle(method, path, head, payload))
            return
        if not path.endswith("/chat/completions"):
            self._send(404, {}, _error(f"no route {path}"))
            return
        try:
            body = json.loads(payload)
        except ValueError:
            self._send(400, {}, _error("request body is not JSON"))
            return
        auth = _header(head, "authorization") or ""
        self.server.last_key = auth.removeprefix("Bearer ")
        answer = self.server.respond(body)
        if answer == "hang":
            return
        loop = asyncio.get_running_loop()
        if answer == "reset":
            loop.call_later(self.server.latency, self._reset)
            return
        if self.server.latency:
            loop.call_later(self.server.latency, self._send, *answer)
        else:
            self._send(*answer)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        media = headers.pop("content-type", "application/json")
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"content-type: {media}",
                 f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _reset(self) -> None:
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # RST instead of FIN: what a crashed proxy does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.transport.abort()


def _header(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _sse(completion: dict[str, Any]) -> bytes:
    """A completion as chat.completion.chunk events: the content in a few pieces, then usage, then [DONE]."""
    choice = completion["choices"][0]
    content = choice["message"]["content"] or ""
    words = content.split(" ")
    pieces = [" ".join(words[i:i + 5]) + (" " if i + 5 < len(words) else "") for i in range(0, len(words), 5)]
    events = [{"id": "chunk", "object": "chat.completion.chunk", "model": completion["model"],
               "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
    events.append({"id": "chunk", "object": "chat.completion.chunk", "model": completion["model"],
                   "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    events.append({"id": "chunk", "object": "chat.completion.chunk", "model": completion["model"], "choices": [],
                   "usage": completion["usage"]})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _odd(field: str, value: Any) -> Any:
    def spoil(completion: dict[str, Any]) -> bytes:
        if field == "choices":
            completion["choices"] = value
        elif field == "usage":
            completion["usage"] = {"prompt_tokens": value, "completion_tokens": value}
        else:
            completion["choices"][0]["message"]["content"] = value
        return json.dumps(completion).encode()
    return spoil


_ODD: dict[str, Any] = {
    "notjson": lambda completion: b"<html>502 Bad Gateway</html>",
    "oddusage": _odd("usage", "abc"),
    "oddchoices": _odd("choices", "abc"),
    "oddcontent": _odd("content", 12345),
    "deepjson": _odd("content", "[" * 100_000 + "]" * 100_000),
}


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "fake_error", "code": None}}).encode()


# -- answers ---------------------------------------------------------------------------


def _task(body: dict[str, Any]) -> str:
    system = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"), "")
    return "events" if "event report" in system else "brief"


def _document(body: dict[str, Any]) -> tuple[str, str]:
    user = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"), "")
    match = _DOC.search(user)
    return (match.group(1), _MARKER.sub("", match.group(2)).strip()) if match else ("document", "")


def _completion(body: dict[str, Any], behaviour: str) -> dict[str, Any]:
    task = _task(body)
    kind, text = _document(body)
    schema = _other_schema(body)
    if "You check claims" in next((m.get("content") or "" for m in body.get("messages", [])), ""):
        claims = re.findall(r"^Claim (\d+):", body["messages"][1]["content"], re.MULTILINE)  # --verify: all hold
        content = json.dumps({"verdicts": [{"claim": int(n), "supported": True, "reason": "stated"} for n in claims]})
    elif schema is not None:  # a task defined by a JSON Schema: an answer filled from the document's own words
        content = json.dumps(_fill(schema, _SENTENCE.split(" ".join(text.split()))[0].strip() or "text"))
    else:
        content = _events(kind, text) if task == "events" else _brief(body, kind, text)
    content, finish, refusal = _spoil(content, behaviour, task)
    prompt_tokens = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content or "") // 4,
                  "total_tokens": prompt_tokens + len(content or "") // 4},
    }


def _other_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") or {}
    if fmt.get("type") == "json_schema" and spec.get("name") != "event_report":
        return spec.get("schema") or {}
    return None


def _fill(schema: dict[str, Any], sentence: str) -> Any:
    """A value of ``schema`` whose every string is (a prefix of) the document's first sentence."""
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {name: _fill(sub, sentence) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_fill(schema.get("items") or {}, sentence) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "string":
        return sentence[: schema.get("maxLength", 50)]  # strict mode strips maxLength: stay short
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    return None


def _brief(body: dict[str, Any], kind: str, text: str) -> str:
    system = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"), "")
    low, high = map(int, (_RANGE.search(system) or re.match(r"(\d+) (\d+)", "40 120")).groups())
    if kind == "part_briefs":
        text = re.sub(r"^Part \d+: ", "", text, flags=re.MULTILINE)
    words: list[str] = []
    for sentence in _SENTENCE.split(" ".join(text.split())):
        if len(words) >= (low + high) // 2:
            break
        words.extend(sentence.split())
    while len(words) < low:  # a short document: say its sentences again rather than invent
        words.extend(words[: low - len(words)] or ["Nothing."])
    words = words[: high]
    brief = " ".join(words)
    return brief if brief.endswith((".", "!", "?")) else brief.rstrip(",;:") + "."


def _events(kind: str, text: str) -> str:
    if kind == "part_reports":
        events: list[dict[str, Any]] = []
        headline = None
        for line in filter(None, text.splitlines()):
            part = json.loads(line.split(": ", 1)[1])
            headline = headline or part["headline"]
            events.extend(part["events"])
        return json.dumps({"schema_version": "1", "headline": headline, "language": "en", "events": events[:10]})
    first = _SENTENCE.split(" ".join(text.split()))[0][:300].strip() or "event"
    words = first.split()
    summary = " ".join(words[:30])[:200] if len(words) > 1 else first[:30]  # text without spaces: 30 characters
    return json.dumps({
        "schema_version": "1", "headline": summary[:100], "language": "en",
        "events": [{"type": "other", "summary": summary, "participants": [], "where": None, "when": None,
                    "status": "reported", "evidence": [first]}],
    })


def _spoil(content: str, behaviour: str, task: str) -> tuple[str | None, str, str | None]:
    spoilers: dict[str, Any] = {
        "ok": lambda c: c,
        "fenced": lambda c: f"```json\n{c}\n```",
        "prose": lambda c: f"Here is the report you asked for:\n\n{c}\n\nLet me know if you need more.",
        "malformed": lambda c: c[: len(c) // 2] + '", }',
        "invalid": lambda c: json.dumps({"schema_version": "1", "headline": "x", "language": "english", "events": []}),
        "badquote": lambda c: c.replace('"evidence": ["', '"evidence": ["The minister said it was invented. '),
        "preamble": lambda c: "Here is a summary: " + c,
        "bullets": lambda c: "- " + c.replace(". ", ".\n- "),
        "short": lambda c: " ".join(c.split()[:8]) + ".",
        "twoparas": lambda c: c.replace(". ", ".\n\n", 1),
        "badnumber": lambda c: c.rstrip(".") + " at a cost of 987654 dollars.",
        # a lone surrogate (sent as a JSON escape) where validation does not look: the headline, a brief's words
        "surrogate": lambda c: c.replace('"headline": "', '"headline": "\ud800', 1) if c.startswith("{")
        else c.replace(" ", " \ud800", 1),
    }
    if behaviour.startswith("content:"):  # a scripted answer, word for word
        return behaviour.removeprefix("content:"), "stop", None
    if behaviour == "truncated":
        return content[: len(content) // 2], "length", None
    if behaviour == "refusal":
        return None, "stop", "I can't help with that request."
    return spoilers.get(behaviour, spoilers["ok"])(content), "stop", None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rpm-limit", type=int, default=None)
    parser.add_argument("--no-record", action="store_true", help="don't keep request bodies (long runs)")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="how long a batch stays in progress (POST /v1/batches/fake-release ends them all)")
    args = parser.parse_args()
    server = FakeServer(latency=args.latency, host=args.host, port=args.port, rpm_limit=args.rpm_limit,
                        record=not args.no_record)
    if args.batch_seconds is not None:
        server.batch_api.durations = (0.0, args.batch_seconds, 0.0)

    async def _main() -> None:
        await server.serve()
        print(server.base_url, flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
