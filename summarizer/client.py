"""``Summarizer``: the front door of the library, sync and async.

Every method has an async twin (``brief``/``abrief``, ``events``/``aevents``,
``run``/``arun``, ``bulk``/``abulk``, ``bulk_to_jsonl``/``abulk_to_jsonl``).
The sync methods run on one event loop in a background thread that the
Summarizer owns, so they are safe to call from many threads at once (a web
app's workers), share connections between calls, and work even where another
event loop is running (a notebook).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from . import backends
from .backends import Backend, OutputMode, Paced, Retrying
from .backends.openai import OpenAIBackend
from .batch import BatchLimits, BatchRunner, BatchSummary, cancel_batches
from .bulk import BulkRunner, BulkSummary, run_bulk
from .cache import ResultCache
from .config import Settings, load_settings
from .documents import Document, read_document
from .errors import ConfigError, UsageError
from .fetch import FetchPolicy
from .limits import Pacer, RateLimiter
from .prompts import PromptLibrary
from .schemas import DEFAULT_WORDS, Brief, EventReport, Record, Result, TaskName
from .sinks import JsonlSink
from .sources import as_items, read_source, source_path
from .tasks import RunProgress, StreamEvent, TaskOptions, run_task

__all__ = ["DocumentLike", "Summarizer"]

T = TypeVar("T")
DocumentLike = str | Document
CacheChoice = bool | ResultCache | str | Path
EventCallback = Callable[[StreamEvent], None]
ProgressCallback = Callable[[RunProgress], None]


class Summarizer:
    """Briefs and event reports from any OpenAI-compatible endpoint, or the embedded model.

    >>> s = Summarizer(model="gpt-4o-mini")          # or from env / summarizer.toml
    >>> s.brief(text).value.text

    Unset arguments fall back to the environment, then the config file.
    ``backend`` is "auto", "openai", "local", or a ready Backend object.
    """

    def __init__(
        self, model: str | None = None, base_url: str | None = None, api_key: str | None = None, *,
        backend: Backend | Literal["auto", "openai", "local"] | None = None,
        timeout: float | None = None, max_attempts: int | None = None, max_retry_wait: float | None = None,
        max_reasks: int | None = None, context_tokens: int | None = None, chunk_concurrency: int | None = None,
        temperature: float | None = None, output_mode: OutputMode | str | None = None,
        server_grammar: bool | None = None, prompts_dir: str | Path | None = None,
        model_path: str | Path | None = None, settings: Settings | None = None,
        fetch_policy: FetchPolicy | None = None,
    ) -> None:
        given = {
            "model": model, "base_url": base_url, "api_key": api_key, "timeout": timeout,
            "max_attempts": max_attempts, "max_retry_wait": max_retry_wait, "max_reasks": max_reasks,
            "context_tokens": context_tokens, "chunk_concurrency": chunk_concurrency, "temperature": temperature,
            "output_mode": output_mode.value if isinstance(output_mode, OutputMode) else output_mode,
            "server_grammar": server_grammar, "prompts_dir": prompts_dir, "model_path": model_path,
            "backend": backend if isinstance(backend, str) else None,
        }
        if settings is not None and any(v is not None for v in given.values()):
            raise TypeError("pass either settings= or individual settings, not both")
        self.settings = settings or load_settings(**given)
        self.prompts = PromptLibrary(self.settings.prompts_dir)
        self.fetch_policy = fetch_policy or FetchPolicy()  # how URLs (s.read, bulk "url" records) are fetched
        self._raw: Backend | None = None if isinstance(backend, str) or backend is None else backend
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self._loop: _LoopThread | None = None

    # -- the backend ---------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend single calls use (with retries). Built on first use: constructing never fails on config."""
        with self._lock:
            if self._backend is None:
                self._backend = Retrying(self._transport(), backends.retry_policy(self.settings))
            return self._backend

    @property
    def notice(self) -> str | None:
        """What the backend wants a person to know once (the embedded model says what it is)."""
        notice = getattr(self.backend_unwrapped, "notice", None)
        return notice if isinstance(notice, str) else None

    @property
    def backend_unwrapped(self) -> Backend:
        """The bare backend: one attempt per call, no retries, no pacing."""
        with self._lock:
            return self._transport()

    def _transport(self) -> Backend:
        if self._raw is None:
            self._raw = backends.from_settings(self.settings)
        return self._raw

    def options(
        self, *, words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
    ) -> TaskOptions:
        """Per-call options, checked now (before any request)."""
        return TaskOptions(
            words=_words(words),
            language=language, strict=strict, max_reasks=self.settings.max_reasks,
            context_tokens=self.settings.context_tokens, chunk_concurrency=self.settings.chunk_concurrency,
        )

    # -- one document ------------------------------------------------------------------------

    @overload
    async def arun(self, task: Literal["brief"], document: DocumentLike, *, words: tuple[int, int] | None = ...,
                   language: str | None = ..., strict: bool = ..., on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
                   ) -> Result[Brief]: ...

    @overload
    async def arun(self, task: Literal["events"], document: DocumentLike, *, words: tuple[int, int] | None = ...,
                   language: str | None = ..., strict: bool = ..., on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
                   ) -> Result[EventReport]: ...

    @overload
    async def arun(self, task: TaskName, document: DocumentLike, *, words: tuple[int, int] | None = ...,
                   language: str | None = ..., strict: bool = ..., on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
                   ) -> Result[Brief] | Result[EventReport]: ...

    async def arun(
        self, task: TaskName, document: DocumentLike, *, words: tuple[int, int] | None = None,
        language: str | None = None, strict: bool = False, on_event: EventCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Result[Brief] | Result[EventReport]:
        """Run ``task`` ("brief" or "events") on one document; raise SummarizerError on failure."""
        options = self.options(words=words, language=language, strict=strict)
        doc = _as_document(document)
        result: Result[Brief] | Result[EventReport] = await run_task(
            _task(task), doc, self.backend, self.prompts, options, on_event=on_event)
        return result

    async def abrief(
        self, document: DocumentLike, *, words: tuple[int, int] | None = None, language: str | None = None,
        strict: bool = False, on_event: EventCallback | None = None, on_progress: ProgressCallback | None = None,
    ) -> Result[Brief]:
        """One-paragraph brief; ``on_event`` receives its deltas as the model writes, ``on_progress`` a long
        document's parts as they are read."""
        return await self.arun("brief", document, words=words, language=language, strict=strict, on_event=on_event,
                               on_progress=on_progress)

    async def aevents(self, document: DocumentLike, *, language: str | None = None,
                      on_progress: ProgressCallback | None = None) -> Result[EventReport]:
        """Event report grounded in verbatim quotes."""
        return await self.arun("events", document, language=language, on_progress=on_progress)

    @overload
    def run(self, task: Literal["brief"], document: DocumentLike, *, words: tuple[int, int] | None = ...,
            language: str | None = ..., strict: bool = ..., on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
            ) -> Result[Brief]: ...

    @overload
    def run(self, task: Literal["events"], document: DocumentLike, *, words: tuple[int, int] | None = ...,
            language: str | None = ..., strict: bool = ..., on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
            ) -> Result[EventReport]: ...

    @overload
    def run(self, task: TaskName, document: DocumentLike, *, words: tuple[int, int] | None = ...,
            language: str | None = ..., strict: bool = ..., on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
            ) -> Result[Brief] | Result[EventReport]: ...

    def run(
        self, task: TaskName, document: DocumentLike, *, words: tuple[int, int] | None = None,
        language: str | None = None, strict: bool = False, on_event: EventCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Result[Brief] | Result[EventReport]:
        options = self.options(words=words, language=language, strict=strict)
        doc = _as_document(document)
        result: Result[Brief] | Result[EventReport] = self._call(
            run_task(_task(task), doc, self.backend, self.prompts, options, on_event=on_event, on_progress=on_progress))
        return result

    def brief(
        self, document: DocumentLike, *, words: tuple[int, int] | None = None, language: str | None = None,
        strict: bool = False, on_event: EventCallback | None = None, on_progress: ProgressCallback | None = None,
    ) -> Result[Brief]:
        return self.run("brief", document, words=words, language=language, strict=strict, on_event=on_event,
                        on_progress=on_progress)

    def events(self, document: DocumentLike, *, language: str | None = None,
               on_progress: ProgressCallback | None = None) -> Result[EventReport]:
        return self.run("events", document, language=language, on_progress=on_progress)

    def read(self, path: str | Path, *, published: dt.date | None = None) -> Document:
        """Read and normalise a file, a URL (fetched within ``fetch_policy``), or stdin (``-``)."""
        return read_document(path, published=published, fetch_policy=self.fetch_policy)

    # -- many documents ---------------------------------------------------------------------

    def bulk_runner(
        self, task: TaskName = "brief", *, concurrency: int = 16, rpm: float | None = None,
        tpm: float | None = None, cache: CacheChoice = True, words: tuple[int, int] | None = None,
        language: str | None = None, strict: bool = False, pacer: Pacer | None = None,
    ) -> BulkRunner:
        """A runner for many documents: bounded concurrency, RPM/TPM pacing, result cache.

        ``pacer`` replaces the runner's own RPM/TPM limiter with one shared wider
        (several processes of a cluster pacing against one account's limits).
        """
        options = self.options(words=words, language=language, strict=strict)
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        limiter: Pacer = pacer or RateLimiter(rpm, tpm)
        with self._lock:
            raw = self._transport()
        paced = Retrying(Paced(raw, limiter), backends.retry_policy(self.settings))
        return BulkRunner(paced, self.prompts, _task(task), options, concurrency=concurrency,
                          cache=_open_cache(cache), limiter=limiter, fetch_policy=self.fetch_policy)

    async def abulk(
        self, documents: Iterable[Any], *, task: TaskName = "brief", concurrency: int = 16,
        rpm: float | None = None, tpm: float | None = None, cache: CacheChoice = True,
        words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
        pacer: Pacer | None = None,
    ) -> AsyncGenerator[Record, None]:
        """``async for record in s.abulk(docs, task="events", concurrency=64)``: records as they finish.

        ``documents``: Documents, strings, ``(id, text)`` pairs or ``{"id", "text"}`` dicts. Anything
        that cannot be summarised (None, a number, an empty text) is a Failure record; the run goes on.
        """
        runner = self.bulk_runner(task, concurrency=concurrency, rpm=rpm, tpm=tpm, cache=cache,
                                  words=words, language=language, strict=strict, pacer=pacer)
        try:
            async with contextlib.aclosing(runner.results(as_items(documents))) as records:
                async for record in records:
                    yield record
        finally:
            if runner.cache is not None and not isinstance(cache, ResultCache):  # close only what we opened
                runner.cache.close()

    def bulk(
        self, documents: Iterable[Any], *, task: TaskName = "brief", concurrency: int = 16,
        rpm: float | None = None, tpm: float | None = None, cache: CacheChoice = True,
        words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
        pacer: Pacer | None = None,
    ) -> Iterator[Record]:
        """The records of ``abulk``, for code without an event loop."""
        stream: AsyncGenerator[Record, None] = self.abulk(
            documents, task=task, concurrency=concurrency, rpm=rpm, tpm=tpm, cache=cache, words=words,
            language=language, strict=strict, pacer=pacer)
        try:
            while True:
                try:
                    yield self._call(_anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._call(stream.aclose())

    async def abulk_to_jsonl(
        self, source: str | Path, out: str | Path, *, task: TaskName = "brief", id_field: str = "id",
        text_field: str = "text", published_field: str = "published", published: dt.date | None = None,
        retry_failed: bool = False, on_record: Callable[[Record, BulkSummary], None] | None = None,
        concurrency: int = 16, rpm: float | None = None, tpm: float | None = None, cache: CacheChoice = True,
        words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
    ) -> BulkSummary:
        """Run ``task`` over a JSONL file or stream, ``-`` or a folder into JSONL ``out``; resumable.

        ``published`` dates the documents that carry no date of their own (``published_field``).
        """
        runner = self.bulk_runner(task, concurrency=concurrency, rpm=rpm, tpm=tpm, cache=cache,
                                  words=words, language=language, strict=strict)
        try:
            items = read_source(source, id_field=id_field, text_field=text_field, published_field=published_field,
                                published=published)
            sink = JsonlSink(out, retry_failed=retry_failed, input_path=source_path(source), task=task)
            return await run_bulk(runner, items, sink, on_record)
        finally:
            if runner.cache is not None and not isinstance(cache, ResultCache):  # close only what we opened
                runner.cache.close()

    def bulk_to_jsonl(
        self, source: str | Path, out: str | Path, *, task: TaskName = "brief", id_field: str = "id",
        text_field: str = "text", published_field: str = "published", published: dt.date | None = None,
        retry_failed: bool = False, on_record: Callable[[Record, BulkSummary], None] | None = None,
        concurrency: int = 16, rpm: float | None = None, tpm: float | None = None, cache: CacheChoice = True,
        words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
    ) -> BulkSummary:
        return self._call(self.abulk_to_jsonl(
            source, out, task=task, id_field=id_field, text_field=text_field, published_field=published_field,
            published=published, retry_failed=retry_failed,
            on_record=on_record, concurrency=concurrency, rpm=rpm, tpm=tpm, cache=cache, words=words,
            language=language, strict=strict))

    # -- through the provider's Batch API ----------------------------------------------------------

    async def abatch_to_jsonl(
        self, source: str | Path | None, out: str | Path, *, task: TaskName = "events", id_field: str = "id",
        text_field: str = "text", published_field: str = "published", published: dt.date | None = None,
        wait: bool = True, max_rounds: int = 3, finish: Literal["batch", "direct"] = "batch",
        poll_interval: float = 10.0, max_poll_interval: float = 60.0, limits: BatchLimits | None = None,
        cache: CacheChoice = True, words: tuple[int, int] | None = None, language: str | None = None,
        strict: bool = False, on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> BatchSummary:
        """Run ``task`` over ``source`` through the provider's Batch API into ``out`` (the Result JSONL).

        Resumable: run it again (``source=None`` only collects and resubmits) and it polls the
        batches it made instead of making new ones. ``wait=False`` submits and returns.
        """
        options = self.options(words=words, language=language, strict=strict)
        with self._lock:
            raw = self._transport()
        store = _open_cache(cache)
        runner = BatchRunner(
            raw, self.prompts, _task(task), options, Path(out), policy=backends.retry_policy(self.settings),
            cache=store, limits=limits or BatchLimits(), max_rounds=max_rounds, finish=finish,
            poll_interval=poll_interval, max_poll_interval=max_poll_interval, fetch_policy=self.fetch_policy,
            input_path=source_path(source) if source is not None else None, on_progress=on_progress,
        )
        try:
            items = read_source(source, id_field=id_field, text_field=text_field, published_field=published_field,
                                published=published) if source is not None else None
            return await runner.run(items, wait=wait)
        finally:
            if store is not None and not isinstance(cache, ResultCache):
                store.close()

    def batch_to_jsonl(
        self, source: str | Path | None, out: str | Path, *, task: TaskName = "events", id_field: str = "id",
        text_field: str = "text", published_field: str = "published", published: dt.date | None = None,
        wait: bool = True, max_rounds: int = 3, finish: Literal["batch", "direct"] = "batch",
        poll_interval: float = 10.0, max_poll_interval: float = 60.0, limits: BatchLimits | None = None,
        cache: CacheChoice = True, words: tuple[int, int] | None = None, language: str | None = None,
        strict: bool = False, on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> BatchSummary:
        return self._call(self.abatch_to_jsonl(
            source, out, task=task, id_field=id_field, text_field=text_field, published_field=published_field,
            published=published, wait=wait, max_rounds=max_rounds, finish=finish, poll_interval=poll_interval,
            max_poll_interval=max_poll_interval, limits=limits, cache=cache, words=words, language=language,
            strict=strict, on_progress=on_progress))

    def batch_cancel(self, out: str | Path) -> list[str]:
        """Cancel the batches of the run in ``out`` that are still going (their finished part is collected later)."""
        with self._lock:
            raw = self._transport()
        if not isinstance(raw, OpenAIBackend):
            raise ConfigError("the Batch API needs an OpenAI-compatible endpoint")
        return self._call(cancel_batches(raw, Path(out)))

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._raw is not None:
            await self._raw.aclose()

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call(self.aclose())
            loop.stop()

    def __enter__(self) -> Summarizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Summarizer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            loop = self._loop
        return loop.call(coroutine)


class _LoopThread:
    """An event loop in a daemon thread; ``call`` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="summarizer-loop", daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coroutine.close()
            raise RuntimeError("a sync Summarizer method was called from its own event loop: use the a* twin")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C while waiting: cancel the work and let it clean up (close files, connections).
            future.cancel()
            concurrent.futures.wait([future], timeout=10)
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


async def _anext(stream: AsyncIterator[T]) -> T:
    return await stream.__anext__()


def _as_document(document: object) -> Document:
    if isinstance(document, Document):
        return document
    if isinstance(document, str):
        return Document.from_text(document)
    raise UsageError(f"a document is a str or a Document, not {type(document).__name__}")


def _words(words: object) -> tuple[int, int]:
    if words is None:
        return DEFAULT_WORDS
    if isinstance(words, (tuple, list)) and len(words) == 2 and all(type(w) is int for w in words):
        return (words[0], words[1])
    raise UsageError(f"words must be a (MIN, MAX) pair of whole numbers, not {words!r}")


def _task(task: object) -> TaskName:
    if task == "brief":
        return "brief"
    if task == "events":
        return "events"
    raise UsageError(f"task must be 'brief' or 'events', not {task!r}")


def _open_cache(cache: CacheChoice) -> ResultCache | None:
    if isinstance(cache, ResultCache):
        return cache
    if cache is True:
        return ResultCache()
    if cache is False:
        return None
    return ResultCache(cache)
