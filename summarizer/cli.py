"""The ``summarizer`` command: parse flags, call the library, print, map errors to exit codes.

Exit codes: 0 ok · 1 some bulk items failed · 2 bad input or usage ·
3 configuration · 4 provider failing · 5 model output invalid after re-asks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__
from .client import Summarizer
from .documents import read_document
from .errors import SummarizerError
from .prompts import PromptLibrary
from .schemas import Brief, event_report_schema

app = typer.Typer(
    name="summarizer",
    help="Grounded one-paragraph briefs and structured event reports from documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include the API key
    rich_markup_mode=None,
)
prompts_app = typer.Typer(help="List and show the prompt templates.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")

_PANEL_ENDPOINT = "Endpoint"


def _parse_words(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    low, sep, high = value.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()) or not 0 < int(low) <= int(high):
        raise typer.BadParameter("expected MIN-MAX with 0 < MIN <= MAX, e.g. 60-90")
    return int(low), int(high)


DocumentArg = Annotated[str, typer.Argument(help="A text, Markdown or HTML file; - reads standard input.",
                                            show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the Result envelope (value, usage, warnings) as JSON.")]
LanguageOpt = Annotated[Optional[str], typer.Option(help="Output language (ISO 639-1 code or name); default: the document's.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", envvar=None, rich_help_panel=_PANEL_ENDPOINT,
                                                 help="Model name. Env: SUMMARIZER_MODEL.")]
BaseUrlOpt = Annotated[Optional[str], typer.Option(rich_help_panel=_PANEL_ENDPOINT,
                                                   help="OpenAI-compatible base URL. Env: SUMMARIZER_BASE_URL, OPENAI_BASE_URL.")]
ApiKeyOpt = Annotated[Optional[str], typer.Option(rich_help_panel=_PANEL_ENDPOINT, show_default=False,
                                                  help="API key. Env: OPENAI_API_KEY (prefer it: flags show up in `ps`).")]
TimeoutOpt = Annotated[Optional[float], typer.Option(rich_help_panel=_PANEL_ENDPOINT, help="Seconds per request [default: 60].")]
AttemptsOpt = Annotated[Optional[int], typer.Option(rich_help_panel=_PANEL_ENDPOINT, help="Transport attempts per request [default: 5].")]
ReasksOpt = Annotated[Optional[int], typer.Option(help="Re-asks after invalid output [default: 2].")]
ContextOpt = Annotated[Optional[int], typer.Option(help="Context window in tokens; longer documents are map-reduced [default: 8192].")]
PromptsDirOpt = Annotated[Optional[Path], typer.Option(help="Directory whose <name>.toml override the built-in prompts.")]


class BackendChoice(str, Enum):
    auto = "auto"
    openai = "openai"
    local = "local"


BackendOpt = Annotated[Optional[BackendChoice], typer.Option(
    rich_help_panel=_PANEL_ENDPOINT, show_default=False,
    help="openai (any OpenAI-compatible endpoint) or local (embedded model). Default auto: "
         "an endpoint if one is configured, else the local model if installed. Env: SUMMARIZER_BACKEND.")]


ServerGrammarOpt = Annotated[bool, typer.Option(
    "--server-grammar", rich_help_panel=_PANEL_ENDPOINT,
    help="Send GBNF grammars with plain-text requests (llama.cpp servers). Env: SUMMARIZER_SERVER_GRAMMAR.")]


_ENDPOINT_OPTIONS = ("backend", "server_grammar", "model", "base_url", "api_key", "timeout",
                     "max_attempts", "max_reasks", "context_tokens", "prompts_dir")


def _summarizer(options: dict[str, Any]) -> Summarizer:
    """A Summarizer from the endpoint options a command was given (unset ones left to env/config)."""
    settings = {k: options[k] for k in _ENDPOINT_OPTIONS if options.get(k) not in (None, False)}
    if "backend" in settings:
        settings["backend"] = settings["backend"].value
    s = Summarizer(**settings)
    notice = getattr(s.backend, "notice", None)  # the local model says what it is, once
    if notice:
        typer.echo(f"summarizer: {notice}", err=True)
    return s


@contextmanager
def _exit_codes() -> Iterator[None]:
    """One line on stderr and the documented exit code for every SummarizerError."""
    try:
        yield
    except SummarizerError as exc:
        typer.echo(f"summarizer: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("summarizer: interrupted", err=True)
        raise typer.Exit(130) from None


def _print_result(result: Any, as_json: bool, render_value: Any) -> None:
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    for warning in result.warnings:
        typer.echo(f"summarizer: warning: {warning}", err=True)
    typer.echo(render_value(result.value))


@app.command()
def brief(
    document: DocumentArg,
    words: Annotated[Optional[str], typer.Option(help="Word range MIN-MAX [default: 40-120].", metavar="MIN-MAX")] = None,
    language: LanguageOpt = None,
    strict: Annotated[bool, typer.Option(help="Treat names and numbers absent from the source as errors (re-ask), not warnings.")] = False,
    as_json: JsonOpt = False,
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    server_grammar: ServerGrammarOpt = False,
    timeout: TimeoutOpt = None, max_attempts: AttemptsOpt = None, max_reasks: ReasksOpt = None,
    context_tokens: ContextOpt = None, prompts_dir: PromptsDirOpt = None,
) -> None:
    """Write a one-paragraph brief of DOCUMENT."""
    word_range = _parse_words(words)
    with _exit_codes():
        doc = read_document(document)  # bad input is reported before any backend is set up
        with _summarizer(locals()) as s:
            result = s.brief(doc, words=word_range, language=language, strict=strict)
        _print_result(result, as_json, lambda value: value.text)


@app.command()
def events(
    document: DocumentArg,
    language: LanguageOpt = None,
    as_json: JsonOpt = False,
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    server_grammar: ServerGrammarOpt = False,
    timeout: TimeoutOpt = None, max_attempts: AttemptsOpt = None, max_reasks: ReasksOpt = None,
    context_tokens: ContextOpt = None, prompts_dir: PromptsDirOpt = None,
) -> None:
    """Extract an event report (JSON) from DOCUMENT, every event backed by verbatim quotes."""
    with _exit_codes():
        doc = read_document(document)
        with _summarizer(locals()) as s:
            result = s.events(doc, language=language)
        _print_result(result, as_json, lambda value: value.model_dump_json(indent=2))


class TaskChoice(str, Enum):
    events = "events"
    brief = "brief"


@app.command()
def bulk(
    source: Annotated[str, typer.Argument(help="JSONL file ({\"id\": .., \"text\": ..} per line), a folder "
                                               "of .txt/.md/.html files, or - for JSONL on stdin.", show_default=False)],
    task: Annotated[TaskChoice, typer.Option(help="What to produce for each document.")] = TaskChoice.events,
    out: Annotated[str, typer.Option("--out", "-o", help="JSONL output file (resumed if it exists), or - for stdout.")] = "-",
    id_field: Annotated[str, typer.Option(help="JSONL field holding the id.")] = "id",
    text_field: Annotated[str, typer.Option(help="JSONL field holding the text.")] = "text",
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="Documents in flight at once.")] = 16,
    rpm: Annotated[Optional[float], typer.Option(min=1, help="Requests-per-minute limit.")] = None,
    tpm: Annotated[Optional[float], typer.Option(min=1, help="Tokens-per-minute limit (estimated, corrected by usage).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo only the error records of --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")] = False,
    words: Annotated[Optional[str], typer.Option(help="Brief word range MIN-MAX [default: 40-120].", metavar="MIN-MAX")] = None,
    language: LanguageOpt = None,
    strict: Annotated[bool, typer.Option(help="Brief: names and numbers absent from the source are errors.")] = False,
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    server_grammar: ServerGrammarOpt = False,
    timeout: TimeoutOpt = None, max_attempts: AttemptsOpt = None, max_reasks: ReasksOpt = None,
    context_tokens: ContextOpt = None, prompts_dir: PromptsDirOpt = None,
) -> None:
    """Run a task over many documents into JSONL: concurrent, rate-limited, cached, resumable.

    Exit 0 when every document is ok, 1 when some failed (their error records are in the output).
    """
    from .progress import BulkProgress, print_summary

    word_range = _parse_words(words)
    if retry_failed and out == "-":
        raise typer.BadParameter("--retry-failed needs --out FILE", param_hint="--retry-failed")
    with _exit_codes():
        with _summarizer(locals()) as s:
            with BulkProgress(source, enabled=not quiet) as progress:
                summary = s.bulk_to_jsonl(
                    source, out, task.value, id_field=id_field, text_field=text_field,
                    retry_failed=retry_failed, on_result=progress.update, concurrency=concurrency,
                    rpm=rpm, tpm=tpm, cache=not no_cache, words=word_range, language=language, strict=strict,
                )
    if as_json:
        typer.echo(json.dumps(summary.as_dict()), err=out == "-")
    elif not quiet:
        print_summary(summary)
    raise typer.Exit(1 if summary.failed else 0)


@app.command("eval")
def eval_(
    case: Annotated[Optional[list[str]], typer.Option("--case", help="Run only this case (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard and checks as JSON.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Score the configured endpoint instead of the recordings.")] = False,
    record: Annotated[bool, typer.Option("--record", help="Call the configured endpoint and save its answers as the recordings.")] = False,
    evals_dir: Annotated[Optional[Path], typer.Option(help="The eval set [default: ./evals].")] = None,
) -> None:
    """Score prompts, parsing and validation on the offline eval set (recorded responses).

    Exit 0 when every deliberate flaw was caught and every threshold held, 1 otherwise.
    """
    from .evaluation import default_evals_dir, run_eval
    from .progress import print_scorecard

    with _exit_codes():
        report = run_eval(evals_dir or default_evals_dir(), names=case, live=live, record=record)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_scorecard(report)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def schema(
    name: Annotated[TaskChoice, typer.Argument(help="Which output to describe.")] = TaskChoice.events,
    full: Annotated[bool, typer.Option("--full", help="Keep length limits that OpenAI strict mode does not accept.")] = False,
) -> None:
    """Print the JSON Schema of an output (strict-mode compatible by default)."""
    document = event_report_schema(strict=not full) if name is TaskChoice.events else Brief.model_json_schema()
    typer.echo(json.dumps(document, indent=2))


@prompts_app.command("list")
def prompts_list(prompts_dir: PromptsDirOpt = None) -> None:
    """List the prompt templates with their versions."""
    with _exit_codes():
        for template in PromptLibrary(prompts_dir).all():
            typer.echo(f"{template.id:<24} {template.description}  [{template.origin}]")


@prompts_app.command("show")
def prompts_show(
    name: Annotated[str, typer.Argument(help="Template name, e.g. brief.")],
    prompts_dir: PromptsDirOpt = None,
) -> None:
    """Show one template: version, parameters, system, user and re-ask text."""
    with _exit_codes():
        t = PromptLibrary(prompts_dir).get(name)
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        sections = [f"# {t.id} — {t.description}", f"# from: {t.origin}", f"# params: {params}",
                    "", "## system", t.system.strip(), "", "## user", t.user.strip(), "", "## reask", t.reask.strip()]
        typer.echo("\n".join(sections))


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
    sys.exit(main())
