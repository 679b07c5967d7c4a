"""Transport retries: the one policy every backend gets, as a layer around it.

A ``TransientError`` (429, 5xx, timeouts, resets) is retried with jittered
exponential backoff, or after exactly what the server asked (``retry-after-ms``
/ ``retry-after``, capped); anything else fails at once. The layer counts
attempts into the Completion's usage, and logs each retry on the
``summarizer`` logger so that a person watching one call knows why it waits.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from .. import observe
from ..errors import ProviderError, TransientError
from ..schemas import Usage
from .base import Backend, Completion, Delta, Message
from .layer import Attempt, Layer, StreamAttempt

__all__ = ["RetryPolicy", "Retrying", "retry_after_seconds"]

Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger("summarizer")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one request."""

    max_attempts: int = 5
    max_wait: float = 60.0  # the longest Retry-After honoured, seconds
    sleep: Sleep = asyncio.sleep

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts), wait=self._wait, sleep=self.sleep,
            retry=retry_if_exception_type(TransientError), before_sleep=_log_retry, reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return min(error.retry_after, self.max_wait)
        return float(wait_random_exponential(multiplier=0.5, max=min(self.max_wait, 20.0))(state))


class Retrying(Layer):
    """``inner`` with transport retries; usage counts every attempt."""

    def __init__(self, inner: Backend, policy: RetryPolicy | None = None) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()

    async def wrap(self, attempt: Attempt, messages: list[Message], params: Mapping[str, Any] | None) -> Completion:
        if self.policy.max_attempts == 1:  # nothing to retry: skip the machinery (replays, bulk tests)
            return await attempt()
        spent = Usage()
        try:
            async for trying in self.policy.retrying():
                with trying:
                    try:
                        completion = await attempt()
                    except TransientError as exc:
                        _count(spent, exc.usage)
                        raise
                    return _settled(completion, spent)
        except TransientError as exc:
            raise _exhausted(exc, spent) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def wrap_stream(
        self, attempt: StreamAttempt, messages: list[Message], params: Mapping[str, Any] | None,
    ) -> AsyncIterator[Delta | Completion]:
        # Retried only until the first delta: after that the reader has seen text.
        spent = Usage()
        started = False
        try:
            async for trying in self.policy.retrying():
                with trying:
                    try:
                        async for event in super().wrap_stream(attempt, messages, params):
                            started = True
                            yield _settled(event, spent) if isinstance(event, Completion) else event
                    except TransientError as exc:
                        _count(spent, exc.usage)
                        if started:
                            raise _exhausted(exc, spent) from None
                        raise
                    return
        except TransientError as exc:
            raise _exhausted(exc, spent) from None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    log.warning("%s; retrying in %.1f s (attempt %d)", error, delay, state.attempt_number + 1)
    if error is not None:
        observe.current().retry(error, state.attempt_number + 1, delay)


def _count(spent: Usage, used: Usage | None) -> None:
    """A failed attempt: one more request (and whatever tokens it reported)."""
    spent.requests += used.requests if used else 1
    spent.retries += 1
    spent.prompt_tokens += used.prompt_tokens if used else 0
    spent.completion_tokens += used.completion_tokens if used else 0


def _settled(completion: Completion, spent: Usage) -> Completion:
    completion.usage.add(spent)
    return completion


def _exhausted(error: TransientError, spent: Usage) -> ProviderError:
    failure = error.after(spent.retries)
    spent.retries -= 1  # the last failed attempt was not followed by a retry
    failure.usage = spent
    return failure


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
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
