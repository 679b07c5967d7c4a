"""The ``summarizer`` command: parse flags, call the library, print, map errors to exit codes.

Exit codes: 0 ok · 1 some bulk items failed (or the eval gate) · 2 bad input,
usage or unwritable output · 3 configuration · 4 provider failing · 5 model
output invalid after re-asks. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from ._version import __version__
from .client import Summarizer
from .documents import read_document
from .errors import OutputError, SummarizerError, UsageError
from .prompts import PromptLibrary
from .schemas import Brief, Failure, Record, event_report_schema

app = typer.Typer(
    name="summarizer",
    help="Grounded one-paragraph briefs and structured event reports from documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # errors are one line; a bug still shows a plain traceback
    rich_markup_mode=None,
)
prompts_app = typer.Typer(help="List and show the prompt templates.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")

F = TypeVar("F", bound=Callable[..., Any])
_PANEL = "Endpoint"
_WORDS = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", re.ASCII)


class BackendChoice(str, Enum):
    auto = "auto"
    openai = "openai"
    local = "local"


class ModeChoice(str, Enum):
    auto = "auto"
    json_schema = "json_schema"
    json_object_schema = "json_object_schema"
    json_object = "json_object"
    text = "text"


class TaskChoice(str, Enum):
    events = "events"
    brief = "brief"


class EngineChoice(str, Enum):
    local = "local"
    ray = "ray"


class ViaChoice(str, Enum):
    direct = "direct"
    batch = "batch"


class FinishChoice(str, Enum):
    batch = "batch"
    direct = "direct"


# -- the endpoint options, declared once ----------------------------------------------------

_ENDPOINT: dict[str, Any] = {
    "backend": Annotated[Optional[BackendChoice], typer.Option(
        rich_help_panel=_PANEL, show_default=False,
        help="openai (any OpenAI-compatible endpoint) or local (embedded model). Default auto: an endpoint "
             "if one is configured, else the local model if installed. Env: SUMMARIZER_BACKEND.")],
    "model": Annotated[Optional[str], typer.Option("--model", "-m", rich_help_panel=_PANEL, metavar="NAME",
                                                   help="Model name. Env: SUMMARIZER_MODEL.")],
    "base_url": Annotated[Optional[str], typer.Option(
        rich_help_panel=_PANEL, metavar="URL",
        help="OpenAI-compatible base URL. Env: SUMMARIZER_BASE_URL, OPENAI_BASE_URL.")],
    "api_key": Annotated[Optional[str], typer.Option(
        rich_help_panel=_PANEL, show_default=False, metavar="KEY",
        help="API key. Env: SUMMARIZER_API_KEY, OPENAI_API_KEY (prefer them: flags show up in `ps`).")],
    "output_mode": Annotated[Optional[ModeChoice], typer.Option(
        rich_help_panel=_PANEL, show_default=False,
        help="Pin the structured-output mode; default auto steps down from json_schema as the server "
             "requires. Env: SUMMARIZER_OUTPUT_MODE.")],
    "server_grammar": Annotated[bool, typer.Option(
        "--server-grammar", rich_help_panel=_PANEL,
        help="Send GBNF grammars with plain-text requests (llama.cpp servers). Env: SUMMARIZER_SERVER_GRAMMAR.")],
    "timeout": Annotated[Optional[float], typer.Option(
        rich_help_panel=_PANEL, min=0.001, metavar="SECONDS", help="Seconds per request [default: 60].")],
    "max_attempts": Annotated[Optional[int], typer.Option(
        rich_help_panel=_PANEL, min=1, max=20, metavar="N", help="Transport attempts per request [default: 5].")],
    "max_reasks": Annotated[Optional[int], typer.Option(
        min=0, max=10, metavar="N", help="Re-asks after invalid output; 0 for none [default: 2].")],
    "context_tokens": Annotated[Optional[int], typer.Option(
        min=1024, metavar="TOKENS", help="Context window; longer documents are map-reduced [default: 8192].")],
    "prompts_dir": Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Directory whose <name>.toml override the built-in prompts.")],
}
_ENDPOINT_DEFAULTS = {"server_grammar": False}


def endpoint_options(command: F) -> F:
    """Give ``command`` the endpoint options; it receives them as one dict, ``endpoint``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "endpoint"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                               default=_ENDPOINT_DEFAULTS.get(name))
             for name, annotation in _ENDPOINT.items()]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        endpoint = {name: kwargs.pop(name) for name in _ENDPOINT}
        return command(endpoint=endpoint, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **_ENDPOINT}
    return wrapper  # type: ignore[return-value]


