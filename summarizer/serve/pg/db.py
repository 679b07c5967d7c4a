"""The PostgreSQL database: its URL (checked, masked), connections, and the schema's numbered migrations.

A URL is a secret when it carries a password: every message that names the
database shows ``mask(url)``, and every driver error is passed through
``redacted`` before anyone sees it. Migrations are numbered SQL steps; the
``schema_migrations`` table says which ran. They run under an advisory lock, so
that replicas starting together apply each step once, and a database whose
schema is newer than this code is refused (an older replica must not write
rows it does not understand).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import Any

from ...errors import ConfigError

__all__ = ["MIGRATIONS", "SchemaError", "check_url", "connect", "mask", "migrate", "redacted"]

log = logging.getLogger("summarizer")

_LOCK = 2_100_021  # pg_advisory_lock key of the migrations

# Timestamps are seconds since the epoch from the database's clock (``_NOW``): workers on
# several machines compare leases against one clock.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "jobs, documents, results, shared limits", """
CREATE TABLE jobs (
    id text PRIMARY KEY, owner text NOT NULL, task text NOT NULL DEFAULT '', options text NOT NULL DEFAULT '{}',
    status text NOT NULL, total integer NOT NULL DEFAULT 0, ok integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0, usage jsonb NOT NULL DEFAULT '{}', error text,
    created double precision NOT NULL, updated double precision NOT NULL, started double precision);
CREATE INDEX jobs_by_owner ON jobs (owner, created DESC, id DESC);
CREATE INDEX jobs_active ON jobs (created) WHERE status IN ('uploading', 'queued', 'running');
CREATE TABLE documents (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, line integer NOT NULL, raw bytea NOT NULL,
    dup boolean NOT NULL DEFAULT false, done boolean NOT NULL DEFAULT false, worker text,
    lease_until double precision, attempts integer NOT NULL DEFAULT 0, PRIMARY KEY (job_id, line));
CREATE INDEX documents_open ON documents (job_id, line) WHERE NOT done;
CREATE INDEX documents_leased ON documents (worker) WHERE worker IS NOT NULL AND NOT done;
CREATE TABLE results (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, line integer NOT NULL, doc_id text NOT NULL,
    status text NOT NULL, record bytea NOT NULL, PRIMARY KEY (job_id, line));
CREATE TABLE token_rates (owner text PRIMARY KEY, tat double precision NOT NULL);
CREATE TABLE pacers (
    name text PRIMARY KEY, next_request double precision NOT NULL DEFAULT 0,
    next_token double precision NOT NULL DEFAULT 0, slow_until double precision NOT NULL DEFAULT 0);
"""),
    (2, "jobs count the documents with unsupported content", """
ALTER TABLE jobs ADD COLUMN unsupported integer NOT NULL DEFAULT 0;
"""),
)

NOW = "extract(epoch from now())::float8"  # the statement's transaction time, as a double


class SchemaError(ConfigError):
    """The database's schema is one this code cannot use."""


def check_url(url: str) -> str:
    """``url`` if it names a PostgreSQL database, else one line (ConfigError, exit 3)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"--database-url {mask(url)}: expected postgresql://user:password@host:port/database")
    return url


def mask(url: str) -> str:
    """``url`` with its password (in the authority or as ``?password=``) shown as ***."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = urllib.parse.urlencode([(k, "***" if k.lower() == "password" else v)
                                    for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)],
                                   safe="/:*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        secret = parts.password or query.get("password")
    except ValueError:  # malformed (an unclosed "[" of an IPv6 host): libpq quotes it whole in its message
        secret = _raw_password(url)
    return urllib.parse.unquote(secret) if secret else None


def _raw_password(url: str) -> str | None:
    """The password of a URL urllib cannot parse: what lies between user: and the last @, or ?password=."""
    userinfo, at, _ = url.partition("://")[2].rpartition("@")
    query = re.search(r"[?&]password=([^&#]*)", url)
    return (userinfo.partition(":")[2] if at else None) or (query.group(1) if query else None)


def redacted(message: str, url: str) -> str:
    """A driver's message with ``url``'s password (raw or percent-encoded) taken out, on one line."""
    secret = _password(url)
    text = " ".join(str(message).split())
    if secret:
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text


def connect(url: str, **kwargs: Any) -> Any:
    """A synchronous connection (autocommit), or one line (ConfigError) saying why there is none."""
    import psycopg

    check_url(url)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5, **kwargs)
    except psycopg.Error as exc:
        raise ConfigError(f"cannot reach the database {mask(url)}: {redacted(str(exc), url)}; start it or fix "
                          "--database-url (SUMMARIZER_DATABASE_URL)") from None


def migrate(url: str) -> int:
    """Bring the schema up to date (each step once, whoever runs it first); return its version."""
    import psycopg

    with connect(url) as conn:
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                         "name text NOT NULL, applied double precision NOT NULL)")
            have = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
            latest = MIGRATIONS[-1][0]
            if have > latest:
                raise SchemaError(f"the database {mask(url)} has schema version {have}, newer than this summarizer "
                                  f"knows ({latest}): upgrade summarizer")
            for version, name, sql in MIGRATIONS:
                if version <= have:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(f"INSERT INTO schema_migrations VALUES (%s, %s, {NOW})", (version, name))
                log.info("database %s: applied migration %d (%s)", mask(url), version, name)
            return latest
        except psycopg.Error as exc:
            raise ConfigError(f"cannot prepare the database {mask(url)}: {redacted(str(exc), url)}") from None
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
