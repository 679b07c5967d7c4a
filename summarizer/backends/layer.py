"""Layers: a backend wrapped around a backend, with one base that forwards everything.

Retries, pacing, the service's bounded pool and observation are layers
(``Retrying(Paced(Observed(backend)))``). Each overrides only ``wrap`` — what it
does around one call — and, if it must, ``wrap_stream``; the base forwards
identity, model, capabilities, notice, priming, closing, streaming and the Batch
API to the backend inside, so a layer can never silently lose one of them
(``tests/test_layers.py`` checks every member through every layer).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from .. import observe
from .base import TEXT, Backend, BatchEndpoint, Capabilities, Completion, Delta, Message, OutputSpec

__all__ = ["Layer", "Observed"]

Attempt = Callable[[], Awaitable[Completion]]
StreamAttempt = Callable[[], AsyncIterator[Delta | Completion]]


class Layer(Backend):
    """``inner`` with something around each call; every other member is ``inner``'s."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    # -- what the layer does: override these -----------------------------------------------

    async def wrap(self, attempt: Attempt, messages: list[Message], params: Mapping[str, Any] | None) -> Completion:
        """Run ``attempt`` (one call of the backend inside) with this layer around it."""
        return await attempt()

    async def wrap_stream(
        self, attempt: StreamAttempt, messages: list[Message], params: Mapping[str, Any] | None,
    ) -> AsyncIterator[Delta | Completion]:
        """The streaming twin of ``wrap``; by default the stream passes through untouched."""
        stream = attempt()
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for event in stream:
                yield event

    # -- forwarded ------------------------------------------------------------------------------

    @property
    def model(self) -> str:  # type: ignore[override]
        return self.inner.model

    @property
    def max_concurrency(self) -> int | None:  # type: ignore[override]
        return self.inner.max_concurrency

    @property
    def provider(self) -> str:  # type: ignore[override]
        return self.inner.provider

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    @property
    def server(self) -> str | None:  # type: ignore[override]
        return self.inner.server

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def notice(self) -> str | None:
        return self.inner.notice

    @property
    def innermost(self) -> Backend:
        """The backend under every layer."""
        inner = self.inner
        return inner.innermost if isinstance(inner, Layer) else inner

    def batch_endpoint(self) -> BatchEndpoint:
        return self.inner.batch_endpoint()

    async def complete(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> Completion:
        return await self.wrap(lambda: self.inner.complete(messages, output=output, params=params), messages, params)

    async def stream(
        self, messages: list[Message], *, output: OutputSpec = TEXT, params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Delta | Completion]:
        stream = self.wrap_stream(lambda: self.inner.stream(messages, output=output, params=params), messages, params)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for event in stream:
                yield event

    async def prime(self) -> None:
        await self.inner.prime()

    async def aclose(self) -> None:
        await self.inner.aclose()


class Observed(Layer):
    """Each call reported to the observer in force (``observe.current()``): one model call per attempt."""

    def _call(self, messages: list[Message], params: Mapping[str, Any] | None) -> observe.ModelCall:
        return observe.ModelCall(model=self.model, provider=self.provider, server=self.server,
                                 messages=messages, params=dict(params or {}))

    async def wrap(self, attempt: Attempt, messages: list[Message], params: Mapping[str, Any] | None) -> Completion:
        with observe.current().model_call(self._call(messages, params)) as watch:
            try:
                completion = await attempt()
            except BaseException as exc:
                watch.failed(exc)
                raise
            watch.done(completion)
            return completion

    async def wrap_stream(
        self, attempt: StreamAttempt, messages: list[Message], params: Mapping[str, Any] | None,
    ) -> AsyncIterator[Delta | Completion]:
        with observe.current().model_call(self._call(messages, params)) as watch:
            stream = attempt()
            try:
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for event in stream:
                        if isinstance(event, Completion):
                            watch.done(event)
                        yield event
            except BaseException as exc:
                watch.failed(exc)
                raise
