"""Deterministic faithfulness checks: is what the model says in the source?

Every check of an answer against its source lives here: a brief's names and
numbers, an event report's evidence quotes, participants, time expressions
and dates. Matching forgives only what scraping and typing change without
changing meaning: case, runs of whitespace, and typographic quotes and dashes.
"""

from __future__ import annotations

import bisect
import functools
import datetime as dt
import re
from typing import TYPE_CHECKING

from .align import Aligner, Alignment
from .dates import candidates

if TYPE_CHECKING:
    from .schemas import ReportAnswer

__all__ = [
    "CAPITALS", "SourceIndex", "brief_warnings", "claims", "date_supported", "evidence_errors", "event_warnings",
    "lead_names",
]

_TYPOGRAPHY = str.maketrans({
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "‑": "-", "−": "-", "\u00a0": " ",
})
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
CAPITALS = "A-ZÀ-ÖØ-ÞĀ-ŽА-ЯЁΑ-Ω"  # capital letters (Latin, Cyrillic, Greek) as a regex class body
_CAPITALISED = rf"[{CAPITALS}][\w'’-]*"
_CAPITALISED_WORD = re.compile(rf"\b[{CAPITALS}][\w'’-]+")
_NAME_RUN = re.compile(rf"{_CAPITALISED}(?:\s+{_CAPITALISED})*")
_SENTENCE_START = re.compile(r"(^|[.!?:;\"]\s+)$")
_POSSESSIVE = re.compile(r"'s?$")


def _key(text: str) -> str:
    return _SPACES.sub(" ", text.translate(_TYPOGRAPHY)).strip().casefold()


def _plain_number(token: str) -> str:
    # "1,200" and "1200" are the same number; "3.5" keeps its point.
    token = token.strip(".,")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", token):
        token = token.replace(",", "")
    return token


class SourceIndex:
    """The normalised source, prepared once for many lookups, and its publication date if known."""

    def __init__(self, source: str, published: dt.date | None = None) -> None:
        self.text, self.published = source, published
        self.key = _key(source)
        self.words = set(re.findall(r"\w+", self.key))
        self._sorted_words: list[str] | None = None
        self.numbers = {_plain_number(n) for n in _NUMBER.findall(source.translate(_TYPOGRAPHY))}

    def has_word(self, word: str) -> bool:
        """``word`` is in the source, or begins a longer source word ("Russia" in "Russian")."""
        if word in self.words:
            return True
        if len(word) < 4:
            return False
        if self._sorted_words is None:
            self._sorted_words = sorted(self.words)
        i = bisect.bisect_left(self._sorted_words, word)
        return i < len(self._sorted_words) and self._sorted_words[i].startswith(word)

    def contains(self, quote: str) -> bool:
        key = _key(quote).strip(" \"'")
        return bool(key) and key in self.key

    @functools.cached_property
    def aligner(self) -> Aligner:
        return Aligner(self.text)

    def locate(self, quote: str) -> Alignment | None:
        """Where ``quote`` is in the source: exact, or fuzzy above the alignment threshold; else None."""
        if not quote.strip(" \"'“”‘’"):
            return None
        return self.aligner.find(quote)


def claims(text: str) -> tuple[set[str], list[str]]:
    """The checkable claims of a text: its numbers and its capitalised names."""
    text = text.translate(_TYPOGRAPHY)
    numbers = {n for n in (_plain_number(t) for t in _NUMBER.findall(text)) if n}
    return numbers, list(dict.fromkeys(name for name, _ in _names(text)))


