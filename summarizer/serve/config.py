"""How the service runs: where it listens, who gets in, how much each may ask.

Tokens come from ``SUMMARIZER_SERVICE_TOKENS`` (comma-separated) or a tokens
file (one per line, ``#`` comments). They are kept as ``SecretStr``: never
printed, logged or written anywhere.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from ..errors import ConfigError

__all__ = ["ServiceConfig", "default_data_dir", "load_tokens"]


def default_data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path("summarizer") / "service"


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tokens: tuple[SecretStr, ...] = ()
    no_auth: bool = False
    data_dir: Path = field(default_factory=default_data_dir)
    max_body_bytes: int = 2 * 1024 * 1024  # one document request
    max_job_bytes: int = 64 * 1024 * 1024  # one job upload
    max_in_flight: int = 64  # model requests at once, sync requests and jobs together
    max_pending: int = 256  # sync requests waiting or running before the next gets 429
    max_jobs: int = 16  # jobs queued, running or being uploaded before the next gets 429
    max_jobs_per_token: int = 4  # of those, for one token: fewer than max_jobs, so no tenant shuts out the rest
    job_concurrency: int = 16  # documents in flight per job
    rpm_per_token: float | None = 600.0
    request_timeout: float = 120.0
    allow_urls: bool = False
    parse_timeout: float = 10.0  # seconds of parsing (HTML, PDF) per document before "document too complex"
    parse_workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    database_url: SecretStr | None = None  # PostgreSQL (jobs shared by replicas and workers); None: SQLite in data_dir
    worker: bool = True  # with a database: run documents in this process too (--no-worker: web only)
    rpm: float | None = None  # the provider's requests a minute, for every job (shared with a database)
    tpm: float | None = None  # the provider's tokens a minute
    lease_seconds: float = 30.0  # how long a worker's claim on documents lasts without a heartbeat

    def check(self) -> None:
        """Refuse what would be unsafe: an open service without tokens on a non-loopback address."""
        if not self.tokens and not self.no_auth:
            raise ConfigError("no service tokens: set SUMMARIZER_SERVICE_TOKENS or --tokens-file, "
                              "or pass --no-auth to serve without them on loopback")
        if self.no_auth and not _is_loopback(self.host):
            raise ConfigError(f"--no-auth is for loopback only; {self.host} is reachable from other machines: "
                              "set SUMMARIZER_SERVICE_TOKENS or --tokens-file")
        if self.tokens and self.no_auth:
            raise ConfigError("--no-auth with tokens configured: choose one")
        if self.database_url is None and not self.worker:
            raise ConfigError("--no-worker needs --database-url: with SQLite, jobs run only in the web process")
        if len(self.tokens) > 1 and self.max_jobs_per_token >= self.max_jobs:
            raise ConfigError(f"--max-jobs-per-token {self.max_jobs_per_token} must be below --max-jobs "
                              f"{self.max_jobs}, or one token could take every job place")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_tokens(tokens_file: Path | None) -> tuple[SecretStr, ...]:
    """The service tokens: from the file if given, else from SUMMARIZER_SERVICE_TOKENS."""
    if tokens_file is not None:
        try:
            lines = tokens_file.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read tokens file {tokens_file}: {getattr(exc, 'strerror', None) or exc}") from None
        raw = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    else:
        raw = [t.strip() for t in os.environ.get("SUMMARIZER_SERVICE_TOKENS", "").split(",") if t.strip()]
    for token in raw:
        if len(token) < 16 or not token.isascii() or any(c.isspace() for c in token):
            raise ConfigError("a service token must be at least 16 printable ASCII characters without spaces")
    return tuple(SecretStr(t) for t in dict.fromkeys(raw))
