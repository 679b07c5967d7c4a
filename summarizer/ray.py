"""Bulk on Ray Data: the same pipeline inside the engine a cluster already runs (the ``ray`` extra).

``SummarizeBatch`` is a callable class for ``Dataset.map_batches``: each actor
holds one Summarizer (connections, prompts and the endpoint's output mode are
reused) and runs a batch's documents concurrently through the same task
pipeline as ``summarizer bulk``. It never raises for a document: a bad row is
an error row. ``Permits`` is a small actor that hands out request permits for
the whole cluster, so the RPM/TPM given are the account's, not each actor's,
and a 429 anywhere slows everyone down. ``run`` drives a JSONL or Parquet
source into a JSONL file (resumable, as ``bulk``) or a Parquet folder.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bulk import BulkSummary
from .client import Summarizer
from .errors import ClusterError, ConfigError, InputError, UsageError
from .limits import LeasedPacer, Schedule
from .schemas import ErrorInfo, Failure, Record, TaskName, writable
from .parquet import ParquetOutput
from .sinks import JsonlSink
from .sources import MAX_LINE_BYTES, BulkItem, item_from_line, item_from_record, oversized_line, source_path

__all__ = ["COLUMNS", "RayOptions", "SummarizeBatch", "permits", "run"]

COLUMNS = ("id", "task", "status", "value", "error_code", "error_message", "warnings", "prompt_tokens", "completion_tokens",
           "requests", "retries", "reasks", "cached", "model", "prompt_version", "record", "origin")
PERMITS_NAME = "summarizer-permits"
_GROUP = 8  # rows an actor hands on at a time, in input order (the same tables on every attempt)
_STREAM_BLOCK_BYTES = 64 * 1024


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs its extra: pip install 'summarizer[ray]'") from None
    return ray


class _Permits:
    """The cluster's one request and token timeline: actors lease blocks of slots from it (``limits.Schedule``)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.schedule = Schedule(rpm, tpm)

    def lease(self, requests: int, tokens: float) -> tuple[float, float, float]:
        return self.schedule.lease(requests, tokens)

    def backoff(self, seconds: float) -> None:
        self.schedule.backoff(seconds)

    def throttled(self) -> int:
        return self.schedule.throttled


def permits(rpm: float | None, tpm: float | None, *, name: str = PERMITS_NAME) -> Any:
    """The cluster's permit actor (made, or found by name): pass it to SummarizeBatch as ``permits``."""
    ray = _ray()
    # One call at a time: a lease returns at once (the caller waits out its slots), and the schedule is
    # not thread-safe. It had max_concurrency=10_000: Ray starts that many threads for the actor and
    # gives them 10 s — on a busy machine they were late, Ray aborted the actor ("Failed to initialize
    # threads in 10000 milliseconds") and every document of the run failed without a request.
    actor = ray.remote(num_cpus=0)(_Permits)
    return actor.options(name=name, get_if_exists=True).remote(rpm, tpm)


class _RemotePacer(LeasedPacer):
    """The Pacer protocol over the permit actor: half a second of slots a call, not a call a request.

    Token corrections stay here (the next lease asks for less); only 429s go back to the
    actor, which halves the pace for everyone.
    """

    def __init__(self, handle: Any, rpm: float | None, tpm: float | None) -> None:
        super().__init__(rpm, tpm)
        self.handle = handle

    async def lease(self, requests: int, tokens: float) -> tuple[float, float, float]:
        first, step, token_wait = await self.handle.lease.remote(requests, tokens)
        return float(first), float(step), float(token_wait)

    def slow_down(self, seconds: float) -> None:
        self.handle.backoff.remote(seconds)