def brief_warnings(brief: str, source: SourceIndex) -> list[str]:
    """Numbers and capitalised names in ``brief`` that the source does not back.

    The candidates are what a string test finds: digit strings and capitalised names the source text lacks.
    The faithfulness checker (``faithfulness.check``) then drops the ones it finds backed — "1,400,000" for
    "1.4 million", "Kenyan" for Kenya, "BoE" for the Bank of England, a sum or a difference of the source's
    numbers, a sentence's capitalised first word — and adds the number and name problems it finds well
    evidenced that no string test sees: a scale slip ("1.9 billion" for "1.9 million"), a number word the
    source lacks, a number or a name put where the source has another.
    """
    from .faithfulness import check, hard_issues

    text = brief.translate(_TYPOGRAPHY)  # one character for one: offsets stay the brief's
    result = check(brief, source.text, published=source.published)
    unbacked = [s.span for s in result.sentences if not s.citations]
    issues = [i for s in result.sentences for i in s.issues if i.span is not None and "elsewhere" not in i.detail]

    def doubted(kinds: tuple[str, ...], start: int, end: int) -> bool:
        return any(span.start <= start < span.end for span in unbacked) or any(
            i.kind in kinds and i.span is not None and i.span.start < end and start < i.span.end for i in issues)

    numbers = {n: (m.start(), m.end()) for m in _NUMBER.finditer(text)
               for n in [_plain_number(m.group())] if n and n not in source.numbers}
    numbers = {n: at for n, at in numbers.items() if doubted(("number", "quantity"), *at)}
    names = {name: at for name, at in _names(text)
             if not _name_in_source(name, source) and doubted(("name", "place"), *at)}
    warnings = [f"number not in source: {n}" for n in sorted(numbers)]
    warnings += [f"name not in source: {n}" for n in names]
    warned = [*numbers.values(), *names.values()]
    for issue in hard_issues(brief, source.text, published=source.published):
        at = issue.span
        if issue.kind not in _WARNED or at is None or any(a < at.end and at.start < b for a, b in warned):
            continue
        warned.append((at.start, at.end))
        absent = "not in the source" in issue.detail or issue.kind == "quantity"
        what = _WARNED[issue.kind]
        warnings.append(f"{what} not in source: {issue.text} ({issue.detail})" if absent
                        else f"{what} at odds with source: {issue.text} ({issue.detail})")
    return warnings


_WARNED = {"number": "number", "quantity": "number", "name": "name", "place": "name"}


def _names(text: str) -> list[tuple[str, tuple[int, int]]]:
    """Capitalised runs and where they are, a sentence's first word left out."""
    names = []
    for match in _NAME_RUN.finditer(text):
        run, start = match.group(0), match.start()
        if _SENTENCE_START.search(text[: match.start()]):
            # A sentence's first word is capitalised anyway: judge the rest of the run.
            head, _, run = run.partition(" ")
            start += len(head) + 1
        if run:
            names.append((_POSSESSIVE.sub("", run), (start, start + len(run))))
    return names


def _name_in_source(name: str, source: SourceIndex) -> bool:
    return all(source.has_word(w) for w in re.findall(r"\w+", _POSSESSIVE.sub("", name).casefold()))


def date_supported(date: str, source: SourceIndex, when_text: str | None = None) -> bool:
    """Whether an ISO date follows from the source.

    With a publication date, a relative ``when_text`` ("on Friday", "yesterday",
    "last Tuesday", "on March 3") fixes a small set of dates (``dates.candidates``):
    the date must be one of them. Otherwise the source must state the date's
    parts: its year, and its day if it has one. A document that says only
    "on Friday", with no publication date, cannot fix "2024-09-27": a model that
    writes such a date has guessed it.
    """
    if when_text and source.published is not None:
        resolvable = candidates(when_text, source.published)
        if resolvable:
            return date in resolvable
    parts = date.split("-")
    if parts[0] not in source.numbers:
        return False
    return len(parts) < 3 or str(int(parts[2])) in source.numbers or parts[2] in source.numbers


def evidence_errors(report: ReportAnswer, source: SourceIndex) -> list[str]:
    """One error per evidence quote the source does not hold (exactly, or fuzzily above the threshold)."""
    return [
        f"events[{i}].evidence[{j}] is not a verbatim quote from the document: {quote[:160]!r}"
        for i, event in enumerate(report.events)
        for j, quote in enumerate(event.evidence)
        if source.locate(quote) is None
    ]


def event_warnings(report: ReportAnswer, source: SourceIndex) -> list[str]:
    """Time expressions, dates and participants the source does not support: flagged, not fatal."""
    warnings = []
    for i, event in enumerate(report.events):
        if event.when is not None and not source.contains(event.when.text):
            warnings.append(f"events[{i}].when.text not in source: {event.when.text!r}")
        when = event.when
        if when is not None and when.date and not date_supported(when.date, source, when.text):
            if source.published is not None and candidates(when.text, source.published):
                warnings.append(f"events[{i}].when.date {when.date} does not follow from {when.text!r} "
                                f"in a document published {source.published.isoformat()}")
            else:
                warnings.append(f"events[{i}].when.date not stated in source: {when.date}")
        for p in event.participants:
            if not source.contains(p.name):
                warnings.append(f"events[{i}] participant not named in source: {p.name!r}")
    return warnings


def lead_names(text: str, limit: int = 24) -> list[str]:
    """The capitalised words of ``text``'s first paragraph, each once: what a brief may open on."""
    first = text.split("\n\n", 1)[0]
    return list(dict.fromkeys(_CAPITALISED_WORD.findall(first)))[:limit]
