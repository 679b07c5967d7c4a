"""Settings: flags > environment > config file > defaults.

The config file is ``$SUMMARIZER_CONFIG``, else ``./summarizer.toml``, else
``summarizer.toml`` in the user config directory. Keys are the field names
below (``model = "gpt-4o-mini"``, ``base_url = "http://localhost:8000/v1"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError

__all__ = ["Settings", "config_file_path", "load_settings"]

_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything a run needs to know; secrets stay in ``SecretStr``."""

    model_config = SettingsConfigDict(
        env_prefix="SUMMARIZER_", case_sensitive=False, extra="ignore",
        populate_by_name=True, validate_default=True,
    )

    backend: Literal["auto", "openai", "local"] = "auto"
    model: str | None = None
    base_url: str | None = Field(
        None, validation_alias=_env("SUMMARIZER_BASE_URL", "OPENAI_BASE_URL", "base_url")
    )
    api_key: SecretStr | None = Field(
        None, validation_alias=_env("SUMMARIZER_API_KEY", "OPENAI_API_KEY", "api_key")
    )
    timeout: float = Field(60.0, gt=0, description="Seconds per request before it counts as failed.")
    max_attempts: int = Field(5, ge=1, le=20, description="Transport attempts per request.")
    max_retry_wait: float = Field(60.0, ge=0, description="Longest Retry-After we honour, seconds.")
    max_reasks: int = Field(2, ge=0, le=10, description="Re-asks after invalid model output.")
    context_tokens: int = Field(8192, ge=1024, description="Model context window, tokens.")
    concurrency: int = Field(4, ge=1, description="Parallel requests for the chunks of one long document.")
    temperature: float | None = None
    server_grammar: bool = Field(
        False, description="Send GBNF grammars with plain-text requests (llama.cpp servers accept `grammar`).")
    prompts_dir: Path | None = None
    model_path: Path | None = Field(None, description="GGUF file for the local backend; default: the bundled model.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (no credentials in it)."""
        return (self.base_url or _OPENAI_URL).rstrip("/")

    @property
    def resolved_model(self) -> str | None:
        if self.model:
            return self.model
        return DEFAULT_OPENAI_MODEL if self.endpoint == _OPENAI_URL else None


def config_file_path() -> Path | None:
    """The config file in force, if any."""
    explicit = os.environ.get("SUMMARIZER_CONFIG")
    if explicit:
        return Path(explicit)
    from platformdirs import user_config_path

    for candidate in (Path("summarizer.toml"), user_config_path("summarizer") / "summarizer.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, with ``overrides`` (CLI flags, keyword arguments) on top.

    ``None`` overrides are ignored so that an unset flag never hides the
    environment or the config file.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read config file {config_file_path()}: {exc}") from None
