"""Tasks: a brief or an event report of one document, as a conversation with a model.

A ``TaskRun`` holds one task on one document and does no I/O: ``start`` says
which requests to send, ``receive`` takes each answer, validates it and says
what to send next — a re-ask carrying the concrete errors, or, for a document
over the context budget, the combine step over the parts' results — until the
run holds its Result or raises. ``run_task`` drives a TaskRun over a backend;
the batch mode drives many over the provider's Batch API with the same steps.

Nothing here knows about files, the CLI or bulk runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar, cast

from .backends import Backend, Completion, Delta, Message, OutputSpec
from .candidates import offer
from .constraints import grounded_schema
from .dates import describe
from .documents import Document, estimate_tokens, split_into_chunks
from .errors import ConfigError, OutputValidationError, SummarizerError, UsageError
from .extractive import BRIEF_UNITS, brief_grammar_values, grammar_digest
from .grounding import SourceIndex
from .prompts import PromptLibrary, PromptTemplate, message_tokens
from .schemas import DEFAULT_WORDS, EVENT_TYPES, Brief, EventReport, Result, TaskName, Usage, event_report_schema
from .validation import Invalid, validate_brief, validate_events

__all__ = ["Reask", "Request", "StreamEvent", "TaskOptions", "TaskRun", "run_task", "task_prompts"]

V = TypeVar("V", Brief, EventReport)
log = logging.getLogger(__name__)

# Built once: the schema is sent with every events request. Backends get the
# full form (bounds included) and adapt it: strict mode drops the bounds, a
# local grammar enforces them.
_SCHEMA = event_report_schema(strict=False)
_SCHEMA_JSON = json.dumps(_SCHEMA, separators=(",", ":"))  # for custom prompts that still place $schema
_TYPES = "|".join(f'"{t}"' for t in EVENT_TYPES)
# The tokens a template costs before any text, by (template, words, language): the same for every document.
_OVERHEAD: dict[tuple[str, tuple[int, int], str | None, Any], int] = {}


@dataclass(frozen=True)
class TaskOptions:
    """What a caller may tune per call; checked when made, before any request."""

    words: tuple[int, int] = DEFAULT_WORDS
    language: str | None = None
    strict: bool = False
    max_reasks: int = 2
    context_tokens: int = 8192
    chunk_concurrency: int = 4

    def __post_init__(self) -> None:
        low, high = self.words
        if not (isinstance(low, int) and isinstance(high, int) and 0 < low <= high <= 2000):
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

    def cache_parts(self) -> list[Any]:
        """The options that shape an answer (the cache key's share of them)."""
        return [list(self.words), self.language, self.strict, self.context_tokens]


@dataclass(frozen=True)
class Request:
    """One model request a run needs: what to send, and what to check the answer against."""

    stage: str  # "whole", "part" or "combine": where the answer goes
    index: int  # which part, or which group of a combine round
    template: PromptTemplate
    messages: list[Message]
    output: OutputSpec
    source: SourceIndex
    reasks: int = 0
    final: bool = False  # its answer is the run's value (what may be streamed to a reader)

    @property
    def params(self) -> dict[str, Any]:
        return self.template.params

    @property
    def slot(self) -> str:
        """A stable name for the request's place in its run, e.g. ``part-3`` (batch custom ids use it)."""
        return self.stage if self.stage == "whole" else f"{self.stage}-{self.index}"

    def reask(self, answer: str, errors: list[str]) -> Request:
        """The same request again, with the answer and what is wrong with it."""
        follow_up = self.template.reask_message(errors="\n".join(f"- {e}" for e in errors))
        messages = [*self.messages, {"role": "assistant", "content": answer}, follow_up]
        return replace(self, messages=messages, reasks=self.reasks + 1)

    def to_state(self) -> dict[str, Any]:
        """The request as JSON-able data (its output shape is rebuilt from the template when needed)."""
        return {"stage": self.stage, "index": self.index, "template": self.template.name, "messages": self.messages,
                "source": self.source.text, "published": self.source.published.isoformat()
                if self.source.published else None, "reasks": self.reasks, "final": self.final}

    @classmethod
    def from_state(cls, state: dict[str, Any], prompts: PromptLibrary) -> Request:
        published = dt.date.fromisoformat(state["published"]) if state.get("published") else None
        return cls(state["stage"], state["index"], prompts.get(state["template"]), state["messages"], OutputSpec(),
                   SourceIndex(state["source"], published), reasks=state["reasks"], final=state["final"])


@dataclass(frozen=True)
class Reask:
    """Streaming: the answer so far broke these rules; a re-ask follows."""

    errors: list[str]


StreamEvent = Delta | Reask


@dataclass(frozen=True)
class _Spec(Generic[V]):
    """How one task renders, validates and combines."""

    prompt: str
    combine_prompt: str
    validate: Callable[[str, str | None, SourceIndex, TaskOptions], tuple[V, list[str]]]
    as_part: Callable[[V, int], str]
    output: Callable[[PromptTemplate, str, list[V], TaskOptions, SourceIndex], OutputSpec]


class TaskRun(Generic[V]):
    """One task on one document, as a state machine that a driver feeds answers to."""

    def __init__(
        self, task: TaskName, document: Document, prompts: PromptLibrary, options: TaskOptions, *, model: str = "",
    ) -> None:
        self.task, self.document, self.prompts, self.options = task, document, prompts, options
        self.spec: _Spec[V] = cast(_Spec[V], _SPECS[task])
        self.usage = Usage()
        self.model = model
        self.warnings: list[str] = []
        self.warnings.extend(document.notes)
        if document.dropped_repeats:
            self.warnings.append(f"dropped {document.dropped_repeats} repeated paragraph(s) from the input")
        self._used: list[str] = []
        self._round = 0
        self._expected = 0
        self._values: dict[int, tuple[V, list[str]]] = {}
        self.value: tuple[V, list[str]] | None = None

    @property
    def done(self) -> bool:
        return self.value is not None

    @property
    def prompt_version(self) -> str:
        return "+".join(self._used)

    def start(self) -> list[Request]:
        """The first requests: the whole document, or its parts when it is over the budget."""
        template = self.prompts.get(self.spec.prompt)
        budget = self._budget(template)
        text = self.document.text
        chunks = [text] if estimate_tokens(text) <= budget else split_into_chunks(self.document.paragraphs, budget)
        published = self.document.published
        if len(chunks) == 1:
            return [self._request("whole", 0, template, {"document": text}, text, [], SourceIndex(text, published),
                                  final=True)]
        self.warnings.append(f"long document: read in {len(chunks)} parts, then combined")
        self._expected = len(chunks)
        return [self._request("part", i, template, {"document": chunk}, chunk, [], SourceIndex(chunk, published))
                for i, chunk in enumerate(chunks)]

    def receive(self, request: Request, completion: Completion) -> list[Request]:
        """Take one answer; return what to send next (nothing once the run is done)."""
        self.usage.add(completion.usage)
        self.model = completion.model or self.model
        if completion.refusal:
            raise OutputValidationError(f"the model refused: {completion.refusal[:200]}",
                                        raw_output=completion.refusal, usage=self.usage)
        try:
            accepted = self.spec.validate(completion.text, completion.finish_reason, request.source, self.options)
        except Invalid as exc:
            if request.reasks < self.options.max_reasks:
                self.usage.reasks += 1
                return [request.reask(completion.text, exc.errors)]
            errors = exc.errors
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise OutputValidationError(
                f"model output still invalid after {self.options.max_reasks} re-ask(s): {errors[0]}{more}",
                raw_output=completion.text, errors=errors, usage=self.usage,
            ) from None
        return self._accept(request, accepted)

    def snapshot(self) -> dict[str, Any]:
        """The run's state as JSON-able data: the batch mode keeps it between rounds, and across restarts."""
        return {"usage": self.usage.model_dump(), "model": self.model, "warnings": self.warnings,
                "used": self._used, "round": self._round, "expected": self._expected,
                "values": {str(i): [value.model_dump(mode="json"), found] for i, (value, found) in self._values.items()}}

    @classmethod
    def restore(
        cls, task: TaskName, document: Document, prompts: PromptLibrary, options: TaskOptions, state: dict[str, Any],
    ) -> TaskRun[Any]:
        run: TaskRun[Any] = cls(task, document, prompts, options, model=state["model"])
        run.usage = Usage.model_validate(state["usage"])
        run.warnings, run._used = list(state["warnings"]), list(state["used"])
        run._round, run._expected = state["round"], state["expected"]
        kind: type[Brief] | type[EventReport] = Brief if task == "brief" else EventReport
        run._values = {int(i): (kind.model_validate(value), list(found)) for i, (value, found) in state["values"].items()}
        return run

    def result(self, latency_ms: int = 0) -> Result[V]:
        if self.value is None:
            raise RuntimeError("the run has no value yet")
        value, found = self.value
        return Result[V](
            id=self.document.id, task=self.task, value=value, warnings=self.warnings + found, usage=self.usage,
            model=self.model, prompt_version=self.prompt_version, latency_ms=latency_ms,
        )

    # -- stages ------------------------------------------------------------------------------

    def _accept(self, request: Request, accepted: tuple[V, list[str]]) -> list[Request]:
        if request.final:
            self.value = accepted
            return []
        self._values[request.index] = accepted
        if request.stage == "part":  # a long document says how far it is, part by part
            log.warning("long document: part %d of %d read", len(self._values), self._expected)
        if len(self._values) < self._expected:
            return []
        parts = [self._values[i][0] for i in range(self._expected)]
        self._values = {}
        return self._combine(parts)

    def _combine(self, parts: list[V]) -> list[Request]:
        """Combine partial results, in groups that fit the budget; the next round combines those."""
        template = self.prompts.get(self.spec.combine_prompt)
        budget = self._budget(template)
        self._round += 1
        texts = [self.spec.as_part(part, i + 1) for i, part in enumerate(parts)]
        costs = [estimate_tokens(t) + 2 for t in texts]
        groups = _groups_that_fit(list(range(len(parts))), costs, budget)
        if len(groups) == len(parts):  # no two parts fit one combine request: it could never finish
            need = self.options.context_tokens - budget + sum(sorted(costs)[:2])
            raise ConfigError(
                f"a context of {self.options.context_tokens} tokens cannot combine the parts of this document "
                f"(two part answers take ~{sum(sorted(costs)[:2])} tokens): raise --context-tokens to at least {need}")
        self._expected = len(groups)
        source = SourceIndex(self.document.text, self.document.published)
        return [
            self._request(
                "combine", g, template,
                {"parts": "\n\n".join(texts[i] for i in group), "count": len(group)},
                "\n\n".join(texts[i] for i in group), [parts[i] for i in group], source, final=len(groups) == 1,
            )
            for g, group in enumerate(groups)
        ]

    def _request(
        self, stage: str, index: int, template: PromptTemplate, values: dict[str, Any], text: str, parts: list[V],
        source: SourceIndex, *, final: bool = False,
    ) -> Request:
        if template.id not in self._used:
            self._used.append(template.id)
        variables = {**self._variables(), **values}
        messages = template.messages(**variables)
        output = self.spec.output(template, text, parts, self.options, source)
        if template.format_guide:
            output = replace(output, format_guide=template.guide(**variables))
        return Request(stage, index, template, messages, output, source, final=final)

    def _variables(self) -> dict[str, Any]:
        low, high = self.options.words
        return {"min_words": low, "max_words": high, "language": self.options.language_phrase,
                "schema": _SCHEMA_JSON, "types": _TYPES, "date_rule": _date_rule(self.document),
                "document": "", "parts": "", "count": 0}

    def _budget(self, template: PromptTemplate) -> int:
        """Tokens left for the text once the prompt and the answer are paid for."""
        key = (template.fingerprint, self.options.words, self.options.language, self.document.published)
        overhead = _OVERHEAD.get(key)
        if overhead is None:
            overhead = _OVERHEAD[key] = message_tokens(template.messages(**self._variables()))
        answer = template.max_tokens
        budget = self.options.context_tokens - overhead - answer
        if budget < 256:
            raise ConfigError(
                f"a context of {self.options.context_tokens} tokens cannot hold the {template.id} prompt "
                f"(~{overhead} tokens), its answer ({answer}) and any text: raise --context-tokens "
                f"to at least {overhead + answer + 1024}"
            )
        return budget


def _date_rule(document: Document) -> str:
    """How the events prompt asks for dates: resolved from the publication date when it is known."""
    if document.published is None:
        return "only when the document states or fixes the date"
    return (f"when the document states or fixes the date. It was published on {describe(document.published)}: "
            'resolve relative expressions ("on Friday", "yesterday", "last Tuesday", "on March 3") to the dates '
            "they mean, with the matching precision")


def _groups_that_fit(items: list[int], costs: list[int], budget: int) -> list[list[int]]:
    """Consecutive items in groups whose costs fit ``budget``."""
    groups: list[list[int]] = [[]]
    size = 0
    for item, cost in zip(items, costs, strict=True):
        if groups[-1] and size + cost > budget:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += cost
    return groups


# --- driving a run over a backend ----------------------------------------------------------


async def run_task(
    task: TaskName, document: Document, backend: Backend, prompts: PromptLibrary, options: TaskOptions,
    *, on_event: Callable[[StreamEvent], None] | None = None,
) -> Result[Any]:
    """Run ``task`` on ``document``; raise SummarizerError (usage attached) on failure.

    ``on_event`` streams the final answer's deltas (and a Reask when it must be
    asked again) for plain-text tasks; structured answers arrive whole.
    """
    run: TaskRun[Any] = TaskRun(task, document, prompts, options, model=backend.model)
    started = time.perf_counter()
    try:
        await _drive(run, backend, options.chunk_concurrency, on_event)
    except SummarizerError as exc:
        if exc.usage is not None and exc.usage is not run.usage:
            run.usage.add(exc.usage)
        exc.usage = run.usage
        raise
    return run.result(round((time.perf_counter() - started) * 1000))


async def _drive(
    run: TaskRun[Any], backend: Backend, limit: int, on_event: Callable[[StreamEvent], None] | None,
) -> None:
    """Send what the run asks, as many at once as ``limit`` allows; the first failure cancels the rest."""

    async def exchange(request: Request) -> list[Request]:
        if on_event is not None and request.final and request.output.json_schema is None:
            completion = await _streamed(backend, request, on_event)
        else:
            completion = await backend.complete(request.messages, output=request.output, params=request.params)
        follow_ups = run.receive(request, completion)
        if on_event is not None and request.final and follow_ups and follow_ups[0].reasks > request.reasks:
            on_event(Reask(_last_errors(follow_ups[0])))
        return follow_ups

    pending = run.start()
    while len(pending) == 1:  # one document, one request at a time (re-asks included): no task group needed
        pending = await exchange(pending[0])
    if not pending:
        return
    gate = asyncio.Semaphore(limit)

    async def send(request: Request, group: asyncio.TaskGroup) -> None:
        async with gate:
            follow_ups = await exchange(request)
        for follow_up in follow_ups:
            group.create_task(send(follow_up, group))

    try:
        async with asyncio.TaskGroup() as group:
            for request in pending:
                group.create_task(send(request, group))
    except BaseExceptionGroup as failures:
        raise _first(failures) from None


async def _streamed(backend: Backend, request: Request, on_event: Callable[[StreamEvent], None]) -> Completion:
    stream = backend.stream(request.messages, output=request.output, params=request.params)
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for event in stream:
            if isinstance(event, Completion):
                return event
            on_event(event)
    raise SummarizerError("the stream ended without a completion")


def _last_errors(request: Request) -> list[str]:
    return [line[2:] for line in request.messages[-1]["content"].splitlines() if line.startswith("- ")]


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def task_prompts(task: TaskName, prompts: PromptLibrary) -> list[PromptTemplate]:
    """The templates a task may use (for cache keys and listings)."""
    spec = _SPECS[task]
    return [prompts.get(spec.prompt), prompts.get(spec.combine_prompt)]


# --- the two tasks -------------------------------------------------------------------------


def _validate_brief(raw: str, finish: str | None, source: SourceIndex, options: TaskOptions) -> tuple[Brief, list[str]]:
    return validate_brief(raw, finish, source, words=options.words, strict=options.strict)


def _validate_events(
    raw: str, finish: str | None, source: SourceIndex, options: TaskOptions,
) -> tuple[EventReport, list[str]]:
    return validate_events(raw, finish, source)


def _brief_output(
    template: PromptTemplate, text: str, parts: list[Brief], options: TaskOptions, source: SourceIndex,
) -> OutputSpec:
    # A grammar decoder composes the brief from the document's own sentences (or, combining,
    # the part briefs'), the lead first, in the word range on every path: see ``extractive``.
    chosen = "\n\n".join(part.text for part in parts) if parts else text
    return OutputSpec(grammar=template.grammar, grammar_values=brief_grammar_values(chosen, options.words),
                      grammar_digest=grammar_digest(text, of=chosen, limit=BRIEF_UNITS))  # it reads what it may choose


def _events_output(
    template: PromptTemplate, text: str, parts: list[EventReport], options: TaskOptions, source: SourceIndex,
) -> OutputSpec:
    # Grammar decoders choose among the events the text reports as a reporter ranks them (names,
    # places, times, sentences of the document); combining, the whole document is ranked again.
    def grounded() -> dict[str, Any]:
        return grounded_schema(_SCHEMA, offer(source.text if parts else text, source.published))

    # Combining, the part reports are JSON: a grammar decoder reads the document's ranked sentences.
    digest = grammar_digest(text, of=source.text, budget=0) if parts else grammar_digest(text)
    return OutputSpec(json_schema=_SCHEMA, name="event_report", grammar_schema=grounded, grammar_digest=digest)


_SPECS: dict[TaskName, _Spec[Any]] = {
    "brief": _Spec[Brief]("brief", "brief_combine", _validate_brief,
                          lambda value, n: f"Part {n}: {value.text}", _brief_output),
    "events": _Spec[EventReport]("events", "events_combine", _validate_events,
                                 lambda value, n: f"Part {n}: " + value.model_dump_json(exclude={"schema_version"}),
                                 _events_output),
}
