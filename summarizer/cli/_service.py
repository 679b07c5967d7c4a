"""`summarizer serve`, `summarizer worker` and the `summarizer jobs` commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import ConfigError
from ._common import (
    _endpoint_values, _err, _exit_codes, _out, app, endpoint_options, jobs_app,
)


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
    from ..config import load_settings

    with _exit_codes():
        from ..serve import ServiceConfig, load_tokens, run

        settings = load_settings(**_endpoint_values(endpoint, given_only=True))
        directory = _data_dir(data_dir)
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
    from ..config import load_settings

    with _exit_codes():
        from ..serve import ServiceConfig, run_worker

        settings = load_settings(**_endpoint_values(endpoint, given_only=True))
        directory = _data_dir(data_dir)
        config = ServiceConfig(data_dir=directory, no_auth=True, database_url=_database_url(database_url),
                               job_concurrency=concurrency, max_in_flight=max(concurrency, 1), rpm=rpm, tpm=tpm,
                               lease_seconds=lease_seconds, parse_timeout=parse_timeout)
        run_worker(config, settings)


def _data_dir(flag: Path | None) -> Path:
    """--data-dir, else SUMMARIZER_DATA_DIR, else the user data dir."""
    if flag is not None:
        return flag
    if os.environ.get("SUMMARIZER_DATA_DIR"):
        return Path(os.environ["SUMMARIZER_DATA_DIR"])
    from ..serve import default_data_dir

    return default_data_dir()


def _database_url(flag: str | None) -> Any:
    """--database-url, else SUMMARIZER_DATABASE_URL; checked (one line, exit 3) and kept as a secret."""
    from pydantic import SecretStr

    url = flag or os.environ.get("SUMMARIZER_DATABASE_URL") or None
    if url is None:
        return None
    from ..serve.pg.db import check_url

    return SecretStr(check_url(url))


JobIdArg = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (job_…).")]


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
        from ..serve.pg import admin

        jobs = admin.list_jobs(url, owner=owner, status=status, limit=limit)
    _out(admin.render(jobs, as_json=as_json, url=url))


@jobs_app.command("show", short_help="Show one job.")
def jobs_show(
    job_id: JobIdArg,
    database_url: DatabaseOpt = None,
) -> None:
    """One job as the API shows it (counts, usage, state), with its documents' leases."""
    with _exit_codes():
        url = _required_database(database_url)
        from ..serve.pg import admin

        _out(json.dumps(admin.show_job(url, job_id), indent=2))


@jobs_app.command("cancel", short_help="Cancel a queued or running job.")
def jobs_cancel(
    job_id: JobIdArg,
    database_url: DatabaseOpt = None,
) -> None:
    """Cancel a job: workers stop its documents; what it finished stays readable."""
    with _exit_codes():
        url = _required_database(database_url)
        from ..serve.pg import admin

        status = admin.cancel_job(url, job_id)
    _err(f"{job_id}: {status}")


def _required_database(flag: str | None) -> str:
    url = _database_url(flag)
    if url is None:
        raise ConfigError("summarizer jobs needs --database-url (or SUMMARIZER_DATABASE_URL): postgresql://…")
    return str(url.get_secret_value())