def _summarizer(endpoint: dict[str, Any], **extra: Any) -> Summarizer:
    """A Summarizer from the endpoint options a command was given (unset ones left to env/config)."""
    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()}
    settings["server_grammar"] = settings["server_grammar"] or None  # unset: env/config decide
    s = Summarizer(**settings, **extra)
    if s.notice:  # the local model says what it is, once
        _err(s.notice)
    return s


# -- output and errors ---------------------------------------------------------------------


def _err(message: str) -> None:
    typer.echo(f"summarizer: {message}", err=True)


def _out(text: str, *, end: str = "\n") -> None:
    """Write to stdout; a closed or full stdout is an error (exit 2), never silence."""
    stream = sys.stdout
    if stream is None:
        raise OutputError("cannot write to standard output: it is closed")
    try:
        stream.write(text + end)
        stream.flush()
    except (OSError, ValueError) as exc:
        _silence_stdout()
        raise OutputError(f"cannot write to standard output: {getattr(exc, 'strerror', None) or exc}") from None


def _silence_stdout() -> None:
    # What is still buffered would fail again at exit ("Exception ignored …"): point fd 1 at /dev/null.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


@contextmanager
def _exit_codes() -> Iterator[None]:
    """One line on stderr and the documented exit code for every SummarizerError."""
    try:
        yield
    except SummarizerError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _err("interrupted")
        raise typer.Exit(130) from None