class SummarizeBatch:
    """``ds.map_batches(SummarizeBatch, fn_constructor_kwargs={...}, compute=ActorPoolStrategy(size=N))``.

    Input rows are JSONL lines (``input="lines"``, the ``text`` column of
    ``read_text``) or records (``input="records"``: ``id_field``, ``text_field``
    — or ``html``/``url`` — and ``published_field`` columns, e.g. from Parquet).
    Output rows: ``COLUMNS``; ``record`` is the Result envelope as JSON, the
    line ``summarizer bulk`` would write. Rows whose id is in ``skip`` come back
    with status ``skipped`` and cost nothing.
    """

    def __init__(
        self, *, task: TaskName = "events", settings: dict[str, Any] | None = None, input: str = "lines",
        id_field: str = "id", text_field: str = "text", published_field: str = "published",
        published: str | None = None, concurrency: int = 16, permits: Any = None, rpm: float | None = None,
        tpm: float | None = None, skip: Any = None,
        words: tuple[int, int] | None = None, language: str | None = None, strict: bool = False,
        verify: bool = False, cache: bool = False,
    ) -> None:
        self.summarizer = Summarizer(**(settings or {}))
        self.task, self.input, self.concurrency, self.cache = task, input, concurrency, cache
        self.fields = {"id_field": id_field, "text_field": text_field, "published_field": published_field,
                       "published": dt.date.fromisoformat(published) if published else None}
        self.options = {"words": words, "language": language, "strict": strict, "verify": verify}
        self.pacer = _RemotePacer(permits, rpm, tpm) if permits is not None else None
        # Load prompts and lazy imports now, not while the first permits are ticking.
        list(self.summarizer.bulk([], task=task, cache=False))
        self.skip: set[str] = set(_ray().get(skip)) if skip is not None and not isinstance(skip, (set, list)) \
            else set(skip or ())

    def __call__(self, batch: Any) -> Iterator[Any]:
        """One batch (a pyarrow Table) in, its rows out in small tables as they finish.

        A generator: Ray Data hands each table on when it is yielded, so results stream. The
        tables are the same on every attempt — groups of ``_GROUP`` rows in input order, each
        yielded once all its rows are done — because when an actor dies Ray runs the batch again
        and keeps only the tables past those it had already received: tables in finishing order
        (as they were) lost some rows and sent others twice.
        """
        items: list[BulkItem] = []
        skipped: list[BulkItem] = []
        origins: list[int] = []
        for item, origin in self._items(batch):
            if item.id in self.skip:
                skipped.append(item)
            else:
                items.append(item)
                origins.append(origin)
        if skipped:
            yield _table([_skipped(item.id) for item in skipped])
        places: dict[str, deque[int]] = {}  # id -> its rows' places in ``items``
        for place, item in enumerate(items):
            places.setdefault(item.id, deque()).append(place)
        done: dict[int, dict[str, Any]] = {}
        sent = 0  # rows handed on, in input order
        for record in self.summarizer.bulk(items, task=self.task, concurrency=self.concurrency, cache=self.cache,
                                           pacer=self.pacer, **self.options):  # type: ignore[arg-type]
            place = places[record.id].popleft()  # a record carries its item's id
            done[place] = {**_row(record), "origin": origins[place]}
            while sent < len(items) and all(i in done for i in range(sent, min(len(items), sent + _GROUP))):
                end = min(len(items), sent + _GROUP)
                yield _table([done.pop(i) for i in range(sent, end)])
                sent = end
        if not items and not skipped:
            yield _table([])

    def _items(self, batch: Any) -> Iterator[tuple[BulkItem, int]]:
        """Each row's item, and its origin: the line number, or a digest of the record's fields. A task Ray
        runs again (its actor died) sends rows already sent; the driver knows them by their origin."""
        if self.input == "lines":
            for line, number in zip(batch.column("line").to_pylist(), batch.column("number").to_pylist(), strict=True):
                if line is None:
                    yield oversized_line(number), number
                elif line.strip():
                    yield item_from_line(line, number, **self.fields), number  # type: ignore[arg-type]
            return
        for record in batch.to_pylist():
            yield item_from_record(record, **self.fields), _digest(record)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs: where, with how many actors, how much each keeps in flight."""

    address: str | None = None  # "auto" joins a running cluster; None starts a local one
    actors: int = 2
    concurrency: int = 16  # documents in flight per actor
    batch_size: int | None = None  # rows per actor call; default 8 × concurrency (a hand-off costs ~0.1 s)
    num_cpus: float = 0.25  # the work is waiting on the network: an actor needs little of a CPU
    rpm: float | None = None
    tpm: float | None = None
    progress_bars: bool = True  # Ray Data's own bars and INFO lines, on stderr
    quiet: bool = False  # keep Ray's own lines off stderr: its warnings, and what its C++ core writes to fd 2


def run(
    source: str, out: str, *, task: TaskName, settings: dict[str, Any], ray_options: RayOptions,
    id_field: str = "id", text_field: str = "text", published_field: str = "published",
    published: dt.date | None = None, words: tuple[int, int] | None = None, language: str | None = None,
    strict: bool = False, verify: bool = False, cache: bool = True, retry_failed: bool = False,
    on_record: Callable[[Record, BulkSummary], None] | None = None,
) -> BulkSummary:
    """``source`` (JSONL file, or Parquet file/folder/URI) through Ray Data into ``out``.

    ``out``: a JSONL file (written by the driver, as ``bulk`` writes it) or a
    Parquet folder — ``DIR.parquet``, an existing folder, or a URI such as
    ``s3://bucket/events.parquet`` (written by the actors in parallel).
    """
    _ray()  # the extra is installed, or one line saying which to install
    if out == "-":
        raise UsageError("--engine ray needs --out FILE (JSONL) or --out DIR.parquet")
    checker = Summarizer(**settings)  # check first
    checker.checked(task, checker.options(words=words, language=language, strict=strict, verify=verify))
    parquet_out = out.endswith(".parquet") or "://" in out or Path(out).is_dir()
    sink = ParquetOutput(out, task=task) if parquet_out else JsonlSink(out, retry_failed=retry_failed,
                                                            input_path=source_path(source), task=task)
    try:
        with _abrupt_end_said(), _quiet(ray_options.quiet), _stdout_kept(ray_options.quiet), _cluster_errors():
            return _run(source, sink, task=task, settings=settings, ray_options=ray_options, retry_failed=retry_failed,
                        on_record=on_record, fields={"id_field": id_field, "text_field": text_field,
                                                     "published_field": published_field},
                        options={"published": published.isoformat() if published else None, "words": words,
                                 "language": language, "strict": strict, "verify": verify, "cache": cache})
    finally:
        sink.close()


@contextlib.contextmanager
def _cluster_errors() -> Iterator[None]:
    """A cluster that fails mid-run (an actor died, a node or the object store lost) is one line, not Ray's
    traceback: the records written so far stay, and the same command resumes after them."""
    ray = _ray()
    from ray.data.exceptions import ExecutionTimeoutError, SystemException

    try:
        yield
    except SystemExit as exc:  # nothing of ours exits here: Ray's SIGTERM handler, having stopped its processes
        raise ClusterError(f"the Ray run was stopped (SIGTERM: Ray stopped its local processes, exit {exc.code}); "
                           "the records written so far are kept: run the same command again to go on") from None
    except (ray.exceptions.RayError, SystemException, ExecutionTimeoutError) as exc:
        message = str(getattr(exc, "message", None) or exc).strip()
        first = message.splitlines()[0] if message else ""
        raise ClusterError(f"the Ray run failed ({type(exc).__name__}{': ' + first[:300] if first else ''}); "
                           "the records written so far are kept: run the same command again to go on") from None


_ABRUPT_END = ("summarizer: error: the Ray run's process ended abruptly (Ray's core ends it, exit 1, when its local "
               "Ray or its connection to the cluster is lost; Ray's logs: /tmp/ray/session_latest/logs); the records "
               "written so far are kept: run the same command again to go on")
_WATCH = "import sys\nif sys.stdin.buffer.read() != b'done':\n    sys.stderr.write(sys.argv[1] + '\\n')\n"


@contextlib.contextmanager
def _abrupt_end_said() -> Iterator[None]:
    """One line when Ray's core ends this process: it does so itself (exit 1, not a word even with --verbose) when
    the local Ray dies, and no code of ours runs after it. A small watcher process holds the other end of a pipe;
    if this process is gone before it wrote "done", the watcher says so on the standard error it was given."""
    read, write = os.pipe()  # not inherited by Ray's processes (close-on-exec): only our death closes it
    try:
        watcher: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", _WATCH, _ABRUPT_END], stdin=read, stdout=subprocess.DEVNULL)
    except OSError:  # no watcher, no line: the run itself is not worse off
        watcher = None
    finally:
        os.close(read)
    try:
        yield
    finally:
        if watcher is not None:
            os.write(write, b"done")
        os.close(write)
        if watcher is not None:
            watcher.wait()


@contextlib.contextmanager
def _stdout_kept(quiet: bool) -> Iterator[None]:
    """Standard output stays ours (the ``--json`` summary) while Ray runs: Ray's driver prints the cluster's
    notices ("(raylet) WARNING: 8 PYTHON worker processes have been started …") to ``sys.stdout`` whatever
    ``log_to_driver`` says, which corrupted the summary a program reads. They go to standard error with
    --verbose, nowhere otherwise; a Ray this run started is shut down before standard output is ours again."""
    with open(os.devnull, "w", encoding="utf-8") if quiet else contextlib.nullcontext(sys.stderr) as notices, \
            contextlib.redirect_stdout(notices):
        started = not _ray().is_initialized()
        try:
            yield
        finally:
            if started and _ray().is_initialized():
                _ray().shutdown()


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Ray's own output off the terminal while it runs: its Python warnings and log lines, and what its C++
    core writes straight to file descriptor 2 (actor notices, log-level lines) — which no logging setting
    reaches. ``sys.stderr`` stays where it was, so our progress and errors still show."""
    if not enabled:
        yield
        return
    previous = sys.stderr
    swap = previous is not None and _fileno(previous) == 2
    if previous is not None:
        previous.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace") \
        if swap else None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    if terminal is not None:
        sys.stderr = terminal
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if terminal is not None:
            terminal.flush()
            sys.stderr = previous
            terminal.close()
        os.dup2(saved, 2)
        os.close(saved)


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def _run(source: str, sink: JsonlSink | ParquetOutput, *, task: TaskName, settings: dict[str, Any],
         ray_options: RayOptions, retry_failed: bool, on_record: Callable[[Record, BulkSummary], None] | None,
         fields: dict[str, str], options: dict[str, Any]) -> BulkSummary:
    done = dict(sink.done) if isinstance(sink, JsonlSink) else sink.done()  # refusals come before Ray starts
    ray = _ray()
    if not ray.is_initialized():
        _init(ray, ray_options)
    if ray_options.quiet:
        logging.getLogger("ray").setLevel(logging.ERROR)
    if not ray_options.progress_bars:  # and none of Ray Data's INFO lines and planning warnings either
        ray.data.DataContext.get_current().enable_progress_bars = False  # (importing ray.data sets its logging up)
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.data\..*")
    summary = BulkSummary(concurrency=ray_options.actors * ray_options.concurrency)
    skip = {doc_id for doc_id, status in done.items() if not (retry_failed and status == "error")}
    summary.skipped = len(skip)
    summary.skipped_failed = sum(1 for doc_id in skip if done[doc_id] == "error")
    batch_size = ray_options.batch_size or 8 * ray_options.concurrency
    context = ray.data.DataContext.get_current()
    block_bytes = context.target_max_block_size
    if isinstance(sink, JsonlSink):
        # Small output blocks: Ray Data buffers what an actor yields until a block is full (128 MiB
        # by default), so a batch's records would arrive all at once. A dataset keeps the context
        # it was made in: set before it is made, put back after.
        context.target_max_block_size = _STREAM_BLOCK_BYTES
    try:
        dataset, kind = _read(source, ray, batch_size)
    finally:
        context.target_max_block_size = block_bytes
    pacer = permits(ray_options.rpm, ray_options.tpm) if ray_options.rpm or ray_options.tpm else None
    mapped = dataset.map_batches(
        SummarizeBatch, batch_size=batch_size, batch_format="pyarrow", num_cpus=ray_options.num_cpus,
        compute=ray.data.ActorPoolStrategy(size=ray_options.actors),
        fn_constructor_kwargs={"task": task, "settings": settings, "input": kind, **fields, **options,
                               "concurrency": ray_options.concurrency, "permits": pacer, "rpm": ray_options.rpm,
                               "tpm": ray_options.tpm, "skip": sorted(skip)},
    )
    try:
        if isinstance(sink, JsonlSink):
            _to_jsonl(mapped, sink, summary, on_record)
        else:
            mapped.filter(expr="status != 'skipped'").drop_columns(["record", "origin"]).write_parquet(sink.uri)
            sink.settle(summary, retry_failed=retry_failed)
    finally:
        if pacer is not None:
            with contextlib.suppress(ray.exceptions.RayError):  # a lost permit actor must not hide why the run ended
                summary.throttled = ray.get(pacer.throttled.remote(), timeout=30)
    summary.wall_s = time.monotonic() - summary.started
    return summary


