"""Parsing documents off the event loop: a few worker processes, a time budget per document.

HTML extraction (trafilatura over lxml), PDF text (pypdf) and the JSON of a job
body are CPU work that can take seconds — minutes for markup built to be slow —
and would stall every tenant if the event loop did it. Here it runs in worker
processes, never in the server's process.

Why processes and not threads: lxml and pypdf spend that time inside C calls
that cannot be interrupted. A thread stuck in one can never be stopped — it keeps
a core and the GIL's attention for as long as the C call lasts, so a thread pool
cannot enforce a budget. A worker process over the budget is killed and replaced
(the caller gets "document too complex"); the server process only pickles bytes
in and a Document out. Workers come from a forkserver (a clean process with the
parsers imported once), so replacing one costs a fork, not an interpreter start.

Cheap pre-checks run in the worker before any parser: markup that no news page
needs (tens of thousands of tags, thousands of tags left open, a tag with
thousands of attributes) is refused at once, without spending the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from ..documents import Document, fetched_document
from ..errors import ConfigError, InputError, SummarizerError, UsageError
from ..fetch import Fetched
from ..schemas import ErrorInfo
from ..sources import BulkItem, item_from_line

__all__ = ["TOO_COMPLEX", "ParsePool", "check_markup"]

log = logging.getLogger("summarizer")
T = TypeVar("T")

TOO_COMPLEX = "document too complex"
MAX_TAGS = 50_000  # a long news page has a few thousand elements
MAX_OPEN_TAGS = 5_000  # "<x" that never closes before the next "<": lxml is quadratic in them
MAX_ATTRIBUTES = 1_000  # on one tag
_TAG = re.compile(r"<[A-Za-z]")
_UNCLOSED = re.compile(r"<[A-Za-z!/?][^<>]*(?=<|\Z)")
_LONG_TAG = re.compile(r"<[A-Za-z][^<>]{4000,}")
_ATTRIBUTE = re.compile(r"""\s[^\s"'<>/=]+\s*=""")
_ERRORS: dict[str, type[SummarizerError]] = {"input_error": InputError, "usage_error": UsageError,
                                              "config_error": ConfigError}
UNDECODABLE = b"\x00summarizer: undecodable line\x00"  # what uploads.py writes for a line it could not decode


def check_markup(markup: str, name: str) -> None:
    """InputError("document too complex") for markup no news page needs; linear time, no parser."""
    count = markup.count("<")
    if count > MAX_OPEN_TAGS:
        tags = sum(1 for _ in _TAG.finditer(markup))
        if tags > MAX_TAGS:
            raise InputError(f"{name}: {TOO_COMPLEX} (more than {MAX_TAGS:,} tags)")
        unclosed = sum(1 for _ in _UNCLOSED.finditer(markup))
        if unclosed > MAX_OPEN_TAGS:
            raise InputError(f"{name}: {TOO_COMPLEX} (more than {MAX_OPEN_TAGS:,} tags left open)")
    for tag in _LONG_TAG.finditer(markup):
        if len(_ATTRIBUTE.findall(tag.group())) > MAX_ATTRIBUTES:
            raise InputError(f"{name}: {TOO_COMPLEX} (a tag with more than {MAX_ATTRIBUTES:,} attributes)")


# -- what the workers run (module-level: the forkserver imports this module) -----------------------------


def parse_markup(markup: str, *, id: str | None, published: dt.date | None, source: str) -> Document:
    check_markup(markup, source)
    return Document.from_text(markup, id=id, source=source, html=True, published=published)


def parse_text(text: str, *, id: str | None, published: dt.date | None, source: str) -> Document:
    return Document.from_text(text, id=id, source=source, html=False, published=published)


def parse_fetched(fetched: Fetched, *, id: str | None, published: dt.date | None, source: str) -> Document:
    if fetched.kind == "html":
        check_markup(fetched.content.decode("latin-1"), source)
    return fetched_document(fetched, id=id, published=published, source=source)


