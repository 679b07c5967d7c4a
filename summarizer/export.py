"""Results for people: Markdown with footnote citations, and bulk outputs as a spreadsheet or a digest.

``markdown(result)`` writes a value with its sources: a brief's sentences each
end on a footnote quoting the source sentences that back it (an unsupported
sentence says so), an event report lists its events with their quotes. A task
without a Markdown form comes out as its JSON. ``export`` turns a bulk output
(JSONL of Result records, any task) into CSV — one row per document — or a
Markdown digest, streaming: an output of any size takes constant memory. A CSV
cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, a tab
or a carriage return first: OWASP's list) gets a leading ``'``: ids, briefs and
error messages are other people's text, and ``=HYPERLINK(…)`` in one is an attack.
"""

from __future__ import annotations

import csv
import itertools
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, Protocol

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
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)


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


def export(path: Path, fmt: ExportFormat, out: TextOut, *, registry: TaskRegistry | None = None,
           on_warning: Callable[[str], None] | None = None) -> int:
    """Write the records of ``path`` (a bulk output) to ``out`` as ``fmt``; return how many.

    A last line cut short (a run still writing, or one that crashed) is left out with a warning;
    any other line that is not a Result record is an InputError.
    """
    registry = registry or default_registry()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        records = _records(handle, path, registry, on_warning or (lambda _: None))
        if fmt == "csv":
            return _csv(records, out)
        return _digest(records, out, registry, path.name)


def _records(handle: IO[bytes], path: Path, registry: TaskRegistry,
             on_warning: Callable[[str], None]) -> Iterator[Result[Any] | Failure]:
    read = 0
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            yield _record(line, number, path, registry)
        except InputError:
            if line.endswith(b"\n") or not read:  # a bulk output's own last line, cut short: not a stranger's file
                raise
            on_warning(f"{path}: line {number} is cut short (a run still writing, or one that crashed): left out")
        read += 1


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
    records = _checked_first(records)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        writer.writerow([_cell(c) for c in _row(record)])
        count += 1
    return count


def _checked_first(records: Iterator[Result[Any] | Failure]) -> Iterator[Result[Any] | Failure]:
    """``records``, the first one read now: a file that is not a bulk output fails before anything is written."""
    first = next(records, None)
    return itertools.chain([first] if first is not None else [], records)


def _cell(value: Any) -> Any:
    """A string a spreadsheet would run as a formula, with a leading ' (it shows the text instead)."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA) else value


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
    records = _checked_first(records)
    out.write(f"# {name}\n")
    count = 0
    # Failures are listed at the end: they wait on disk, not in memory.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as failed:
        for record in records:
            count += 1
            if isinstance(record, Failure):
                failed.write(f"- {_line(record.id)}: {record.error.code}: {_line(record.error.message)}\n")
                continue
            flag = f" — {record.unsupported} unsupported" if record.unsupported else ""
            out.write(f"\n## {_line(record.id)}{flag}\n\n{markdown(record, registry)}\n")
        if failed.tell():
            out.write("\n## Failed\n\n")
            failed.seek(0)
            out.writelines(failed)
    return count


def _line(text: str) -> str:
    """An id or a message on one line: a line break in it would start a heading of its own."""
    return " ".join(text.split())
