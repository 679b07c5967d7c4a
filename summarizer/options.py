"""What a caller may tune per call: one value object, checked when made, serialised one way.

The batch state, the service's job rows and Ray's actors all carry options as
``to_state()`` data and rebuild them with ``from_state``; none spells out a
field by hand. Which of them shape a task's answer (its cache key) is the
task's to say (``TaskSpec.options``): a brief's word range never enters an
event report's key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .schemas import DEFAULT_WORDS

__all__ = ["TaskOptions"]


@dataclass(frozen=True)
class TaskOptions:
    """Per-call options for any task; each task uses the ones it names."""

    words: tuple[int, int] = DEFAULT_WORDS  # a brief's word range
    language: str | None = None  # the output's language; None: the document's
    strict: bool = False  # grounding warnings (and, with verify, the judge's) become errors, re-asked
    verify: bool = False  # the model judges each claim against the source text cited for it
    max_reasks: int = 2
    context_tokens: int = 8192
    chunk_concurrency: int = 4

    def __post_init__(self) -> None:
        words = self.words
        if not (isinstance(words, (tuple, list)) and len(words) == 2 and all(type(w) is int for w in words)):
            raise UsageError(f"words must be a (MIN, MAX) pair of whole numbers, not {words!r}")
        object.__setattr__(self, "words", (words[0], words[1]))
        low, high = self.words
        if not 0 < low <= high <= 2000:
            raise UsageError(f"words must be (MIN, MAX) with 0 < MIN <= MAX <= 2000, not {self.words!r}")
        if self.language is not None and not (isinstance(self.language, str) and 0 < len(self.language.strip()) <= 40):
            raise UsageError(f"language must be an ISO 639-1 code or a language name, not {self.language!r}")
        if self.max_reasks < 0 or self.chunk_concurrency < 1 or self.context_tokens < 1024:
            raise UsageError("max_reasks must be >= 0, chunk_concurrency >= 1 and context_tokens >= 1024")

    @property
    def language_phrase(self) -> str:
        if not self.language:
            return "the same language as the document"
        code = self.language.strip()
        return f"the language with ISO 639-1 code '{code}'" if len(code) == 2 else code

    def to_state(self) -> dict[str, Any]:
        """The options as JSON-able data (``from_state`` rebuilds them)."""
        state = dataclasses.asdict(self)
        state["words"] = list(self.words)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TaskOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in state.items() if k in known and v is not None}
        if "words" in given:
            given["words"] = tuple(given["words"]) if isinstance(given["words"], list) else given["words"]
        return cls(**given)

    def shaping(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named options and the context size (it decides how a long document is cut): a cache key's share."""
        state = self.to_state()
        return {name: state[name] for name in (*names, "context_tokens")}
