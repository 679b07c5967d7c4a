"""Collecting a finished batch: every answer fed to its document's TaskRun, whatever it left undone queued again.

The output and error files are read as streams. An answer goes through the same
validation, grounding and re-asks as in direct mode; what needs another request
goes into the next round: re-asks (carrying their errors), the combine step of a
long document, the verdicts of ``--verify``, answers lost to a 5xx, requests
missing from both files, the undone part of an expired or cancelled batch. A
batch the provider refused at validation never goes again unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import OutputValidationError, ProviderError, SummarizerError
from ..pipeline import failure
from ..sinks import JsonlSink
from ..tasks import Request
from .build import add_request, is_limit, line
from .context import RunContext
from .provider import Provider
from .state import BatchState, RequestRow

__all__ = ["Collector"]

log = logging.getLogger("summarizer")
_RETRYABLE = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_CHUNK = 500  # lines per state transaction while collecting


class Collector:
    """Takes what batches answered into the documents' runs and OUT."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def collect_finished(self, state: BatchState, sink: JsonlSink, provider: Provider) -> None:
        for batch in state.batches(uncollected=True):
            if provider.terminal(batch["status"]):
                await self._collect(batch, state, sink, provider)

    async def _collect(self, batch: dict[str, Any], state: BatchState, sink: JsonlSink, provider: Provider) -> None:
        """Every answer of a finished batch, then whatever it left undone, into the next round."""
        info, round_ = batch["info"], batch["round"]
        if batch["status"] == "failed" and info.get("errors"):
            with state.transaction():
                self._refused(batch, state, sink)
                state.collected(batch["id"])
            return
        for file_key in ("output_file_id", "error_file_id"):
            if not info.get(file_key):
                continue
            lines = provider.lines(info[file_key])
            done = False
            while not done:
                chunk = []
                async for answer in lines:
                    chunk.append(answer)
                    if len(chunk) >= _CHUNK:
                        break
                else:
                    done = True
                with state.transaction():
                    for answer in chunk:
                        self._answer(answer, batch["id"], round_, state, sink)
        with state.transaction():
            for row in state.in_batch(batch["id"]):  # in neither file: lost, or left undone by expiry
                self.resend(row, round_, state, reason=f"batch {batch['status']} without an answer for it")
            state.collected(batch["id"])

    def _answer(self, answer: dict[str, Any], batch_id: str, round_: int, state: BatchState, sink: JsonlSink) -> None:
        row = state.request(str(answer.get("custom_id")))
        if row is None or row.status != "submitted" or row.batch != batch_id:
            return  # not ours, or answered already (a collect interrupted and started again)
        response = answer.get("response") or {}
        status = response.get("status_code")
        endpoint = self.run.endpoint
        if status == 200:
            try:
                completion = endpoint.parse(response.get("body"), row.body)
            except ProviderError as exc:
                self.resend(row, round_, state, reason=str(exc))
                return
            completion.usage.batched = 1
            state.tally(round_, answered=1, prompt_tokens=completion.usage.prompt_tokens,
                        completion_tokens=completion.usage.completion_tokens)
            self.feed(row, completion, round_ + 1, state, sink)
        elif isinstance(status, int) and status not in _RETRYABLE:
            state.tally(round_, failed=1)
            message = _error_message(response, answer)
            self.fail(row, ProviderError(f"{endpoint.endpoint} answered HTTP {status} in the batch: {message}"),
                      state, sink)
        else:
            self.resend(row, round_, state, reason=f"HTTP {status} in the batch: {_error_message(response, answer)}")

    def feed(self, row: RequestRow, completion: Any, next_round: int, state: BatchState, sink: JsonlSink) -> None:
        """An answer for a request: validate it in the document's TaskRun; write the result or queue what follows."""
        run, pipeline = self.run, self.run.pipeline
        task_run = run.restore(row.doc_id, state)
        state.set_request(row.custom_id, status="answered")
        if task_run is None:
            return
        request = Request.from_state(row.state, pipeline.prompts, pipeline.spec)
        try:
            follow_ups = task_run.receive(request, completion)
        except OutputValidationError as exc:
            run.finish_doc(row.doc_id, failure(row.doc_id, run.task, exc, task_run.model), state, sink)
            return
        if task_run.done:
            run.finish_doc(row.doc_id, pipeline.accepted(task_run.result(), task_run.document), state, sink)
            return
        for follow_up in follow_ups:
            same = follow_up.reasks > request.reasks and (follow_up.stage, follow_up.index) == \
                (request.stage, request.index)
            add_request(state, row.doc_id, follow_up, _reasked(row.body, follow_up) if same else run.body(follow_up),
                        round_=next_round)
        state.save_run(row.doc_id, task_run.snapshot())

    def resend(self, row: RequestRow, round_: int, state: BatchState, *, reason: str) -> None:
        """The same request in the next round, counted as a retry."""
        task_run = self.run.restore(row.doc_id, state)
        if task_run is None:
            state.set_request(row.custom_id, status="answered")
            return
        task_run.usage.requests += 1
        task_run.usage.retries += 1
        state.save_run(row.doc_id, task_run.snapshot())
        state.set_request(row.custom_id, status="pending", round_=round_ + 1, attempts=row.attempts + 1)
        state.tally(round_, resent=1)
        state.set(f"last_error:{row.doc_id}", reason[:300])

    def fail(self, row: RequestRow, error: SummarizerError, state: BatchState, sink: JsonlSink) -> None:
        task_run = self.run.restore(row.doc_id, state)
        state.set_request(row.custom_id, status="answered")
        if task_run is not None:
            task_run.usage.requests += 1
            error.usage = task_run.usage
            self.run.finish_doc(row.doc_id, failure(row.doc_id, self.run.task, error, task_run.model), state, sink)

    def _refused(self, batch: dict[str, Any], state: BatchState, sink: JsonlSink) -> None:
        """A batch the provider failed at validation: say why, and never send that file again unchanged.

        Lines it names fail with its reason (the rest go again, without them); a limit lower than
        ours halves the file limits for the rest of the run (kept in the state) and the requests go
        again in smaller files; anything else fails the batch's documents with the provider's reason.
        """
        errors, rows = batch["info"]["errors"], state.in_batch(batch["id"])
        reason = "; ".join(_error_text(e) for e in errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3
                                                                   else "")
        log.warning("the provider refused batch %s (%d requests) at validation: %s", batch["id"], len(rows), reason)
        by_line = {e["line"]: e for e in errors if isinstance(e.get("line"), int)}
        where = self.run.endpoint.endpoint
        if any(number in by_line for number in range(1, len(rows) + 1)):
            for number, row in enumerate(rows, 1):
                if number in by_line:
                    self.fail(row, ProviderError(f"{where} refused this request in batch {batch['id']}: "
                                                 f"{_error_text(by_line[number])}"), state, sink)
                else:
                    state.set_request(row.custom_id, status="pending")
            self.run.requeued = True
        elif any(is_limit(e) for e in errors) and len(rows) > 1:
            self.run.halve(state, len(rows), sum(len(line(row)) for row in rows), "it was over a limit of the provider")
            for row in rows:
                state.set_request(row.custom_id, status="pending")
            self.run.requeued = True
        else:
            for row in rows:
                self.fail(row, ProviderError(f"{where} refused batch {batch['id']} at validation: {reason}"),
                          state, sink)


def _reasked(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """The body of a re-ask: the same request (mode, schema, parameters) with the longer conversation."""
    messages = list(request.messages)
    if body["messages"] and body["messages"][0].get("role") == "system" and messages[0].get("role") == "system":
        messages[0] = body["messages"][0]  # keep a format guide the backend appended
    return {**body, "messages": messages}


def _error_message(response: dict[str, Any], answer: dict[str, Any]) -> str:
    body = response.get("body") if isinstance(response, dict) else None
    error = (body or {}).get("error") if isinstance(body, dict) else None
    error = error or answer.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    return " ".join(str(message or "no detail").split())[:200]


def _error_text(error: dict[str, Any]) -> str:
    code, message = error.get("code"), " ".join(str(error.get("message") or "no detail").split())[:200]
    where = f" (line {error['line']})" if isinstance(error.get("line"), int) else ""
    return f"{code}: {message}{where}" if code else f"{message}{where}"
