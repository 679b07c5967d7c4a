"""Bulk input: a stream of documents from JSONL, a folder, stdin or a library caller.

Every input record becomes exactly one ``BulkItem``: a readable Document (or a
URL to fetch when its turn comes), or the reason it is not one. A JSONL record
carries its document as ``text``, ``html`` or ``url`` (the first present), and
may carry a publication date (``published``: YYYY-MM-DD or an ISO timestamp). Nothing is skipped silently and nothing is read
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
import datetime as dt
import hashlib
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

from .documents import MAX_DOCUMENT_BYTES, Document, read_document, unicode_problem
from .errors import InputError, SummarizerError
from .extract import parse_date
from .fetch import is_url
from .schemas import ErrorInfo

__all__ = [
    "FOLDER_SUFFIXES", "BulkItem", "as_items", "count_items", "item_from_line", "item_from_record", "read_folder",
    "read_jsonl", "read_source", "source_path",
]

FOLDER_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf"})
MAX_LINE_BYTES = 2 * MAX_DOCUMENT_BYTES + 4096  # a document, JSON-escaped, and its other fields
_BLANK = re.compile(rb"\n(?=[ \t\r]*\n)")  # a newline that ends a blank line (the next one holds nothing)
_RESERVED_ID = re.compile(r"#(line-\d+|item-\d+|row-[0-9a-f]{16})$")


@dataclass(frozen=True)
class BulkItem:
    """One input record: a readable document, a URL to fetch, or the reason it is neither."""

    id: str
    document: Document | None = None
    error: ErrorInfo | None = None
    url: str | None = None  # fetched by the runner, when the item's turn comes
    published: dt.date | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Fields:
    id: str = "id"
    text: str = "text"
    published: str = "published"
    default_published: dt.date | None = None


def read_source(
    source: str | Path, *, id_field: str = "id", text_field: str = "text", published_field: str = "published",
    published: dt.date | None = None,
) -> Iterator[BulkItem]:
    """Items from a JSONL file or stream (a FIFO, ``<(...)``, ``-`` for stdin) or a folder of documents.

    ``published`` is the publication date of documents that do not carry their own.
    """
    fields = _Fields(id_field, text_field, published_field, published)
    if str(source) == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise InputError("stdin: standard input is closed; pass a JSONL file or a folder")
        return _jsonl(sys.stdin.buffer, fields)
    path = Path(source)
    if path.is_dir():
        return read_folder(path, published=published)
    if not path.exists():
        raise InputError(f"{source}: no such file or folder")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from None
    return _read_and_close(handle, fields)


def count_items(source: str | Path) -> int | None:
    """How many items ``source`` will yield, if that can be known without consuming it (for progress).

    A JSONL file: its non-blank lines (UTF-16 decoded first); a folder: its files that
    ``read_folder`` reads; stdin, a FIFO or a device: None. Reads the file once, in blocks.
    """
    path = Path(source)
    try:
        if str(source) == "-" or not (path.is_file() or path.is_dir()):
            return None
        if path.is_dir():
            return sum(1 for _, _, files in os.walk(path) for name in files
                       if Path(name).suffix.lower() in FOLDER_SUFFIXES)
        with path.open("rb") as handle:
            if handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                handle.seek(0)
                text = io.TextIOWrapper(handle, encoding="utf-16", errors="replace", newline=None)
                return sum(1 for line in text if line.strip())
            handle.seek(0)
            return _nonblank_lines(handle)
    except OSError:
        return None


def _nonblank_lines(handle: IO[bytes]) -> int:
    count, last = 0, b"\n"
    for block in iter(lambda: handle.read(1 << 20), b""):
        count += block.count(b"\n") - len(_BLANK.findall(last[-1:] + block))
        last = block
    return count + (last[-1:] != b"\n")


def source_path(source: str | Path) -> Path | None:
    """The regular file behind ``source``, if it is one (to refuse writing the output over it)."""
    if str(source) == "-":
        return None
    path = Path(source)
    try:
        return path if stat.S_ISREG(path.stat().st_mode) else None
    except OSError:
        return None


def _read_and_close(handle: IO[bytes], fields: _Fields) -> Iterator[BulkItem]:
    with handle:
        yield from _jsonl(handle, fields)


def read_jsonl(stream: IO[bytes] | Iterable[bytes | str], *, id_field: str = "id",
               text_field: str = "text") -> Iterator[BulkItem]:
    """One item per non-blank line; UTF-8 (with or without BOM) or BOM-marked UTF-16."""
    return _jsonl(stream, _Fields(id_field, text_field))


def _jsonl(stream: IO[bytes] | Iterable[bytes | str], fields: _Fields) -> Iterator[BulkItem]:
    seen: set[str] = set()
    for number, line in enumerate(_lines(stream), 1):
        if isinstance(line, _Oversized):
            yield oversized_line(number)
        elif line.strip():
            yield _record_from_line(line, number, fields, seen)


class _Oversized:
    """A line too long to hold: its bytes were skipped."""


def _lines(stream: IO[bytes] | Iterable[bytes | str]) -> Iterator[bytes | str | _Oversized]:
    if not hasattr(stream, "readline"):
        yield from stream  # an iterable of lines (tests, library callers)
        return
    handle: Any = stream
    head = handle.peek(4)[:4] if hasattr(handle, "peek") else b""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Decoded, then split: a "\n" byte is half of many UTF-16 characters. A stray byte becomes a
        # lone surrogate in its line (an error record), never an exception that ends the run.
        text = io.TextIOWrapper(handle, encoding="utf-16", errors=_UNDECODABLE, newline=None)
        while line := text.readline(MAX_LINE_BYTES):
            if len(line) >= MAX_LINE_BYTES and not line.endswith("\n"):
                while (rest := text.readline(1 << 20)) and not rest.endswith("\n"):
                    pass
                yield _Oversized()
            else:
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


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    """A decoding error handler: each undecodable byte becomes a lone surrogate (U+DC00 + byte)."""
    assert isinstance(error, UnicodeDecodeError)
    return "".join(chr(0xDC00 + byte) for byte in error.object[error.start:error.end]), error.end


_UNDECODABLE = "summarizer.undecodable"
codecs.register_error(_UNDECODABLE, _mark_undecodable)


def _record_from_line(line: bytes | str, number: int, fields: _Fields, seen: set[str],
                      where: str | None = None) -> BulkItem:
    where = where or f"line {number}"
    if isinstance(line, str) and (problem := unicode_problem(line)) is not None:
        return _failed(f"#line-{number}", "invalid_record",
                       f"{where}: not valid text ({problem}): a stray or missing byte in UTF-16 input "
                       "garbles every character after it")
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return _failed(f"#line-{number}", "invalid_record", f"{where}: not UTF-8 text")
    except (ValueError, RecursionError):
        return _failed(f"#line-{number}", "invalid_record", f"{where}: not valid JSON")
    return _record(record, number, "line", fields, seen, where)


def _record(record: Any, number: int, kind: str, fields: _Fields, seen: set[str],
            where: str | None = None, *, generated: str | None = None) -> BulkItem:
    """An item from one parsed record (a JSONL line, or a dict a library caller passed)."""
    generated = generated or f"#{kind}-{number}"
    where = where or f"{kind} {number}"
    if not isinstance(record, dict):
        return _failed(generated, "invalid_record", f"{where}: not a JSON object")
    raw_id = record.get(fields.id)
    if isinstance(raw_id, (dict, list)):
        return _failed(generated, "invalid_record", f"{where}: field {fields.id!r} is not a string or number")
    doc_id = generated if raw_id is None or raw_id == "" else str(raw_id)
    if (problem := unicode_problem(doc_id)) is not None:  # it could be neither written nor sent: named for its line
        return _failed(generated, "input_error", f"{where}: field {fields.id!r} is not valid Unicode ({problem}); "
                                                 f"the record is named {generated}")
    if doc_id != generated and _RESERVED_ID.search(doc_id):
        return _failed(generated, "invalid_record",
                       f"{where}: id {doc_id!r} ends like the ids summarizer makes (#line-N, #item-N, #row-…)")
    if doc_id in seen:
        return _failed(f"{doc_id}#{kind}-{number}", "duplicate_id",
                       f"{where}: id {doc_id!r} appeared on an earlier {kind}")
    seen.add(doc_id)
    published, notes = _published(record.get(fields.published), fields)
    field, value = next(((f, record[f]) for f in (fields.text, "html", "url") if record.get(f) is not None), (None, None))
    if not isinstance(value, str):
        return _failed(doc_id, "invalid_record",
                       f"{where}: no string field {fields.text!r} (or \"html\", or \"url\")")
    if (problem := unicode_problem(value)) is not None:
        return _failed(doc_id, "input_error", f"{where}: {field} is not valid Unicode ({problem})")
    if len(value) > MAX_DOCUMENT_BYTES:
        return _failed(doc_id, "input_error", f"{where}: {field} larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
    if field == "url":
        if not is_url(value.strip()):
            return _failed(doc_id, "invalid_record", f"{where}: url {value[:80]!r} is not an http(s) URL")
        return BulkItem(doc_id, url=value.strip(), published=published, notes=notes)
    try:
        document = Document.from_text(value, id=doc_id, source=where, html=True if field == "html" else
                                      None, published=published, notes=notes)
    except InputError as exc:
        return _failed(doc_id, exc.code, str(exc))
    return BulkItem(doc_id, document=document)


def _published(value: Any, fields: _Fields) -> tuple[dt.date | None, tuple[str, ...]]:
    if value is None or value == "":
        return fields.default_published, ()
    date = parse_date(value)
    if date is None:
        return fields.default_published, (f"{fields.published} {str(value)[:40]!r} is not a YYYY-MM-DD date; ignored",)
    return date, ()


def _failed(doc_id: str, code: str, message: str) -> BulkItem:
    return BulkItem(doc_id, error=ErrorInfo(code=code, message=_escaped(message)))


def _escaped(text: str) -> str:
    """``text`` writable as UTF-8: a file name's undecodable bytes (or a lone surrogate) as ``\\xNN``/``\\udNNN``."""
    if unicode_problem(text) is None:
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace") if _fs_escapes(text) else \
        text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fs_escapes(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True


