"""What the service's routes share: one object on ``app.state``, handed to routes by a dependency.

The FastAPI full-stack template's way: routes are plain functions in routers,
and what they need (the summarizer, the job manager, the parse pool, metrics,
the token check) comes through dependencies — no closures over locals, no
state dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..client import Summarizer
from .admission import Door
from .auth import TokenCheck
from .config import ServiceConfig
from .metrics import Metrics
from .parsing import ParsePool

if TYPE_CHECKING:
    from .pg.worker import Worker
    from .queue import JobQueue, Rates

__all__ = ["Readiness", "Services"]


@dataclass
class Readiness:
    """Whether the backend can answer: configured, and (for the embedded model) loaded."""

    ready: bool = False
    problem: str | None = None  # why it cannot answer (a configuration error): /readyz and 503 say it


@dataclass
class Services:
    """Everything a request may need, made once when the app is made."""

    config: ServiceConfig
    summarizer: Summarizer
    pool: ParsePool
    queue: JobQueue  # SQLite (jobs.SqliteQueue) or PostgreSQL (pg.PgQueue): the routes see only the protocol
    rates: Rates  # per-token RPM: in memory (auth.RateWindow), or shared in the database (pg.PgRates)
    worker: Worker | None = None  # PostgreSQL: the in-process worker, unless --no-worker
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness = field(default_factory=Readiness)

    def __post_init__(self) -> None:
        self.tokens = TokenCheck(self.config.tokens)
        self.door = Door(self.config.max_pending)
