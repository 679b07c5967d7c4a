"""Who is calling: bearer tokens compared in constant time, named in logs only by a digest."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable

from pydantic import SecretStr

__all__ = ["ANONYMOUS", "RateWindow", "TokenCheck", "token_id"]

ANONYMOUS = "anonymous"


def token_id(token: str) -> str:
    """A short, stable name for a token (for logs, metrics and job ownership): never the token."""
    return "t-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:10]


class TokenCheck:
    """The configured tokens; ``identify`` returns the caller's token id, or None."""

    def __init__(self, tokens: tuple[SecretStr, ...]) -> None:
        self._tokens = [(t.get_secret_value().encode("utf-8"), token_id(t.get_secret_value())) for t in tokens]

    @property
    def open(self) -> bool:
        return not self._tokens

    def identify(self, authorization: str | None) -> str | None:
        if self.open:
            return ANONYMOUS
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        given = authorization[7:].strip().encode("utf-8", "replace")
        found = None
        for secret, name in self._tokens:  # every comparison runs: the time says nothing about which matched
            if hmac.compare_digest(given, secret):
                found = name
        return found


class RateWindow:
    """Requests per minute per caller over a sliding window; says how long to wait when over."""

    def __init__(self, per_minute: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    async def admit(self, caller: str) -> float | None:
        """None if ``caller`` may go ahead now, else the seconds until it may (a ``queue.Rates``)."""
        if not self.per_minute:
            return None
        now = self._clock()
        window = self._seen.setdefault(caller, deque())
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= self.per_minute:
            return max(0.1, 60.0 - (now - window[0]))
        window.append(now)
        return None
