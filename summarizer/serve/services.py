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
from .auth import RateWindow, TokenCheck
from .config import ServiceConfig
from .metrics import Metrics
from .parsing import ParsePool

if TYPE_CHECKING:
    from .jobs import JobManager, JobStore

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
    store: JobStore
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness = field(default_factory=Readiness)
    manager: JobManager | None = None  # made in the app's lifespan, on the running loop

    def __post_init__(self) -> None:
        self.tokens = TokenCheck(self.config.tokens)
        self.rates = RateWindow(self.config.rpm_per_token)
        self.door = Door(self.config.max_pending)
        self.pool = ParsePool(self.config.parse_workers, self.config.parse_timeout)

    @property
    def jobs(self) -> JobManager:
        if self.manager is None:
            raise RuntimeError("the job manager starts with the app")
        return self.manager
