"""The provider's Files and Batches API, through the openai client.

Upload a request file, create a batch (waiting and trying again when the
provider refuses for its enqueued-token limit), look batches up, cancel them,
and stream a result file line by line (a 200 MB file is never held whole).
Works with any server implementing OpenAI's routes (OpenAI, Azure OpenAI,
LiteLLM's proxy, …); a server without them is a ConfigError (exit 3).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProviderError, redact

if TYPE_CHECKING:
    import openai

__all__ = ["Provider"]

log = logging.getLogger("summarizer")
_TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
_ENQUEUED_WORDS = ("token_limit_exceeded", "enqueued token limit", "enqueued_token")


class Provider:
    """One endpoint's batch routes."""

    def __init__(self, client: openai.AsyncOpenAI, endpoint: str, *, secrets: list[str] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, refused_wait: float = 60.0,
                 refused_tries: int = 30) -> None:
        self.client, self.endpoint, self._sleep, self._secrets = client, endpoint, sleep, secrets or []
        self.refused_wait, self.refused_tries = refused_wait, refused_tries

    @staticmethod
    def terminal(status: str) -> bool:
        return status in _TERMINAL

    async def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            created = await self._call(self.client.files.create(file=(path.name, handle), purpose="batch"), "upload a file")
        return str(created.id)

    async def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Create a batch; while the provider refuses for its enqueued-token limit, wait and try again."""
        import openai

        for attempt in range(1, self.refused_tries + 1):
            try:
                batch = await self.client.batches.create(
                    input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", metadata=metadata)
                return _info(batch)
            except openai.BadRequestError as exc:
                if not any(word in str(exc).lower() for word in _ENQUEUED_WORDS) or attempt == self.refused_tries:
                    raise self._error(exc, "create a batch") from None
                log.warning("the provider's enqueued-token limit is reached; creating the batch again in %.0f s "
                            "(try %d of %d)", self.refused_wait, attempt, self.refused_tries)
                await self._sleep(self.refused_wait)
            except openai.APIError as exc:
                raise self._error(exc, "create a batch") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return _info(await self._call(self.client.batches.retrieve(batch_id), f"look up batch {batch_id}"))

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return _info(await self._call(self.client.batches.cancel(batch_id), f"cancel batch {batch_id}"))

    async def find(self, file_id: str, run_id: str) -> dict[str, Any] | None:
        """A batch already made from ``file_id`` for this run (a crash after create, before it was recorded)."""
        page = await self._call(self.client.batches.list(limit=100), "list batches")
        for batch in page.data:
            if batch.input_file_id == file_id and (batch.metadata or {}).get("summarizer_run") == run_id:
                return _info(batch)
        return None

    async def lines(self, file_id: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON lines of a result file, streamed."""
        import openai

        try:
            async with self.client.files.with_streaming_response.content(file_id) as response:
                async for line in response.iter_lines():
                    if line.strip():
                        try:
                            parsed = json.loads(line)
                        except ValueError:
                            continue  # a torn or foreign line: its request counts as missing
                        if isinstance(parsed, dict):
                            yield parsed
        except openai.APIError as exc:
            raise self._error(exc, f"read file {file_id}") from None

    async def _call(self, request: Awaitable[Any], what: str) -> Any:
        import openai

        try:
            return await request
        except openai.APIError as exc:
            raise self._error(exc, what) from None

    def _error(self, exc: Exception, what: str) -> Exception:
        import openai

        if isinstance(exc, openai.NotFoundError):
            return ConfigError(f"{self.endpoint} has no Batch API (HTTP 404 when trying to {what}); "
                               "use --via direct, or an endpoint that offers /files and /batches")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ConfigError(f"{self.endpoint} refused to {what} (HTTP {exc.status_code}): check the API key")
        status = getattr(exc, "status_code", None)
        detail = redact(" ".join(str(getattr(exc, "message", exc)).split()), self._secrets)[:200]
        return ProviderError(f"{self.endpoint} could not {what}" + (f" (HTTP {status})" if status else "") +
                             f": {detail}")


def _info(batch: Any) -> dict[str, Any]:
    counts = batch.request_counts
    errors = getattr(batch.errors, "data", None) or []  # why the provider failed it at validation
    return {
        "id": batch.id, "status": batch.status, "input_file_id": batch.input_file_id,
        "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
        "counts": {"total": counts.total, "completed": counts.completed, "failed": counts.failed} if counts else {},
        "errors": [{"code": e.code, "message": e.message, "line": e.line} for e in errors],
    }
