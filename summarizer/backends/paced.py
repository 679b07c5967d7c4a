"""Pacing as a layer: every attempt waits for the rate limiter, every 429 slows it down.

``Retrying(Paced(backend, limiter))`` paces each attempt, retries included, of
any backend — without changing the backend, so single calls made after a bulk
run are not paced, and two runs can pace one shared backend differently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import TransientError
from ..limits import Pacer
from ..prompts import message_tokens
from .base import Backend, Completion, Delta, Message
from .layer import Attempt, Layer, StreamAttempt

__all__ = ["Paced", "estimate_request_tokens"]


class Paced(Layer):
    """``inner`` whose attempts start no faster than ``limiter`` allows."""

    def __init__(self, inner: Backend, limiter: Pacer) -> None:
        super().__init__(inner)
        self.limiter = limiter

    async def wrap(self, attempt: Attempt, messages: list[Message], params: Mapping[str, Any] | None) -> Completion:
        estimate = estimate_request_tokens(messages, params)
        await self.limiter.acquire(estimate)
        try:
            completion = await attempt()
        except TransientError as exc:
            self._throttled(exc)
            raise
        self._settle(estimate, completion)
        return completion

    async def wrap_stream(
        self, attempt: StreamAttempt, messages: list[Message], params: Mapping[str, Any] | None,
    ) -> AsyncIterator[Delta | Completion]:
        estimate = estimate_request_tokens(messages, params)
        await self.limiter.acquire(estimate)
        try:
            async for event in super().wrap_stream(attempt, messages, params):
                if isinstance(event, Completion):
                    self._settle(estimate, event)
                yield event
        except TransientError as exc:
            self._throttled(exc)
            raise

    def _settle(self, estimate: int, completion: Completion) -> None:
        used = completion.usage.prompt_tokens + completion.usage.completion_tokens
        if used:  # servers that report no usage leave the estimate standing
            self.limiter.settle(estimate, used)

    def _throttled(self, error: TransientError) -> None:
        if error.status == 429:
            self.limiter.backoff(error.retry_after or 1.0)


def estimate_request_tokens(messages: list[Message], params: Mapping[str, Any] | None) -> int:
    """What a request will cost before the server says: its messages plus the answer budget."""
    return message_tokens(messages) + int((params or {}).get("max_tokens") or 0)