def job_item(line: bytes, number: int, published: dt.date | None) -> BulkItem:
    """One line of a job's input as an item, as ``summarizer bulk`` reads it — or the reason it is not one.

    Beyond what bulk checks: a field that is not valid Unicode (a lone surrogate, from a
    ``\\ud800`` escape) and markup no news page needs are error records for that line.
    """
    if line.rstrip(b"\r\n") == UNDECODABLE:
        return _failed(f"#line-{number}", "invalid_record", f"line {number}: not valid UTF-16 text")
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        record = None  # item_from_line says what is wrong with it
    if isinstance(record, dict):
        bad = [key for key, value in record.items() if not _encodable(key) or not _encodable(value)]
        if bad:
            field = bad[0] if _encodable(bad[0]) else "a field name"
            return _failed(line_id(line, number), "invalid_record",
                           f"line {number}: {field} is not valid Unicode (a lone surrogate)")
        for field in ("text", "html"):
            if isinstance(record.get(field), str):
                try:
                    check_markup(record[field], f"line {number}")
                except InputError as exc:
                    return _failed(line_id(line, number), exc.code, str(exc))
    return item_from_line(line, number, published=published)


def line_id(line: bytes, number: int) -> str:
    """The id ``job_item`` gives this line, without reading its document (for a line that ran out of time)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return f"#line-{number}"
    if not isinstance(record, dict):
        return f"#line-{number}"
    raw_id = record.get("id")
    stub = {"id": raw_id if _encodable(raw_id) else None, "text": "x"}
    return item_from_line(json.dumps(stub), number).id


def line_ids(path: str) -> list[str]:
    """The id of every line of a job's input (in a worker: reading them is parsing JSON), for duplicate checks."""
    from ..sources import MAX_LINE_BYTES

    ids = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            ids.append(f"#line-{number}" if len(line) > MAX_LINE_BYTES or line.rstrip(b"\r\n") == UNDECODABLE
                       else line_id(line, number))
    return ids


def json_job(upload: str, dest: str) -> tuple[dict[str, Any], int]:
    """A JSON job body (a file) as the job's NDJSON input; return its other fields and how many documents."""
    from .models import JobRequest, one_line  # pydantic only: no FastAPI in the workers

    data = Path(upload).read_bytes()
    try:
        raw = json.loads(data)
    except RecursionError:
        raise InputError("body: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise InputError(f"body: not valid JSON ({exc})") from None
    del data
    if isinstance(raw, dict) and isinstance(raw.get("documents"), list):
        documents: list[Any] = raw.pop("documents")
        raw["documents"] = []
    else:
        documents = []
    from pydantic import ValidationError

    try:
        spec = JobRequest.model_validate(raw)
    except ValidationError as exc:
        raise InputError(one_line(exc)) from None
    with open(dest, "wb") as out:
        for document in documents:
            out.write(_ndjson_line({"text": document} if isinstance(document, str) else document))
    fields = spec.model_dump(mode="json", exclude={"documents"})
    return fields, len(documents)


def _ndjson_line(document: Any) -> bytes:
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: escaped, the line reader reports it
        return json.dumps(document).encode("ascii") + b"\n"


def _encodable(value: Any) -> bool:
    """No lone surrogate anywhere in ``value`` (a string, or strings nested in lists and dicts)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    return True


def _failed(doc_id: str, code: str, message: str) -> BulkItem:
    return BulkItem(doc_id, error=ErrorInfo(code=code, message=message))


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used; None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _serve(conn: Connection) -> None:
    """A worker: run what the pool sends, one call at a time, until the pool goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the server's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.nice(10)  # the event loop comes first when cores are short
    while True:
        try:
            fn, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
        except SummarizerError as exc:
            reply = ("error", exc.code, str(exc))
        except Exception as exc:  # noqa: BLE001 — a parser's bug costs the document, not the worker
            reply = ("bug", type(exc).__name__)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 — a value that cannot be pickled
            conn.send(("bug", type(exc).__name__))


# -- the pool (in the server) --------------------------------------------------------------------------------


class _Worker:
    def __init__(self, context: Any) -> None:
        parent, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True, name="summarizer-parse")
        self.process.start()
        child.close()
        self.conn: Connection = parent

    def roundtrip(self, message: tuple[Any, ...]) -> Any:
        self.conn.send(message)
        return self.conn.recv()

    def kill(self) -> None:
        """Kill the process (a thread blocked reading its answer then sees EOF); the pipe closes with the object."""
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(5)


