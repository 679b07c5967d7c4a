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
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Unpack, overload

from . import backends
from .backends import Backend, OutputMode, Paced, Retrying
from .backends.layer import Observed
from .bulk import BulkRunner, BulkSummary, run_bulk
from .cache import ResultCache
from .config import Settings, load_settings
from .documents import Document, read_document
from .errors import UsageError
from .fetch import FetchPolicy
from .limits import Pacer, RateLimiter
from .observe import RunObserver
from .options import TaskOptions
from .pipeline import DocumentPipeline
from .prompts import PromptLibrary
from .catalog import default_registry
from .registry import TaskRegistry, TaskSpec
from .schemas import DEFAULT_WORDS, Brief, EventReport, Record, Result
from .sinks import JsonlSink
from .sources import as_items, read_source, source_path
from .tasks import RunProgress, StreamEvent, run_task

if TYPE_CHECKING:
    from .batch import BatchLimits, BatchRunner, BatchSummary

__all__ = ["BulkSettings", "DocumentLike", "OptionSettings", "SourceSettings", "Summarizer"]

T = TypeVar("T")
DocumentLike = str | Document
CacheChoice = bool | ResultCache | str | Path
EventCallback = Callable[[StreamEvent], None]
ProgressCallback = Callable[[RunProgress], None]
TaskLike = str | TaskSpec[Any]


class OptionSettings(TypedDict, total=False):
    """Per-call task options (``TaskOptions``): each task uses the ones it names."""

    words: tuple[int, int] | None
    language: str | None
    strict: bool
    verify: bool


class BulkSettings(OptionSettings, total=False):
    """How a bulk run goes: documents in flight, RPM/TPM pacing, the result cache."""

    concurrency: int
    rpm: float | None
    tpm: float | None
    cache: CacheChoice
    pacer: Pacer | None  # a limiter shared wider than this run (a cluster's), instead of rpm/tpm


class SourceSettings(TypedDict, total=False):
    """Where each document's id, text and publication date are in a JSONL input."""

    id_field: str
    text_field: str
    published_field: str
    published: dt.date | None  # for documents that carry no date of their own


