"""One exception hierarchy; each class carries the CLI exit code it maps to.

The CLI prints ``str(error)`` as its one line, so messages say what is wrong
and what to do, and never contain an API key: ``redact`` masks one before any
text from a server reaches a message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .schemas import Usage

__all__ = [
    "ClusterError", "ConfigError", "InputError", "OutputError", "OutputValidationError", "ProviderError",
    "SummarizerError", "TransientError", "UsageError", "redact",
]


class SummarizerError(Exception):
    """Base of every error summarizer raises on purpose."""

    exit_code = 1
    code = "error"

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        # Usage spent before the failure, so a bulk record can still account for it.
        self.usage = usage


class InputError(SummarizerError):
    """The document is unreadable: binary, undecodable, empty, missing, too large."""

    exit_code = 2
    code = "input_error"


class UsageError(SummarizerError):
    """An argument or option is wrong: a bad word range, an unknown name, a file that is not ours."""

    exit_code = 2
    code = "usage_error"


class OutputError(SummarizerError):
    """The output cannot be written: a closed stdout, a full disk, a folder where a file should be."""

    exit_code = 2
    code = "output_error"


class ConfigError(SummarizerError):
    """No backend configured, a bad setting, or the endpoint rejected our credentials or model."""

    exit_code = 3
    code = "config_error"


class ProviderError(SummarizerError):
    """The endpoint was unreachable or kept failing after every transport retry."""

    exit_code = 4
    code = "provider_error"


class ClusterError(SummarizerError):
    """The Ray cluster failed mid-run (an actor, a node or the object store lost): what was written is kept."""

    exit_code = 4
    code = "cluster_error"


class TransientError(ProviderError):
    """One attempt failed in a way another attempt may not: 429, 5xx, timeouts, resets.

    ``what`` names the failure without the attempt count ("X answered HTTP 503"),
    so that the retry layer can say how many attempts it made.
    """

    def __init__(
        self, what: str, detail: str = "", *, status: int | None = None, retry_after: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(f"{what}: {detail}" if detail else what, usage=usage)
        self.what, self.detail = what, detail
        self.status, self.retry_after = status, retry_after

    def after(self, attempts: int) -> ProviderError:
        """The error to report once ``attempts`` attempts have all failed."""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return ProviderError(f"{self.what}{tries}" + (f": {self.detail}" if self.detail else ""), usage=self.usage)


class OutputValidationError(SummarizerError):
    """The model's output stayed invalid after every re-ask; the raw output is kept."""

    exit_code = 5
    code = "output_invalid"

    def __init__(
        self, message: str, *, raw_output: str | None = None, errors: list[str] | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, usage=usage)
        self.raw_output = raw_output
        self.errors = errors or []


_FRAGMENT = 6  # a run this long shared with a secret counts as (part of) the secret


def redact(text: str, secrets: list[str], mask: str = "***", *, whole_only: bool = False) -> str:
    """``text`` with every secret masked — whole, cut, or in another case.

    Servers echo keys in their errors, often shortened ("sk-proj-****abcd"): any
    word that shares a run of six characters with a secret is masked as well.
    ``whole_only`` masks whole secrets only, for a model's answers: a placeholder key
    ("sk-no-key-required") shares runs with ordinary words ("required").
    """
    for secret in filter(None, secrets):
        text = re.sub(re.escape(secret), mask, text, flags=re.IGNORECASE)
        if whole_only:
            continue
        fragments = {secret[i:i + _FRAGMENT].casefold() for i in range(len(secret) - _FRAGMENT + 1)}
        if fragments:
            text = re.sub(r"\S+", lambda m: _mask_word(m.group(0), fragments, mask), text)
    return text


def _mask_word(word: str, fragments: set[str], mask: str) -> str:
    folded = word.casefold()
    shared = any(folded[i:i + _FRAGMENT] in fragments for i in range(len(folded) - _FRAGMENT + 1))
    return mask if shared else word
