"""The ``summarizer`` command: parse flags, call the library, print, map errors to exit codes.

Exit codes: 0 ok · 1 some bulk items failed (or the eval gate, or ``check`` found an
unsupported sentence) · 2 bad input, usage or unwritable output · 3 configuration ·
4 provider failing · 5 model output invalid after re-asks · 6 ``--fail-on-warnings``
and content the source does not back. Errors are one line on stderr, never a traceback.
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
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from ._version import __version__
from .errors import ConfigError, InputError, OutputError, SummarizerError, UsageError

if TYPE_CHECKING:  # imported where a command needs them: `summarizer --help` stays fast
    from .client import Summarizer
    from .registry import TaskRegistry
    from .schemas import Record

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
jobs_app = typer.Typer(help="List, inspect and cancel the service's jobs in its database (--database-url).",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

F = TypeVar("F", bound=Callable[..., Any])
_PANEL = "Endpoint"
_WORDS = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", re.ASCII)


class ModeChoice(str, Enum):
    auto = "auto"
    json_schema = "json_schema"
    json_object_schema = "json_object_schema"
    json_object = "json_object"
    text = "text"


class EngineChoice(str, Enum):
    local = "local"
    ray = "ray"


class ViaChoice(str, Enum):
    direct = "direct"
    batch = "batch"


class FinishChoice(str, Enum):
    batch = "batch"
    direct = "direct"


class FormatChoice(str, Enum):
    text = "text"
    md = "md"
    json = "json"


class ExportChoice(str, Enum):
    csv = "csv"
    md = "md"


# -- the endpoint options, declared once ----------------------------------------------------

_ENDPOINT: dict[str, Any] = {
    "backend": Annotated[Optional[str], typer.Option(
        rich_help_panel=_PANEL, show_default=False, metavar="NAME",
        help="openai (any OpenAI-compatible endpoint), local (embedded model), or one a plugin registers. "
             "Default auto: an endpoint if one is configured, else the local model if installed. "
             "Env: SUMMARIZER_BACKEND.")],
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
    "tasks_dir": Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="A folder of user-defined tasks (<name>.toml + <name>.schema.json). "
                            "Env: SUMMARIZER_TASKS_DIR.")],
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
    from .client import Summarizer
    from .otel import observer_from_env

    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()}
    settings["server_grammar"] = settings["server_grammar"] or None  # unset: env/config decide
    s = Summarizer(**settings, **extra, observer=observer_from_env())
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


# The optional dependencies and the extra that brings each: a command that needs a missing one says
# which extra to install (exit 3) instead of a ModuleNotFoundError traceback.
_EXTRAS = {
    "fastapi": "serve", "fastapi_offline": "serve", "uvicorn": "serve", "prometheus_client": "serve",
    "httptools": "serve", "uvloop": "serve", "psycopg": "serve,postgres", "psycopg_pool": "serve,postgres",
    "ray": "ray", "pyarrow": "ray", "pypdf": "pdf", "rouge_score": "eval", "opentelemetry": "otel",
}


@contextmanager
def _exit_codes() -> Iterator[None]:
    """One line on stderr and the documented exit code for every SummarizerError."""
    try:
        yield
    except SummarizerError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(exc.exit_code) from None
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:  # not an optional dependency: a bug, and its traceback says where
            raise
        _err(f"error: {exc.name} is not installed; this command needs: pip install 'summarizer[{extra}]'")
        raise typer.Exit(ConfigError.exit_code) from None
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

            _out(failure(doc_id, task, exc).model_dump_json(indent=2))
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
VerifyOpt = Annotated[bool, typer.Option(
    "--verify", help="The model judges each claim against the source text cited for it (one more request).")]
FailOnWarningsOpt = Annotated[bool, typer.Option(
    "--fail-on-warnings", help="Exit 6 when a result has content the source does not back (unsupported "
                               "sentences, names, numbers, the judge's verdicts).")]
FormatOpt = Annotated[Optional[FormatChoice], typer.Option(
    "--format", show_default=False,
    help="text (the value), md (Markdown: a brief's sentences with footnotes quoting the source), or json "
         "(the Result envelope, as --json) [default: text].")]
UNSUPPORTED_EXIT = 6


StreamOpt = Annotated[Optional[bool], typer.Option(
    "--stream/--no-stream", show_default=False,
    help="Show the answer as the model writes it [default: on when stdout is a terminal, off with --json].")]
_TASK_OPTIONS: dict[str, tuple[str, Any, Any]] = {  # TaskOptions field -> (parameter, annotation, default)
    "words": ("words", WordsOpt, None),
    "language": ("language", LanguageOpt, None),
    "strict": ("strict", StrictOpt, False),
    "verify": ("verify", VerifyOpt, False),
}


def _run_document(task: str, document: str, *, endpoint: dict[str, Any], words: Optional[str] = None,
                  language: Optional[str] = None, strict: bool = False, verify: bool = False,
                  published: Optional[str] = None, as_json: bool = False, stream: Optional[bool] = None,
                  fail_on_warnings: bool = False, output_format: Optional[FormatChoice] = None) -> None:
    """One document through ``task``: read it, run it, print the value (or the envelope), map errors to exits."""
    word_range = _parse_words(words)
    date = _parse_date(published)
    if as_json and output_format not in (None, FormatChoice.json):
        raise typer.BadParameter(f"--json is --format json: it cannot go with --format {output_format.value}",
                                 param_hint="'--json'")
    as_json = as_json or output_format is FormatChoice.json
    markdown = output_format is FormatChoice.md
    _log_retries(True)
    with _exit_codes():
        from .documents import read_document

        doc = read_document(document, published=date)  # bad input is reported before any backend is set up
        with _summarizer(endpoint) as s, _json_on_failure(doc.id, task, as_json):
            spec = s.task(task)
            live = (stream if stream is not None else sys.stdout is not None and sys.stdout.isatty()) \
                and not as_json and not markdown and not spec.structured
            printer = _LivePrinter() if live else None
            result = s.run(spec, doc, words=word_range, language=language, strict=strict, verify=verify,
                           on_event=printer.event if printer else None, on_progress=_parts())
        if printer is not None:
            printer.finish(result)
        elif markdown:
            from .export import markdown as as_markdown

            _print_record(result, False, lambda _: as_markdown(result))
        else:
            _print_record(result, as_json, spec.text)
    if fail_on_warnings and result.unsupported:
        raise typer.Exit(UNSUPPORTED_EXIT)


def _task_command(name: str, description: str, options: tuple[str, ...], plain_text: bool,
                  verifiable: bool) -> Callable[..., None]:
    """The command for one registered task: the options it uses, --published, --json (and --stream for prose)."""

    def command(document: str, *, endpoint: dict[str, Any], **given: Any) -> None:
        _run_document(name, document, endpoint=endpoint, **given)

    parameters = [inspect.Parameter("document", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=DocumentArg)]
    for option in (*options, *(("verify",) if verifiable else ())):
        if option in _TASK_OPTIONS:
            parameter, annotation, default = _TASK_OPTIONS[option]
            parameters.append(inspect.Parameter(parameter, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                                default=default))
    parameters.append(inspect.Parameter("published", inspect.Parameter.KEYWORD_ONLY, annotation=PublishedOpt,
                                        default=None))
    parameters.append(inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=JsonOpt, default=False))
    parameters.append(inspect.Parameter("output_format", inspect.Parameter.KEYWORD_ONLY, annotation=FormatOpt,
                                        default=None))
    parameters.append(inspect.Parameter("fail_on_warnings", inspect.Parameter.KEYWORD_ONLY,
                                        annotation=FailOnWarningsOpt, default=False))
    if plain_text:
        parameters.append(inspect.Parameter("stream", inspect.Parameter.KEYWORD_ONLY, annotation=StreamOpt,
                                            default=None))
    parameters.append(inspect.Parameter("endpoint", inspect.Parameter.KEYWORD_ONLY, annotation=dict[str, Any]))
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = name
    command.__doc__ = f"{description}\n\nDOCUMENT: a file, an http(s) URL, or - for standard input."
    return endpoint_options(command)


_TASKS_PROBLEM: list[SummarizerError] = []  # a task plugin that failed to load: every command says so


def _add_task_commands() -> None:
    """A command per task the registry holds (built-in, shipped and installed plugins')."""
    from .catalog import default_registry

    try:
        registry = default_registry()
    except SummarizerError as exc:  # raised at import, where no command could turn it into one line
        _TASKS_PROBLEM.append(exc)
        return
    for spec in registry:
        app.command(name=spec.name, short_help=_first_sentence(spec.description))(
            _task_command(spec.name, spec.description, spec.options, not spec.structured, spec.claims is not None))


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].split("; ")[0].rstrip(".")[:72]


