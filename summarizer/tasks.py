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
import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from . import faithfulness, observe
from .backends import Backend, Completion, Delta, Message, OutputSpec
from .dates import describe
from .documents import Document, date_or_none, estimate_tokens, split_into_chunks, unicode_problem
from .errors import ConfigError, OutputValidationError, SummarizerError
from .grounding import SourceIndex
from .options import TaskOptions
from .prompts import PromptLibrary, PromptTemplate, message_tokens
from .catalog import default_registry
from .registry import OutputContext, TaskRegistry, TaskSpec
from .schemas import EVENT_TYPES, Result, SourceText, Usage, count_words
from .validation import Invalid
from .verify import Claim, claims_text, judge_output, parse_verdicts

__all__ = [
    "Reask", "Request", "RunProgress", "StreamEvent", "TaskOptions", "TaskRun", "fitted_words", "resolve_task", "run_task",
    "task_prompts",
]

V = TypeVar("V", bound=BaseModel)
_R = TypeVar("_R")

_TYPES = "|".join(f'"{t}"' for t in EVENT_TYPES)
_SURROGATES = re.compile("[\ud800-\udfff]")
# The tokens a template costs before any text, by (template, words, language): the same for every document.
_OVERHEAD: dict[tuple[str, tuple[int, int], str | None, Any], int] = {}
TaskLike = "str | TaskSpec[Any]"


def resolve_task(task: str | TaskSpec[Any], registry: TaskRegistry | None = None) -> TaskSpec[Any]:
    """The spec of ``task`` (a name looked up in ``registry``, default: the built-in tasks and plugins')."""
    if isinstance(task, TaskSpec):
        return task
    return (registry or default_registry()).get(task)


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
    def from_state(cls, state: dict[str, Any], prompts: PromptLibrary, spec: TaskSpec[Any] | None = None) -> Request:
        published = date_or_none(state.get("published"))
        name = state["template"]
        template = prompts.get(name, spec.templates.get(name) if spec is not None else None)
        return cls(state["stage"], state["index"], template, state["messages"], OutputSpec(),
                   SourceIndex(state["source"], published), reasks=state["reasks"], final=state["final"])


@dataclass(frozen=True)
class Reask:
    """Streaming: the answer so far broke these rules; a re-ask follows."""

    errors: list[str]


StreamEvent = Delta | Reask


@dataclass(frozen=True)
class RunProgress:
    """Where a long document's run stands: ``done`` of its ``total`` parts read (stage "part"), then of
    the groups of each combine ``round`` (stage "combine"). A document read whole has none."""

    stage: str
    done: int
    total: int
    round: int = 0


