"""The task registry: every task summarizer can run, described as data.

A ``TaskSpec`` says what a task produces (its value model and JSON Schema), how
it is asked (its prompt templates and the output spec a backend gets), which
options shape it, how an answer is validated and grounded, which fields are
evidence that must be verbatim, how the parts of a long document combine, and
how a value reads as text. The drivers — CLI commands, service routes, bulk,
batch, Ray, the sink's resume check, cache keys, progress — ask the registry;
none of them names a task.

Built in: ``brief`` and ``events``. Users add a task as a prompt file plus a
JSON Schema in a tasks folder (``user_tasks``), or as a ``TaskSpec`` from an
installed plugin (entry point group ``summarizer.tasks``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel


from .backends.base import OutputSpec
from .errors import ConfigError, UsageError

if TYPE_CHECKING:
    from .grounding import SourceIndex
    from .options import TaskOptions
    from .prompts import PromptTemplate
    from .verify import Claim, Verdict

__all__ = ["RESERVED_NAMES", "OutputContext", "TaskRegistry", "TaskSpec", "Validate", "task_name_pattern"]

V = TypeVar("V", bound=BaseModel)

Validate = Callable[[str, "str | None", "SourceIndex", "TaskOptions"], "tuple[V, list[str]]"]
"""``(answer, finish_reason, source, options) -> (value, warnings)``; raises ``validation.Invalid``."""

task_name_pattern = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
"""What a task may be called: it becomes a CLI argument, a URL path and a JSONL field."""
RESERVED_NAMES = frozenset({"run", "bulk", "batch", "eval", "serve", "worker", "jobs", "check", "export", "schema",
                            "prompts", "tasks", "healthz", "readyz", "metrics", "docs", "static", "verify"})
"""Names a task cannot take: a command of the CLI, a route of the service or the judge's prompt already has them."""


@dataclass(frozen=True)
class OutputContext(Generic[V]):
    """What a request's output spec may depend on."""

    template: PromptTemplate
    text: str  # what this request carries: the document, one part, or the part answers
    parts: list[V]  # the part values a combine request merges ([] otherwise)
    options: TaskOptions
    source: SourceIndex  # what the answer is grounded against


@dataclass(frozen=True)
class TaskSpec(Generic[V]):
    """One task, as data. Only ``name``, ``value_model`` and ``validate`` have no default."""

    name: str
    value_model: type[V]
    validate: Validate[Any]  # returns the answer (``answer_type``), which ``finish`` may turn into the value
    description: str = ""
    version: str = "1"  # of the value's shape: a cache key part
    prompt: str = ""  # template name; default: the task's name
    combine_prompt: str | None = None  # the template that merges part answers; None: "<name>_combine"
    options: tuple[str, ...] = ("language",)  # the TaskOptions fields that shape its answer
    schema: dict[str, Any] | None = None  # the value's JSON Schema (bounds kept); None: a plain-text answer
    strict_schema: bool = True  # the schema suits OpenAI's strict mode
    evidence: tuple[str, ...] = ()  # paths ("events[].evidence[]") of strings that must be verbatim quotes
    output: Callable[[OutputContext[Any]], OutputSpec] | None = None  # default: the schema, or plain text
    as_part: Callable[[Any, int], str] | None = None  # a part's answer as the combine step sees it; default JSON
    render: Callable[[V], str] | None = None  # the value as text (the CLI without --json); default JSON
    # After validation, once the whole document is done: what the answer becomes (offsets, citations).
    # With ``answer_model`` the model's answer has another shape than the value (event reports: plain
    # quotes in, located evidence out); part answers keep the answer's shape.
    finish: Callable[[Any, SourceIndex, TaskOptions], tuple[V, list[str]]] | None = None
    answer_model: type[BaseModel] | None = None
    # --verify: the claims of a value with the source text each must be backed by, and the value with
    # the model's verdicts recorded. A task without ``claims`` cannot be verified (the option is ignored).
    claims: Callable[[Any, str], list[Claim]] | None = None
    judged: Callable[[Any, list[Verdict]], Any] | None = None
    templates: Mapping[str, PromptTemplate] = field(default_factory=dict)  # templates the task brings
    origin: str = "built-in"

    def __post_init__(self) -> None:
        if not task_name_pattern.match(self.name):
            raise ConfigError(f"task name {self.name!r}: use lower-case letters, digits and _ (at most 40)")
        if self.name in RESERVED_NAMES:
            raise ConfigError(f"task name {self.name!r} is taken by a command, route or prompt of summarizer: "
                              "choose another")

    @property
    def prompt_name(self) -> str:
        return self.prompt or self.name

    @property
    def combine_name(self) -> str:
        return self.combine_prompt or f"{self.prompt_name}_combine"

    @property
    def answer_type(self) -> type[BaseModel]:
        """What validation returns and part answers are: the model's answer shape."""
        return self.answer_model or self.value_model

    @property
    def structured(self) -> bool:
        """The answer is JSON (else plain text, which can stream)."""
        return self.schema is not None

    def output_spec(self, context: OutputContext[Any]) -> OutputSpec:
        if self.output is not None:
            return self.output(context)
        if self.schema is None:
            return OutputSpec()
        return OutputSpec(json_schema=self.schema, name=self.name, strict=self.strict_schema)

    def part_text(self, value: BaseModel, number: int) -> str:
        if self.as_part is not None:
            return self.as_part(value, number)
        return f"Part {number}: " + value.model_dump_json()

    def text(self, value: V) -> str:
        if self.render is not None:
            return self.render(value)
        return json.dumps(value.model_dump(mode="json"), indent=2, ensure_ascii=False)

    def check(self, options: TaskOptions) -> TaskOptions:
        """``options``, or a UsageError for one this task would ignore without a word: verify with no claims."""
        if options.verify and self.claims is None:
            raise UsageError(f"verify does not apply to task {self.name!r}: it has no claims a judge could check "
                             "(brief and events have), so nothing would be verified")
        return options

    def cache_parts(self, options: TaskOptions) -> dict[str, Any]:
        """What of ``options`` (and of the task itself) a cached answer depends on."""
        verified = ("verify",) if self.claims is not None else ()
        return {"task_version": self.version, **options.shaping((*self.options, *verified))}


class TaskRegistry:
    """Tasks by name. ``catalog.default_registry()`` holds the built-in ones, plugins' and a tasks folder's."""

    def __init__(self, specs: Mapping[str, TaskSpec[Any]] | None = None) -> None:
        self._specs: dict[str, TaskSpec[Any]] = dict(specs or {})

    def register(self, spec: TaskSpec[Any], *, replace: bool = False) -> TaskSpec[Any]:
        """Add ``spec``; a second task of the same name is refused unless ``replace``."""
        known = self._specs.get(spec.name)
        if known is not None and not replace:
            raise ConfigError(f"task {spec.name!r} ({spec.origin}) is already defined ({known.origin})")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> TaskSpec[Any]:
        spec = self._specs.get(name) if isinstance(name, str) else None
        if spec is None:
            shown = name[:60] + "…" if isinstance(name, str) and len(name) > 60 else name
            raise UsageError(f"no task named {shown!r}; known tasks: {', '.join(self.names())}")
        return spec

    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[TaskSpec[Any]]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def copy(self) -> TaskRegistry:
        return TaskRegistry(self._specs)