class _OneLine(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _err(record.getMessage())


def _log_retries(enabled: bool) -> None:
    """Say "retrying…" on stderr as it happens (single documents; bulk counts them instead)."""
    logger = logging.getLogger("summarizer")
    logger.handlers = [_OneLine()] if enabled else []
    logger.setLevel(logging.WARNING if enabled else logging.ERROR)
    logger.propagate = False


def _parse_words(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    match = _WORDS.fullmatch(value)
    if not match or not 0 < int(match.group(1)) <= int(match.group(2)) <= 2000:
        raise typer.BadParameter(f"{value!r}: expected MIN-MAX with 0 < MIN <= MAX <= 2000, e.g. 60-90",
                                 param_hint="'--words'")
    return int(match.group(1)), int(match.group(2))


def _parse_date(value: Optional[str]) -> Optional[dt.date]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected a date like 2024-09-27", param_hint="'--published'") from None


def _print_record(record: Record, as_json: bool, render: Callable[[Any], str]) -> None:
    if as_json:
        _out(record.model_dump_json(indent=2))
        return
    for warning in record.warnings:
        _err(f"warning: {warning}")
    _out(render(record.value))


@contextmanager
def _json_on_failure(doc_id: str, task: str, as_json: bool) -> Iterator[None]:
    """With --json, a failure still prints its envelope (status "error"), as bulk writes it."""
    try:
        yield
    except SummarizerError as exc:
        if as_json:
            from .bulk import failure

            _out(failure(doc_id, task, exc).model_dump_json(indent=2))  # type: ignore[arg-type]
        raise


# -- commands --------------------------------------------------------------------------------

DocumentArg = Annotated[str, typer.Argument(
    help="A text, Markdown, HTML or PDF file, an http(s) URL, or - for standard input.",
    show_default=False, metavar="DOCUMENT")]
PublishedOpt = Annotated[Optional[str], typer.Option(
    metavar="YYYY-MM-DD", help="Publication date, to resolve \"on Friday\" in event dates [default: the page's own, "
                               "if it states one].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the Result envelope (value, usage, warnings) as JSON.")]
LanguageOpt = Annotated[Optional[str], typer.Option(
    metavar="LANG", help="Output language (ISO 639-1 code or name); default: the document's.")]
WordsOpt = Annotated[Optional[str], typer.Option(help="Word range MIN-MAX [default: 40-120].", metavar="MIN-MAX")]
StrictOpt = Annotated[bool, typer.Option(
    help="Names and numbers absent from the source are errors (re-asked), not warnings.")]


@app.command(short_help="Write a one-paragraph brief of a document.")
@endpoint_options
def brief(
    document: DocumentArg, words: WordsOpt = None, language: LanguageOpt = None, strict: StrictOpt = False,
    published: PublishedOpt = None, as_json: JsonOpt = False,
    stream: Annotated[Optional[bool], typer.Option(
        "--stream/--no-stream", show_default=False,
        help="Show the brief as the model writes it [default: on when stdout is a terminal, off with --json].")] = None,
    *, endpoint: dict[str, Any],
) -> None:
    """Write a one-paragraph brief of DOCUMENT."""
    word_range = _parse_words(words)
    date = _parse_date(published)
    live = stream if stream is not None else (not as_json and sys.stdout is not None and sys.stdout.isatty())
    _log_retries(True)
    with _exit_codes():
        doc = read_document(document, published=date)  # bad input is reported before any backend is set up
        with _summarizer(endpoint) as s, _json_on_failure(doc.id, "brief", as_json):
            printer = _LivePrinter() if live and not as_json else None
            result = s.brief(doc, words=word_range, language=language, strict=strict,
                             on_event=printer.event if printer else None)
        if printer is not None:
            printer.finish(result)
        else:
            _print_record(result, as_json, lambda value: value.text)


class _LivePrinter:
    """Deltas to stdout as they arrive; a re-ask starts over on a fresh line."""

    def __init__(self) -> None:
        self.column = 0

    def event(self, event: Any) -> None:
        from .tasks import Reask

        if isinstance(event, Reask):
            _out("")
            _err(f"that broke a rule ({'; '.join(event.errors)}); asking again")
            self.column = 0
            return
        _out(event.text, end="")
        self.column += len(event.text)

    def finish(self, result: Any) -> None:
        _out("")
        for warning in result.warnings:
            _err(f"warning: {warning}")


@app.command(short_help="Extract an event report (JSON) from a document.")
@endpoint_options
def events(
    document: DocumentArg, language: LanguageOpt = None, published: PublishedOpt = None, as_json: JsonOpt = False,
    *, endpoint: dict[str, Any],
) -> None:
    """Extract an event report (JSON) from DOCUMENT, every event backed by verbatim quotes."""
    date = _parse_date(published)
    _log_retries(True)
    with _exit_codes():
        doc = read_document(document, published=date)
        with _summarizer(endpoint) as s, _json_on_failure(doc.id, "events", as_json):
            result = s.events(doc, language=language)
        _print_record(result, as_json, lambda value: value.model_dump_json(indent=2))


@app.command(short_help="Run a task over many documents into JSONL.")
@endpoint_options
def bulk(
    source: Annotated[str, typer.Argument(
        help='JSONL file or stream (one {"id": ..., "text": ...} per line), a folder of .txt/.md/.html '
             "files, or - for JSONL on stdin.", show_default=False, metavar="SOURCE")],
    task: Annotated[TaskChoice, typer.Option(help="What to produce for each document.")] = TaskChoice.events,
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE",
                                     help="JSONL output file (resumed if it exists), or - for stdout.")] = "-",
    id_field: Annotated[str, typer.Option(metavar="FIELD", help="JSONL field holding the id.")] = "id",
    text_field: Annotated[str, typer.Option(
        metavar="FIELD", help='JSONL field holding the text (else "html" or "url" are read).')] = "text",
    published_field: Annotated[str, typer.Option(
        metavar="FIELD", help="JSONL field holding the publication date.")] = "published",
    published: Annotated[Optional[str], typer.Option(
        metavar="YYYY-MM-DD", help="Publication date of documents that carry none.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096, metavar="N", help="Documents in flight at once.")] = 16,
    rpm: Annotated[Optional[float], typer.Option(min=1, metavar="N", help="Requests-per-minute limit.")] = None,
    tpm: Annotated[Optional[float], typer.Option(
        min=1, metavar="N", help="Tokens-per-minute limit (estimated, corrected by usage).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo only the error records of --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")] = False,
    words: WordsOpt = None, language: LanguageOpt = None, strict: StrictOpt = False,
    via: Annotated[ViaChoice, typer.Option(
        help="direct: requests as they go; batch: the provider's Batch API (half price, up to 24 h).")
    ] = ViaChoice.direct,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Batch: wait for the batches, or submit and exit.")] = True,
    max_rounds: Annotated[int, typer.Option(min=1, max=20, metavar="N", help="Batch: rounds before giving up.")] = 3,
    finish: Annotated[FinishChoice, typer.Option(
        help="Batch: after the last round, record the stragglers as errors, or send them directly.")
    ] = FinishChoice.batch,
    poll_interval: Annotated[float, typer.Option(
        min=0.01, metavar="SECONDS", help="Batch: first wait between looks at the batches.")] = 10,
    max_poll_interval: Annotated[float, typer.Option(
        min=0.01, metavar="SECONDS", help="Batch: the longest wait between looks (and before creating a batch "
                                          "again when the provider's enqueued-token limit refused it).")] = 60,
    batch_max_requests: Annotated[int, typer.Option(
        min=1, metavar="N", help="Batch: requests per input file [OpenAI's limit: 50000].")] = 50_000,
    batch_max_bytes: Annotated[int, typer.Option(
        min=1024, metavar="BYTES", help="Batch: bytes per input file [under OpenAI's 200 MB].")] = 190 * 1024 * 1024,
    engine: Annotated[EngineChoice, typer.Option(
        help="local: this process; ray: Ray Data actors (JSONL or Parquet in, JSONL or DIR.parquet out).")
    ] = EngineChoice.local,
    address: Annotated[Optional[str], typer.Option(
        metavar="ADDRESS", help="Ray: a cluster to join (auto: the one this machine belongs to); default: a "
                                "local Ray.")] = None,
    actors: Annotated[int, typer.Option(min=1, metavar="N", help="Ray: actors (each keeps --concurrency in flight).")] = 2,
    *, endpoint: dict[str, Any],
) -> None:
    """Run a task over many documents into JSONL: concurrent, rate-limited, cached, resumable.

    Exit 0 when every input document has an ok record in the output, 1 when some have error records.
    """
    from .progress import BulkProgress, print_summary

    word_range = _parse_words(words)
    date = _parse_date(published)
    if retry_failed and out == "-":
        raise typer.BadParameter("needs --out FILE", param_hint="'--retry-failed'")
    if via is ViaChoice.batch:
        if out == "-" or retry_failed:
            raise typer.BadParameter("--via batch needs --out FILE (and cannot --retry-failed: run it again "
                                     "instead, it resumes)", param_hint="'--via'")
        _batch(source, out, task.value, endpoint, id_field=id_field, text_field=text_field,
               published_field=published_field, published=date, wait=wait, max_rounds=max_rounds,
               finish=finish.value, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
               limits=(batch_max_requests, batch_max_bytes), cache=not no_cache, words=word_range,
               language=language, strict=strict, quiet=quiet, as_json=as_json)
    if engine is EngineChoice.ray:
        _on_ray(source, out, task.value, endpoint, actors=actors, address=address, concurrency=concurrency,
                rpm=rpm, tpm=tpm, retry_failed=retry_failed, id_field=id_field, text_field=text_field, published_field=published_field,
                published=date, words=word_range, language=language, strict=strict, cache=not no_cache,
                quiet=quiet, as_json=as_json)
    _log_retries(False)
    with _exit_codes():
        with _summarizer(endpoint) as s:
            runner_limit = s.backend.max_concurrency
            if runner_limit is not None and concurrency > runner_limit and not quiet:
                _err(f"the {s.backend.model} backend takes {runner_limit} document at a time; "
                     f"--concurrency {concurrency} would only queue behind it")
            with BulkProgress(source, enabled=not quiet) as progress:
                summary = s.bulk_to_jsonl(
                    source, out, task=task.value, id_field=id_field, text_field=text_field,
                    published_field=published_field, published=date,
                    retry_failed=retry_failed, on_record=progress.update, concurrency=concurrency,
                    rpm=rpm, tpm=tpm, cache=not no_cache, words=word_range, language=language, strict=strict,
                )
    if summary.cache_problem:
        _err(f"warning: {summary.cache_problem}")
    if as_json:
        typer.echo(json.dumps(summary.as_dict()), err=out == "-")
    elif not quiet:
        print_summary(summary)
    raise typer.Exit(0 if summary.complete else 1)


@app.command("eval", short_help="Score prompts and validation on the offline eval set.")
@endpoint_options
def eval_(
    case: Annotated[Optional[list[str]], typer.Option("--case", metavar="NAME",
                                                      help="Run only this case (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard and checks as JSON.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Score the configured endpoint instead of the recordings.")] = False,
    record: Annotated[bool, typer.Option(
        "--record", help="Call the configured endpoint and save its answers as the recordings.")] = False,
    evals_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="The eval set [default: ./evals if it exists, else the set shipped with summarizer].")] = None,
    *, endpoint: dict[str, Any],
) -> None:
    """Score prompts, parsing and validation on the offline eval set (recorded responses).

    Exit 0 when every deliberate flaw was caught and every threshold held, 1 otherwise.
    """
    from .evaluation import default_evals_dir, run_eval
    from .progress import print_scorecard

    with _exit_codes():
        given = {k: v for k, v in endpoint.items() if v not in (None, False)}
        if given and not (live or record):
            raise UsageError(f"{', '.join('--' + k.replace('_', '-') for k in given)} only apply with --live or --record")
        factory = functools.partial(_eval_summarizer, endpoint) if live or record else None
        report = run_eval(evals_dir or default_evals_dir(), names=case, live=live, record=record,
                          summarizer_factory=factory)
    if as_json:
        _out(json.dumps(report.as_dict(), indent=2))
    else:
        print_scorecard(report)
    raise typer.Exit(0 if report.passed else 1)