class TaskRun(Generic[V]):
    """One task on one document, as a state machine that a driver feeds answers to."""

    def __init__(
        self, task: str | TaskSpec[Any], document: Document, prompts: PromptLibrary, options: TaskOptions, *,
        model: str = "",
    ) -> None:
        self.spec: TaskSpec[Any] = resolve_task(task)
        self.task = self.spec.name
        self.document, self.prompts = document, prompts
        self.usage = Usage()
        self.model = model
        self.warnings: list[str] = []
        self.warnings.extend(document.notes)
        if document.dropped_repeats:
            self.warnings.append(f"dropped {document.dropped_repeats} repeated paragraph(s) from the input")
        self.options = _fitted(options, document, self.warnings) if "words" in self.spec.options else options
        self._used: list[str] = []
        self._round = 0
        self._expected = 0
        self._values: dict[int, tuple[V, list[str]]] = {}
        self._judging: _Judging | None = None  # --verify: the finished value while the model judges it
        self.value: tuple[V, list[str]] | None = None

    @property
    def done(self) -> bool:
        return self.value is not None

    @property
    def prompt_version(self) -> str:
        return "+".join(self._used)

    def start(self) -> list[Request]:
        """The first requests: the whole document, or its parts when it is over the budget."""
        template = self._template(self.spec.prompt_name)
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
        completion = self._valid_unicode(completion)
        if request.stage == "verify":
            return self._judged(request, completion)
        if completion.refusal:
            raise OutputValidationError(f"the model refused: {completion.refusal[:200]}",
                                        raw_output=completion.refusal, usage=self.usage)
        try:
            accepted = self.spec.validate(completion.text, completion.finish_reason, request.source, self.options)
        except Invalid as exc:
            if request.reasks < self.options.max_reasks:
                self.usage.reasks += 1
                observe.current().reask(exc.errors, request.reasks + 1)
                return [request.reask(completion.text, exc.errors)]
            errors = exc.errors
            observe.current().validation_failed(errors)
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise OutputValidationError(
                f"model output still invalid after {self.options.max_reasks} re-ask(s): {errors[0]}{more}",
                raw_output=completion.text, errors=errors, usage=self.usage,
            ) from None
        return self._accept(request, accepted, completion.text)

    def _valid_unicode(self, completion: Completion) -> Completion:
        """The answer with any lone surrogate (a JSON escape no encoder can write) as U+FFFD, as a UTF-8
        decoder would show it: otherwise a re-ask could not be sent, nor the result written."""
        text, refusal = completion.text, completion.refusal or ""
        if unicode_problem(text) is None and unicode_problem(refusal) is None:
            return completion
        self.warnings.append("the model's answer held lone surrogates (not valid Unicode): shown as U+FFFD")
        return replace(completion, text=_replacement(text), refusal=_replacement(refusal) or None)

    def progress(self) -> RunProgress | None:
        """How far a map-reduced run has got (None for a document read in one request)."""
        if not self._expected:
            return None
        stage = "part" if self._round == 0 else "combine"
        done = self._expected if self.value is not None else len(self._values)
        return RunProgress(stage, done, self._expected, self._round)

    def request_from_state(self, state: dict[str, Any]) -> Request:
        """A request this run made, rebuilt from ``Request.to_state`` with the output spec it had.

        (Only what a document part or the document gives: a combine step's grammar-bound schema,
        which needs the part answers, is the plain schema here — what HTTP endpoints take anyway.)
        """
        request = Request.from_state(state, self.prompts, self.spec)
        if request.stage == "verify":
            return replace(request, output=judge_output())
        output = self.spec.output_spec(OutputContext(request.template, request.source.text, [], self.options,
                                                     request.source))
        if request.template.format_guide:
            output = replace(output, format_guide=request.template.guide(**self._variables()))
        return replace(request, output=output)

    def snapshot(self) -> dict[str, Any]:
        """The run's state as JSON-able data: the batch mode keeps it between rounds, and across restarts."""
        return {"usage": self.usage.model_dump(), "model": self.model, "warnings": self.warnings,
                "used": self._used, "round": self._round, "expected": self._expected,
                "values": {str(i): [value.model_dump(mode="json"), found] for i, (value, found) in self._values.items()},
                "judging": self._judging.to_state() if self._judging is not None else None}

    @classmethod
    def restore(
        cls, task: str | TaskSpec[Any], document: Document, prompts: PromptLibrary, options: TaskOptions,
        state: dict[str, Any],
    ) -> TaskRun[Any]:
        run: TaskRun[Any] = cls(task, document, prompts, options, model=state["model"])
        run.usage = Usage.model_validate(state["usage"])
        run.warnings, run._used = list(state["warnings"]), list(state["used"])
        run._round, run._expected = state["round"], state["expected"]
        kind = run.spec.answer_type
        run._values = {int(i): (kind.model_validate(value), list(found)) for i, (value, found) in state["values"].items()}
        if state.get("judging"):
            run._judging = _Judging.from_state(state["judging"], run.spec, prompts)
        return run

    def result(self, latency_ms: int = 0) -> Result[V]:
        if self.value is None:
            raise RuntimeError("the run has no value yet")
        value, found = self.value
        observe.current().grounding(found)
        return Result[Any](
            id=self.document.id, task=self.task, value=value, warnings=self.warnings + found, usage=self.usage,
            model=self.model, prompt_version=self.prompt_version, latency_ms=latency_ms, unsupported=len(found),
            source=SourceText(text=self.document.text, digest=self.document.digest),
        )

    # -- stages ------------------------------------------------------------------------------

    def _accept(self, request: Request, accepted: tuple[V, list[str]], answer: str) -> list[Request]:
        if request.final:
            return self._finished(request, accepted, answer)
        self._values[request.index] = accepted
        if len(self._values) < self._expected:
            return []
        parts = [self._values[i][0] for i in range(self._expected)]
        self._values = {}
        return self._combine(parts)

    def _finished(self, request: Request, accepted: tuple[Any, list[str]], answer: str) -> list[Request]:
        """The final answer: its value (``finish``), then — with verify — the model's judgement of its claims."""
        value, found = accepted
        source = SourceIndex(self.document.text, self.document.published)
        if self.spec.finish is not None:
            value, more = self.spec.finish(value, source, self.options)
            found = [*found, *more]
        claims = self.spec.claims(value, self.document.text) if self.options.verify and self.spec.claims else []
        if not claims:
            self.value = (value, found)
            return []
        self._judging = _Judging(value, found, claims, request, answer)
        template = self._template("verify")
        if template.id not in self._used:
            self._used.append(template.id)
        messages = template.messages(claims=claims_text(claims))
        return [Request("verify", 0, template, messages, judge_output(), source)]

    def _judged(self, request: Request, completion: Completion) -> list[Request]:
        """The model's verdicts: warnings for unsupported claims; with strict, the answer asked again."""
        judging = self._judging
        if judging is None:
            raise RuntimeError("a verdict arrived with nothing to judge")
        try:
            verdicts = parse_verdicts(completion.text, len(judging.claims))
        except Invalid as exc:
            if request.reasks < self.options.max_reasks:
                self.usage.reasks += 1
                observe.current().reask(exc.errors, request.reasks + 1)
                return [request.reask(completion.text, exc.errors)]
            self._judging = None
            self.value = (judging.value, [*judging.found, "verify: the model's verdicts were not usable "
                                          f"({exc.errors[0]}); the claims are unverified"])
            return []
        self._judging = None
        failed = [(claim, verdict) for claim, verdict in zip(judging.claims, verdicts, strict=True)
                  if not verdict.supported]
        strict = self.options.strict and "strict" in self.spec.options
        if failed and strict and judging.request.reasks < self.options.max_reasks:
            errors = [f"{claim.label} ({claim.text[:160]!r}) is not supported by the document: {verdict.reason}; "
                      "state only what the document says" for claim, verdict in failed]
            self.usage.reasks += 1
            observe.current().reask(errors, judging.request.reasks + 1)
            return [judging.request.reask(judging.answer, errors)]
        value = self.spec.judged(judging.value, verdicts) if self.spec.judged is not None else judging.value
        warnings = [f"verify: {claim.label} is not supported by the source: {verdict.reason}"
                    for claim, verdict in failed]
        self.value = (value, [*judging.found, *warnings])
        return []

    def _combine(self, parts: list[V]) -> list[Request]:
        """Combine partial results, in groups that fit the budget; the next round combines those."""
        template = self._template(self.spec.combine_name)
        budget = self._budget(template)
        self._round += 1
        texts = [self.spec.part_text(part, i + 1) for i, part in enumerate(parts)]
        costs = [estimate_tokens(t) + 2 for t in texts]
        groups = _groups_that_fit(list(range(len(parts))), costs, budget)
        if len(groups) == len(parts):  # no two parts fit one combine request: it could never finish
            need = self.options.context_tokens - budget + sum(sorted(costs)[:2])
            raise ConfigError(
                f"a context of {self.options.context_tokens} tokens cannot combine the parts of this document "
                f"(two part answers take ~{sum(sorted(costs)[:2])} tokens): raise --context-tokens to at least {need}")
        self._expected = len(groups)
        observe.current().combine(self._round, len(groups), len(parts))
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
        output = self.spec.output_spec(OutputContext(template, text, parts, self.options, source))
        if template.format_guide:
            output = replace(output, format_guide=template.guide(**variables))
        return Request(stage, index, template, messages, output, source, final=final)

    def _variables(self) -> dict[str, Any]:
        low, high = self.options.words
        return {"min_words": low, "max_words": high, "language": self.options.language_phrase,
                "schema": _schema_json(self.spec), "types": _TYPES, "date_rule": _date_rule(self.document),
                "document": "", "parts": "", "count": 0}

    def _template(self, name: str) -> PromptTemplate:
        return self.prompts.get(name, self.spec.templates.get(name))

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


