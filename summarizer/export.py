"""Results for people: Markdown with footnote citations, and bulk outputs as a spreadsheet or a digest.

``markdown(result)`` writes a value with its sources: a brief's sentences each
end on a footnote quoting the source sentences that back it (an unsupported
sentence says so), an event report lists its events with their quotes. A task
without a Markdown form comes out as its JSON. ``export`` turns a bulk output
(JSONL of Result records, any task) into CSV — one row per document — or a
Markdown digest, streaming: an output of any size takes constant memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from .catalog import default_registry
from .errors import InputError
from .registry import TaskRegistry
from .schemas import Brief, CheckedSentence, EventReport, Failure, Result

__all__ = ["CSV_COLUMNS", "ExportFormat", "export", "markdown"]

ExportFormat = Literal["csv", "md"]


class TextOut(Protocol):
    """Where an export goes: an open text file, or standard output."""

    def write(self, text: str, /) -> int: ...

    def writelines(self, lines: Iterable[str], /) -> None: ...
CSV_COLUMNS = ("id", "task", "status", "text", "unsupported", "warnings", "error_code", "error_message",
               "prompt_tokens", "completion_tokens", "requests", "model", "prompt_version", "cached")
_QUOTE = 300  # characters of a cited source passage shown in a footnote


def markdown(result: Result[Any], registry: TaskRegistry | None = None) -> str:
    """The result's value as Markdown, with what backs it."""
    source = result.source.text if result.source is not None else ""
    value = result.value
    if isinstance(value, Brief):
        return _brief_markdown(value, source)
    if isinstance(value, EventReport):
        return _events_markdown(value)
    return "```json\n" + json.dumps(_plain(value), indent=2, ensure_ascii=False) + "\n```"


def _brief_markdown(brief: Brief, source: str) -> str:
    if not brief.sentences:
        return brief.text
    body, notes = [], []
    for n, sentence in enumerate(brief.sentences, 1):
        body.append(f"{sentence.text}[^{n}]")
        cited = " … ".join(_short(c.of(source)) for c in sentence.citations)
        quote = f"“{cited}”" if cited else "no source sentence backs it"
        spans = ", ".join(f"{c.start}–{c.end}" for c in sentence.citations)
        notes.append(f"[^{n}]: {quote}" + (f" (characters {spans})" if spans else "") + _verdict(sentence))
    return " ".join(body) + "\n\n" + "\n".join(notes)


def _verdict(sentence: CheckedSentence) -> str:
    if sentence.support == "unsupported" or sentence.judged == "unsupported":
        why = "; ".join(f"{i.kind} “{i.text}”: {i.detail}" for i in sentence.issues)
        judge = f" (judge: {sentence.judge_reason})" if sentence.judged == "unsupported" and sentence.judge_reason else ""
        return " — **not backed by the source**" + (f": {why}" if why else "") + judge
    return " — partly backed" if sentence.support == "partial" else ""


def _events_markdown(report: EventReport) -> str:
    lines = [f"**{report.headline}**", ""]
    for event in report.events:
        who = ", ".join(f"{p.name} ({p.role})" for p in event.participants) or "—"
        where = event.where.name if event.where else "—"
        when = (event.when.text + (f" ({event.when.date})" if event.when.date else "")) if event.when else "—"
        lines.append(f"- **{event.type}** ({event.status}): {event.summary}")
        lines.append(f"  - who: {who} · where: {where} · when: {when}")
        lines += [f"  - > “{_short(q.quote)}” (characters {q.start}–{q.end}, {q.match})" for q in event.evidence]
    return "\n".join(lines)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE else text[: _QUOTE - 1].rstrip() + "…"


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


# -- bulk outputs ------------------------------------------------------------------------------------


def export(path: Path, fmt: ExportFormat, out: TextOut, *, registry: TaskRegistry | None = None) -> int:
    """Write the records of ``path`` (a bulk output) to ``out`` as ``fmt``; return how many."""
    registry = registry or default_registry()
    records = _records(path, registry)
    if fmt == "csv":
        return _csv(records, out)
    return _digest(records, out, registry, path.name)


def _records(path: Path, registry: TaskRegistry) -> Iterator[Result[Any] | Failure]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            yield _record(line, number, path, registry)


def _record(line: bytes, number: int, path: Path, registry: TaskRegistry) -> Result[Any] | Failure:
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if data.get("status") == "error":
            return Failure.model_validate(data)
        task = data.get("task")
        model = registry.get(task).value_model if isinstance(task, str) and task in registry else None
        return (Result[model] if model is not None else Result[Any]).model_validate(data)  # type: ignore[valid-type]
    except (ValueError, ValidationError, RecursionError):
        raise InputError(f"{path}: line {number} is not a summarizer result record") from None


def _csv(records: Iterator[Result[Any] | Failure], out: TextOut) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        writer.writerow(_row(record))
        count += 1
    return count


def _row(record: Result[Any] | Failure) -> list[Any]:
    error = record.error
    return [record.id, record.task, record.status, _text(record.value) if record.status == "ok" else "",
            record.unsupported, " | ".join(record.warnings), error.code if error else "", error.message if error else "",
            record.usage.prompt_tokens, record.usage.completion_tokens, record.usage.requests, record.model or "",
            record.prompt_version or "", record.cached]


def _text(value: Any) -> str:
    if isinstance(value, Brief):
        return value.text
    if isinstance(value, EventReport):
        return value.headline + "".join(f" | {e.type}: {e.summary}" for e in value.events)
    return json.dumps(_plain(value), ensure_ascii=False)


def _digest(records: Iterator[Result[Any] | Failure], out: TextOut, registry: TaskRegistry, name: str) -> int:
    out.write(f"# {name}\n")
    failed: list[Failure] = []
    count = 0
    for record in records:
        count += 1
        if isinstance(record, Failure):
            failed.append(record)
            continue
        flag = f" — {record.unsupported} unsupported" if record.unsupported else ""
        out.write(f"\n## {record.id}{flag}\n\n{markdown(record, registry)}\n")
    if failed:
        out.write("\n## Failed\n\n")
        out.writelines(f"- {f.id}: {f.error.code}: {f.error.message}\n" for f in failed)
    return count