def _eval_summarizer(endpoint: dict[str, Any], **case_settings: Any) -> Summarizer:
    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()}
    settings["server_grammar"] = settings["server_grammar"] or None
    return Summarizer(**{**settings, **{k: v for k, v in case_settings.items() if v is not None}})


def _on_ray(source: str, out: str, task: str, endpoint: dict[str, Any], *, actors: int, address: str | None,
           concurrency: int, rpm: float | None, tpm: float | None, quiet: bool, as_json: bool, **options: Any) -> None:
    """`bulk --engine ray`: the same records, made by Ray Data actors."""
    from .progress import BulkProgress, print_summary
    from .ray import RayOptions, run

    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items() if v not in (None, False)}
    jsonl_out = not (out.endswith(".parquet") or "://" in out or Path(out).is_dir())
    with _exit_codes():
        # JSONL is written here on the driver, record by record: our progress. Parquet is written
        # by the actors: Ray Data's own progress bars.
        with BulkProgress(source, enabled=jsonl_out and not quiet) as progress:
            summary = run(source, out, task=task, settings=settings,  # type: ignore[arg-type]
                          ray_options=RayOptions(address=address, actors=actors, concurrency=concurrency, rpm=rpm,
                                                 tpm=tpm, progress_bars=not (quiet or jsonl_out)),
                          on_record=progress.update, **options)
    if summary.cache_problem:
        _err(f"warning: {summary.cache_problem}")
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    elif not quiet:
        print_summary(summary)
    raise typer.Exit(0 if summary.complete else 1)