class ParsePool:
    """``workers`` parser processes; ``call`` runs one function in one of them within ``budget`` seconds."""

    def __init__(self, workers: int, budget: float) -> None:
        self.size, self.budget = max(1, workers), budget
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(
            ["summarizer.serve.parsing", "summarizer.serve.models", "trafilatura", "lxml.html", "pypdf"])
        self._threads = ThreadPoolExecutor(self.size + 2, thread_name_prefix="summarizer-parse")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()  # every live worker, idle or not, so that close() can kill it
        self._background: set[asyncio.Task[None]] = set()  # replacements under way
        self._ready: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping = asyncio.Event()  # the server is stopping: calls still waiting for a worker give up

    def start(self) -> None:
        """Start the workers in the background (the forkserver imports the parsers once, ~1 s)."""
        self._ready = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        await asyncio.gather(*(self._add() for _ in range(self.size)))

    async def call(self, name: str, fn: Callable[..., T], *args: Any, budget: float | None = None,
                   in_flight: bool = False, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker; InputError "document too complex" past the budget.

        Once the server is stopping, a call still waiting for a worker gets ConfigError — unless
        it is ``in_flight``: part of a document a job has started, which is finished, not dropped.
        """
        if self._ready is None:
            self.start()
        assert self._ready is not None
        await asyncio.shield(self._ready)
        budget = budget or self.budget
        worker = await (self._idle.get() if in_flight else self._worker())
        loop = asyncio.get_running_loop()
        healthy = False
        try:
            reply = await self._within(worker, budget, loop.run_in_executor(
                self._threads, worker.roundtrip, (fn, args, kwargs)))
            healthy = True
        except TimeoutError:
            raise InputError(f"{name}: {TOO_COMPLEX} (more than {budget:g} s of parsing)") from None
        except (EOFError, OSError):
            raise InputError(f"{name}: the document could not be parsed (the parser stopped)") from None
        finally:
            if healthy:
                self._idle.put_nowait(worker)
            else:  # over the budget, dead, or its caller gone mid-call: a fresh one takes its place
                task = loop.create_task(self._replace(worker))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        if reply[0] == "ok":
            return reply[1]  # type: ignore[no-any-return]
        if reply[0] == "error":
            raise _ERRORS.get(reply[1], InputError)(reply[2])
        raise InputError(f"{name}: the document could not be parsed ({reply[1]})")

    def stop_taking(self) -> None:
        """Calls waiting for a worker fail (503 for a request); calls under way finish."""
        self._stopping.set()

    async def _worker(self) -> _Worker:
        """An idle worker, or ConfigError once the server is stopping."""
        if self._stopping.is_set():
            raise ConfigError("the server is stopping; try again shortly")
        getting = asyncio.ensure_future(self._idle.get())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((getting, stopping), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the caller went away: a worker it got meanwhile goes back
            self._give_back(getting)
            raise
        finally:
            stopping.cancel()
        if getting.done() and not getting.cancelled():
            return getting.result()
        self._give_back(getting)
        raise ConfigError("the server is stopping; try again shortly")

    def _give_back(self, getting: asyncio.Future[_Worker]) -> None:
        if not getting.done():
            getting.cancel()
        elif not getting.cancelled() and getting.exception() is None:
            self._idle.put_nowait(getting.result())

    @staticmethod
    async def _within(worker: _Worker, budget: float, answer: asyncio.Future[Any]) -> Any:
        """The worker's answer, or TimeoutError once it has spent ``budget`` seconds of CPU on it.

        CPU seconds, not wall-clock ones: on a busy machine a worker waits for a core (it runs
        at a lower priority than the event loop), and that wait is not the document's doing.
        Past six times the budget of wall clock it is over all the same.
        """
        loop = asyncio.get_running_loop()
        started, cpu_start = loop.time(), _cpu_seconds(worker.process.pid)
        try:
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(answer), min(budget, 0.25))
                except TimeoutError:
                    cpu_now = _cpu_seconds(worker.process.pid)
                    if cpu_now is None or cpu_start is None:  # no /proc: wall clock it is
                        if loop.time() - started >= budget:
                            raise
                    elif cpu_now - cpu_start >= budget or loop.time() - started >= 6 * budget:
                        raise
        finally:
            if not answer.done():
                answer.cancel()  # the thread's late result (or EOF, once the worker is killed) is dropped

    async def _replace(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, worker.kill)
        self._all.discard(worker)
        await self._add()

    async def _add(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                worker = await loop.run_in_executor(self._threads, _Worker, self._context)
            except (OSError, RuntimeError) as exc:  # out of processes or memory: try again shortly
                if self._closed:
                    return
                log.error("cannot start a parser process (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            self._all.add(worker)
            if self._closed:  # close() ran while it started
                worker.kill()
                return
            self._idle.put_nowait(worker)
            return

    async def close(self) -> None:
        """Kill every worker (idle, busy or being replaced); the pool takes no more calls."""
        self._closed = True
        pending = [t for t in (self._ready, *self._background) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        workers, self._all = list(self._all), set()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.kill) for w in workers))
        self._threads.shutdown(wait=False, cancel_futures=True)
