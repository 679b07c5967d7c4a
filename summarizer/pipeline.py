"""One document through one task, the same way for every driver.

read or fetch (off the event loop) -> cache -> TaskRun -> validate/re-ask ->
finish (offsets, citations) -> cache put -> record, with the run observer in
force throughout. Direct bulk, the service's jobs and Ray's actors call
``record``; the Batch API driver, which carries requests across rounds itself,
uses the same steps one by one (``prepared``, ``cached``, ``start``, ``accepted``,
``failed``). Nothing else builds a cache key or a Failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from . import observe
from .backends import Backend
from .cache import ResultCache, result_key
from .documents import Document, fetch_document
from .errors import SummarizerError
from .fetch import FetchPolicy
from .observe import RunObserver
from .options import TaskOptions
from .prompts import PromptLibrary
from .registry import TaskSpec
from .schemas import ErrorInfo, Failure, Record, Result, Usage
from .sources import BulkItem
from .tasks import TaskRun, resolve_task, run_task, task_prompts

__all__ = ["DocumentPipeline", "failure"]


class DocumentPipeline:
    """``spec`` with ``options`` over ``backend``: a record for any input item."""

    def __init__(
        self, spec: TaskSpec[Any] | str, options: TaskOptions, backend: Backend, prompts: PromptLibrary, *,
        cache: ResultCache | None = None, fetch_policy: FetchPolicy | None = None,
        observer: RunObserver | None = None, cache_scope: str = "",
    ) -> None:
        self.spec = resolve_task(spec)
        self.task = self.spec.name
        self.options, self.backend, self.prompts = options, backend, prompts
        self.cache, self.fetch_policy, self.observer = cache, fetch_policy, observer
        self.cache_scope = cache_scope  # answers are shared only within one scope (a service's tenant)
        # How a "url" item becomes a Document: (url, id, published) -> Document; None: fetch_document in a thread.
        self.url_reader: Callable[[str, str, dt.date | None], Awaitable[Document]] | None = None
        self._fingerprints = [t.fingerprint for t in task_prompts(self.spec, prompts)]

    # -- the direct path ---------------------------------------------------------------------------

    async def record(self, item: BulkItem) -> Record:
        """One item's record: from the cache, from the model, or a Failure — never an exception."""
        with observe.using(self.observer) as observer, observer.document(self.task, item.id):
            record = await self._record(item)
            observer.document_done(record)
            return record

    async def _record(self, item: BulkItem) -> Record:
        item = await self.prepared(item)
        if item.document is None:
            return self.unreadable(item)
        hit = self.cached(item.id, item.document)
        if hit is not None:
            return hit
        try:
            result = await run_task(self.spec, item.document, self.backend, self.prompts, self.options)
        except SummarizerError as exc:
            return self.failed(item.id, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one document, not the run
            return Failure(id=item.id, task=self.task, model=self.backend.model,
                           error=ErrorInfo(code="internal_error", message=f"{type(exc).__name__}: {exc}"))
        return self.accepted(result, item.document)

    # -- the steps, for drivers that carry requests themselves (batch) --------------------------------

    async def prepared(self, item: BulkItem) -> BulkItem:
        """The item with its URL read (off the event loop), or the reason it could not be.

        A record's "url" is fetched as a web URL and nothing else (``fetch_document``: never a local
        path, whatever the string); ``url_reader`` replaces how (the service parses in its own pool).
        """
        if item.url is None:
            return item
        try:
            if self.url_reader is not None:
                document = await self.url_reader(item.url, item.id, item.published)
            else:
                document = await asyncio.to_thread(fetch_document, item.url, id=item.id, published=item.published,
                                                   fetch_policy=self.fetch_policy)
        except SummarizerError as exc:
            return BulkItem(item.id, error=ErrorInfo(code=exc.code, message=str(exc)))
        return BulkItem(item.id, document=dataclasses.replace(document, notes=item.notes + document.notes))

    def unreadable(self, item: BulkItem) -> Failure:
        return Failure(id=item.id, task=self.task, error=item.error or ErrorInfo(code="error", message="unreadable"))

    def key(self, document: Document) -> str:
        return result_key(task=self.task, document=document.digest, backend=self.backend.identity,
                          prompts=self._fingerprints, options=[self.spec.cache_parts(self.options), self.cache_scope])

    def cached(self, doc_id: str, document: Document) -> Result[Any] | None:
        """The cached record of ``document``, if the cache holds a valid one."""
        if self.cache is None:
            return None
        hit = self.cache.get(self.key(document))
        if hit is None:
            return None
        try:
            result = Result[self.spec.value_model].model_validate(  # type: ignore[name-defined]
                {**hit, "id": doc_id, "task": self.task, "cached": True,
                 "source": {"text": document.text, "digest": document.digest}})
        except ValueError:
            return None  # an entry from an older schema: answer afresh
        observe.current().cache_hit()
        return result

    def start(self, document: Document) -> TaskRun[Any]:
        return TaskRun(self.spec, document, self.prompts, self.options, model=self.backend.model)

    def accepted(self, result: Result[Any], document: Document) -> Result[Any]:
        """A finished result, cached for next time."""
        if self.cache is not None:
            self.cache.put(self.key(document), result.model_dump(
                mode="json", include={"value", "warnings", "model", "prompt_version", "unsupported"}))
        return result

    def failed(self, doc_id: str, error: SummarizerError) -> Failure:
        return failure(doc_id, self.task, error, self.backend.model)


def failure(doc_id: str, task: str, error: SummarizerError, model: str | None = None) -> Failure:
    """The record of a document that failed with ``error``: code, message, usage spent, raw output."""
    return Failure(
        id=doc_id, task=task, model=model, usage=error.usage or Usage(),
        error=ErrorInfo(code=error.code, message=str(error), raw_output=getattr(error, "raw_output", None)),
    )
