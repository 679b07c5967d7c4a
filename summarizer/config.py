"""Settings: flags > environment > config file > defaults.

The config file is ``$SUMMARIZER_CONFIG``, else ``./summarizer.toml``, else
``summarizer.toml`` in the user config directory. Keys are the field names
below (``model = "gpt-4o-mini"``, ``base_url = "http://localhost:8000/v1"``);
an unknown key is an error, not a silent no-op.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError, UsageError

__all__ = [
    "DEFAULT_OPENAI_MODEL", "OPENAI_URL", "Settings", "check_api_key", "check_base_url", "config_file_path",
    "load_settings", "safe_url",
]

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
OutputModeName = Literal["auto", "json_schema", "json_object_schema", "json_object", "text"]


class Settings(BaseSettings):
    """Everything a run needs to know; secrets stay in ``SecretStr``."""

    model_config = SettingsConfigDict(
        env_prefix="SUMMARIZER_", case_sensitive=False, extra="ignore",
        populate_by_name=True, validate_default=True,
    )

    backend: str = Field("auto", pattern=r"^[a-z][a-z0-9_.-]{0,39}$",
                         description="auto, openai, local, or a backend an installed plugin registers.")
    model: str | None = None
    base_url: str | None = Field(
        None, validation_alias=AliasChoices("SUMMARIZER_BASE_URL", "OPENAI_BASE_URL", "base_url"))
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SUMMARIZER_API_KEY", "OPENAI_API_KEY", "api_key"))
    timeout: float = Field(60.0, gt=0, description="Seconds per request before it counts as failed.")
    max_attempts: int = Field(5, ge=1, le=20, description="Transport attempts per request.")
    max_retry_wait: float = Field(60.0, ge=0, description="Longest Retry-After we honour, seconds.")
    max_reasks: int = Field(2, ge=0, le=10, description="Re-asks after invalid model output.")
    context_tokens: int = Field(8192, ge=1024, description="Model context window, tokens.")
    chunk_concurrency: int = Field(4, ge=1, le=64, description="Parallel requests for the parts of one long document.")
    temperature: float | None = Field(None, ge=0, le=2)
    output_mode: OutputModeName = "auto"
    server_grammar: bool = Field(
        False, description="Send GBNF grammars with plain-text requests (llama.cpp servers accept `grammar`).")
    prompts_dir: Path | None = None
    tasks_dir: Path | None = Field(None, description="A folder of user-defined tasks (<name>.toml + <name>.schema.json).")
    model_path: Path | None = Field(None, description="GGUF file for the local backend; default: the bundled model.")

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value, error=ValueError)

    @field_validator("tasks_dir")
    @classmethod
    def _existing_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"tasks directory {value} does not exist" if not value.exists()
                             else f"tasks directory {value} is not a directory")
        return value

    @field_validator("prompts_dir")
    @classmethod
    def _existing_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"prompts directory {value} does not exist" if not value.exists()
                             else f"prompts directory {value} is not a directory")
        return value

    @field_validator("api_key")
    @classmethod
    def _valid_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_api_key(value.get_secret_value(), error=ValueError)
        return value

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
            sources.append(_ConfigFile(settings_cls, path))
        return tuple(sources)

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (no credentials in it)."""
        return (self.base_url or OPENAI_URL).rstrip("/")

    @property
    def endpoint_configured(self) -> bool:
        return self.base_url is not None or self.api_key is not None

    @property
    def tasks_dirs(self) -> tuple[Path, ...]:
        """The folders whose tasks join the built-in ones."""
        return (self.tasks_dir,) if self.tasks_dir is not None else ()

    @property
    def resolved_model(self) -> str | None:
        if self.model:
            return self.model
        return DEFAULT_OPENAI_MODEL if self.endpoint == OPENAI_URL else None


class _ConfigFile(PydanticBaseSettingsSource):
    """The TOML config file, its keys checked against the settings."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.data = _read_config(path)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (SUMMARIZER_CONFIG names it)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    known = set(Settings.model_fields)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"config file {path}: unknown key {key!r}{hint}")
    return data


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
    environment or the config file; ``0`` is a value like any other. A bad
    override is the caller's mistake (UsageError, exit 2); a bad value from the
    environment or the config file is a ConfigError (exit 3) naming where it came from.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = _field_name(str(first["loc"][0])) if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        if name in given:
            raise UsageError(f"invalid {name}: {message}") from None
        raise ConfigError(f"invalid setting {name} ({_origin(name)}): {message}") from None


def _aliases(name: str) -> list[str]:
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    return [c for c in alias.choices if isinstance(c, str)] if isinstance(alias, AliasChoices) else []


def _field_name(loc: str) -> str:
    """The field an error is about: pydantic names a field with aliases by its first alias."""
    return next((name for name in Settings.model_fields if loc == name or loc in _aliases(name)), loc)


def _origin(name: str) -> str:
    """Which environment variable (in the order they are read) or config file a bad value came from."""
    env = [n for n in _aliases(name) if n.isupper()] or [f"SUMMARIZER_{name.upper()}"]
    present = {k.upper() for k in os.environ}
    found = next((n for n in env if n in present), None)
    return f"from {found}" if found else f"from {config_file_path() or 'the config file'}"


def check_base_url(url: str, *, error: type[Exception] = ConfigError) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port; else ``error`` saying so."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises for a port out of range
    except ValueError as exc:
        raise error(f"base URL {safe_url(url)!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise error(f"base URL {safe_url(url)!r} is not an http(s) URL like http://localhost:8000/v1")
    return url.strip()


def check_api_key(key: str, *, error: type[Exception] = ConfigError) -> str:
    """``key`` if it can go into an HTTP header; never echoes the key itself."""
    if not key or not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise error("the API key contains spaces, line breaks or non-ASCII characters; check how it was set")
    return key


def safe_url(url: str) -> str:
    """``url`` without user:password or query string, fit for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return url.split("?", 1)[0].rsplit("@", 1)[-1][:80]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
