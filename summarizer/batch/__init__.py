"""Bulk through the provider's Batch API: half the price, same pipeline, same Result JSONL.

``build`` renders every document's requests exactly as direct mode would send
them and puts them into request files and batches; ``collect`` feeds each
answer to the document's TaskRun — the same validation, grounding and re-asks
as direct mode — and queues what needs another round; ``runner`` drives the
rounds; ``state`` keeps all of it beside OUT (a killed run, rerun with the same
command, polls the batches it already made); ``provider`` speaks to the Files
and Batches APIs; ``runs`` reads a run's recorded settings and status, and
cancels it.
"""

from __future__ import annotations

from .context import BatchLimits, BatchSummary
from .runner import BatchRunner, Finish
from .runs import batch_status, cancel_batches, collect_settings, recorded_settings
from .state import state_path

__all__ = ["BatchLimits", "BatchRunner", "BatchSummary", "Finish", "batch_status", "cancel_batches",
           "collect_settings", "recorded_settings", "state_path"]
