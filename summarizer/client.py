"""``Summarizer``: the front door of the library, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from .bulk import BulkRunner, BulkSummary, JsonlSink, as_items, read_source, run_bulk
from .cache import ResultCache
from .limits import RateLimiter
from .config import Settings, load_settings
from .documents import Document, read_document
from .errors import SummarizerError
from .llm import Backend, make_backend
from .prompts import PromptLibrary
from .schemas import Brief, EventReport, Result
from .tasks import TaskName, TaskOptions, run_task

__all__ = ["Summarizer"]

DocumentLike = str | Document


class Summarizer:
    """Briefs and event reports from any OpenAI-compatible endpoint.

    >>> s = Summarizer(model="gpt-4o-mini")          # or from env / summarizer.toml
    >>> s.brief(text).value.text

    Unset arguments fall back to the environment, then the config file.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        backend: Backend | str | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        # backend: "auto" | "openai" | "local", or a ready Backend object (tests, custom models).
        choice = backend if isinstance(backend, str) else None
        self.settings = settings or load_settings(
            model=model, base_url=base_url, api_key=api_key, backend=choice, **overrides
        )
        self.prompts = PromptLibrary(self.settings.prompts_dir)
        self._backend = None if isinstance(backend, str) else backend
        self._runner: asyncio.Runner | None = None

    @property
    def backend(self) -> Backend:
        """Built on first use, so that constructing a Summarizer never fails on config."""
        if self._backend is None:
            self._backend = make_backend(self.settings)
        return self._backend

    def options(
        self, *, words: tuple[int, int] | None = None, language: str | None = None,
        strict: bool = False,
    ) -> TaskOptions:
        low, high = words or (40, 120)
        return TaskOptions(
            min_words=low, max_words=high, language=language, strict=strict,
            max_reasks=self.settings.max_reasks, context_tokens=self.settings.context_tokens,
            concurrency=self.settings.concurrency,
        )

    async def arun(self, task: TaskName, document: DocumentLike, **options: Any) -> Result[Any]:
        """Run ``task`` ("brief" or "events") on one document."""
        return await run_task(task, _as_document(document), self.backend, self.prompts, self.options(**options))

    async def abrief(self, document: DocumentLike, **options: Any) -> Result[Brief]:
        """One-paragraph brief. Options: ``words=(min, max)``, ``language``, ``strict``."""
        return await self.arun("brief", document, **options)

    async def aevents(self, document: DocumentLike, **options: Any) -> Result[EventReport]:
        """Event report grounded in verbatim quotes. Options: ``language``."""
        return await self.arun("events", document, **options)

    def brief(self, document: DocumentLike, **options: Any) -> Result[Brief]:
        return self._sync(self.abrief(document, **options))

    def events(self, document: DocumentLike, **options: Any) -> Result[EventReport]:
        return self._sync(self.aevents(document, **options))

    # -- bulk ------------------------------------------------------------------------------

    def bulk_runner(
        self, task: TaskName = "brief", *, concurrency: int = 16, rpm: float | None = None,
        tpm: float | None = None, cache: bool | ResultCache = True, **options: Any,
    ) -> BulkRunner:
        """A runner for many documents: bounded concurrency, rate limits, result cache."""
        store = ResultCache() if cache is True else (cache or None)
        return BulkRunner(
            self.backend, self.prompts, task, self.options(**options), concurrency=concurrency,
            cache=store, limiter=RateLimiter(rpm, tpm), temperature=self.settings.temperature,
        )

    async def bulk(self, documents: Iterable[Any], task: TaskName = "brief", **kwargs: Any) -> AsyncIterator[Result[Any]]:
        """``async for result in s.bulk(docs, task="events", concurrency=64)``: results as they finish.

        ``documents``: Documents, strings, ``(id, text)`` pairs or ``{"id", "text"}`` dicts.
        A document that fails yields an error Result; the run goes on.
        """
        runner = self.bulk_runner(task, **kwargs)
        try:
            async for result in runner.results(as_items(documents)):
                yield result
        finally:
            if runner.cache is not None:
                runner.cache.close()

    def bulk_to_jsonl(
        self, source: str | Path, out: str | Path, task: TaskName = "brief", *,
        id_field: str = "id", text_field: str = "text", retry_failed: bool = False,
        on_result: Callable[[Result[Any], BulkSummary], None] | None = None, **kwargs: Any,
    ) -> BulkSummary:
        """Run ``task`` over a JSONL file, ``-`` or a folder into JSONL ``out``; resumable."""
        items = read_source(source, id_field=id_field, text_field=text_field)
        runner = self.bulk_runner(task, **kwargs)
        sink = JsonlSink(out, retry_failed=retry_failed)
        try:
            return self._sync(run_bulk(runner, items, sink, on_result))
        finally:
            if runner.cache is not None:
                runner.cache.close()

    def read(self, path: str | Path) -> Document:
        """Read and normalise a file (``-`` for stdin)."""
        return read_document(path)

    # -- lifecycle -------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.aclose())
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Summarizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Summarizer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _sync(self, coroutine: Any) -> Any:
        # One private loop for all sync calls, so connections are reused between them.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise SummarizerError("called from a running event loop: use `await s.abrief(...)` / `s.aevents(...)`")
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coroutine)


def _as_document(document: DocumentLike) -> Document:
    return document if isinstance(document, Document) else Document.from_text(document)