_add_task_commands()


@app.command("run", short_help="Run any task (built-in or from --tasks-dir) on a document.")
@endpoint_options
def run_command(
    task: Annotated[str, typer.Argument(help="The task: brief, events, or one from --tasks-dir / a plugin.",
                                        metavar="TASK", show_default=False)],
    document: DocumentArg, words: WordsOpt = None, language: LanguageOpt = None, strict: StrictOpt = False,
    verify: VerifyOpt = False, published: PublishedOpt = None, as_json: JsonOpt = False, stream: StreamOpt = None,
    output_format: FormatOpt = None, fail_on_warnings: FailOnWarningsOpt = False, *, endpoint: dict[str, Any],
) -> None:
    """Run TASK on DOCUMENT and print its value (JSON for structured tasks, text for prose)."""
    _run_document(task, document, endpoint=endpoint, words=words, language=language, strict=strict, verify=verify,
                  published=published, as_json=as_json, stream=stream, fail_on_warnings=fail_on_warnings,
                  output_format=output_format)


def _parts() -> Callable[[Any], None]:
    """A long document's parts, as they are read, on stderr."""
    from .progress import PartProgress

    return PartProgress()


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


@app.command(short_help="Run a task over many documents into JSONL.")
@endpoint_options
def bulk(
    source: Annotated[str, typer.Argument(
        help='JSONL file or stream (one {"id": ..., "text": ...} per line), a folder of .txt/.md/.html '
             "files, or - for JSONL on stdin.", show_default=False, metavar="SOURCE")],
    task: Annotated[str, typer.Option(help="What to produce for each document: brief, events, or any "
                                           "registered task (--tasks-dir, plugins).", metavar="TASK")] = "events",
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
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Ray: show Ray's own log lines, warnings and progress bars (off by default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")] = False,
    words: WordsOpt = None, language: LanguageOpt = None, strict: StrictOpt = False, verify: VerifyOpt = False,
    fail_on_warnings: FailOnWarningsOpt = False,
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

    Exit 0 when every input document has an ok record in the output, 1 when some have error records
    (6 with --fail-on-warnings when none failed but some have content the source does not back).
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
        _batch(source, out, task, endpoint, fields={"id_field": id_field, "text_field": text_field,
                                                    "published_field": published_field, "published": date}, wait=wait, max_rounds=max_rounds,
               finish=finish.value, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
               limits=(batch_max_requests, batch_max_bytes), cache=not no_cache, words=word_range,
               language=language, strict=strict, verify=verify, quiet=quiet, as_json=as_json,
               fail_on_warnings=fail_on_warnings)
    if engine is EngineChoice.ray:
        _on_ray(source, out, task, endpoint, actors=actors, address=address, concurrency=concurrency,
                rpm=rpm, tpm=tpm, retry_failed=retry_failed, id_field=id_field, text_field=text_field, published_field=published_field,
                published=date, words=word_range, language=language, strict=strict, verify=verify,
                cache=not no_cache, quiet=quiet, verbose=verbose, as_json=as_json, fail_on_warnings=fail_on_warnings)
    _log_retries(False)
    with _exit_codes():
        with _summarizer(endpoint) as s:
            runner_limit = s.backend.max_concurrency
            if runner_limit is not None and concurrency > runner_limit and not quiet:
                _err(f"the {s.backend.model} backend takes {runner_limit} document at a time; "
                     f"--concurrency {concurrency} would only queue behind it")
            with BulkProgress(source, enabled=not quiet) as progress:
                summary = s.bulk_to_jsonl(
                    source, out, task=task, fields={"id_field": id_field, "text_field": text_field,
                                                    "published_field": published_field, "published": date},
                    retry_failed=retry_failed, on_record=progress.update, concurrency=concurrency,
                    rpm=rpm, tpm=tpm, cache=not no_cache, words=word_range, language=language, strict=strict,
                    verify=verify,
                )
    if summary.cache_problem:
        _err(f"warning: {summary.cache_problem}")
    if as_json:
        typer.echo(json.dumps(summary.as_dict()), err=out == "-")
    elif not quiet:
        print_summary(summary)
    raise typer.Exit(_bulk_exit(summary.complete, summary.unsupported, fail_on_warnings))


def _bulk_exit(complete: bool, unsupported: int, fail_on_warnings: bool) -> int:
    """0 every document ok · 1 some failed · 6 none failed, some unsupported (with --fail-on-warnings)."""
    if not complete:
        return 1
    return UNSUPPORTED_EXIT if fail_on_warnings and unsupported else 0


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

    Exit 0 when every deliberate flaw was caught and every threshold held, 1 otherwise;
    --live/--record: 4 when the endpoint cannot be reached (or keeps failing), 3 when it refuses the key.
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
    from .client import Summarizer

    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()}
    settings["server_grammar"] = settings["server_grammar"] or None
    return Summarizer(**{**settings, **{k: v for k, v in case_settings.items() if v is not None}})