def _read(source: str, ray: Any, block_rows: int) -> tuple[Any, str]:
    path = Path(source)
    if "://" in source or source.endswith(".parquet") or path.is_dir():
        # A row group can hold a million rows: split the blocks so that every actor gets work
        # and results stream (Ray Data hands a task's results on when it ends).
        try:
            dataset = ray.data.read_parquet(source)  # reads the files' footers now: a bad file fails here
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"{source}: not readable as Parquet: {str(exc).splitlines()[0]}") from None
        return dataset.repartition(target_num_rows_per_block=block_rows), "records"
    if not path.is_file():
        raise UsageError(f"{source}: no such file or folder (--engine ray reads a JSONL file or Parquet)")
    with path.open("rb") as handle:
        if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise UsageError(f"{source}: UTF-16; --engine ray reads UTF-8 JSONL (iconv -f utf-16 -t utf-8)")
    return ray.data.read_datasource(_jsonl_ranges(path, block_rows)), "lines"


def _jsonl_ranges(path: Path, block_rows: int, block_bytes: int = 1 << 20) -> Any:
    """A Ray datasource: the file's lines as raw bytes with their line numbers, read in parallel in ranges.

    Ray's own text reader decodes whole blocks and fails the job on one bad byte; here a bad
    line stays a bad line (an error row). Lines are numbered as ``summarizer bulk`` numbers
    them (one pass over the file counts the newlines before each range), so ids made for
    lines without one, and messages, are the same whichever engine ran. A block is one actor
    call's worth (``block_rows``, at most ``block_bytes``): Ray Data hands a task's results
    on when the task ends, so small blocks make results stream.
    """
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    size = path.stat().st_size

    def block(lines: list[bytes | None], numbers: list[int]) -> Any:
        return pa.table({"line": pa.array(lines, pa.binary()), "number": pa.array(numbers, pa.int64())})

    def read(start: int, end: int, number: int) -> Iterator[Any]:
        lines: list[bytes | None] = []
        numbers: list[int] = []
        held = 0
        with path.open("rb") as handle:
            handle.seek(start)
            if start == 0 and handle.read(3) != codecs.BOM_UTF8:
                handle.seek(0)
            while handle.tell() < end and (line := handle.readline(MAX_LINE_BYTES + 1)):
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                        pass
                    lines.append(None)  # too long to hold: an error row
                else:
                    lines.append(line.rstrip(b"\r\n"))
                    held += len(line)
                numbers.append(number)
                number += 1
                if held >= block_bytes or len(lines) >= block_rows:
                    yield block(lines, numbers)
                    lines, numbers, held = [], [], 0
        if lines or start == 0:
            yield block(lines, numbers)

    class JsonlRanges(Datasource):
        def estimate_inmemory_data_size(self) -> int:
            return size

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            step = max(block_bytes, size // max(1, parallelism) + 1)
            return [ReadTask(functools.partial(read, start, end, number),
                             BlockMetadata(num_rows=None, size_bytes=end - start, exec_stats=None,
                                           input_files=(str(path),)))
                    for start, end, number in _line_ranges(path, step)]

    source: Any = JsonlRanges
    return source()


def _line_ranges(path: Path, step: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, first line number)`` of ranges of about ``step`` bytes, each starting at a line."""
    size = path.stat().st_size
    start, number = 0, 1
    with path.open("rb") as handle:
        while start < size or (start == 0 and size == 0):
            handle.seek(min(size, start + step))
            while (piece := handle.readline(1 << 20)) and not piece.endswith(b"\n"):
                pass  # to the end of the line the cut fell in, however long
            end = handle.tell() if start + step < size else size
            handle.seek(start)
            lines = 0
            while handle.tell() < end:
                lines += handle.read(min(1 << 23, end - handle.tell())).count(b"\n")
            yield start, end, number
            start, number = end, number + lines
            if size == 0:
                return


def _to_jsonl(mapped: Any, sink: JsonlSink, summary: BulkSummary,
              on_record: Callable[[Record, BulkSummary], None] | None) -> None:
    """Rows to the JSONL sink on the driver: each id once (a repeated id becomes a duplicate_id record).

    A row from an input row already written — a task Ray ran again after its actor died sends its rows
    again — is dropped: the same origin (line number or record digest), not a repeat in the input.
    """
    repeats: dict[str, int] = {}
    written: dict[str, int] = {}  # id -> the origin of the row written under it, this run
    dropped: set[int] = set()  # origins written as duplicate_id records
    for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):  # each block as it comes
        for record_json, origin in zip(batch.column("record").to_pylist(), batch.column("origin").to_pylist(),
                                       strict=True):
            if record_json is None:  # a skipped row: its id is in OUT already
                continue
            record = _record(record_json)
            if origin is not None and (written.get(record.id) == origin or origin in dropped):
                continue  # sent again by a retried task: written already
            if record.id in sink.done:  # an id this run has written already: the input repeats it
                if origin is not None:
                    dropped.add(origin)
                repeats[record.id] = repeats.get(record.id, 1) + 1
                record = Failure(id=f"{record.id}#dup-{repeats[record.id]}", task=record.task, error=ErrorInfo(
                    code="duplicate_id", message=f"id {record.id!r} appeared earlier in the input"))
            elif origin is not None:
                written[record.id] = origin
            record = sink.write(record)
            summary.add(record)
            if on_record is not None:
                on_record(record, summary)


def _record(text: str) -> Record:
    """An actor's record, back on the driver: any task's (its value is written out as it came)."""
    from .schemas import Result

    data = json.loads(text)
    if data["status"] == "error":
        return Failure.model_validate(data)
    return Result[Any].model_validate(data)


def _init(ray: Any, ray_options: RayOptions) -> None:
    """Start a local Ray or join ``--address``; a bad or unreachable address is one line, exit 3."""
    _check_reachable(ray_options.address)
    if ray_options.address is None:
        _check_recorded()
    try:
        ray.init(address=ray_options.address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR if ray_options.quiet or not ray_options.progress_bars else logging.INFO)
    except (ValueError, ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
        where = f"the Ray cluster at {ray_options.address!r}" if ray_options.address else "a local Ray"
        message = str(getattr(exc, "message", None) or exc)
        hint = ("; give this driver the cluster's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token from the "
                "head node)") if type(exc).__name__ == "AuthenticationError" else ""
        raise ConfigError(f"cannot start or join {where}: {message.splitlines()[0] if message else type(exc).__name__}"
                          f"{hint}") from None


def _check_reachable(address: str | None) -> None:
    # Ray retries an unreachable GCS for minutes, printing as it goes: try the port once first.
    match = re.fullmatch(r"\[?([^\]/]+?)\]?:(\d{1,5})", address or "")
    if match is None:
        return  # "auto", "ray://…" or a malformed address: ray.init decides
    try:
        socket.create_connection((match[1], int(match[2])), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot start or join the Ray cluster at {address!r}: {exc}") from None


def _recorded_cluster() -> tuple[str, str] | None:
    """The cluster ``ray.init()`` would join with no address: RAY_ADDRESS, or the one ``ray start`` recorded here."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"  # where Ray keeps the record
    record = Path(base) / "ray" / "ray_current_cluster"
    try:
        address = record.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return (address, str(record)) if address else None


def _check_recorded() -> None:
    """Without --address Ray joins the cluster the last ``ray start`` here recorded, and when that one is
    gone it retries for many minutes: find out in seconds, and say what to do instead."""
    found = _recorded_cluster()
    if found is None:
        return
    address, where = found
    match = re.fullmatch(r"\[?([^\]/]+?)\]?:(\d{1,5})", address)
    if match is None:
        return
    try:
        socket.create_connection((match[1], int(match[2])), timeout=3).close()
    except (OSError, ValueError):
        raise ConfigError(
            f"Ray would join the cluster at {address} (from {where}), and nothing answers there: run "
            f"`ray stop` to forget it and use a local Ray, `ray start --head` to start it again, or name a "
            "running cluster with --address") from None


def _table(rows: list[dict[str, Any]]) -> Any:
    """Rows as a table of one fixed schema: a batch whose rows are all ok still has string error columns."""
    import pyarrow as pa

    counts = {"prompt_tokens", "completion_tokens", "requests", "retries", "reasks", "origin"}
    schema = pa.schema([(name, pa.int64() if name in counts else pa.bool_() if name == "cached" else pa.string())
                        for name in COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


def _row(record: Record) -> dict[str, Any]:
    record, line = writable(record)  # Arrow strings are UTF-8: a lone surrogate would fail the whole batch
    usage = record.usage
    return {
        "id": record.id, "task": record.task, "status": record.status,
        "value": record.value.model_dump_json() if record.value is not None else None,
        "error_code": record.error.code if record.error else None,
        "error_message": record.error.message if record.error else None,
        "warnings": json.dumps(record.warnings), "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens, "requests": usage.requests, "retries": usage.retries,
        "reasks": usage.reasks, "cached": record.cached, "model": record.model,
        "prompt_version": record.prompt_version,
        "record": line,
    }


def _digest(record: dict[str, Any]) -> int:
    """A record's fields as a 62-bit number: the same row read again gives the same one."""
    text = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()) >> 2


def _skipped(doc_id: str) -> dict[str, Any]:
    return {**dict.fromkeys(COLUMNS), "id": doc_id, "status": "skipped", "warnings": "[]", "prompt_tokens": 0,
            "completion_tokens": 0, "requests": 0, "retries": 0, "reasks": 0, "cached": False}
