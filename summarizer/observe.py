"""Who watches a run: one observer interface, fed at the pipeline's choke point and by the backend layers.

Every step that matters to someone operating summarizer — a model call and
what it cost, a transport retry, a re-ask with its errors, a combine round,
a structured-output mode step-down, a cache hit, a validation failure, the
grounding outcome — is reported to the ``RunObserver`` in force. The pipeline
puts its observer in force for a document (``using``); the layers and backends
below it find it with ``current()`` (a context variable, so it follows the
document into the tasks and threads that serve it) and need no wiring.

``RunObserver`` does nothing; subclass it and override what you need.
``otel.OtelObserver`` turns the steps into OpenTelemetry spans, metrics and
events; ``Observers`` fans out to several.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.base import Completion
    from .schemas import Failure, Result

__all__ = ["CallWatch", "ModelCall", "Observers", "RunObserver", "current", "using"]


@dataclass(frozen=True)
class ModelCall:
    """One attempt at one model request, as an observer sees it."""

    model: str
    provider: str
    server: str | None = None  # the endpoint's base URL (no credentials), None in-process
    operation: str = "chat"
    messages: Sequence[Mapping[str, str]] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


class CallWatch:
    """The observer's handle on one model call: told how it ended."""

    def done(self, completion: Completion) -> None:
        """The call answered."""

    def failed(self, error: BaseException) -> None:
        """The call raised ``error``."""


class RunObserver:
    """Sees every step of a run. Each method is a no-op: override the ones you need."""

    @contextlib.contextmanager
    def document(self, task: str, document_id: str) -> Iterator[None]:
        """The span of one document through one task (everything below happens inside it)."""
        yield

    def document_done(self, record: Result[Any] | Failure) -> None:
        """The document's record, as the sink will get it (still inside ``document``)."""

    @contextlib.contextmanager
    def model_call(self, call: ModelCall) -> Iterator[CallWatch]:
        """One attempt at a model request (retries are further calls)."""
        yield CallWatch()

    def retry(self, error: BaseException, attempt: int, delay: float) -> None:
        """A transient failure; attempt number ``attempt`` follows after ``delay`` seconds."""

    def reask(self, errors: list[str], reasks: int) -> None:
        """The answer broke these rules; it is asked again (the ``reasks``-th time)."""

    def validation_failed(self, errors: list[str]) -> None:
        """The answer stayed invalid after every re-ask: the document fails."""

    def combine(self, round_: int, groups: int, parts: int) -> None:
        """A long document's ``parts`` part answers are combined in ``groups`` requests."""

    def mode_stepdown(self, server: str, rejected: str, next_mode: str) -> None:
        """The endpoint rejected a structured-output mode; the next is tried."""

    def cache_hit(self) -> None:
        """The record came from the result cache: no model call."""

    def grounding(self, warnings: list[str]) -> None:
        """What grounding found about an accepted answer (empty: nothing unsupported)."""


class Observers(RunObserver):
    """Several observers as one: each sees every step, in order."""

    def __init__(self, observers: Sequence[RunObserver]) -> None:
        self.observers = list(observers)

    @contextlib.contextmanager
    def document(self, task: str, document_id: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self.observers:
                stack.enter_context(observer.document(task, document_id))
            yield

    @contextlib.contextmanager
    def model_call(self, call: ModelCall) -> Iterator[CallWatch]:
        with contextlib.ExitStack() as stack:
            yield _Watches([stack.enter_context(observer.model_call(call)) for observer in self.observers])

    def document_done(self, record: Result[Any] | Failure) -> None:
        for observer in self.observers:
            observer.document_done(record)

    def retry(self, error: BaseException, attempt: int, delay: float) -> None:
        for observer in self.observers:
            observer.retry(error, attempt, delay)

    def reask(self, errors: list[str], reasks: int) -> None:
        for observer in self.observers:
            observer.reask(errors, reasks)

    def validation_failed(self, errors: list[str]) -> None:
        for observer in self.observers:
            observer.validation_failed(errors)

    def combine(self, round_: int, groups: int, parts: int) -> None:
        for observer in self.observers:
            observer.combine(round_, groups, parts)

    def mode_stepdown(self, server: str, rejected: str, next_mode: str) -> None:
        for observer in self.observers:
            observer.mode_stepdown(server, rejected, next_mode)

    def cache_hit(self) -> None:
        for observer in self.observers:
            observer.cache_hit()

    def grounding(self, warnings: list[str]) -> None:
        for observer in self.observers:
            observer.grounding(warnings)


class _Watches(CallWatch):
    def __init__(self, watches: list[CallWatch]) -> None:
        self.watches = watches

    def done(self, completion: Completion) -> None:
        for watch in self.watches:
            watch.done(completion)

    def failed(self, error: BaseException) -> None:
        for watch in self.watches:
            watch.failed(error)


_NOBODY = RunObserver()
_CURRENT: contextvars.ContextVar[RunObserver] = contextvars.ContextVar("summarizer_observer", default=_NOBODY)


def current() -> RunObserver:
    """The observer in force here (one that does nothing when no run set one)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(observer: RunObserver | None) -> Iterator[RunObserver]:
    """Put ``observer`` in force for the code inside (and the tasks it starts)."""
    if observer is None:
        yield current()
        return
    token = _CURRENT.set(observer)
    try:
        yield observer
    finally:
        _CURRENT.reset(token)