def _on_ray(source: str, out: str, task: str, endpoint: dict[str, Any], *, actors: int, address: str | None,
           concurrency: int, rpm: float | None, tpm: float | None, quiet: bool, verbose: bool, as_json: bool,
           fail_on_warnings: bool = False, **options: Any) -> None:
    """`bulk --engine ray`: the same records, made by Ray Data actors; Ray itself silent unless --verbose."""
    from .progress import BulkProgress, print_summary
    from .ray import RayOptions, run

    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items() if v not in (None, False)}
    jsonl_out = not (out.endswith(".parquet") or "://" in out or Path(out).is_dir())
    with _exit_codes():
        # JSONL is written here on the driver, record by record: our progress. Parquet is written
        # by the actors: Ray Data's own progress bars, with --verbose.
        if not (jsonl_out or quiet or verbose):
            _err("Parquet is written by the Ray actors: no progress until they finish (--verbose shows Ray's)")
        with BulkProgress(source, enabled=jsonl_out and not quiet) as progress:
            summary = run(source, out, task=task, settings=settings,
                          ray_options=RayOptions(address=address, actors=actors, concurrency=concurrency, rpm=rpm,
                                                 tpm=tpm, progress_bars=verbose and not (quiet or jsonl_out),
                                                 quiet=not verbose),
                          on_record=progress.update, **options)
    if summary.cache_problem:
        _err(f"warning: {summary.cache_problem}")
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    elif not quiet:
        print_summary(summary)
    raise typer.Exit(_bulk_exit(summary.complete, summary.unsupported, fail_on_warnings))