_SCHEMA_TEXT: dict[int, tuple[Any, str]] = {}


def _schema_json(spec: TaskSpec[Any]) -> str:
    """The task's schema as compact JSON, for templates that place ``$schema`` (made once per schema)."""
    known = _SCHEMA_TEXT.get(id(spec.schema))
    if known is None or known[0] is not spec.schema:
        known = _SCHEMA_TEXT[id(spec.schema)] = (spec.schema, json.dumps(spec.schema or {}, separators=(",", ":")))
    return known[1]


@dataclass
class _Judging:
    """A finished value waiting for the model's verdicts, and the request that produced it (for a strict re-ask)."""

    value: Any
    found: list[str]
    claims: list[Claim]
    request: Request
    answer: str

    def to_state(self) -> dict[str, Any]:
        return {"value": self.value.model_dump(mode="json"), "found": self.found,
                "claims": [[c.label, c.text, c.excerpt] for c in self.claims],
                "request": self.request.to_state(), "answer": self.answer}

    @classmethod
    def from_state(cls, state: dict[str, Any], spec: TaskSpec[Any], prompts: PromptLibrary) -> _Judging:
        return cls(spec.value_model.model_validate(state["value"]), list(state["found"]),
                   [Claim(*c) for c in state["claims"]], Request.from_state(state["request"], prompts, spec),
                   state["answer"])