def _batch(source: str | None, out: str, task: str, endpoint: dict[str, Any], *, quiet: bool, as_json: bool,
           limits: tuple[int, int], **options: Any) -> None:
    """`bulk --via batch` and `batch collect`: run (or resume) a batch run, print, exit."""
    from .batch import BatchLimits
    from .progress import BatchProgress, print_batch_summary

    _log_retries(not quiet)
    with _exit_codes():
        with _summarizer(endpoint) as s:
            progress = BatchProgress(enabled=not quiet)
            summary = s.batch_to_jsonl(source, out, task=task, limits=BatchLimits(*limits),  # type: ignore[arg-type]
                                       on_progress=progress.update, **options)
    if as_json:
        _out(json.dumps(summary.as_dict()))
    elif not quiet:
        print_batch_summary(summary)
    raise typer.Exit(0 if summary.complete or not summary.finished and not summary.failed else 1)


batch_app = typer.Typer(help="Look after a run of `bulk --via batch`: status, collect, cancel.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
OutArg = Annotated[str, typer.Argument(help="The --out file of the batch run.", metavar="OUT", show_default=False)]


@batch_app.command("status", short_help="Where a batch run stands (from its state file).")
def batch_status_command(out: OutArg, as_json: JsonOpt = False) -> None:
    """Where the batch run of OUT stands: its round, its batches, its requests (no network)."""
    from .batch import batch_status
    from .progress import print_batch_status

    with _exit_codes():
        status = batch_status(Path(out))
    if as_json:
        _out(json.dumps(status, indent=2))
    else:
        print_batch_status(status)


@batch_app.command("collect", short_help="Collect finished batches, submit the next round, exit.")
@endpoint_options
def batch_collect(
    out: OutArg, task: Annotated[TaskChoice, typer.Option(help="The run's task.")] = TaskChoice.events,
    max_rounds: Annotated[int, typer.Option(min=1, max=20, metavar="N")] = 3,
    finish: Annotated[FinishChoice, typer.Option()] = FinishChoice.batch,
    words: WordsOpt = None, language: LanguageOpt = None, strict: StrictOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False, as_json: JsonOpt = False,
    *, endpoint: dict[str, Any],
) -> None:
    """Collect what the batches of OUT finished, queue the next round, and exit: for cron.

    Run it again until it says the run is finished; the same options as the run that started it.
    """
    _batch(None, out, task.value, endpoint, wait=False, max_rounds=max_rounds, finish=finish.value,
           poll_interval=10, max_poll_interval=60, limits=(50_000, 190 * 1024 * 1024), cache=True, words=_parse_words(words),
           language=language, strict=strict, quiet=quiet, as_json=as_json)


@batch_app.command("cancel", short_help="Cancel the running batches of a run.")
@endpoint_options
def batch_cancel(out: OutArg, *, endpoint: dict[str, Any]) -> None:
    """Cancel the batches of OUT still running; `batch collect` then keeps what they finished."""
    with _exit_codes():
        with _summarizer(endpoint) as s:
            cancelled = s.batch_cancel(out)
    _err(f"cancelled {len(cancelled)} batch(es)" + (f": {', '.join(cancelled)}" if cancelled else ""))


@app.command(short_help="Serve the API and the web page over HTTP.")
@endpoint_options
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="Port; 0 picks a free one.")] = 8080,
    data_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Where jobs are kept [default: the user data dir]. Env: SUMMARIZER_DATA_DIR.")] = None,
    tokens_file: Annotated[Optional[Path], typer.Option(
        metavar="FILE", help="Bearer tokens, one per line. Env: SUMMARIZER_SERVICE_TOKENS (comma-separated).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without tokens (loopback only).")] = False,
    allow_urls: Annotated[bool, typer.Option(
        "--allow-urls", help="Accept {\"url\": ...} documents (public addresses only).")] = False,
    rpm_per_token: Annotated[float, typer.Option(min=0, metavar="N", help="Requests a minute per token; 0: no limit.")] = 600,
    max_in_flight: Annotated[int, typer.Option(min=1, metavar="N", help="Model requests at once, for everyone.")] = 64,
    max_pending: Annotated[int, typer.Option(min=1, metavar="N", help="Requests waiting or running before 429.")] = 256,
    job_concurrency: Annotated[int, typer.Option(min=1, metavar="N", help="Documents in flight per job.")] = 16,
    request_timeout: Annotated[float, typer.Option(min=1, metavar="SECONDS", help="Per request.")] = 120,
    max_jobs: Annotated[int, typer.Option(min=1, metavar="N", help="Jobs queued or running, for everyone.")] = 16,
    max_jobs_per_token: Annotated[int, typer.Option(
        min=1, metavar="N", help="Jobs queued or running for one token (below --max-jobs).")] = 4,
    parse_timeout: Annotated[float, typer.Option(
        min=0.1, metavar="SECONDS", help="Parsing a document (HTML, PDF) past this: 422 document too complex.")] = 10,
    *, endpoint: dict[str, Any],
) -> None:
    """Serve the HTTP API (briefs, event reports, streaming, bulk jobs, metrics) and a web page.

    Needs the serve extra: pip install 'summarizer[serve]'. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from .config import load_settings
    from .serve import ServiceConfig, default_data_dir, load_tokens, run

    with _exit_codes():
        settings = load_settings(**{k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()
                                    if v not in (None, False)})
        directory = data_dir or (Path(os.environ["SUMMARIZER_DATA_DIR"]) if os.environ.get("SUMMARIZER_DATA_DIR")
                                 else default_data_dir())
        config = ServiceConfig(
            host=host, port=port, tokens=load_tokens(tokens_file), no_auth=no_auth, data_dir=directory,
            allow_urls=allow_urls, rpm_per_token=rpm_per_token or None, max_in_flight=max_in_flight,
            max_pending=max_pending, job_concurrency=job_concurrency, request_timeout=request_timeout,
            max_jobs=max_jobs, max_jobs_per_token=max_jobs_per_token, parse_timeout=parse_timeout,
        )
        run(config, settings)


@app.command(short_help="Print the JSON Schema of an output.")
def schema(
    name: Annotated[TaskChoice, typer.Argument(help="Which output to describe.")] = TaskChoice.events,
    full: Annotated[bool, typer.Option("--full", help="Keep length limits that OpenAI strict mode does not accept.")] = False,
) -> None:
    """Print the JSON Schema of an output (strict-mode compatible by default)."""
    document = event_report_schema(strict=not full) if name is TaskChoice.events else Brief.model_json_schema()
    with _exit_codes():
        _out(json.dumps(document, indent=2))


PromptsDirOpt = Annotated[Optional[Path], typer.Option(
    metavar="DIR", help="Directory whose <name>.toml override the built-in prompts.")]


@prompts_app.command("list", short_help="List the prompt templates.")
def prompts_list(prompts_dir: PromptsDirOpt = None) -> None:
    """List the prompt templates with their versions."""
    with _exit_codes():
        lines = [f"{t.id:<24} {t.description}  [{t.origin}]" for t in PromptLibrary(prompts_dir).all()]
        _out("\n".join(lines))


@prompts_app.command("show", short_help="Show one prompt template.")
def prompts_show(
    name: Annotated[str, typer.Argument(help="Template name, e.g. brief.", metavar="NAME")],
    prompts_dir: PromptsDirOpt = None,
) -> None:
    """Show one template: version, parameters, system, user and re-ask text."""
    with _exit_codes():
        t = PromptLibrary(prompts_dir).get(name)
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        sections = [f"# {t.id} — {t.description}", f"# from: {t.origin}", f"# params: {params}",
                    "", "## system", t.system.strip(), "", "## user", t.user.strip(), "", "## reask", t.reask.strip()]
        _out("\n".join(sections))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"summarizer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Grounded one-paragraph briefs and structured event reports from documents."""


def main() -> None:
    app(prog_name="summarizer")


if __name__ == "__main__":  # pragma: no cover
    main()
