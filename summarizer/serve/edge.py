"""The edge of the service, as pure ASGI: body caps, content types and doubled credentials refused before
any route; security headers on every answer; every request logged (JSON line) and measured (Prometheus)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .auth import TokenCheck
from .config import ServiceConfig
from .metrics import Metrics

__all__ = ["Edge"]

access_log = logging.getLogger("summarizer.access")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Edge:
    """Pure ASGI: refuse oversized bodies, wrong content types and doubled credentials early; add the
    security headers; log and measure every request.

    Metrics and the access log name a request by its route *template* (``/v1/jobs/{job_id}``),
    never by its path: a path the client made up is ``unmatched``, so the label set is fixed
    however many random paths arrive, and no job id ever becomes a label.
    """

    _JSON_ONLY = re.compile(r"^/v1/(tasks/)?[a-z][a-z0-9_]{0,39}$")  # one document: JSON (not /v1/jobs)
    _METHODS = frozenset({"GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT", "PATCH"})
    _HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer")]

    def __init__(self, app: Callable[..., Awaitable[None]], config: ServiceConfig, metrics: Metrics,
                 tokens: TokenCheck) -> None:
        self.app, self.config, self.metrics, self.tokens = app, config, metrics, tokens
        self._fixed = {"/v1/jobs", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/"}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        method = scope["method"] if scope["method"] in self._METHODS else "other"
        status = {"code": 500}
        refusal = self._refusal(scope)

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *self._HEADERS]}
            await send(message)

        try:
            if refusal is not None:
                await _send_error(sending, *refusal)
            else:
                await self.app(scope, self._capped(receive, self._cap(path)), sending)
        except _TooLarge:
            await _send_error(sending, 413, "too_large", f"request body over {self._cap(path) // 1024} KiB")
        finally:
            template = getattr(scope.get("route"), "path", None)
            route = template if isinstance(template, str) else path if path in self._fixed else "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, method, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "method": method, "route": route, "status": status["code"],
                "latency_ms": round(elapsed * 1000, 1), "token": self._caller(scope),
            }))

    def _caller(self, scope: dict[str, Any]) -> str | None:
        """The token id (never the token) of the caller, for the access log: the one auth checked."""
        if self.tokens.open:
            return None
        given = [v for k, v in scope["headers"] if k.lower() == b"authorization"]
        return self.tokens.identify(given[0].decode("latin-1")) if len(given) == 1 else None

    def _cap(self, path: str) -> int:
        return self.config.max_job_bytes if path == "/v1/jobs" else self.config.max_body_bytes

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str, str] | None:
        if sum(1 for k, _ in scope["headers"] if k.lower() == b"authorization") > 1:
            return 400, "bad_request", "more than one Authorization header"  # which one would count?
        if scope["method"] != "POST":
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdecimal() and int(length) > self._cap(scope["path"]):
            return 413, "too_large", f"request body over {self._cap(scope['path']) // 1024} KiB"
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        path = scope["path"]
        allowed = ("application/json", "application/x-ndjson", "application/jsonl") if path == "/v1/jobs" else \
            ("application/json",) if self._JSON_ONLY.match(path) else None
        if allowed and media not in allowed:
            return 415, "unsupported_media_type", f"send {' or '.join(allowed)}, not {media or 'no content type'}"
        return None

    @staticmethod
    def _capped(receive: Receive, cap: int) -> Receive:
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _TooLarge()
            return message

        return counted


class _TooLarge(Exception):
    pass


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

