"""Bulk input: a stream of documents from JSONL, a folder, stdin or a library caller.

Every input record becomes exactly one ``BulkItem``: a readable Document, or
the reason it is not one. Nothing is skipped silently and nothing is read
whole: JSONL is read line by line (each line size-bounded), folders file by
file (regular files only, each size-bounded), so a corpus of any size streams.

Ids: a record's own id (``id_field``), else one summarizer makes, of the form
``#line-N`` (``#item-N`` for library input). A repeated id becomes
``<id>#line-N`` with the error ``duplicate_id``. Ids ending in ``#line-N`` or
``#item-N`` are reserved for those, so a made-up id can never collide with a
record's own.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .documents import MAX_DOCUMENT_BYTES, Document, read_document
from .errors import InputError
from .schemas import ErrorInfo

__all__ = ["FOLDER_SUFFIXES", "BulkItem", "as_items", "read_folder", "read_jsonl", "read_source", "source_path"]

FOLDER_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm"})
MAX_LINE_BYTES = 2 * MAX_DOCUMENT_BYTES + 4096  # a document, JSON-escaped, and its other fields
_RESERVED_ID = re.compile(r"#(line|item)-\d+$")


@dataclass(frozen=True)
class BulkItem:
    """One input record: a readable document, or the reason it is not one."""

    id: str
    document: Document | None = None
    error: ErrorInfo | None = None


def read_source(source: str | Path, *, id_field: str = "id", text_field: str = "text") -> Iterator[BulkItem]:
    """Items from a JSONL file or stream (a FIFO, ``<(...)``, ``-`` for stdin) or a folder of documents."""
    if str(source) == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise InputError("stdin: standard input is closed; pass a JSONL file or a folder")
        return read_jsonl(sys.stdin.buffer, id_field=id_field, text_field=text_field)
    path = Path(source)
    if path.is_dir():
        return read_folder(path)
    if not path.exists():
        raise InputError(f"{source}: no such file or folder")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from None
    return _read_and_close(handle, id_field, text_field)


def source_path(source: str | Path) -> Path | None:
    """The regular file behind ``source``, if it is one (to refuse writing the output over it)."""
    if str(source) == "-":
        return None
    path = Path(source)
    try:
        return path if stat.S_ISREG(path.stat().st_mode) else None
    except OSError:
        return None


def _read_and_close(handle: IO[bytes], id_field: str, text_field: str) -> Iterator[BulkItem]:
    with handle:
        yield from read_jsonl(handle, id_field=id_field, text_field=text_field)


def read_jsonl(stream: IO[bytes] | Iterable[bytes | str], *, id_field: str = "id",
               text_field: str = "text") -> Iterator[BulkItem]:
    """One item per non-blank line; UTF-8 (with or without BOM) or BOM-marked UTF-16."""
    seen: set[str] = set()
    for number, line in enumerate(_lines(stream), 1):
        if isinstance(line, _Oversized):
            yield _failed(f"#line-{number}", "invalid_record",
                          f"line {number}: longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
        elif line.strip():
            yield _record_from_line(line, number, id_field, text_field, seen)


class _Oversized:
    """A line too long to hold: its bytes were skipped."""


def _lines(stream: IO[bytes] | Iterable[bytes | str]) -> Iterator[bytes | str | _Oversized]:
    if not hasattr(stream, "readline"):
        yield from stream  # an iterable of lines (tests, library callers)
        return
    handle: Any = stream
    head = handle.peek(4)[:4] if hasattr(handle, "peek") else b""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = io.TextIOWrapper(handle, encoding="utf-16", newline=None)
        while line := text.readline(MAX_LINE_BYTES):
            yield line
        return
    if head.startswith(codecs.BOM_UTF8):
        handle.read(3)
    while line := handle.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield _Oversized()
        else:
            yield line


def _record_from_line(line: bytes | str, number: int, id_field: str, text_field: str, seen: set[str]) -> BulkItem:
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return _failed(f"#line-{number}", "invalid_record", f"line {number}: not UTF-8 text")
    except (ValueError, RecursionError):
        return _failed(f"#line-{number}", "invalid_record", f"line {number}: not valid JSON")
    return _record(record, number, "line", id_field, text_field, seen)


def _record(record: Any, number: int, kind: str, id_field: str, text_field: str, seen: set[str]) -> BulkItem:
    """An item from one parsed record (a JSONL line, or a dict a library caller passed)."""
    generated = f"#{kind}-{number}"
    if not isinstance(record, dict):
        return _failed(generated, "invalid_record", f"{kind} {number}: not a JSON object")
    raw_id = record.get(id_field)
    if isinstance(raw_id, (dict, list)):
        return _failed(generated, "invalid_record", f"{kind} {number}: field {id_field!r} is not a string or number")
    doc_id = generated if raw_id is None or raw_id == "" else str(raw_id)
    if doc_id != generated and _RESERVED_ID.search(doc_id):
        return _failed(generated, "invalid_record",
                       f"{kind} {number}: id {doc_id!r} ends like the ids summarizer makes (#line-N, #item-N)")
    if doc_id in seen:
        return _failed(f"{doc_id}#{kind}-{number}", "duplicate_id",
                       f"{kind} {number}: id {doc_id!r} appeared on an earlier {kind}")
    seen.add(doc_id)
    text = record.get(text_field)
    if not isinstance(text, str):
        return _failed(doc_id, "invalid_record", f"{kind} {number}: no string field {text_field!r}")
    if len(text) > MAX_DOCUMENT_BYTES:
        return _failed(doc_id, "input_error", f"{kind} {number}: text larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
    try:
        return BulkItem(doc_id, document=Document.from_text(text, id=doc_id, source=f"{kind} {number}"))
    except InputError as exc:
        return _failed(doc_id, exc.code, str(exc))


def _failed(doc_id: str, code: str, message: str) -> BulkItem:
    return BulkItem(doc_id, error=ErrorInfo(code=code, message=message))


def read_folder(root: Path) -> Iterator[BulkItem]:
    """Every regular .txt, .md and .html file under ``root``, in sorted order; ids are relative paths.

    FIFOs, devices and links to them are never opened (they could block or never end).
    """
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory, name)
            if path.suffix.lower() not in FOLDER_SUFFIXES:
                continue
            doc_id = path.relative_to(root).as_posix()
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                yield _failed(doc_id, "input_error", f"{doc_id}: cannot read ({exc.strerror})")
                continue
            if not stat.S_ISREG(mode):
                yield _failed(doc_id, "input_error", f"{doc_id}: not a regular file (a FIFO or device); skipped")
                continue
            try:
                yield BulkItem(doc_id, document=read_document(path, id=doc_id))
            except InputError as exc:
                yield _failed(doc_id, exc.code, str(exc))


def as_items(documents: Iterable[Any]) -> Iterator[BulkItem]:
    """What a library caller has, as items: Documents, strings, (id, text) pairs, dicts or BulkItems.

    Anything else (None, a number) is one error record, never the end of the run.
    """
    seen: set[str] = set()
    for number, entry in enumerate(documents, 1):
        yield _item(entry, number, seen)


def _item(entry: Any, number: int, seen: set[str]) -> BulkItem:
    if isinstance(entry, BulkItem):
        return entry
    if isinstance(entry, Document):
        if entry.id in seen:
            return _failed(f"{entry.id}#item-{number}", "duplicate_id",
                           f"item {number}: id {entry.id!r} appeared on an earlier item")
        seen.add(entry.id)
        return BulkItem(entry.id, document=entry)
    if isinstance(entry, dict):
        return _record(entry, number, "item", "id", "text", seen)
    if isinstance(entry, tuple) and len(entry) == 2:
        return _record({"id": entry[0], "text": entry[1]}, number, "item", "id", "text", seen)
    if isinstance(entry, str):
        return _record({"text": entry}, number, "item", "id", "text", seen)
    return _failed(f"#item-{number}", "invalid_record",
                   f"item {number}: not a document ({type(entry).__name__}); pass str, (id, text), dict or Document")
