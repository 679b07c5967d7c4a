"""Result rows in a Parquet folder (local or object storage): what is done, and keeping each id once.

Ray's writer adds part files and never touches the ones there: a rerun only
adds. So this module reads what an output already holds (to skip it), and
after a run settles the folder: a ``--retry-failed`` run drops the error rows
it redid from the older files (all but ``duplicate_id`` ones), and an id the input repeated becomes a
``duplicate_id`` error row ``ID#dup-N`` — as in JSONL output, every input id
appears once. Files are rewritten whole through a temporary name, one at a
time, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bulk import BulkSummary
from .errors import OutputError, UsageError
from .sinks import take_lock

__all__ = ["ParquetOutput"]

_USAGE = ("prompt_tokens", "completion_tokens", "requests", "retries", "reasks")


@dataclass
class ParquetOutput:
    """The ``--out DIR.parquet`` of a Ray run: ``before`` holds the part files that were there at the start."""

    uri: str
    task: str | None = None  # this run's task: an output holding the other task's rows is refused
    before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        from pyarrow import fs

        try:
            self._fs, self._root = fs.FileSystem.from_uri(self.uri if "://" in self.uri
                                                          else str(Path(self.uri).resolve()))
        except (ValueError, OSError) as exc:
            raise OutputError(f"cannot use {self.uri} for Parquet output: {exc}") from None
        # A second run on a local folder exits 2; object storage has no lock to take (documented).
        self._lock = take_lock(Path(self._root)) if isinstance(self._fs, fs.LocalFileSystem) else None
        self.before = set(self.files())

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def files(self) -> list[str]:
        """The part files, in a stable order."""
        from pyarrow import fs

        info = self._fs.get_file_info(self._root)
        if info.type == fs.FileType.NotFound:
            return []
        if info.type != fs.FileType.Directory:
            raise OutputError(f"{self.uri} is a file: --engine ray writes Parquet into a folder (--out DIR.parquet)")
        selector = fs.FileSelector(self._root, recursive=True)
        return sorted(entry.path for entry in self._fs.get_file_info(selector)
                      if entry.type == fs.FileType.File and entry.path.endswith(".parquet"))

    def done(self) -> dict[str, str]:
        """Id → status of every row already written."""
        done: dict[str, str] = {}
        for path in sorted(self.before):
            table = self._read(path, ["id", "task", "status"])
            other = {t for t in table.column("task").to_pylist() if t and t != self.task}
            if self.task is not None and other:
                raise UsageError(f"{self.uri} holds {other.pop()} results and this run is {self.task}: "
                                 "choose another --out")
            done.update(zip(table.column("id").to_pylist(), table.column("status").to_pylist(), strict=True))
        return done

    def settle(self, summary: BulkSummary, *, retry_failed: bool) -> None:
        """After the run: drop redone error rows, turn repeated ids into duplicate_id rows, count the new rows."""
        if retry_failed:
            for path in sorted(self.before):  # duplicate_id rows stay: the input still repeats those ids
                self._rewrite(path, lambda rows: [row for row in rows if row["status"] != "error"
                                                  or row["error_code"] == "duplicate_id"])
        seen = {row_id for path in self.before for row_id in self._read(path, ["id"]).column("id").to_pylist()}
        for path in self.files():
            if path in self.before:
                continue
            ids = self._read(path, ["id"]).column("id").to_pylist()
            if len(set(ids)) != len(ids) or seen.intersection(ids):
                self._rewrite(path, lambda rows: list(_deduplicated(rows, seen)))
            else:
                seen.update(ids)
            self._count(path, summary)

    # -- internals ---------------------------------------------------------------

    def _read(self, path: str, columns: list[str] | None = None) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path, columns=columns, filesystem=self._fs)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.uri}: cannot read {path}: {exc}") from None

    def _rewrite(self, path: str, keep: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = self._read(path)
        rows = table.to_pylist()
        kept = keep(rows)
        if kept == rows:
            return
        temporary = path + ".rewrite"
        try:
            pq.write_table(pa.Table.from_pylist(kept, schema=table.schema), temporary, filesystem=self._fs)
            self._fs.move(temporary, path)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.uri}: cannot rewrite {path}: {exc}") from None

    def _count(self, path: str, summary: BulkSummary) -> None:
        import pyarrow.compute as pc

        table = self._read(path, ["status", "error_code", "cached", *_USAGE])
        summary.cached += int(pc.sum(table.column("cached")).as_py() or 0)
        for name in _USAGE:
            setattr(summary.usage, name, getattr(summary.usage, name) + int(pc.sum(table.column(name)).as_py() or 0))
        for entry in pc.value_counts(table.column("status")).to_pylist():
            if entry["values"] == "ok":
                summary.ok += entry["counts"]
            else:
                summary.failed += entry["counts"]
        for code in table.column("error_code").drop_null().to_pylist():
            summary.failed_by_code[code] = summary.failed_by_code.get(code, 0) + 1


def _deduplicated(rows: list[dict[str, Any]], seen: set[str]) -> Iterator[dict[str, Any]]:
    for row in rows:
        row_id = row["id"]
        if row_id in seen:
            nth = 2
            while f"{row_id}#dup-{nth}" in seen:
                nth += 1
            row = {**dict.fromkeys(row), "id": f"{row_id}#dup-{nth}", "status": "error",
                   "task": row.get("task"), "error_code": "duplicate_id", "error_message": f"id {row_id!r} appeared earlier in the input",
                   "warnings": json.dumps([]), "cached": False, **dict.fromkeys(_USAGE, 0)}
        seen.add(row["id"])
        yield row
