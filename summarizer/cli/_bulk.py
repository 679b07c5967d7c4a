"""`summarizer bulk` (direct, --via batch, --engine ray) and the `summarizer batch` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    EngineChoice, FailOnWarningsOpt, FinishChoice, JsonOpt, LanguageOpt, StrictOpt, VerifyOpt, ViaChoice, WordsOpt,
    _bulk_exit, _endpoint_values, _err, _exit_codes, _log_retries, _out, _parse_date, _parse_words, _summarizer,
    app, endpoint_options,
)


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
    from ..progress import BulkProgress, print_summary

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


def _on_ray(source: str, out: str, task: str, endpoint: dict[str, Any], *, actors: int, address: str | None,
           concurrency: int, rpm: float | None, tpm: float | None, quiet: bool, verbose: bool, as_json: bool,
           fail_on_warnings: bool = False, **options: Any) -> None:
    """`bulk --engine ray`: the same records, made by Ray Data actors; Ray itself silent unless --verbose."""
    from ..progress import BulkProgress, print_summary
    from ..ray import RayOptions, run

    settings = _endpoint_values(endpoint, given_only=True)
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
    from ..batch import BatchLimits
    from ..progress import BatchProgress, print_batch_summary

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
    from ..batch import batch_status
    from ..progress import print_batch_status

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
    from ..batch import collect_settings

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