def _date_rule(document: Document) -> str:
    """How the events prompt asks for dates: resolved from the publication date when it is known."""
    if document.published is None:
        return "only when the document states or fixes the date"
    return (f"when the document states or fixes the date. It was published on {describe(document.published)}: "
            'resolve relative expressions ("on Friday", "yesterday", "last Tuesday", "on March 3") to the dates '
            "they mean, with the matching precision")


def _fitted(options: TaskOptions, document: Document, warnings: list[str]) -> TaskOptions:
    words, note = fitted_words(options.words, document)
    if note:
        warnings.append(note)
    return options if words == options.words else replace(options, words=words)


def fitted_words(words: tuple[int, int], document: Document) -> tuple[tuple[int, int], str | None]:
    """The word range a brief of ``document`` can keep to without inventing, and a warning when it is not
    the one asked for.

    Never more words than the document has; and when the document is too short to be told in
    the minimum asked (fewer than twice as many words), at least half its words instead — a
    15-word notice gets a brief of 7 to 15 words, not 40 words of padding.
    """
    low, high = words
    count = max(1, count_words(document.text))
    fitted = (low if count >= 2 * low else min(low, max(1, count // 2)), min(high, count))
    fitted = (min(fitted), fitted[1])
    if fitted[0] == low:
        return fitted, None  # at most the maximum was capped: nothing asked for is lost
    return fitted, (f"the document has only {count} word(s): the brief is held to {fitted[0]}-{fitted[1]} words "
                    f"instead of {low}-{high}, so that nothing is invented to fill it")


def _replacement(text: str) -> str:
    return _SURROGATES.sub("\ufffd", text)


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
    task: str | TaskSpec[Any], document: Document, backend: Backend, prompts: PromptLibrary, options: TaskOptions,
    *, on_event: Callable[[StreamEvent], None] | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
) -> Result[Any]:
    """Run ``task`` on ``document``; raise SummarizerError (usage attached) on failure.

    ``on_event`` streams the final answer's deltas (and a Reask when it must be
    asked again) for plain-text tasks; structured answers arrive whole.
    ``on_progress`` hears of a long document's parts as they are read and combined.
    """
    long = _long(document)
    # Fitting a brief's words counts the document's: 12 MiB is 0.4 s, not for the loop that serves everyone.
    run: TaskRun[Any] = await _call(long, functools.partial(TaskRun, task, document, prompts, options,
                                                            model=backend.model))
    started = time.perf_counter()
    try:
        await _drive(run, backend, options.chunk_concurrency, on_event, _Reporter(run, on_progress))
    except SummarizerError as exc:
        if exc.usage is not None and exc.usage is not run.usage:
            run.usage.add(exc.usage)
        exc.usage = run.usage
        raise
    finally:
        if long:
            faithfulness.release(document.text)  # a long source's checks are done: its millions of objects may go
    return run.result(round((time.perf_counter() - started) * 1000))


class _Reporter:
    """Calls ``on_progress`` when a run's progress changes."""

    def __init__(self, run: TaskRun[Any], on_progress: Callable[[RunProgress], None] | None) -> None:
        self.run, self.on_progress = run, on_progress
        self.last: RunProgress | None = None

    def __call__(self) -> None:
        if self.on_progress is None:
            return
        now, last = self.run.progress(), self.last
        if now is None or now == last:
            return
        if last is not None and (last.stage, last.round) != (now.stage, now.round) and last.done < last.total:
            self.on_progress(replace(last, done=last.total))  # the stage's last answer moved the run on at once
        self.last = now
        self.on_progress(now)


_OFF_LOOP_CHARS = 50_000  # past this, reading a document (splitting it, checking answers against it) leaves the loop


def _long(document: Document) -> bool:
    return len(document.text) >= _OFF_LOOP_CHARS


async def _call(long: bool, work: Callable[..., _R], *args: Any) -> _R:
    """``work(*args)``: in a thread for a long document (seconds of CPU), here on the loop for a short one (a
    thread hop would cost bulk more than the work)."""
    return await asyncio.to_thread(work, *args) if long else work(*args)


async def _drive(
    run: TaskRun[Any], backend: Backend, limit: int, on_event: Callable[[StreamEvent], None] | None,
    report: Callable[[], None] = lambda: None,
) -> None:
    """Send what the run asks, as many at once as ``limit`` allows; the first failure cancels the rest."""
    receiving = asyncio.Lock()  # one answer taken at a time: a run's state is not shared across threads

    async def exchange(request: Request) -> list[Request]:
        if on_event is not None and request.final and request.output.json_schema is None:
            completion = await _streamed(backend, request, on_event)
        else:
            completion = await backend.complete(request.messages, output=request.output, params=request.params)
        # A long document's answers are checked in a thread, a part's too: the last one indexes the whole
        # document for the combine step (0.8 s for 12 MiB).
        async with receiving:
            follow_ups = await _call(long, run.receive, request, completion)
        report()
        if on_event is not None and request.final and follow_ups and follow_ups[0].reasks > request.reasks:
            on_event(Reask(_last_errors(follow_ups[0])))
        return follow_ups

    long = _long(run.document)
    pending = await _call(long, run.start)  # 11 MiB: 0.45 s of splitting
    report()
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


def task_prompts(task: str | TaskSpec[Any], prompts: PromptLibrary) -> list[PromptTemplate]:
    """The templates a task may use (for cache keys and listings)."""
    spec = resolve_task(task)
    return [prompts.get(name, spec.templates.get(name)) for name in (spec.prompt_name, spec.combine_name)]
