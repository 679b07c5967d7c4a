"""One exception hierarchy; each class carries the CLI exit code it maps to.

The CLI prints ``str(error)`` as its one line, so messages say what is wrong
and what to do, and never contain an API key.
"""

from __future__ import annotations

from typing import Any


class SummarizerError(Exception):
    """Base of every error summarizer raises on purpose."""

    exit_code = 1
    code = "error"

    def __init__(self, message: str, *, usage: Any = None) -> None:
        super().__init__(message)
        self.message = message
        # Usage spent before the failure (a Usage), so bulk can still account for it.
        self.usage = usage


class InputError(SummarizerError):
    """The document is unreadable: binary, undecodable, empty, missing."""

    exit_code = 2
    code = "input_error"


class ConfigError(SummarizerError):
    """No backend configured, or the endpoint rejected our credentials or model."""

    exit_code = 3
    code = "config_error"


class ProviderError(SummarizerError):
    """The endpoint was unreachable or kept failing after every transport retry."""

    exit_code = 4
    code = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, usage: Any = None
    ) -> None:
        super().__init__(message, usage=usage)
        self.status = status


class OutputValidationError(SummarizerError):
    """The model's output stayed invalid after every re-ask; the raw output is kept."""

    exit_code = 5
    code = "output_invalid"

    def __init__(
        self,
        message: str,
        *,
        raw_output: str | None = None,
        errors: list[str] | None = None,
        usage: Any = None,
    ) -> None:
        super().__init__(message, usage=usage)
        self.raw_output = raw_output
        self.errors = errors or []