def _batch(source: str | None, out: str, task: str, endpoint: dict[str, Any], *, quiet: bool, as_json: bool,
           limits: tuple[int, int], fail_on_warnings: bool = False, **options: Any) -> None:
    """`bulk --via batch` and `batch collect`: run (or resume) a batch run, print, exit."""
    from .batch import BatchLimits
    from .progress import BatchProgress, print_batch_summary

    _log_retries(not quiet)
    with _exit_codes():
        with _summarizer(endpoint) as s:
            progress = BatchProgress(enabled=not quiet)
            summary = s.batch_to_jsonl(source, out, task=task, limits=BatchLimits(*limits),
                                       on_progress=progress.update, **options)
    if not quiet:
        for note in summary.notes:
            _err(note)
    if as_json:
        _out(json.dumps(summary.as_dict()))
    elif not quiet:
        print_batch_summary(summary)
    if not summary.finished and not summary.failed:
        raise typer.Exit(0)  # still running: nothing to judge yet
    raise typer.Exit(_bulk_exit(summary.complete, summary.unsupported, fail_on_warnings))


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
    out: OutArg,
    task: Annotated[Optional[str], typer.Option(help="The run's task [default: the one it was started with].",
                                                       show_default=False, metavar="TASK")] = None,
    max_rounds: Annotated[int, typer.Option(min=1, max=20, metavar="N")] = 3,
    finish: Annotated[FinishChoice, typer.Option()] = FinishChoice.batch,
    words: WordsOpt = None, language: LanguageOpt = None,
    strict: Annotated[Optional[bool], typer.Option("--strict/--no-strict", show_default=False,
                                                   help="[default: as the run was started]")] = None,
    verify: Annotated[Optional[bool], typer.Option("--verify/--no-verify", show_default=False,
                                                   help="[default: as the run was started]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False, as_json: JsonOpt = False,
    *, endpoint: dict[str, Any],
) -> None:
    """Collect what the batches of OUT finished, queue the next round, and exit: for cron.

    Run it again until it says the run is finished. The task and its options are read from the
    run's state; a flag that contradicts them is refused.
    """
    from .batch import collect_settings

    with _exit_codes():
        run = collect_settings(Path(out), task=task, words=_parse_words(words),
                               language=language, strict=strict, verify=verify,
                               context_tokens=endpoint["context_tokens"])
    endpoint = {**endpoint, "context_tokens": run.pop("context_tokens")}
    _batch(None, out, run.pop("task"), endpoint, wait=False, max_rounds=max_rounds, finish=finish.value,
           poll_interval=10, max_poll_interval=60, limits=(50_000, 190 * 1024 * 1024), cache=True, quiet=quiet,
           as_json=as_json, **run)


@batch_app.command("cancel", short_help="Cancel the running batches of a run.")
@endpoint_options
def batch_cancel(out: OutArg, *, endpoint: dict[str, Any]) -> None:
    """Cancel the batches of OUT still running; `batch collect` then keeps what they finished."""
    with _exit_codes():
        with _summarizer(endpoint) as s:
            cancelled = s.batch_cancel(out)
    _err(f"cancelled {len(cancelled)} batch(es)" + (f": {', '.join(cancelled)}" if cancelled else ""))


DatabaseOpt = Annotated[Optional[str], typer.Option(
    metavar="URL", show_default=False, help="PostgreSQL for jobs, shared by replicas and workers "
    "(postgresql://user:password@host:port/db); serve without it keeps jobs in SQLite in --data-dir. "
    "Env: SUMMARIZER_DATABASE_URL (prefer it: a flag shows in ps).")]
ProviderRpmOpt = Annotated[Optional[float], typer.Option(
    min=1, metavar="N", help="The provider's requests a minute for jobs (shared by every worker with a database).")]
ProviderTpmOpt = Annotated[Optional[float], typer.Option(
    min=1, metavar="N", help="The provider's tokens a minute for jobs (shared likewise).")]
LeaseOpt = Annotated[float, typer.Option(
    min=1, metavar="SECONDS", help="With a database: a worker's claim on documents lapses this long after its "
    "last heartbeat, and another worker takes them.")]


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
    database_url: DatabaseOpt = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="With --database-url: serve only; `summarizer "
                                            "worker` processes run the jobs.")] = False,
    rpm: ProviderRpmOpt = None,
    tpm: ProviderTpmOpt = None,
    lease_seconds: LeaseOpt = 30,
    *, endpoint: dict[str, Any],
) -> None:
    """Serve the HTTP API (briefs, event reports, streaming, bulk jobs, metrics) and a web page.

    Needs the serve extra: pip install 'summarizer[serve]'. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from .config import load_settings

    with _exit_codes():
        from .serve import ServiceConfig, default_data_dir, load_tokens, run

        settings = load_settings(**{k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()
                                    if v not in (None, False)})
        directory = data_dir or (Path(os.environ["SUMMARIZER_DATA_DIR"]) if os.environ.get("SUMMARIZER_DATA_DIR")
                                 else default_data_dir())
        config = ServiceConfig(
            host=host, port=port, tokens=load_tokens(tokens_file), no_auth=no_auth, data_dir=directory,
            allow_urls=allow_urls, rpm_per_token=rpm_per_token or None, max_in_flight=max_in_flight,
            max_pending=max_pending, job_concurrency=job_concurrency, request_timeout=request_timeout,
            max_jobs=max_jobs, max_jobs_per_token=max_jobs_per_token, parse_timeout=parse_timeout,
            database_url=_database_url(database_url), worker=not no_worker, rpm=rpm, tpm=tpm,
            lease_seconds=lease_seconds,
        )
        run(config, settings)


@app.command(short_help="Run jobs from the database (with `serve --database-url`).")
@endpoint_options
def worker(
    database_url: DatabaseOpt = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Where tenants' result caches are kept [default: the user data dir]. "
                            "Env: SUMMARIZER_DATA_DIR.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, metavar="N", help="Documents in flight.")] = 16,
    rpm: ProviderRpmOpt = None,
    tpm: ProviderTpmOpt = None,
    lease_seconds: LeaseOpt = 30,
    parse_timeout: Annotated[float, typer.Option(min=0.1, metavar="SECONDS", help="Parsing one document past this: "
                                                 "its error record.")] = 10,
    *, endpoint: dict[str, Any],
) -> None:
    """Claim documents of any job in the database, run them, write their records; stop cleanly on SIGTERM.

    A worker that dies loses its claims when their lease lapses, and another worker runs them.
    """
    from .config import load_settings

    with _exit_codes():
        from .serve import ServiceConfig, default_data_dir, run_worker

        settings = load_settings(**{k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()
                                    if v not in (None, False)})
        directory = data_dir or (Path(os.environ["SUMMARIZER_DATA_DIR"]) if os.environ.get("SUMMARIZER_DATA_DIR")
                                 else default_data_dir())
        config = ServiceConfig(data_dir=directory, no_auth=True, database_url=_database_url(database_url),
                               job_concurrency=concurrency, max_in_flight=max(concurrency, 1), rpm=rpm, tpm=tpm,
                               lease_seconds=lease_seconds, parse_timeout=parse_timeout)
        run_worker(config, settings)


def _database_url(flag: str | None) -> Any:
    """--database-url, else SUMMARIZER_DATABASE_URL; checked (one line, exit 3) and kept as a secret."""
    from pydantic import SecretStr

    url = flag or os.environ.get("SUMMARIZER_DATABASE_URL") or None
    if url is None:
        return None
    from .serve.pg.db import check_url

    return SecretStr(check_url(url))


@jobs_app.command("list", short_help="List the jobs in the database.")
def jobs_list(
    database_url: DatabaseOpt = None,
    owner: Annotated[Optional[str], typer.Option(metavar="TOKEN_ID", help="Only this token id's jobs.")] = None,
    status: Annotated[Optional[str], typer.Option(metavar="STATE", help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, metavar="N", help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per job.")] = False,
) -> None:
    """The newest jobs: id, owner, task, state, counts."""
    with _exit_codes():
        url = _required_database(database_url)
        from .serve.pg import admin

        jobs = admin.list_jobs(url, owner=owner, status=status, limit=limit)
    _out(admin.render(jobs, as_json=as_json, url=url))


@jobs_app.command("show", short_help="Show one job.")
def jobs_show(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (job_…).")],
    database_url: DatabaseOpt = None,
) -> None:
    """One job as the API shows it (counts, usage, state), with its documents' leases."""
    with _exit_codes():
        url = _required_database(database_url)
        from .serve.pg import admin

        _out(json.dumps(admin.show_job(url, job_id), indent=2))