def read_folder(root: Path, *, published: dt.date | None = None) -> Iterator[BulkItem]:
    """Every regular .txt, .md and .html file under ``root``, in sorted order; ids are relative paths.

    FIFOs, devices and links to them are never opened (they could block or never end).
    """
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory, name)
            if path.suffix.lower() not in FOLDER_SUFFIXES:
                continue
            doc_id = _escaped(path.relative_to(root).as_posix())  # a name in another encoding: \xNN for its bytes
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                yield _failed(doc_id, "input_error", f"{doc_id}: cannot read ({exc.strerror})")
                continue
            if not stat.S_ISREG(mode):
                yield _failed(doc_id, "input_error", f"{doc_id}: not a regular file (a FIFO or device); skipped")
                continue
            yield _file_item(path, doc_id, published)


def _file_item(path: Path, doc_id: str, published: dt.date | None) -> BulkItem:
    """One file of a folder as an item; whatever reading it raises costs this file, never the run."""
    try:
        return BulkItem(doc_id, document=read_document(path, id=doc_id, published=published))
    except SummarizerError as exc:
        return _failed(doc_id, exc.code, str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser's bug on one file (a PDF, a page) is that file's error
        return _failed(doc_id, "input_error", f"{doc_id}: cannot read ({type(exc).__name__}: {exc})"[:300])


_LIBRARY = _Fields()


def item_from_line(line: bytes | str, number: int, *, id_field: str = "id", text_field: str = "text",
                   published_field: str = "published", published: dt.date | None = None,
                   where: str | None = None) -> BulkItem:
    """One JSONL line as an item, alone (no duplicate check: for engines that see a slice of the input).

    ``number`` names a record without an id (``#line-<number>``); ``where`` says where it is in messages.
    """
    return _record_from_line(line, number, _Fields(id_field, text_field, published_field, published), set(), where)


def oversized_line(number: int) -> BulkItem:
    """The error item of a line too long to hold (its bytes were skipped)."""
    return _failed(f"#line-{number}", "invalid_record", f"line {number}: longer than {MAX_LINE_BYTES // 2**20} MiB")


def item_from_record(record: dict[str, Any], *, id_field: str = "id", text_field: str = "text",
                     published_field: str = "published", published: dt.date | None = None) -> BulkItem:
    """One parsed record (a Parquet row, say) as an item, alone.

    A table's rows have no line numbers: a row without an id is named by a digest
    of its content (``#row-<hex>``), the same on every run, so a rerun resumes it.
    """
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
    raw_id = record.get(id_field)
    where = f"row {raw_id!r}" if isinstance(raw_id, (str, int)) and raw_id != "" else f"row #row-{digest}"
    return _record(record, 0, "row", _Fields(id_field, text_field, published_field, published), set(), where,
                   generated=f"#row-{digest}")


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
        return _record(entry, number, "item", _LIBRARY, seen)
    if isinstance(entry, tuple) and len(entry) == 2:
        return _record({"id": entry[0], "text": entry[1]}, number, "item", _LIBRARY, seen)
    if isinstance(entry, str):
        return _record({"text": entry}, number, "item", _LIBRARY, seen)
    return _failed(f"#item-{number}", "invalid_record",
                   f"item {number}: not a document ({type(entry).__name__}); pass str, (id, text), dict or Document")
