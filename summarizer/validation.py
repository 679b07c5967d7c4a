"""Is a model's answer a valid brief or event report? Parse, check the shape, ground it.

An answer either becomes a value with its warnings, or raises ``Invalid`` with
one sentence per problem: the sentences go back to the model in a re-ask, so
they say what to fix, not just what broke.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from .grounding import SourceIndex, brief_warnings, event_warnings, evidence_errors
from .faithfulness import check
from .schemas import Brief, CheckedSentence, ReportAnswer, count_words

__all__ = ["Invalid", "brief_problems", "extract_json", "pydantic_errors", "validate_brief", "validate_events"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_PREAMBLE = re.compile(
    r"^\s*(here\s+is|here's|here\s+are|sure\b|certainly\b|of\s+course\b|below\s+is|"
    r"summary\s*:|brief\s*:|in\s+summary\b|this\s+(article|document|text)\s+(is|describes|discusses|reports))",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*([-*•·▪–]|\d+[.)])\s+", re.MULTILINE)
# What the brief prompts say to the model: a brief holding it (and the source not) played its
# prompt back — the free-prose embedded model once returned the combine prompt as the brief.
_ECHO = re.compile(
    r"\bpart briefs?\b|\bpart \d+:|</?(?:document|part_briefs)>|\bbusy readers\b|\breply with the brief only\b|"
    r"\bthe document is data\b|\bwrite the whole brief again\b|\bbrief the document\b|\bcombine the part\b|"
    r"\bnever a preamble\b|\bone paragraph of plain prose\b", re.IGNORECASE)


class Invalid(Exception):
    """The answer breaks the rules; ``errors`` are what the re-ask tells the model."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def validate_brief(
    raw: str, finish_reason: str | None, source: SourceIndex, *, words: tuple[int, int], strict: bool,
) -> tuple[Brief, list[str]]:
    """A brief and its grounding warnings; with ``strict`` the warnings are problems too."""
    text = raw.strip().strip('"“”').strip()
    problems = brief_problems(text, *words)
    if finish_reason == "length":
        problems.insert(0, "it was cut off before the end; write a shorter brief")
    echoed = [m.group(0) for m in _ECHO.finditer(text) if not source.contains(m.group(0))]
    if echoed:
        problems.append(f"it repeats the instructions ({echoed[0]!r}) instead of briefing the document")
    if problems:  # the shape first: citing a preamble or a bullet list says nothing
        raise Invalid(problems)
    warnings = brief_warnings(text, source)
    checked = check(text, source.text, published=source.published)
    unsupported = [_unsupported(n, sentence) for n, sentence in enumerate(checked.sentences, 1)
                   if sentence.support == "unsupported"]
    if strict:
        problems += [f"{w}; use only facts stated in the document" for w in [*warnings, *unsupported]]
    if problems:
        raise Invalid(problems)
    return Brief(text=text, word_count=count_words(text), sentences=checked.sentences), [*warnings, *unsupported]


def _unsupported(number: int, sentence: CheckedSentence) -> str:
    """A warning naming an unsupported sentence and what in it has no backing."""
    issues = "; ".join(f"{issue.kind} {issue.text!r}: {issue.detail}" for issue in sentence.issues[:3])
    return f"sentence {number} is not backed by the source: {issues or 'no source sentence says it'}"


def brief_problems(text: str, min_words: int, max_words: int) -> list[str]:
    """What is wrong with ``text`` as a brief, one sentence per problem."""
    if not text.strip():
        return ["the brief is empty"]
    problems: list[str] = []
    if _BULLET.search(text):
        problems.append("it uses bullets or a numbered list; write plain prose")
    if "\n" in text.strip():
        problems.append("it has line breaks; write exactly one paragraph")
    if _PREAMBLE.match(text):
        problems.append("it starts with a preamble; start directly with the facts")
    words = count_words(text)
    if not min_words <= words <= max_words:
        problems.append(f"it has {words} words; it must have {min_words}-{max_words}")
    return problems


def validate_events(raw: str, finish_reason: str | None, source: SourceIndex) -> tuple[ReportAnswer, list[str]]:
    """An event report whose every evidence quote is in ``source``, and its warnings."""
    try:
        data = extract_json(raw)
    except ValueError as exc:
        cut = "the output was cut off before the JSON ended; " if finish_reason == "length" else ""
        raise Invalid([f"{cut}{exc}"]) from None
    try:
        report = ReportAnswer.model_validate(data)
    except ValidationError as exc:
        raise Invalid(pydantic_errors(exc)) from None
    missing = evidence_errors(report, source)
    if missing:
        raise Invalid(missing)
    return report, event_warnings(report, source)


def extract_json(text: str) -> Any:
    """The JSON object in ``text``: bare, inside a code fence, or after leading prose."""
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    # strict=False: raw newlines inside strings (small models under a grammar
    # emit them) are not worth a re-ask.
    try:
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
                raise ValueError(f"the JSON object is malformed: {exc.msg} (character {exc.pos})") from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply; write flatter JSON") from None
    raise ValueError("no JSON object found in the output")


def pydantic_errors(exc: ValidationError) -> list[str]:
    """Pydantic's errors as ``events[0].when.date: <what is wrong>`` lines, at most 12."""
    errors = []
    for error in exc.errors(include_url=False)[:12]:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(".[", "[")
        errors.append(f"{where or 'root'}: {error['msg']}")
    return errors
