"""How errors leave the service: one JSON shape (``{"error": {"code", "message"}}``), or a Failure envelope."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..schemas import Failure
from .models import one_line
from .queue import QueueUnavailable

__all__ = ["Failed", "Refusal", "install_error_handlers"]


class Failed(Exception):
    """A request that ends as a Failure envelope with a status code."""

    def __init__(self, record: Failure, status: int = 422) -> None:
        self.record, self.status = record, status


class Refusal(HTTPException):
    """An HTTP error whose ``error.code`` is not the status's default (e.g. usage_error for a 422)."""

    def __init__(self, status: int, message: str, *, code: str) -> None:
        super().__init__(status, message)
        self.code = code


def install_error_handlers(app: FastAPI) -> None:
    def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    codes = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
             413: "too_large", 415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
             503: "not_ready"}

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(HTTPException)
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when json.loads raises anything but a decode error (RecursionError on
            # deep nesting): bad input like any other JSON that does not parse.
            return error(422, "invalid_request", "body: not valid JSON (nested too deeply)")
        code = getattr(exc, "code", None) or codes.get(exc.status_code, "error")
        return error(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", one_line(exc))

    @app.exception_handler(Failed)
    async def failed(request: Request, exc: Failed) -> JSONResponse:
        return JSONResponse(exc.record.model_dump(mode="json"), status_code=exc.status)

    @app.exception_handler(QueueUnavailable)
    async def unavailable(request: Request, exc: QueueUnavailable) -> JSONResponse:
        logging.getLogger("summarizer").warning("%s: %s", request.url.path, exc)
        return error(503, "unavailable", "the job store is unavailable; try again shortly", {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("summarizer").error("internal error on %s: %s: %s", request.url.path,
                                              type(exc).__name__, exc)
        return error(500, "internal_error", "internal error; it was logged")