class Summarizer:
    """Briefs, event reports and any registered task, from any OpenAI-compatible endpoint or the embedded model.

    >>> s = Summarizer(model="gpt-4o-mini")          # or from env / summarizer.toml
    >>> s.brief(text).value.text

    Unset arguments fall back to the environment, then the config file.
    ``backend`` is "auto", "openai", "local", a plugin's backend name, or a ready Backend object.
    ``observer`` sees every step of every run (``summarizer.otel.OtelObserver`` for OpenTelemetry).
    """

    def __init__(
        self, model: str | None = None, base_url: str | None = None, api_key: str | None = None, *,
        backend: Backend | str | None = None,
        timeout: float | None = None, max_attempts: int | None = None, max_retry_wait: float | None = None,
        max_reasks: int | None = None, context_tokens: int | None = None, chunk_concurrency: int | None = None,
        temperature: float | None = None, output_mode: OutputMode | str | None = None,
        server_grammar: bool | None = None, prompts_dir: str | Path | None = None,
        tasks_dir: str | Path | None = None, model_path: str | Path | None = None,
        settings: Settings | None = None, fetch_policy: FetchPolicy | None = None,
        observer: RunObserver | None = None, tasks: TaskRegistry | None = None,
    ) -> None:
        given = {
            "model": model, "base_url": base_url, "api_key": api_key, "timeout": timeout,
            "max_attempts": max_attempts, "max_retry_wait": max_retry_wait, "max_reasks": max_reasks,
            "context_tokens": context_tokens, "chunk_concurrency": chunk_concurrency, "temperature": temperature,
            "output_mode": output_mode.value if isinstance(output_mode, OutputMode) else output_mode,
            "server_grammar": server_grammar, "prompts_dir": prompts_dir, "tasks_dir": tasks_dir,
            "model_path": model_path, "backend": backend if isinstance(backend, str) else None,
        }
        if settings is not None and any(v is not None for v in given.values()):
            raise TypeError("pass either settings= or individual settings, not both")
        self.settings = settings or load_settings(**given)
        self.prompts = PromptLibrary(self.settings.prompts_dir)
        self.tasks = tasks or default_registry(self.settings.tasks_dirs)
        self.fetch_policy = fetch_policy or FetchPolicy()  # how URLs (s.read, bulk "url" records) are fetched
        self.observer = observer
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
                self._backend = Retrying(Observed(self._transport()), backends.retry_policy(self.settings))
            return self._backend

    @property
    def notice(self) -> str | None:
        """What the backend wants a person to know once (the embedded model says what it is)."""
        return self.backend_unwrapped.notice

    @property
    def backend_unwrapped(self) -> Backend:
        """The bare backend: one attempt per call, no retries, no pacing."""
        with self._lock:
            return self._transport()

    def _transport(self) -> Backend:
        if self._raw is None:
            self._raw = backends.from_settings(self.settings)
        return self._raw

    def task(self, task: TaskLike) -> TaskSpec[Any]:
        """The spec of ``task``: a name in this Summarizer's registry (UsageError naming the known ones), or a spec."""
        return task if isinstance(task, TaskSpec) else self.tasks.get(task)

    def options(
        self, *, words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
        verify: bool = False,
    ) -> TaskOptions:
        """Per-call options, checked now (before any request)."""
        return TaskOptions(
            words=DEFAULT_WORDS if words is None else words,
            language=language, strict=strict, verify=verify, max_reasks=self.settings.max_reasks,
            context_tokens=self.settings.context_tokens, chunk_concurrency=self.settings.chunk_concurrency,
        )

    def checked(self, task: TaskLike, options: TaskOptions) -> TaskOptions:
        """``options`` for ``task``, or UsageError for what would be ignored without a word: verify where the task
        has no claims (checked before a backend is made: the local one loads a model) or the model cannot judge."""
        options = self.task(task).check(options)
        if options.verify and not self.backend.capabilities.judge:
            raise UsageError(f"verify needs a model that can judge claims, and {self.backend.model} cannot: "
                             "point summarizer at an endpoint (--base-url/--model, or OPENAI_API_KEY)")
        return options

    def pipeline(
        self, task: TaskLike = "brief", options: TaskOptions | None = None, *, cache: ResultCache | None = None,
        pacer: Pacer | None = None, cache_scope: str = "",
    ) -> DocumentPipeline:
        """One document through ``task``, the way every driver runs it; paced by ``pacer`` when given."""
        spec = self.task(task)
        options = self.checked(spec, options or self.options())
        if pacer is None:
            backend = self.backend
        else:
            with self._lock:
                raw = self._transport()
            backend = Retrying(Paced(Observed(raw), pacer), backends.retry_policy(self.settings))
        return DocumentPipeline(spec, options, backend, self.prompts, cache=cache,
                                fetch_policy=self.fetch_policy, observer=self.observer, cache_scope=cache_scope)

    # -- one document ------------------------------------------------------------------------

    @overload
    async def arun(self, task: Literal["brief"], document: DocumentLike, *, on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
                   **options: Unpack[OptionSettings]) -> Result[Brief]: ...

    @overload
    async def arun(self, task: Literal["events"], document: DocumentLike, *, on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
                   **options: Unpack[OptionSettings]) -> Result[EventReport]: ...

    @overload
    async def arun(self, task: TaskLike, document: DocumentLike, *, on_event: EventCallback | None = ...,
                   on_progress: ProgressCallback | None = ...,
                   **options: Unpack[OptionSettings]) -> Result[Any]: ...

    async def arun(
        self, task: TaskLike, document: DocumentLike, *, on_event: EventCallback | None = None,
        on_progress: ProgressCallback | None = None,
        **options: Unpack[OptionSettings],
    ) -> Result[Any]:
        """Run ``task`` (a registered name or a TaskSpec) on one document; raise SummarizerError on failure.

        ``on_event`` receives a plain-text answer's deltas as the model writes (and a Reask when
        it must be asked again); structured answers arrive whole.
        """
        spec = self.task(task)
        checked, doc = self.checked(spec, self.options(**options)), _as_document(document)
        from . import observe

        with observe.using(self.observer) as observer, observer.document(spec.name, doc.id):
            result = await run_task(spec, doc, self.backend, self.prompts, checked, on_event=on_event,
                                    on_progress=on_progress)
            observer.document_done(result)
            return result

    async def abrief(self, document: DocumentLike, *, on_event: EventCallback | None = None,
                     on_progress: ProgressCallback | None = None, **options: Unpack[OptionSettings]) -> Result[Brief]:
        """One-paragraph brief; ``on_event`` receives its deltas as the model writes, ``on_progress`` a long
        document's parts as they are read."""
        return await self.arun("brief", document, on_event=on_event, on_progress=on_progress, **options)

    async def aevents(self, document: DocumentLike, *, language: str | None = None,
                      on_progress: ProgressCallback | None = None) -> Result[EventReport]:
        """Event report grounded in verbatim quotes."""
        return await self.arun("events", document, language=language, on_progress=on_progress)

    @overload
    def run(self, task: Literal["brief"], document: DocumentLike, *, on_event: EventCallback | None = ...,
            on_progress: ProgressCallback | None = ...,
            **options: Unpack[OptionSettings]) -> Result[Brief]: ...

    @overload
    def run(self, task: Literal["events"], document: DocumentLike, *, on_event: EventCallback | None = ...,
            on_progress: ProgressCallback | None = ...,
            **options: Unpack[OptionSettings]) -> Result[EventReport]: ...

    @overload
    def run(self, task: TaskLike, document: DocumentLike, *, on_event: EventCallback | None = ...,
            on_progress: ProgressCallback | None = ...,
            **options: Unpack[OptionSettings]) -> Result[Any]: ...

    def run(
        self, task: TaskLike, document: DocumentLike, *, on_event: EventCallback | None = None,
        on_progress: ProgressCallback | None = None,
        **options: Unpack[OptionSettings],
    ) -> Result[Any]:
        self.task(task).check(self.options(**options))  # checked here: bad arguments never reach the loop thread
        result: Result[Any] = self._call(self.arun(task, document, on_event=on_event, on_progress=on_progress,
                                                   **options))
        return result

    def brief(self, document: DocumentLike, *, on_event: EventCallback | None = None,
              on_progress: ProgressCallback | None = None, **options: Unpack[OptionSettings]) -> Result[Brief]:
        return self.run("brief", document, on_event=on_event, on_progress=on_progress, **options)

    def events(self, document: DocumentLike, *, language: str | None = None,
               on_progress: ProgressCallback | None = None) -> Result[EventReport]:
        return self.run("events", document, language=language, on_progress=on_progress)

    def read(self, path: str | Path, *, published: dt.date | None = None) -> Document:
        """Read and normalise a file, a URL (fetched within ``fetch_policy``), or stdin (``-``)."""
        return read_document(path, published=published, fetch_policy=self.fetch_policy)

    # -- many documents: the drivers ---------------------------------------------------------------

    def bulk_runner(self, task: TaskLike = "brief", **settings: Unpack[BulkSettings]) -> BulkRunner:
        """A runner for many documents: bounded concurrency, RPM/TPM pacing, result cache.

        ``pacer`` replaces the runner's own RPM/TPM limiter with one shared wider
        (several processes of a cluster pacing against one account's limits).
        """
        options = self.options(words=settings.get("words"), language=settings.get("language"),
                               strict=settings.get("strict", False), verify=settings.get("verify", False))
        concurrency = settings.get("concurrency", 16)
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        limiter: Pacer = settings.get("pacer") or RateLimiter(settings.get("rpm"), settings.get("tpm"))
        pipeline = self.pipeline(task, options, cache=_open_cache(settings.get("cache", True)), pacer=limiter)
        return BulkRunner(pipeline, concurrency=concurrency, limiter=limiter)

    def batch_runner(
        self, out: str | Path, task: TaskLike = "events", *, cache: CacheChoice = False,
        limits: BatchLimits | None = None, max_rounds: int = 3, finish: Literal["batch", "direct"] = "batch",
        poll_interval: float = 10.0, max_poll_interval: float = 60.0, input_path: Path | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None, rpm: float | None = None,
        tpm: float | None = None, **options: Unpack[OptionSettings],
    ) -> BatchRunner:
        """A run through the provider's Batch API into ``out``, for backends that offer one (capabilities.batch).

        Stragglers sent directly at the end (``finish="direct"``) go through the same retry and
        pacing layers (``rpm``/``tpm``) as direct mode.
        """
        from .batch import BatchLimits, BatchRunner

        pipeline = self.pipeline(task, self.options(**options), cache=_open_cache(cache),
                                 pacer=RateLimiter(rpm, tpm))
        return BatchRunner(pipeline, Path(out), limits=limits or BatchLimits(), max_rounds=max_rounds,
                           finish=finish, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
                           input_path=input_path, on_progress=on_progress)

    async def abulk(
        self, documents: Iterable[Any], *, task: TaskLike = "brief", **settings: Unpack[BulkSettings],
    ) -> AsyncGenerator[Record, None]:
        """``async for record in s.abulk(docs, task="events", concurrency=64)``: records as they finish.

        ``documents``: Documents, strings, ``(id, text)`` pairs or ``{"id", "text"}`` dicts. Anything
        that cannot be summarised (None, a number, an empty text) is a Failure record; the run goes on.
        """
        runner = self.bulk_runner(task, **settings)
        try:
            async with contextlib.aclosing(runner.results(as_items(documents))) as records:
                async for record in records:
                    yield record
        finally:
            _close_opened(runner.cache, settings.get("cache", True))

    def bulk(
        self, documents: Iterable[Any], *, task: TaskLike = "brief", **settings: Unpack[BulkSettings],
    ) -> Iterator[Record]:
        """The records of ``abulk``, for code without an event loop."""
        stream: AsyncGenerator[Record, None] = self.abulk(documents, task=task, **settings)
        try:
            while True:
                try:
                    yield self._call(_anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._call(stream.aclose())

    async def abulk_to_jsonl(
        self, source: str | Path, out: str | Path, *, task: TaskLike = "brief", retry_failed: bool = False,
        on_record: Callable[[Record, BulkSummary], None] | None = None, fields: SourceSettings | None = None,
        **settings: Unpack[BulkSettings],
    ) -> BulkSummary:
        """Run ``task`` over a JSONL file or stream, ``-`` or a folder into JSONL ``out``; resumable.

        ``fields`` says where a JSONL record's id, text and date are (and the date of those without one).
        """
        runner = self.bulk_runner(task, **settings)
        try:
            items = read_source(source, **(fields or {}))
            sink = JsonlSink(out, retry_failed=retry_failed, input_path=source_path(source), task=runner.task)
            return await run_bulk(runner, items, sink, on_record)
        finally:
            _close_opened(runner.cache, settings.get("cache", True))

    def bulk_to_jsonl(
        self, source: str | Path, out: str | Path, *, task: TaskLike = "brief", retry_failed: bool = False,
        on_record: Callable[[Record, BulkSummary], None] | None = None, fields: SourceSettings | None = None,
        **settings: Unpack[BulkSettings],
    ) -> BulkSummary:
        return self._call(self.abulk_to_jsonl(source, out, task=task, retry_failed=retry_failed,
                                              on_record=on_record, fields=fields, **settings))

    # -- through the provider's Batch API ----------------------------------------------------------

    async def abatch_to_jsonl(
        self, source: str | Path | None, out: str | Path, *, task: TaskLike = "events", wait: bool = True,
        cache: CacheChoice = True, fields: SourceSettings | None = None, **batch: Any,
    ) -> BatchSummary:
        """Run ``task`` over ``source`` through the provider's Batch API into ``out`` (the Result JSONL).

        Resumable: run it again (``source=None`` only collects and resubmits) and it polls the
        batches it made instead of making new ones. ``wait=False`` submits and returns. ``batch``:
        ``batch_runner``'s settings (limits, max_rounds, finish, poll intervals, on_progress, options).
        """
        input_path = source_path(source) if source is not None else None
        runner = self.batch_runner(out, task, cache=cache, input_path=input_path, **batch)
        try:
            items = read_source(source, **(fields or {})) if source is not None else None
            return await runner.run(items, wait=wait)
        finally:
            _close_opened(runner.pipeline.cache, cache)

    def batch_to_jsonl(
        self, source: str | Path | None, out: str | Path, *, task: TaskLike = "events", wait: bool = True,
        cache: CacheChoice = True, fields: SourceSettings | None = None, **batch: Any,
    ) -> BatchSummary:
        return self._call(self.abatch_to_jsonl(source, out, task=task, wait=wait, cache=cache, fields=fields,
                                               **batch))

    def batch_cancel(self, out: str | Path) -> list[str]:
        """Cancel the batches of the run in ``out`` that are still going (their finished part is collected later)."""
        from .batch import cancel_batches

        with self._lock:
            raw = self._transport()
        return self._call(cancel_batches(raw.batch_endpoint(), Path(out)))

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


def _open_cache(cache: CacheChoice) -> ResultCache | None:
    if isinstance(cache, ResultCache):
        return cache
    if cache is True:
        return ResultCache()
    if cache is False:
        return None
    return ResultCache(cache)


def _close_opened(cache: ResultCache | None, choice: CacheChoice) -> None:
    if cache is not None and not isinstance(choice, ResultCache):  # close only what we opened
        cache.close()
