"""One document through a task: a command per registered task, and `summarizer run TASK`."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from ..errors import SummarizerError
from ._common import (
    DocumentArg, FailOnWarningsOpt, FormatChoice, FormatOpt, JsonOpt, LanguageOpt, PublishedOpt, StreamOpt,
    StrictOpt, UNSUPPORTED_EXIT, VerifyOpt, WordsOpt, _TASK_OPTIONS, _err, _exit_codes, _json_on_failure,
    _log_retries, _out, _parse_date, _parse_words, _parts, _print_record, _summarizer, app, endpoint_options,
)


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
        from ..documents import read_document

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
            from ..export import markdown as as_markdown

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
    from ..catalog import default_registry

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


class _LivePrinter:
    """Deltas to stdout as they arrive; a re-ask starts over on a fresh line."""

    def __init__(self) -> None:
        self.column = 0

    def event(self, event: Any) -> None:
        from ..tasks import Reask

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