@jobs_app.command("cancel", short_help="Cancel a queued or running job.")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (job_…).")],
    database_url: DatabaseOpt = None,
) -> None:
    """Cancel a job: workers stop its documents; what it finished stays readable."""
    with _exit_codes():
        url = _required_database(database_url)
        from .serve.pg import admin

        status = admin.cancel_job(url, job_id)
    _err(f"{job_id}: {status}")


def _required_database(flag: str | None) -> str:
    url = _database_url(flag)
    if url is None:
        raise ConfigError("summarizer jobs needs --database-url (or SUMMARIZER_DATABASE_URL): postgresql://…")
    return str(url.get_secret_value())


@app.command("check", short_help="Check a summary against its source, sentence by sentence.")
def check_command(
    source: Annotated[str, typer.Argument(
        help="The source: a text, Markdown, HTML or PDF file, an http(s) URL, or - for standard input.",
        show_default=False, metavar="SOURCE")],
    summary: Annotated[str, typer.Argument(
        help="The summary: a text file, or - for standard input.", show_default=False, metavar="SUMMARY")],
    published: PublishedOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the check (and the source text its offsets "
                                                         "point into) as JSON.")] = False,
) -> None:
    """Cite the source sentences behind each summary sentence and name what they do not back.

    Exit 0 when every sentence is supported or partial, 1 when any is unsupported, 2 for bad input.
    """
    from .faithfulness import check
    from .documents import decode_bytes, read_bytes

    with _exit_codes():
        if source == "-" and summary == "-":
            raise UsageError("only one of SOURCE and SUMMARY can be - (standard input)")
        from .documents import read_document

        document = read_document(source, published=_parse_date(published))
        label = "stdin" if summary == "-" else summary
        text = " ".join(decode_bytes(read_bytes(summary), label).split())
        if not text:
            raise InputError(f"{label}: the summary is empty")
        result = check(text, document.text, published=document.published)
        if as_json:
            shown = result.model_dump(mode="json", exclude={"sentences": {"__all__": {"judged", "judge_reason"}}})
            payload = {**shown, "source": {"text": document.text, "digest": document.digest}}
            _out(json.dumps(payload, indent=2, ensure_ascii=False))
        else:
            _out(_render_check(result, document.text))
    raise typer.Exit(1 if result.flagged else 0)


