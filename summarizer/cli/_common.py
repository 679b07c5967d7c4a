"""Shared by the commands: the Typer apps, the endpoint options, output, errors and exit codes, option types."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
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

from ..errors import ConfigError, OutputError, SummarizerError

if TYPE_CHECKING:  # imported where a command needs them: `summarizer --help` stays fast
    from ..client import Summarizer
    from ..registry import TaskRegistry
    from ..schemas import Record

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


def _endpoint_values(endpoint: dict[str, Any], *, given_only: bool = False) -> dict[str, Any]:
    """The endpoint options as plain values (choices as their strings); ``given_only``: the ones set on the line."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in endpoint.items()
            if not given_only or v not in (None, False)}


def _summarizer(endpoint: dict[str, Any], **extra: Any) -> Summarizer:
    """A Summarizer from the endpoint options a command was given (unset ones left to env/config)."""
    from ..client import Summarizer
    from ..otel import observer_from_env

    settings = _endpoint_values(endpoint)
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
            from ..bulk import failure

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


def _parts() -> Callable[[Any], None]:
    """A long document's parts, as they are read, on stderr."""
    from ..progress import PartProgress

    return PartProgress()


def _bulk_exit(complete: bool, unsupported: int, fail_on_warnings: bool) -> int:
    """0 every document ok · 1 some failed · 6 none failed, some unsupported (with --fail-on-warnings)."""
    if not complete:
        return 1
    return UNSUPPORTED_EXIT if fail_on_warnings and unsupported else 0


def _registry(tasks_dir: Optional[Path]) -> TaskRegistry:
    """The tasks of a command without an endpoint: --tasks-dir, else SUMMARIZER_TASKS_DIR or the config file's."""
    from ..catalog import default_registry
    from ..config import load_settings

    return default_registry(load_settings(tasks_dir=tasks_dir).tasks_dirs)
