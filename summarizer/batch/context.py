"""What every phase of one batch run shares: the pipeline, the provider's endpoint, the limits, the tally."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import BatchEndpoint
from ..bulk import Tally
from ..documents import Document
from ..pipeline import DocumentPipeline
from ..schemas import Record
from ..sinks import JsonlSink
from ..tasks import Request, TaskRun
from .state import BatchState

__all__ = ["BatchLimits", "BatchSummary", "RunContext"]

log = logging.getLogger("summarizer")


@dataclass(frozen=True)
class BatchLimits:
    """Per input file: OpenAI's limits by default (50,000 requests, 200 MB), with a little room."""

    max_requests: int = 50_000
    max_bytes: int = 190 * 1024 * 1024

    def tighter(self, learned: Any) -> BatchLimits:
        """These limits, or those a provider's refusal taught the run (kept in its state), whichever are lower."""
        if not (isinstance(learned, list) and len(learned) == 2 and all(isinstance(v, int) for v in learned)):
            return self
        return BatchLimits(min(self.max_requests, learned[0]), min(self.max_bytes, learned[1]))


@dataclass
class BatchSummary(Tally):
    """What this invocation did, and where the run stands."""

    submitted: int = 0  # requests put into new batches
    batches: int = 0  # batches created
    pending: int = 0  # requests still waiting for an answer
    finished: bool = False  # every document has its record in OUT
    rounds: list[dict[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a person should know (an all-cached run)

    @property
    def complete(self) -> bool:
        return self.finished and self.failed == 0 and self.skipped_failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(), "submitted": self.submitted, "batches": self.batches, "pending": self.pending,
            "finished": self.finished, "rounds": self.rounds, "notes": self.notes, "wall_s": round(self.wall_s, 3),
        }


@dataclass
class RunContext:
    """One run's shared parts; the builder, the collector and the runner each do their phase with them."""

    pipeline: DocumentPipeline
    endpoint: BatchEndpoint
    out: Path
    limits: BatchLimits
    summary: BatchSummary = field(default_factory=BatchSummary)
    requeued: bool = False  # a refused batch's requests went back to pending in this round

    @property
    def task(self) -> str:
        return self.pipeline.task

    def body(self, request: Request) -> dict[str, Any]:
        """The exact body a direct request would carry: a batch line's ``body``."""
        return self.endpoint.request_body(request.messages, output=request.output, params=request.params)

    def restore(self, doc_id: str, state: BatchState) -> TaskRun[Any] | None:
        found = state.doc(doc_id)
        if found is None:
            return None
        document, run = found
        pipeline = self.pipeline
        return TaskRun.restore(pipeline.spec, Document.from_state(doc_id, document), pipeline.prompts,
                               pipeline.options, run)

    def write(self, sink: JsonlSink, record: Record) -> None:
        self.summary.add(sink.write(record))

    def finish_doc(self, doc_id: str, record: Record, state: BatchState, sink: JsonlSink) -> None:
        self.write(sink, record)  # OUT first: a crash now leaves the document done, never lost
        state.drop_doc(doc_id)

    def halve(self, state: BatchState, requests: int, size: int, reason: str) -> None:
        """Smaller files from now on: the provider refused one over a limit lower than ours."""
        self.limits = BatchLimits(max(1, min(self.limits.max_requests, requests) // 2),
                                  max(1024, min(self.limits.max_bytes, size) // 2))
        state.set("limits", [self.limits.max_requests, self.limits.max_bytes])
        log.warning("%s; sending the requests again in files of at most %d requests and %d bytes", reason,
                    self.limits.max_requests, self.limits.max_bytes)
