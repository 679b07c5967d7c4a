"""Bulk output: an append-only JSONL file of Result records that a rerun resumes.

Whole lines, flushed one by one, fsynced at least every second. Opening an
existing output takes an exclusive lock (``OUT.lock``, beside it: a second run
on the same output exits 2), checks that every line is a Result record — a
file that is not ours, or the input itself, is refused, never truncated —
cuts a torn last line (a crash mid-write) and learns which ids are done.
Devices and pipes (``/dev/stdout``, a FIFO) are written, never read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputError, UsageError
from .schemas import Record, writable

__all__ = ["JsonlSink", "lock_path", "scan_output", "take_lock"]

_DUPLICATE = b'"error":{"code":"duplicate_id"'  # unescaped quotes: only the record's own structure
# Any task's records: a task name is lower-case letters, digits and _ (``registry.task_name_pattern``).
_HEAD = re.compile(rb'^\{"id":("(?:[^"\\]|\\.)*"),"task":"([a-z][a-z0-9_]{0,39})","status":"(ok|error)"')
_TASK = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class JsonlSink:
    """Where bulk results go; ``done`` maps the ids already in the output to their status."""

    def __init__(
        self, target: str | Path, *, retry_failed: bool = False, input_path: Path | None = None,
        fsync_every: float = 1.0, task: str | None = None,
    ) -> None:
        self.done: dict[str, str] = {}
        self.repaired = False
        self.name = "stdout" if str(target) == "-" else str(target)
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self._lock: IO[bytes] | None = None
        if str(target) == "-":
            self._file: IO[bytes] = sys.stdout.buffer
            self._owned = False
            return
        path = Path(target)
        _refuse_input(path, input_path)
        self._owned = True
        if _is_special(path):  # /dev/stdout, /dev/null, a FIFO: write only
            self._file = _open(path, "ab")
            return
        _check_parent(path)
        self._lock = take_lock(path)
        try:
            if path.exists():
                _refuse_other_task(path, task)
                self.done, self.repaired = _prepare_existing(path, retry_failed)
            self._file = _open(path, "ab")
        except BaseException:
            self._release()
            raise

    def skip(self, item_id: str) -> bool:
        return item_id in self.done

    def write(self, record: Record) -> Record:
        """Append ``record``; return what was written (its error record, if it cannot be encoded)."""
        record, line = writable(record)
        try:
            self._file.write(line.encode("utf-8") + b"\n")
            self._file.flush()
            self.done[record.id] = record.status
            if self._owned and time.monotonic() - self._last_sync >= self._fsync_every:
                os.fsync(self._file.fileno())
                self._last_sync = time.monotonic()
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write {self.name}: {_reason(exc)}") from None
        return record

    def close(self) -> None:
        try:
            with contextlib.suppress(ValueError):
                self._file.flush()
                if self._owned:
                    with contextlib.suppress(OSError):  # not every file fsyncs (pipes, /dev/null)
                        os.fsync(self._file.fileno())
                    self._file.close()
        except OSError as exc:
            raise OutputError(f"cannot write {self.name}: {_reason(exc)}") from None
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock; the file stays (deleting it would race)
            self._lock = None


def scan_output(path: Path) -> Iterator[tuple[str, str]]:
    """``(id, status)`` of every complete record in an existing output; UsageError if it is not ours."""
    for line, _ in _records(path):
        yield line


def _records(path: Path) -> Iterator[tuple[tuple[str, str], bytes]]:
    with _open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                if not line.lstrip().startswith(b'{"id":') and not b'{"id":'.startswith(line.strip()):
                    raise _not_ours(path, number)
                return  # a torn last line: the caller cuts it
            parsed = _id_and_status(line)
            if parsed is None:
                if not line.strip():
                    continue
                raise _not_ours(path, number)
            yield parsed, line


def _prepare_existing(path: Path, retry_failed: bool) -> tuple[dict[str, str], bool]:
    done: dict[str, str] = {}
    failed = 0
    for (doc_id, status), line in _records(path):
        redo = retry_failed and _redoable(status, line)
        failed += redo
        if not redo:
            done[doc_id] = status
    size = path.stat().st_size
    with _open(path, "rb") as handle:
        complete = _complete_length(handle, size)
    if retry_failed and failed:
        _rewrite_without_errors(path)  # drops a torn last line too
    elif complete != size:
        with _open(path, "r+b") as handle:
            handle.truncate(complete)
    return done, complete != size


def _redoable(status: str, line: bytes) -> bool:
    """An error record --retry-failed redoes: not a duplicate_id one (the input repeating an id stays so)."""
    return status == "error" and _DUPLICATE not in line


def _rewrite_without_errors(path: Path) -> None:
    temp = path.with_name(path.name + ".tmp")
    try:
        with _open(temp, "wb") as out:
            for (_, status), line in _records(path):
                if not _redoable(status, line):
                    out.write(line)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _complete_length(handle: IO[bytes], size: int) -> int:
    """Bytes up to and including the last newline."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        chunk = handle.read(end - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _id_and_status(line: bytes) -> tuple[str, str] | None:
    match = _HEAD.match(line)
    if match:
        return str(json.loads(match.group(1))), match.group(3).decode()
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("id"), str) and record.get("status") in ("ok", "error") \
            and isinstance(record.get("task"), str) and _TASK.match(record["task"]):
        return record["id"], record["status"]
    return None


def _refuse_other_task(path: Path, task: str | None) -> None:
    # Resuming skips ids already there: an output of another task would skip every document.
    if task is None:
        return
    with _open(path, "rb") as handle:
        match = _HEAD.match(handle.readline())
    if match and match.group(2).decode() != task:
        raise UsageError(f"{path} holds {match.group(2).decode()} results and this run is {task}: "
                         "choose another --out")


def _not_ours(path: Path, number: int) -> UsageError:
    return UsageError(f"{path} exists and is not a summarizer output (line {number} is not a result record); "
                      "choose another --out")


def _refuse_input(path: Path, input_path: Path | None) -> None:
    if input_path is None or not path.exists():
        return
    with contextlib.suppress(OSError):
        if os.path.samefile(path, input_path):
            raise UsageError(f"--out {path} is the input file; choose another output")


def _is_special(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _check_parent(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; pass a file name to --out")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")


def take_lock(path: Path) -> IO[bytes]:
    """An exclusive lock on ``path`` (held in ``PATH.lock`` until the handle closes): one run per output."""
    handle = _open(lock_path(path), "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"another run is writing {path} (it holds {lock_path(path).name}); "
                         "wait for it to finish or choose another --out") from None
    return handle


def _open(path: Path, mode: str) -> IO[bytes]:
    try:
        return open(path, mode)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)