def _render_check(result: Any, source: str) -> str:
    lines = []
    for n, sentence in enumerate(result.sentences, 1):
        lines.append(f"[{n}] {sentence.support.upper()}: {sentence.text}")
        for span in sentence.citations:
            quote = span.of(source)
            quote = quote if len(quote) <= 100 else quote[:97].rstrip() + "..."
            lines.append(f"    cites {span.start}-{span.end}: \"{quote}\"")
        if not sentence.citations:
            lines.append("    cites nothing")
        lines += [f"    {issue.kind}: {issue.detail}" for issue in sentence.issues]
    counts = {k: sum(s.support == k for s in result.sentences) for k in ("supported", "partial", "unsupported")}
    lines.append(f"{len(result.sentences)} sentence(s): " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines)


@app.command("export", short_help="Turn a bulk output into a spreadsheet (CSV) or a Markdown digest.")
def export_command(
    results: Annotated[Path, typer.Argument(help="A bulk output (JSONL of Result records).", metavar="OUT.jsonl",
                                            show_default=False)],
    output_format: Annotated[ExportChoice, typer.Option("--format", help="csv: one row per document; md: a "
                                                        "digest with footnote citations.")] = ExportChoice.csv,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE",
                                                   help="Write here instead of standard output.")] = None,
    tasks_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="A folder of user-defined tasks. Env: SUMMARIZER_TASKS_DIR.")] = None,
) -> None:
    """Write the records of OUT.jsonl as CSV or Markdown (streamed: any size in constant memory)."""
    from .export import export

    with _exit_codes():
        registry = _registry(tasks_dir)
        if output is None:
            count = export(results, output_format.value, _StdoutText(), registry=registry, on_warning=_err_warning)
        else:
            with _replaced(output, results) as handle:
                count = export(results, output_format.value, handle, registry=registry, on_warning=_err_warning)
    _err(f"exported {count} record(s)")


