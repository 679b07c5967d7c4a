"""Which backend the settings ask for: built in (openai, local) or a plugin's, with the retry policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProviderError, SummarizerError, UsageError
from .base import Backend, Completion, Message, OutputMode
from .layer import Attempt, Layer
from .retry import RetryPolicy, Retrying, Sleep

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["NOTHING_CONFIGURED", "PLUGIN_GROUP", "from_settings", "make_backend", "retry_policy"]

NOTHING_CONFIGURED = (
    "no model endpoint configured: set OPENAI_API_KEY to use OpenAI, or SUMMARIZER_BASE_URL and "
    "SUMMARIZER_MODEL (or --base-url/--model) for any OpenAI-compatible server"
)


def make_backend(settings: Settings, *, sleep: Sleep | None = None) -> Backend:
    """The backend the settings ask for, with their retry policy: ready for single calls."""
    return Retrying(from_settings(settings), retry_policy(settings, sleep=sleep))


def retry_policy(settings: Settings, *, sleep: Sleep | None = None) -> RetryPolicy:
    policy = RetryPolicy(max_attempts=settings.max_attempts, max_wait=settings.max_retry_wait)
    return RetryPolicy(policy.max_attempts, policy.max_wait, sleep) if sleep else policy


def from_settings(settings: Settings) -> Backend:
    """The bare backend (one attempt per call) the settings ask for, or ConfigError saying what to set.

    ``auto``: an endpoint when one is configured (base URL or API key), else the
    embedded local model when installed.
    """
    choice = settings.backend
    if choice not in _FACTORIES and choice != "auto":
        return _plugin(choice)(settings)
    if choice == "auto":
        choice = "openai" if settings.endpoint_configured or not _local_available() else "local"
        if choice == "openai" and not settings.endpoint_configured:
            from .local import install_hint

            raise ConfigError(f"{NOTHING_CONFIGURED}; or run offline with the embedded model after `{install_hint()}`")
    return _FACTORIES[choice](settings)


def _local_available() -> bool:
    from . import local

    return local.local_available()


def _openai(settings: Settings) -> Backend:
    from .openai import OpenAIBackend

    if not settings.endpoint_configured:
        raise ConfigError(NOTHING_CONFIGURED)
    return OpenAIBackend(
        model=settings.resolved_model or "", base_url=settings.endpoint,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None, timeout=settings.timeout,
        output_mode=OutputMode(settings.output_mode), temperature=settings.temperature,
        server_grammar=settings.server_grammar,
    )


def _local(settings: Settings) -> Backend:
    from .local import LocalBackend

    return LocalBackend(model_path=settings.model_path, context_tokens=settings.context_tokens,
                        temperature=settings.temperature)


_FACTORIES: dict[str, Callable[[Settings], Backend]] = {"openai": _openai, "local": _local}
PLUGIN_GROUP = "summarizer.backends"


def _plugin(name: str) -> Callable[[Settings], Backend]:
    """The backend factory an installed plugin registers under ``name`` (entry point group summarizer.backends).

    The entry point is a callable taking Settings and returning a Backend (a Backend subclass will do).
    """
    from importlib import metadata

    found = {point.name: point for point in metadata.entry_points(group=PLUGIN_GROUP)}
    if name not in found:
        known = ", ".join(["auto", *_FACTORIES, *sorted(found)])
        raise UsageError(f"no backend named {name!r}; known: {known} (plugins add theirs through the "
                          f"{PLUGIN_GROUP} entry points)")
    try:
        factory = found[name].load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin is one line, never a traceback
        raise ConfigError(f"backend plugin {name} ({found[name].value}) failed to load: "
                          f"{type(exc).__name__}: {exc}") from None
    if not callable(factory):
        raise ConfigError(f"backend plugin {name} ({found[name].value}) is not callable")

    def made(settings: Settings) -> Backend:
        try:
            backend = factory(settings)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin that cannot start is one line, never a traceback
            raise ConfigError(f"backend plugin {name} could not start: {type(exc).__name__}: {exc}") from None
        if not isinstance(backend, Backend):
            raise ConfigError(f"backend plugin {name} made a {type(backend).__name__}, not a summarizer.Backend")
        return _Guarded(backend, name)

    return made


class _Guarded(Layer):
    """A plugin's backend whose bugs are the provider's failures (exit 4, an error record), not tracebacks."""

    def __init__(self, inner: Backend, name: str) -> None:
        super().__init__(inner)
        self.name = name

    async def wrap(self, attempt: Attempt, messages: list[Message], params: Mapping[str, Any] | None) -> Completion:
        try:
            return await attempt()
        except SummarizerError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ProviderError(f"backend plugin {self.name} failed: {type(exc).__name__}: {exc}") from None
