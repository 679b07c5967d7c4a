"""A batch run from the outside: the settings it was started with, where it stands, cancelling it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..backends.base import BatchEndpoint
from ..errors import UsageError
from ..options import TaskOptions
from .provider import Provider
from .state import BatchState, state_path, unreadable

__all__ = ["batch_status", "cancel_batches", "collect_settings", "recorded_settings"]


def recorded_settings(out: Path) -> dict[str, Any]:
    """The task and options the batch run of ``out`` was started with (what ``batch collect`` goes on with)."""
    path = state_path(out)
    state = BatchState(path, create=False)
    try:
        identity, options = state.get("identity"), state.get("options")
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise unreadable(path, exc) from None
    finally:
        state.close()
    try:
        known = TaskOptions.from_state(options)
        return {"task": str(identity["task"]), "words": known.words, "language": known.language,
                "strict": known.strict, "verify": known.verify, "context_tokens": known.context_tokens}
    except (TypeError, KeyError, ValueError, AttributeError, UsageError) as exc:
        raise unreadable(path, exc) from None


def collect_settings(out: Path, **given: Any) -> dict[str, Any]:
    """The settings to go on with the run of ``out``: as recorded; a given one (not None) must agree.

    ``given``: task, words, language, strict, context_tokens. A contradiction is a UsageError
    naming both values, never a second run with other settings on the same output.
    """
    recorded = recorded_settings(out)
    flags = {"task": "--task", "words": "--words", "language": "--language", "strict": "--strict",
             "verify": "--verify", "context_tokens": "--context-tokens"}
    for name, value in given.items():
        if value is not None and value != recorded[name]:
            raise UsageError(f"{flags[name]} {_shown(value)} contradicts the batch run of {out}, started with "
                             f"{flags[name]} {_shown(recorded[name])}: leave it out (the run's own is used)")
    return dict(recorded)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "-".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)


def batch_status(out: Path) -> dict[str, Any]:
    """Where a batch run stands, from its state file alone (no network)."""
    path = state_path(out)
    state = BatchState(path, create=False)
    try:
        return {
            "run_id": state.get("run_id"), "round": state.get("round"), "phase": state.get("phase"),
            "identity": state.get("identity"),
            "requests": {s: state.count(s) for s in ("pending", "staged", "submitted", "answered")},
            "open_documents": len(state.open_doc_ids()), "rounds": state.rounds(),
            "batches": [{"id": b["id"], "round": b["round"], "status": b["status"], "requests": b["requests"],
                         "collected": b["collected"], "counts": b["info"].get("counts", {})}
                        for b in state.batches()],
        }
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise unreadable(path, exc) from None
    finally:
        state.close()


async def cancel_batches(endpoint: BatchEndpoint, out: Path) -> list[str]:
    """Cancel every batch of the run that is still going; return their ids."""
    path = state_path(out)
    state = BatchState(path, create=False)
    client = endpoint.client()
    provider = Provider(client, endpoint.endpoint, secrets=endpoint.secrets)
    try:
        cancelled = []
        for batch in state.batches(uncollected=True):
            if not provider.terminal(batch["status"]):
                state.update_batch(batch["id"], await provider.cancel(batch["id"]))
                cancelled.append(batch["id"])
        return cancelled
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise unreadable(path, exc) from None
    finally:
        state.close()
        await client.close()