def _err_warning(message: str) -> None:
    _err(f"warning: {message}")


@contextmanager
def _replaced(output: Path, source: Path) -> Iterator[Any]:
    """A text file that becomes ``output`` only when the export finished: a failed one leaves it as it was.

    ``output`` may not be ``source``: writing the export over the bulk output it reads would lose it.
    A link is written through (its target replaced, not the link); a device or a FIFO (``/dev/stdout``)
    is written into, never replaced by a file — as root that would put a regular file at ``/dev/null``.
    """
    import tempfile

    try:
        if output.exists() and source.exists() and os.path.samefile(output, source):
            raise UsageError(f"--output {output} is the bulk output being exported: choose another file")
        if output.is_dir():
            raise OutputError(f"cannot write {output}: it is a directory")
        if output.exists() and not output.is_file():
            with open(output, "w", encoding="utf-8", newline="", errors="replace") as stream:
                yield stream
            return
        target = Path(os.path.realpath(output))
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror}") from None
    try:
        os.chmod(fd, _new_file_mode(target))
        with os.fdopen(fd, "w", encoding="utf-8", newline="", errors="replace") as handle:
            yield handle
        os.replace(temporary, target)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _new_file_mode(target: Path) -> int:
    """The replaced file's permissions, else what ``open`` would give a new file (mkstemp's are 0600)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _registry(tasks_dir: Optional[Path]) -> TaskRegistry:
    """The tasks of a command without an endpoint: --tasks-dir, else SUMMARIZER_TASKS_DIR or the config file's."""
    from .catalog import default_registry
    from .config import load_settings

    return default_registry(load_settings(tasks_dir=tasks_dir).tasks_dirs)


