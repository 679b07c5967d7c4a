"""A batch run over one output file: build, then rounds of submit, poll and collect, then finish.

Round 1 queues every document's first requests (``build``); each round submits
the pending ones (``build.Builder.submit``), polls until the batches are done,
and collects them (``collect.Collector``). After ``max_rounds`` the stragglers
become error records, or (``finish="direct"``) go to the endpoint directly
through the same retry and pacing layers as direct mode. Every input id ends in
OUT exactly once; a killed run, rerun, goes on from the state beside OUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from ..errors import SummarizerError, UsageError
from ..pipeline import DocumentPipeline, failure
from ..schemas import Usage
from ..sinks import JsonlSink
from ..sources import BulkItem
from .build import Builder
from .collect import Collector
from .context import BatchLimits, BatchSummary, RunContext
from .provider import Provider
from .state import BatchState, RequestRow, state_path, unreadable

__all__ = ["BatchRunner", "Finish"]

Finish = Literal["batch", "direct"]
log = logging.getLogger("summarizer")
_DIRECT_AT_ONCE = 16  # stragglers sent directly at once (the pacing layer may hold them further)


class BatchRunner:
    """One batch run over one output file, on ``pipeline`` (whose backend declares the Batch API)."""

    def __init__(
        self, pipeline: DocumentPipeline, out: Path, *, limits: BatchLimits = BatchLimits(), max_rounds: int = 3,
        finish: Finish = "batch", poll_interval: float = 10.0, max_poll_interval: float = 60.0,
        input_path: Path | None = None, on_progress: Callable[[dict[str, Any]], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_rounds < 1:
            raise UsageError("max_rounds must be at least 1")
        endpoint = pipeline.backend.batch_endpoint()  # ConfigError for a backend without one
        self.context = RunContext(pipeline, endpoint, out, limits)
        self.builder, self.collector = Builder(self.context), Collector(self.context)
        self.pipeline, self.out, self.max_rounds, self.finish = pipeline, out, max_rounds, finish
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.input_path, self.on_progress, self._sleep = input_path, on_progress, sleep

    @property
    def summary(self) -> BatchSummary:
        return self.context.summary

    async def run(self, items: Iterator[BulkItem] | None, *, wait: bool = True) -> BatchSummary:
        """Build (``items``; None: resume only), submit, and — with ``wait`` — poll and collect to the end."""
        path = state_path(self.out)
        if items is None:  # collecting: a run must exist, and nothing is created for an OUT without one
            BatchState(path, create=False).close()
            if not self.out.exists():
                self._check_written(0, _written(path), resume_only=True)
        sink = JsonlSink(self.out, input_path=self.input_path, task=self.context.task)
        try:
            state = BatchState(path)
        except BaseException:
            sink.close()
            raise
        endpoint = self.context.endpoint
        client = endpoint.client()
        provider = Provider(client, endpoint.endpoint, secrets=endpoint.secrets, sleep=self._sleep,
                            refused_wait=self.max_poll_interval)
        try:
            self._begin(state)
            self.context.limits = self.context.limits.tighter(state.get("limits"))
            if self._check_written(len(sink.done), int(state.get("written") or 0), resume_only=items is None):
                state.set("phase", "build")  # build again: what OUT lost is queued (or answered from the cache)
            if state.get("phase") == "build" and items is not None:
                await self.builder.build(items, state, sink)
                state.set("phase", "rounds")
            await self._rounds(state, sink, provider, wait=wait)
        except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
            raise unreadable(path, exc) from None
        finally:
            with contextlib.suppress(sqlite3.DatabaseError):
                state.set("written", len(sink.done))  # how many records OUT must hold from now on
                self.summary.pending = state.count("pending") + state.count("submitted") + state.count("staged")
                self.summary.rounds = state.rounds()
            self.summary.wall_s = time.monotonic() - self.summary.started
            self._note_cache_only()
            state.close()
            sink.close()
            await client.close()
        return self.summary

    def _check_written(self, held: int, written: int, *, resume_only: bool) -> bool:
        """Whether OUT lost records this run wrote (deleted, cut, replaced): refuse to only collect, or rebuild."""
        if held >= written:
            return False
        where = f"{self.out} holds {held:,} of the {written:,} records this batch run wrote to it (deleted or cut?)"
        if resume_only:
            raise UsageError(f"{where}: run `summarizer bulk SOURCE --via batch --out {self.out}` again to restore "
                             "them (from the result cache where it has them, else asked again)")
        log.warning("%s: restoring the missing ones from the input (from the result cache where it has them, "
                    "else asked again)", where)
        return True

    def _note_cache_only(self) -> None:
        summary = self.summary
        if summary.cached and summary.batches == 0 and summary.pending == 0 and summary.cached == summary.ok:
            summary.notes.append(f"all {summary.cached:,} document(s) were answered from the result cache: no batch "
                                 "was created (--no-cache asks the provider again)")

    def _begin(self, state: BatchState) -> None:
        """The run's identity: what shapes its answers (compared on every rerun) and its options in full."""
        pipeline = self.pipeline
        identity = {"task": pipeline.task, "shape": pipeline.spec.cache_parts(pipeline.options),
                    "backend": pipeline.backend.identity}
        known = state.get("identity")
        if known is None:
            state.set("run_id", "sum_" + secrets.token_hex(6))
            state.set("identity", identity)
            state.set("options", pipeline.options.to_state())  # what `batch collect` goes on with
            state.set("round", 1)
            state.set("phase", "build")
        elif known != identity:
            raise UsageError(f"{self.out} belongs to a batch run with other settings ({known['task']}, "
                             f"{known['backend']}); use another --out, or the same settings")

    async def _rounds(self, state: BatchState, sink: JsonlSink, provider: Provider, *, wait: bool) -> None:
        while True:
            round_ = int(state.get("round"))
            await self.builder.submit(state, provider, round_)
            await (self._poll(state, provider) if wait else self._refresh(state, provider))
            self.context.requeued = False
            await self.collector.collect_finished(state, sink, provider)
            if self.context.requeued and wait and not state.batches(uncollected=True):
                continue  # refused at validation and changed (split, or without the lines it named): same round
            if state.batches(uncollected=True) or not state.count("pending"):
                return self._settle(state)  # still running (no wait), or nothing left to ask
            if round_ >= self.max_rounds:
                await self._finish(state, sink)
                return self._settle(state)
            state.set("round", round_ + 1)

    def _settle(self, state: BatchState) -> None:
        self.summary.finished = not state.open_doc_ids() and state.get("phase") == "rounds"

    async def _refresh(self, state: BatchState, provider: Provider) -> None:
        for batch in state.batches(uncollected=True):
            if not provider.terminal(batch["status"]):
                state.update_batch(batch["id"], await provider.retrieve(batch["id"]))

    async def _poll(self, state: BatchState, provider: Provider) -> None:
        """Until every batch is done one way or another, looking less often as time passes."""
        interval = self.poll_interval
        while True:
            await self._refresh(state, provider)
            waiting = [b for b in state.batches(uncollected=True) if not provider.terminal(b["status"])]
            if self.on_progress is not None:
                self.on_progress({"round": state.get("round"), "batches": state.batches(uncollected=True)})
            if not waiting:
                return
            await self._sleep(interval)
            interval = min(self.max_poll_interval, interval * 1.5)

    async def _finish(self, state: BatchState, sink: JsonlSink) -> None:
        """After the last round: stragglers become error records, or go direct."""
        if self.finish == "direct":
            await self._direct(state, sink)
        for doc_id in state.open_doc_ids():
            restored = self.context.restore(doc_id, state)
            reason = state.get(f"last_error:{doc_id}") or "no valid answer"
            error = SummarizerError(f"no valid answer after {self.max_rounds} batch round(s): {reason}")
            error.code = "batch_incomplete"
            error.usage = restored.usage if restored else Usage()
            with state.transaction():
                for custom in [r.custom_id for r in state.pending(10**9) if r.doc_id == doc_id]:
                    state.set_request(custom, status="answered")
                self.context.finish_doc(doc_id, failure(doc_id, self.context.task, error, self.pipeline.backend.model),
                                    state, sink)

    async def _direct(self, state: BatchState, sink: JsonlSink) -> None:
        """Send the pending requests to the endpoint as direct mode does — the same retry and pacing
        layers — round after round, until none is left."""
        gate = asyncio.Semaphore(_DIRECT_AT_ONCE)

        async def send(row: RequestRow) -> tuple[RequestRow, Any]:
            task_run = self.context.restore(row.doc_id, state)
            if task_run is None:
                return row, None
            request = task_run.request_from_state(row.state)
            async with gate:
                try:
                    return row, await self.pipeline.backend.complete(request.messages, output=request.output,
                                                                     params=request.params)
                except SummarizerError as exc:
                    return row, exc

        while rows := list(state.pending(10**9)):
            answers = await asyncio.gather(*(send(row) for row in rows))
            with state.transaction():
                for row, answer in answers:
                    if isinstance(answer, SummarizerError):
                        self.collector.fail(row, answer, state, sink)
                    elif answer is None:
                        state.set_request(row.custom_id, status="answered")
                    else:
                        self.collector.feed(row, answer, row.round, state, sink)


def _written(path: Path) -> int:
    state = BatchState(path, create=False)
    try:
        return int(state.get("written") or 0)
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise unreadable(path, exc) from None
    finally:
        state.close()
