"""Job bodies, streamed to disk as they arrive: never held whole in memory.

An NDJSON body is decoded *then* split: its encoding is known from its first
bytes (a UTF-8 or UTF-16 byte-order mark, or the zero bytes of UTF-16 text
without one), and lines end only at a newline *character* — in UTF-16 that is a
two-byte unit at an even offset, never a stray ``0x0A`` byte inside another
character. Each line is written as UTF-8; a UTF-16 line that does not decode
(a lone surrogate unit) is written as a marker the job reports as that line's
error, so one bad line costs one record. A JSON body is written as it came and
parsed by a worker process (parsing.json_job).
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from .parsing import UNDECODABLE

__all__ = ["receive_ndjson", "receive_raw"]


async def receive_raw(chunks: AsyncIterator[bytes], path: Path) -> int:
    """Write the body to ``path`` as it arrives; return its size."""
    size = 0
    with path.open("wb") as out:
        async for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
    return size


async def receive_ndjson(chunks: AsyncIterator[bytes], path: Path) -> int:
    """Write the body's non-blank lines to ``path`` as UTF-8 NDJSON as it arrives; return how many."""
    with path.open("wb") as out:
        splitter = _Lines(out)
        async for chunk in chunks:
            splitter.feed(chunk)
        splitter.end()
    return splitter.count


class _Lines:
    """Bytes in (any chunking), lines out: BOM-aware, decoded before it is split.

    Each chunk is searched once, for newlines at character boundaries; only the
    pieces of the line being received are kept.
    """

    _NEWLINE = {"utf-8": (b"\n", 1), "utf-16-le": (b"\n\x00", 2), "utf-16-be": (b"\x00\n", 2)}

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.count = out, 0
        self._codec: str | None = None  # None until the first bytes say
        self._head = b""  # the first bytes, until there are enough to tell the encoding
        self._odd = b""  # UTF-16: a byte of a unit whose other byte is in the next chunk
        self._parts: list[bytes] = []  # the line being received

    def feed(self, chunk: bytes) -> None:
        if self._codec is None:
            self._head += chunk
            if len(self._head) < 4:
                return
            chunk, self._head = self._head, b""
            self._codec, skip = _sniff(chunk)
            chunk = chunk[skip:]
        self._scan(chunk)

    def end(self) -> None:
        if self._codec is None:
            self._codec, skip = _sniff(self._head)
            self._scan(self._head[skip:])
        if self._odd:
            self._parts.append(self._odd)  # half a UTF-16 unit: that line does not decode
        if self._parts:
            self._flush()

    def _scan(self, chunk: bytes) -> None:
        newline, step = self._NEWLINE[self._codec or "utf-8"]
        if step == 2:  # keep every chunk whole units, so that a unit starts at every even offset
            chunk = self._odd + chunk
            cut = len(chunk) - len(chunk) % 2
            chunk, self._odd = chunk[:cut], chunk[cut:]
        start = at = 0
        while (at := chunk.find(newline, at)) >= 0:
            if at % step:  # the second byte of one unit and the first of the next: not a newline
                at += 1
                continue
            self._parts.append(chunk[start:at])
            self._flush()
            start = at = at + len(newline)
        if start < len(chunk):
            self._parts.append(chunk[start:])

    def _flush(self) -> None:
        raw, self._parts = b"".join(self._parts), []
        if self._codec != "utf-8":
            try:
                raw = raw.decode(self._codec or "utf-16").encode("utf-8")
            except UnicodeError:
                raw = UNDECODABLE
        raw = raw.rstrip(b"\r")
        if raw.strip():
            self.out.write(raw + b"\n")
            self.count += 1


def _sniff(head: bytes) -> tuple[str, int]:
    """The encoding of an NDJSON body from its first bytes, and how many of them are a BOM."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] and head[2]:
        return "utf-16-le", 0  # '{\x00"\x00': UTF-16 without a BOM
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] and head[3]:
        return "utf-16-be", 0
    return "utf-8", 0