class _StdoutText:
    """A text stream over ``_out``: a closed or full stdout is exit 2, not a traceback."""

    def write(self, text: str) -> int:
        _out(text.encode("utf-8", "replace").decode("utf-8"), end="")  # a lone surrogate in a record: '?', as in a file
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)


@app.command(short_help="Print the JSON Schema of a task's output.")
def schema(
    name: Annotated[str, typer.Argument(help="The task (brief, events, or any registered task).",
                                        metavar="TASK")] = "events",
    answer: Annotated[bool, typer.Option("--answer", help="The schema a model answers in (what structured "
                                         "output is given), not the one results carry.")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --answer: keep the length limits OpenAI strict "
                                       "mode does not accept.")] = False,
    tasks_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="A folder of user-defined tasks. Env: SUMMARIZER_TASKS_DIR.")] = None,
) -> None:
    """Print the JSON Schema of a task's value (what results carry), or with --answer what a model is asked for."""
    from .schemas import strict_schema

    with _exit_codes():
        spec = _registry(tasks_dir).get(name)
        if answer and spec.schema is not None:
            document = spec.schema if full or not spec.strict_schema else strict_schema(spec.schema)
        elif spec.answer_model is None and spec.schema is not None:
            document = spec.schema  # the answer is the value (a task defined by a JSON Schema)
        else:
            document = spec.value_model.model_json_schema()
        _out(json.dumps(document, indent=2))


PromptsDirOpt = Annotated[Optional[Path], typer.Option(
    metavar="DIR", help="Directory whose <name>.toml override the built-in prompts.")]


@prompts_app.command("list", short_help="List the prompt templates.")
def prompts_list(prompts_dir: PromptsDirOpt = None) -> None:
    """List the prompt templates with their versions."""
    with _exit_codes():
        from .prompts import PromptLibrary

        lines = [f"{t.id:<24} {t.description}  [{t.origin}]" for t in PromptLibrary(prompts_dir).all()]
        _out("\n".join(lines))


@prompts_app.command("show", short_help="Show one prompt template.")
def prompts_show(
    name: Annotated[str, typer.Argument(help="Template name, e.g. brief.", metavar="NAME")],
    prompts_dir: PromptsDirOpt = None,
) -> None:
    """Show one template: version, parameters, system, user and re-ask text."""
    with _exit_codes():
        from .prompts import PromptLibrary

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
    _refuse_broken_tasks()
    # pypdf logs every repair it makes to a damaged file ("incorrect startxref pointer"): not a reader's business.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def _refuse_broken_tasks() -> None:
    """A task plugin that cannot load is one line and exit 3 for every command (never a task silently missing)."""
    if _TASKS_PROBLEM:
        _err(f"error: {_TASKS_PROBLEM[0]}")
        raise typer.Exit(_TASKS_PROBLEM[0].exit_code)


def main() -> None:
    try:
        _refuse_broken_tasks()  # before --help and --version too: the callback does not run for those
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    app(prog_name="summarizer")


if __name__ == "__main__":  # pragma: no cover
    main()
