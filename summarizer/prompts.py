"""Prompt templates are data: ``prompts/<name>.toml`` with system, user, re-ask
templates, a version and default parameters.

Templates use ``$name`` placeholders (``string.Template``) so JSON braces in a
prompt need no escaping. A directory given with ``--prompts-dir`` is searched
before the templates shipped in the package.
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["PromptTemplate", "PromptLibrary"]

_REQUIRED = ("version", "system", "user", "reask")


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

    @property
    def fingerprint(self) -> str:
        """Hash of everything that shapes the request: a cache key part that a silent edit changes."""
        blob = json.dumps([self.id, self.system, self.user, self.reask, self.params, self.grammar], sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def id(self) -> str:
        """What a Result records as its prompt version, e.g. ``brief@1``."""
        return f"{self.name}@{self.version}"

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """The system and user messages, with ``values`` filled in."""
        return [
            {"role": "system", "content": self._fill(self.system, values)},
            {"role": "user", "content": self._fill(self.user, values)},
        ]

    def reask_message(self, **values: Any) -> dict[str, str]:
        return {"role": "user", "content": self._fill(self.reask, values)}

    def render_grammar(self, **values: Any) -> str | None:
        return self._fill(self.grammar, values) if self.grammar else None

    def _fill(self, template: str, values: dict[str, Any]) -> str:
        try:
            return string.Template(template).substitute(values).strip()
        except KeyError as exc:
            raise ConfigError(f"prompt {self.id} ({self.origin}) uses unknown variable ${exc.args[0]}") from None
        except ValueError as exc:
            raise ConfigError(f"prompt {self.id} ({self.origin}): {exc}") from None


class PromptLibrary:
    """Finds templates by name: an override directory first, then the package."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else None
        if self.directory is not None and not self.directory.is_dir():
            raise ConfigError(f"prompts directory {self.directory} does not exist")
        self._cache: dict[str, PromptTemplate] = {}

    def get(self, name: str) -> PromptTemplate:
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def names(self) -> list[str]:
        found = {p.name[:-5] for p in _packaged().iterdir() if p.name.endswith(".toml")}
        if self.directory is not None:
            found |= {p.stem for p in self.directory.glob("*.toml")}
        return sorted(found)

    def all(self) -> list[PromptTemplate]:
        return [self.get(name) for name in self.names()]

    def _load(self, name: str) -> PromptTemplate:
        if self.directory is not None and (self.directory / f"{name}.toml").is_file():
            path = self.directory / f"{name}.toml"
            return _parse(name, path.read_text("utf-8"), str(path))
        packaged = _packaged() / f"{name}.toml"
        if not packaged.is_file():
            raise ConfigError(f"no prompt named {name!r}; see `summarizer prompts list`")
        return _parse(name, packaged.read_text("utf-8"), f"built-in {name}.toml")


def _packaged() -> Any:
    return resources.files("summarizer") / "prompts"


def _parse(name: str, text: str, origin: str) -> PromptTemplate:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"prompt {origin} is not valid TOML: {exc}") from None
    missing = [key for key in _REQUIRED if not isinstance(data.get(key), (str, int))]
    if missing:
        raise ConfigError(f"prompt {origin} lacks {', '.join(missing)}")
    return PromptTemplate(
        name=name,
        version=str(data["version"]),
        description=str(data.get("description", "")),
        system=data["system"],
        user=data["user"],
        reask=data["reask"],
        params=dict(data.get("params", {})),
        origin=origin,
        grammar=data.get("grammar"),
    )
