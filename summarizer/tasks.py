"""Tasks: brief and events. Render the prompt, call the backend, validate,
re-ask with the concrete errors, and map-reduce documents over the budget.

Nothing here knows about files, the CLI or bulk runs: a task takes one
Document and a Backend and returns a Result (or raises, with the usage spent
attached to the error).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from .cache import cache_key
from .documents import Document, estimate_tokens, sentences, split_into_chunks
from .errors import ConfigError, OutputValidationError, SummarizerError
from .grounding import SourceIndex, brief_warnings, date_supported
from .llm import Backend, OutputSpec
from .prompts import PromptLibrary, PromptTemplate
from .schemas import (
    Brief, EventReport, Result, Usage, brief_problems, count_words, event_report_schema, with_evidence_choices,
)

__all__ = ["TaskName", "TaskOptions", "run_task", "result_cache_key"]

TaskName = Literal["brief", "events"]
Validator = Callable[[str, "str | None"], tuple[Any, list[str]]]

_CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-ÞА-ЯЁ][\w'’-]+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
# Built once: the schema is sent with every events request. Backends get the
# full form (bounds included) and adapt it: strict mode drops the bounds, a
# local grammar enforces them.
_SCHEMA = event_report_schema(strict=False)
_SCHEMA_JSON = json.dumps(_SCHEMA, separators=(",", ":"))


@dataclass(frozen=True)
class TaskOptions:
    """What a caller may tune per call."""

    min_words: int = 40
    max_words: int = 120
    language: str | None = None
    strict: bool = False
    max_reasks: int = 2
    context_tokens: int = 8192
    concurrency: int = 4

    @property
    def language_phrase(self) -> str:
        if not self.language:
            return "the same language as the document"
        code = self.language.strip()
        return f"the language with ISO 639-1 code '{code}'" if len(code) == 2 else code


class _Invalid(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class _Run:
    """What one task call accumulates across its requests."""

    model: str
    usage: Usage = field(default_factory=Usage)
    prompts: list[str] = field(default_factory=list)

    def used(self, template: PromptTemplate) -> None:
        if template.id not in self.prompts:
            self.prompts.append(template.id)


@dataclass(frozen=True)
class _Spec:
    """How one task renders, validates and combines."""

    prompt: str
    combine_prompt: str
    structured: bool
    validate: Callable[[str, str | None, SourceIndex, TaskOptions], tuple[Any, list[str]]]
    as_part: Callable[[Any, int], str]


async def run_task(
    task: TaskName, document: Document, backend: Backend, prompts: PromptLibrary, options: TaskOptions
) -> Result[Any]:
    """Run ``task`` on ``document``; raise SummarizerError (usage attached) on failure."""
    spec = _SPECS[task]
    run = _Run(model=backend.model)
    started = time.perf_counter()
    warnings: list[str] = []
    if document.dropped_repeats:
        warnings.append(f"dropped {document.dropped_repeats} repeated paragraph(s) from the input")
    try:
        value, found = await _summarise(spec, document, backend, prompts, options, run, warnings)
    except SummarizerError as exc:
        if exc.usage is not None and exc.usage is not run.usage:
            run.usage.add(exc.usage)
        exc.usage = run.usage
        raise
    return Result[Any](
        id=document.id, task=task, status="ok", value=value, warnings=warnings + found,
        usage=run.usage, model=run.model, prompt_version="+".join(run.prompts),
        latency_ms=round((time.perf_counter() - started) * 1000),
    )


def result_cache_key(
    task: TaskName, document: Document, options: TaskOptions, prompts: PromptLibrary,
    model: str, temperature: float | None,
) -> str:
    """What identifies a result: task, model, prompts (their full text), options, document."""
    spec = _SPECS[task]
    return cache_key(
        task=task, model=model, temperature=temperature, document=document.digest,
        prompts=[prompts.get(spec.prompt).fingerprint, prompts.get(spec.combine_prompt).fingerprint],
        options=[options.min_words, options.max_words, options.language, options.strict, options.context_tokens],
    )


async def _summarise(
    spec: _Spec, document: Document, backend: Backend, prompts: PromptLibrary,
    options: TaskOptions, run: _Run, warnings: list[str],
) -> tuple[Any, list[str]]:
    template = prompts.get(spec.prompt)
    variables = _variables(spec, options)
    budget = _document_budget(template, variables, options)
    chunks = [document.text]
    if estimate_tokens(document.text) > budget:
        chunks = split_into_chunks(document.paragraphs, budget)
    if len(chunks) == 1:
        return await _generate(spec, backend, template, {**variables, "document": document.text},
                               SourceIndex(document.text), options, run)
    warnings.append(f"long document: read in {len(chunks)} parts, then combined")
    parts = await _bounded(
        [_generate(spec, backend, template, {**variables, "document": chunk}, SourceIndex(chunk), options, run)
         for chunk in chunks],
        options.concurrency,
    )
    return await _reduce(spec, [value for value, _ in parts], document, backend, prompts, options, run)


async def _reduce(
    spec: _Spec, parts: list[Any], document: Document, backend: Backend,
    prompts: PromptLibrary, options: TaskOptions, run: _Run,
) -> tuple[Any, list[str]]:
    """Combine partial results, in groups that fit the budget, until one is left."""
    template = prompts.get(spec.combine_prompt)
    variables = _variables(spec, options)
    budget = _document_budget(template, {**variables, "parts": "", "count": len(parts)}, options)
    source = SourceIndex(document.text)
    while True:
        groups = _groups_that_fit([spec.as_part(p, i + 1) for i, p in enumerate(parts)], budget)
        calls = [
            _generate(spec, backend, template,
                      {**variables, "parts": "\n\n".join(group), "count": len(group)}, source, options, run)
            for group in groups
        ]
        combined = await _bounded(calls, options.concurrency)
        if len(combined) == 1:
            return combined[0]
        parts = [value for value, _ in combined]


async def _generate(
    spec: _Spec, backend: Backend, template: PromptTemplate, variables: dict[str, Any],
    source: SourceIndex, options: TaskOptions, run: _Run,
) -> tuple[Any, list[str]]:
    """One answer, re-asked with its validation errors until valid or out of re-asks."""
    run.used(template)
    messages = template.messages(**variables)
    output = _output_spec(spec, template, variables)
    errors: list[str] = []
    for attempt in range(options.max_reasks + 1):
        completion = await backend.complete(messages, output=output, params=template.params)
        run.usage.add(completion.usage)
        run.model = completion.model or run.model
        if completion.refusal:
            raise OutputValidationError(f"the model refused: {completion.refusal[:200]}",
                                        raw_output=completion.refusal, usage=run.usage)
        try:
            return spec.validate(completion.text, completion.finish_reason, source, options)
        except _Invalid as exc:
            errors = exc.errors
        if attempt < options.max_reasks:
            run.usage.reasks += 1
            messages = [*messages, {"role": "assistant", "content": completion.text},
                        template.reask_message(errors="\n".join(f"- {e}" for e in errors))]
    raise OutputValidationError(
        f"model output still invalid after {options.max_reasks} re-ask(s): {errors[0]}"
        + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""),
        raw_output=completion.text, errors=errors, usage=run.usage,
    )


def _output_spec(spec: _Spec, template: PromptTemplate, variables: dict[str, Any]) -> OutputSpec:
    if not spec.structured:
        text = variables.get("document") or re.sub(r"^Part \d+: ", "", variables.get("parts", ""))
        return OutputSpec(grammar=template.render_grammar(**variables, lead_words=_lead_words(text)))
    # Grammar decoders may only quote the text in front of them: the document
    # (or chunk), or for a combine step the quotes the part reports carry.
    text = variables.get("document")
    parts = variables.get("parts", "")

    def grounded() -> dict[str, Any]:
        quotes = sentences(text) if text else _part_quotes(parts)
        return with_evidence_choices(_SCHEMA, _grammar_safe(quotes))

    return OutputSpec(json_schema=_SCHEMA, name="event_report", grammar_schema=grounded)


def _grammar_safe(quotes: list[str]) -> list[str]:
    # llama.cpp's schema-to-grammar converter mis-escapes '"' and '\\' inside enum
    # values; the stretches between them are still verbatim quotes.
    pieces = (p.strip(" ,;") for q in quotes for p in re.split(r'["\\]', q))
    return list(dict.fromkeys(p for p in pieces if len(p) >= 20))


def _lead_words(text: str) -> str:
    """GBNF alternatives: the capitalised words that open the text, for a brief to start on."""
    first = text.split("\n\n", 1)[0]
    words = list(dict.fromkeys(_CAPITALISED.findall(first)))[:24]
    return " | ".join(json.dumps(w, ensure_ascii=False) for w in words) if words else "[^ \\n\\r]+"


def _part_quotes(parts: str) -> list[str]:
    quotes: dict[str, None] = {}
    for line in parts.splitlines():
        _, _, blob = line.partition(": ")
        try:
            for event in json.loads(blob).get("events", []):
                quotes.update(dict.fromkeys(event.get("evidence", [])))
        except (ValueError, AttributeError):
            continue
    return list(quotes)


# --- brief -----------------------------------------------------------------------


def _validate_brief(
    raw: str, finish_reason: str | None, source: SourceIndex, options: TaskOptions
) -> tuple[Brief, list[str]]:
    text = raw.strip().strip('"“”').strip()
    problems = brief_problems(text, options.min_words, options.max_words)
    if finish_reason == "length":
        problems.insert(0, "it was cut off before the end; write a shorter brief")
    warnings = brief_warnings(text, source)
    if options.strict:
        problems += [f"{w}; use only facts stated in the document" for w in warnings]
    if problems:
        raise _Invalid(problems)
    return Brief(text=text, word_count=count_words(text)), warnings


def _brief_as_part(value: Brief, number: int) -> str:
    return f"Part {number}: {value.text}"


# --- events ----------------------------------------------------------------------


def _validate_events(
    raw: str, finish_reason: str | None, source: SourceIndex, options: TaskOptions
) -> tuple[EventReport, list[str]]:
    try:
        data = extract_json(raw)
    except ValueError as exc:
        cut = "the output was cut off before the JSON ended; " if finish_reason == "length" else ""
        raise _Invalid([f"{cut}{exc}"]) from None
    try:
        report = EventReport.model_validate(data)
    except ValidationError as exc:
        raise _Invalid(_pydantic_errors(exc)) from None
    missing = [
        f"events[{i}].evidence[{j}] is not a verbatim quote from the document: {quote[:160]!r}"
        for i, event in enumerate(report.events)
        for j, quote in enumerate(event.evidence)
        if not source.contains(quote)
    ]
    if missing:
        raise _Invalid(missing)
    return report, _event_warnings(report, source)


def _event_warnings(report: EventReport, source: SourceIndex) -> list[str]:
    warnings = []
    for i, event in enumerate(report.events):
        if event.when is not None and not source.contains(event.when.text):
            warnings.append(f"events[{i}].when.text not in source: {event.when.text!r}")
        if event.when is not None and event.when.date and not date_supported(event.when.date, source):
            warnings.append(f"events[{i}].when.date not stated in source: {event.when.date}")
        for p in event.participants:
            if not source.contains(p.name):
                warnings.append(f"events[{i}] participant not named in source: {p.name!r}")
    return warnings


def _events_as_part(value: EventReport, number: int) -> str:
    return f"Part {number}: " + value.model_dump_json(exclude={"schema_version"})


def extract_json(text: str) -> Any:
    """The JSON object in ``text``: bare, inside a code fence, or after leading prose."""
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    # strict=False: raw newlines inside strings (small models under a grammar
    # emit them) are not worth a re-ask.
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)
        except json.JSONDecodeError:
            pass
    start = stripped.find("{")
    if start >= 0:
        try:
            return json.JSONDecoder(strict=False).raw_decode(stripped[start:])[0]
        except json.JSONDecodeError as exc:
            raise ValueError(f"the JSON object is malformed: {exc.msg} at character {exc.pos}") from None
    raise ValueError("no JSON object found in the output")


def _pydantic_errors(exc: ValidationError) -> list[str]:
    errors = []
    for error in exc.errors(include_url=False)[:12]:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(".[", "[")
        errors.append(f"{where or 'root'}: {error['msg']}")
    return errors


# --- shared ----------------------------------------------------------------------


def _variables(spec: _Spec, options: TaskOptions) -> dict[str, Any]:
    values: dict[str, Any] = {
        "min_words": options.min_words, "max_words": options.max_words,
        "min_chars": options.min_words * 6, "max_chars": options.max_words * 6,
        "language": options.language_phrase,
    }
    if spec.structured:
        values["schema"] = _SCHEMA_JSON
    return values


def _document_budget(template: PromptTemplate, variables: dict[str, Any], options: TaskOptions) -> int:
    """Tokens left for the document once the prompt and the answer are paid for."""
    frame = template.messages(**{"document": "", "parts": "", "count": 0, **variables})
    overhead = sum(estimate_tokens(m["content"]) + 4 for m in frame)
    answer = int(template.params.get("max_tokens", 1000))
    budget = options.context_tokens - overhead - answer
    if budget < 256:
        raise ConfigError(
            f"a context of {options.context_tokens} tokens cannot hold the {template.id} prompt "
            f"(~{overhead} tokens), its answer ({answer}) and any text: raise --context-tokens "
            f"to at least {overhead + answer + 1024}"
        )
    return budget


def _groups_that_fit(texts: list[str], budget: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    size = 0
    for text in texts:
        cost = estimate_tokens(text) + 2
        if groups[-1] and size + cost > budget:
            groups.append([])
            size = 0
        groups[-1].append(text)
        size += cost
    if len(groups) == len(texts) > 1:  # nothing fits together: pair up to make progress
        groups = [texts[i:i + 2] for i in range(0, len(texts), 2)]
    return groups


async def _bounded(calls: list[Awaitable[Any]], limit: int) -> list[Any]:
    """Await ``calls`` at most ``limit`` at a time; the first failure cancels the rest."""
    gate = asyncio.Semaphore(limit)

    async def _one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_one(call)) for call in calls]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


_SPECS: dict[str, _Spec] = {
    "brief": _Spec("brief", "brief_combine", False, _validate_brief, _brief_as_part),
    "events": _Spec("events", "events_combine", True, _validate_events, _events_as_part),
}
