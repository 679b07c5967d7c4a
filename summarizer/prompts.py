"""Prompt templates are data: ``prompts/<name>.toml`` with system, user, re-ask
templates, a version and default parameters.

Templates use ``$name`` placeholders (``string.Template``) so JSON braces in a
prompt need no escaping. A directory given with ``--prompts-dir`` is searched
before the shipped templates. A template is checked when loaded: the wrong
types, a missing ``$document`` (``$parts`` for a ``*_combine`` template) or a
re-ask without ``$errors`` is a configuration error, never a brief of nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ._resources import shipped_dir
from .documents import estimate_tokens
from .errors import ConfigError, UsageError

__all__ = ["PromptLibrary", "PromptTemplate", "message_tokens"]


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    description: str
    system: str
    user: str
    reask: str
    params: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    grammar: str | None = None  # GBNF for grammar-bound decoders (plain-text tasks)
    format_guide: str | None = None  # the answer's shape, for servers that cannot be given the schema

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of everything that shapes the request: a cache key part that a silent edit changes."""
        blob = json.dumps([self.id, self.system, self.user, self.reask, self.params, self.grammar,
                           self.format_guide], sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def id(self) -> str:
        """What a Result records as its prompt version, e.g. ``brief@1``."""
        return f"{self.name}@{self.version}"

    @property
    def max_tokens(self) -> int:
        """The answer budget the template asks for."""
        return int(self.params.get("max_tokens", 1000))

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """The system and user messages, with ``values`` filled in."""
        return [
            {"role": "system", "content": self._fill(self.system, values)},
            {"role": "user", "content": self._fill(self.user, values)},
        ]

    def reask_message(self, **values: Any) -> dict[str, str]:
        return {"role": "user", "content": self._fill(self.reask, values)}

    def guide(self, **values: Any) -> str | None:
        """The format guide with ``values`` filled in, if the template has one."""
        return self._fill(self.format_guide, values) if self.format_guide else None

    def _fill(self, template: str, values: dict[str, Any]) -> str:
        try:
            return string.Template(template).substitute(values).strip()
        except KeyError as exc:
            raise ConfigError(f"prompt {self.id} ({self.origin}) uses unknown variable ${exc.args[0]}") from None
        except ValueError as exc:
            raise ConfigError(f"prompt {self.id} ({self.origin}): {exc}") from None


class _TemplateFile(BaseModel):
    """What a prompt TOML may contain."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: str | int
    description: str = ""
    system: str
    user: str
    reask: str
    params: dict[str, int | float | str | bool] = {}
    grammar: str | None = None
    format_guide: str | None = None

    @field_validator("system", "user", "reask")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value


class PromptLibrary:
    """Finds templates by name: an override directory first, then the shipped ones."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else None
        if self.directory is not None and not self.directory.is_dir():
            raise UsageError(f"prompts directory {self.directory} does not exist")  # an argument: exit 2
        self._cache: dict[str, PromptTemplate] = {}

    def get(self, name: str, default: PromptTemplate | None = None) -> PromptTemplate:
        """The template ``name``: the override directory's, else ``default`` (a task's own), else the shipped one."""
        if name not in self._cache:
            self._cache[name] = self._load(name, default)
        return self._cache[name]

    def names(self) -> list[str]:
        found = {p.name[:-5] for p in shipped_dir("prompts").iterdir() if p.name.endswith(".toml")}
        if self.directory is not None:
            found |= {p.stem for p in self.directory.glob("*.toml")}
        return sorted(found)

    def all(self) -> list[PromptTemplate]:
        return [self.get(name) for name in self.names()]

    def _load(self, name: str, default: PromptTemplate | None) -> PromptTemplate:
        if self.directory is not None and (self.directory / f"{name}.toml").is_file():
            path = self.directory / f"{name}.toml"
            return _parse(name, path.read_bytes(), str(path))
        if default is not None:
            return default
        packaged = shipped_dir("prompts") / f"{name}.toml"
        if not packaged.is_file():
            raise UsageError(f"no prompt named {name!r}; see `summarizer prompts list`")
        return _parse(name, packaged.read_bytes(), f"built-in {name}.toml")


def _parse(name: str, raw: bytes, origin: str) -> PromptTemplate:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"prompt {origin} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"prompt {origin} is not valid TOML: {exc}") from None
    return template_from_data(name, data, origin)


def template_from_data(name: str, data: dict[str, Any], origin: str) -> PromptTemplate:
    """A template from parsed TOML data, checked as a file would be (ConfigError naming ``origin``)."""
    try:
        checked = _TemplateFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ConfigError(f"prompt {origin}: {where}: {first['msg']}") from None
    needed = "$parts" if name.endswith("_combine") else _PLACES.get(name, "$document")
    if needed not in checked.system + checked.user:
        raise ConfigError(f"prompt {origin} never places {needed}: the model would see no text")
    if "$errors" not in checked.reask:
        raise ConfigError(f"prompt {origin}: reask never places $errors: a re-ask would not say what to fix")
    return PromptTemplate(
        name=name, version=str(checked.version), description=checked.description, system=checked.system,
        user=checked.user, reask=checked.reask, params=dict(checked.params), origin=origin, grammar=checked.grammar,
        format_guide=checked.format_guide,
    )


_PLACES = {"verify": "$claims"}  # templates whose text is not the document


def message_tokens(messages: list[dict[str, str]]) -> int:
    """Estimated tokens of chat messages: their text plus a few per message of framing."""
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)
