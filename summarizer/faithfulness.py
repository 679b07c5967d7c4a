"""Is every sentence of a summary backed by its source? A deterministic, weight-free checker.

``check(summary, source)`` cites, for each summary sentence, the one to three
source sentences that back it (content words, names and numbers they share,
rare ones weighing more; ties go to the earlier sentence), then compares what
the sentence claims with what the cited window says:

* names — each must be in the window (a name from elsewhere in the source is
  a swap); titles must sit with the same person ("Prime Minister X");
* numbers and quantities — value, scale, unit and currency, with rounding and
  hedges ("about", "more than") allowed, number words read;
* dates and weekdays — with ``published``, relative ones ("yesterday",
  "last Friday") are resolved (``dates.py``) before they are compared;
* negation — a negated claim the window affirms, or the reverse, and the
  commonest opposites ("rose"/"fell", "approved"/"rejected");
* content words the whole source lacks (paraphrase vocabulary excepted).

A sentence is ``unsupported`` when it has a hard issue (any of the above but
out-of-article words) or no backing at all, ``partial`` when only a few of its
content words lack backing, else ``supported``. Precision comes first: a flag
must mean something.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from .align import fold, sentence_spans
from .schemas import CheckedSentence, Issue, Span
from .facts import (
    CONTINENTAL, Name, PRIVATIVE, PRONOUNS, TITLE_WORDS, Facts, Quantity, TimeRef, antonym_of, close, facts_of,
    is_content, is_generic, negated, number_word, same_quantity, stem,
)
from .language import detect_language

__all__ = ["Check", "CheckedSentence", "Issue", "IssueKind", "Support", "check"]

IssueKind = Literal["name", "number", "date", "quantity", "negation", "place", "role", "unsupported_content"]
Support = Literal["supported", "partial", "unsupported"]
_HARD: frozenset[str] = frozenset({"name", "number", "date", "quantity", "negation", "place", "role"})
_MAX_CITATIONS = 3
_NOVEL_HARD = 4  # out-of-article content words in one sentence that make it unsupported (and 40% of its words)
_PLACE_NOUNS = frozenset("town city village province region state port island county district capital".split())
_CONNECTORS = frozenset("of de del la and for the y et und für".split())
_LOCATIVE = frozenset("in at near from to off into across outside inside en à dans aus im bei nach".split())
_DEMONYMS = {
    "martian": "mars", "french": "france", "british": "britain", "spanish": "spain", "swiss": "switzerland",
    "dutch": "netherlands", "greek": "greece", "danish": "denmark", "swedish": "sweden", "polish": "poland",
    "turkish": "turkey", "finnish": "finland", "irish": "ireland", "welsh": "wales", "scottish": "scotland",
    "filipino": "philippines", "thai": "thailand", "spaniard": "spain", "briton": "britain", "afghan": "afghanistan",
    "uk": "britain", "us": "united", "american": "america", "ugandan": "uganda", "norwegian": "norway",
    "peruvian": "peru", "chilean": "chile", "basque": "basque", "canadian": "canada", "german": "germany",
    "ecuadorian": "ecuador", "kenyan": "kenya", "ethiopian": "ethiopia", "indian": "india",
}
_TITLE_SAME = {"ceo": "chief executive", "chief executive officer": "chief executive", "boss": "chief executive",
               "cfo": "chief financial officer", "kanzler": "bundeskanzler", "premier": "prime minister"}
_LOOSE_TITLES = frozenset({"head", "leader", "boss", "director", "secretary", "engineer", "manager", "founder",
                           "captain", "pilot"})


class Check(BaseModel):
    """The verdict on a whole summary, sentence by sentence."""

    sentences: list[CheckedSentence]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flagged(self) -> bool:
        """Whether any sentence is unsupported."""
        return any(s.support == "unsupported" for s in self.sentences)


# -- the source, prepared once ---------------------------------------------------------------


@dataclass
class _Sentence:
    span: Span
    facts: Facts
    refers_back: bool  # opens with a pronoun or a definite description: its names may be earlier


@dataclass
class _Finding:
    issue: Issue
    hard: bool


class _Source:
    def __init__(self, text: str, published: dt.date | None) -> None:
        self.text, self.published = text, published
        language = detect_language(text)
        self.continental = language in CONTINENTAL
        self.names = language != "de"  # German capitalises every noun
        self.english = language in (None, "en")  # the paraphrase lexicon is English
        self.sentences = []
        for span in sentence_spans(text):
            facts = self.facts(span.of(text))
            opening = {w for w, _ in facts.words[:4]}
            self.sentences.append(_Sentence(span, facts, bool(opening & PRONOUNS)))
        self.concepts: set[str] = set()
        self.words: set[str] = set()
        self.sequence: list[str] = []
        self.df: dict[str, int] = {}
        for s in self.sentences:
            self.concepts |= s.facts.concepts
            self.words |= {w for w, _ in s.facts.words}
            self.sequence += [w for w, _ in s.facts.words]
            for c in s.facts.concepts | s.facts.name_keys:
                self.df[c] = self.df.get(c, 0) + 1
        self.prefixes = {w[:5] for w in self.words if len(w) >= 5}
        self.titles = [t for s in self.sentences for t in s.facts.titles]
        self.quantities = [q for s in self.sentences for q in s.facts.quantities]
        self.times = [t for s in self.sentences for t in s.facts.times]

    def facts(self, text: str) -> Facts:
        return facts_of(text, continental=self.continental, published=self.published, names=self.names)

    def weight(self, element: str) -> float:
        return math.log(1 + len(self.sentences) / self.df.get(element, 1))

    def spells(self, acronym: str) -> bool:
        """Whether consecutive source words have ``acronym``'s letters as initials ("BoE", "USGS", "GDP")."""
        letters, words = acronym.casefold(), self.sequence
        for i in range(len(words)):
            j = k = 0
            while k < len(letters) and i + j < len(words):
                word = words[i + j]
                if word in ("us", "uk", "eu", "un") and letters.startswith(word, k):
                    k += 2
                elif word[:1] == letters[k]:
                    k += 1
                elif word in _CONNECTORS and j:
                    pass
                else:
                    break
                j += 1
            if k == len(letters) and j > 1:
                return True
        return False


def check(summary: str, source: str, *, published: dt.date | None = None) -> Check:
    """Check every sentence of ``summary`` against ``source``; see the module docstring for the rules."""
    src = _Source(source, published)
    checked = []
    for span in sentence_spans(summary):
        text = span.of(summary)
        facts = src.facts(text)
        cited = _cite(facts, src)
        findings = _judge(facts, cited, src)
        issues = [_placed(f.issue, summary, span) for f in findings]
        support: Support = ("unsupported" if not cited or any(f.hard for f in findings)
                            else "partial" if findings else "supported")
        checked.append(CheckedSentence(text=text, span=span, citations=[src.sentences[i].span for i in cited],
                                       support=support, issues=issues))
    return Check(sentences=checked)


def _placed(issue: Issue, summary: str, sentence: Span) -> Issue:
    at = summary.find(issue.text, sentence.start, sentence.end) if issue.text else -1
    if at < 0:
        return issue
    return issue.model_copy(update={"span": Span(start=at, end=at + len(issue.text))})


# -- citations ------------------------------------------------------------------------------


def _score(claim: Facts, backing: Facts, src: _Source) -> tuple[float, set[str]]:
    shared = (claim.concepts | claim.name_keys) & (backing.concepts | backing.name_keys)
    score = sum(src.weight(e) * (0.3 if is_generic(e) else 1.0) for e in shared)
    for q in claim.quantities:
        if any(same_quantity(q, b) for b in backing.quantities):
            shared.add(f"#{q.start}")
            score += 2.5
    return score, shared


def _substantive(element: str, claim: Facts) -> bool:
    """Whether a shared element says something of its own: not a name, a title, a number or a generic word."""
    return not element.startswith("#") and element not in claim.name_keys and element not in TITLE_WORDS \
        and not is_generic(element)


def _cite(claim: Facts, src: _Source) -> list[int]:
    """The source sentences that back ``claim``: the best one, then up to two that add what it lacks.

    A sentence is added only for two or more new elements, one of them
    substantive (a content word: not a name, a title or a number): a name or
    a number alone never pulls a sentence in, so one swapped in from
    elsewhere in the source stays unbacked.
    """
    scored = [_score(claim, s.facts, src) for s in src.sentences]
    if not scored:
        return []
    best = max(range(len(scored)), key=lambda i: (scored[i][0], -i))
    if scored[best][0] <= 0:
        return []
    cited, covered = [best], set(scored[best][1])
    while len(cited) < _MAX_CITATIONS:
        gains = [(len(shared - covered), i) for i, (_, shared) in enumerate(scored)
                 if i not in cited and any(_substantive(e, claim) for e in shared - covered)]
        gains = [(g, i) for g, i in gains if g >= 2]
        if not gains:
            break
        _, pick = max(gains, key=lambda gi: (gi[0], scored[gi[1]][0], -gi[1]))
        cited.append(pick)
        covered |= scored[pick][1]
    return sorted(cited)


# -- the verdict -------------------------------------------------------------------------------


@dataclass
class _Window:
    facts: list[Facts]
    name_facts: list[Facts]  # the window, plus earlier sentences its pronouns may point to

    @property
    def concepts(self) -> set[str]:
        return {c for f in self.facts for c in f.concepts}


def _window(cited: list[int], src: _Source) -> _Window:
    facts = [src.sentences[i].facts for i in cited]
    extended = set(cited)
    for i in cited:
        if src.sentences[i].refers_back:
            extended |= {j for j in (i - 1, i - 2) if j >= 0}
    extended.add(0)  # the headline or lead names the story's actors
    return _Window(facts, [src.sentences[i].facts for i in sorted(extended)])


def _judge(claim: Facts, cited: list[int], src: _Source) -> list[_Finding]:
    if not cited:
        return [_Finding(Issue(kind="unsupported_content", text=claim.text[:80],
                               detail="no sentence of the source backs this"), True)]
    window = _window(cited, src)
    return (_name_issues(claim, window, src) + _title_issues(claim, src) + _quantity_issues(claim, window, src)
            + _time_issues(claim, window, src) + _negation_issues(claim, window) + _novel_issues(claim, src))


def _name_issues(claim: Facts, window: _Window, src: _Source) -> list[_Finding]:
    near = {k for f in window.name_facts for k in f.name_keys} | {w for f in window.name_facts for w, _ in f.words}
    mentioned = claim.name_keys | {w for w, _ in claim.words}
    rivals = [(n.text, _name_kind(f.text, n.start)) for f in window.facts for n in f.names
              if not any(_known(k, mentioned, src) for k in n.keys) and not _demonym(n)]
    out = []
    for name in claim.names:
        missing = [k for k in name.keys if not _known(k, near, src)]
        if not missing:
            continue
        kind = _name_kind(claim.text, name.start)
        same_kind = [text for text, k in rivals if k == kind]
        if not all(_known(k, src.words, src) for k in missing):
            out.append(_Finding(Issue(kind=kind, text=name.text, detail=f"{name.text!r} is not in the source"), True))
        elif same_kind and not _appositive(claim, name):
            detail = (f"{name.text!r} is elsewhere in the source; the sentences backing this one name "
                      f"{', '.join(repr(r) for r in same_kind[:3])}")
            out.append(_Finding(Issue(kind=kind, text=name.text, detail=detail), True))
    return out


def _name_kind(text: str, start: int) -> IssueKind:
    before = [w for w in text[:start].split()[-3:] if fold(w) not in ("the", "a", "an", "la", "el", "le", "der")]
    if len(before) >= 2 and fold(before[-1]) == "of" and fold(before[-2]) in _PLACE_NOUNS:
        return "place"
    return "place" if before and fold(before[-1]) in _LOCATIVE else "name"


def _demonym(name: Name) -> bool:
    """"Basque", "Kenyan", "Chinese": an adjective, not a rival for a person or a place."""
    key = name.keys[-1]
    return len(name.keys) == 1 and (key in _DEMONYMS or key.endswith(("an", "ese", "ish", "que")))


def _appositive(claim: Facts, name: Name) -> bool:
    """"Shift4 founder Jared Isaacman": a name that only qualifies a title (checked by the title rule)."""
    following = claim.text[name.start + len(name.text):].split()[:2]
    return any(fold(w).strip(",.'’s") in TITLE_WORDS for w in following)


def _known(key: str, words: set[str], src: _Source) -> bool:
    if key in words or key.rstrip("s") in words or _DEMONYMS.get(key, "") in words:
        return True
    if len(key) >= 5 and any(w[:5] == key[:5] for w in words if len(w) >= 5):
        return True
    return 2 <= len(key) <= 6 and key.isalpha() and src.spells(key)


def _title_issues(claim: Facts, src: _Source) -> list[_Finding]:
    said = {(_TITLE_SAME.get(t, t), who) for t, who in src.titles}
    out = []
    for title, who in claim.titles:
        title = _TITLE_SAME.get(title, title)
        if title in _LOOSE_TITLES or (title, who) in said:
            continue
        others = sorted({w for t, w in said if t == title and w != who})
        if others:
            detail = f"the source gives {title!r} to {', '.join(o.title() for o in others)}, not to {who.title()}"
            out.append(_Finding(Issue(kind="role", text=title, detail=detail), True))
    return out


def _quantity_issues(claim: Facts, window: _Window, src: _Source) -> list[_Finding]:
    near = [q for f in window.facts for q in f.quantities]
    out = []
    for q in claim.quantities:
        if any(same_quantity(q, b) for b in near) or _sum_of_two(q, near):
            continue
        if q.year and any(q.value == b.value for b in src.quantities):
            continue
        rivals = [b for b in near if not b.year and b.dimension == q.dimension and b.currency == q.currency]
        shown = f"; the sentences backing it say {', '.join(repr(b.text) for b in rivals[:3])}" if rivals else ""
        if any(same_quantity(q, b) and b.dimension == q.dimension for b in src.quantities):
            issue = Issue(kind="number", text=q.text, detail=f"{q.text!r} is elsewhere in the source{shown}")
            out.append(_Finding(issue, False))  # precision: a fused sentence often draws numbers from afar
            continue
        other = next((b for b in near if b.mantissa == q.mantissa and b.value != q.value), None)
        if other is not None:
            out.append(_Finding(Issue(kind="quantity", text=q.text, detail=f"the source says {other.text!r}"), True))
            continue
        small_word = q.word and q.value <= 4 and not q.dimension
        hard = not small_word or any(b.word or b.value <= 12 for b in rivals)
        out.append(_Finding(Issue(kind="number", text=q.text, detail=f"{q.text!r} is not in the source{shown}"), hard))
    return out


def _sum_of_two(q: Quantity, near: list[Quantity]) -> bool:
    values = [b.value for b in near if not b.year and b.dimension == q.dimension and b.value > 0]
    return any(close(q, a + b) for i, a in enumerate(values) for b in values[i + 1:])


def _time_issues(claim: Facts, window: _Window, src: _Source) -> list[_Finding]:
    near = [t for f in window.facts for t in f.times if t.weekday is not None or t.dates]
    years = {str(int(q.value)) for f in window.facts for q in f.quantities if q.year}
    out = []
    for t in claim.times:
        if t.weekday is None and not t.dates:
            continue
        if any(_same_time(t, b) for b in near) or (t.dates and t.dates <= years):
            continue
        rivals = [b for b in near if (b.weekday is not None) == (t.weekday is not None)
                  and not any(_same_time(other, b) for other in claim.times)]
        if not rivals and any(_same_time(t, b) for b in src.times):
            continue
        said = ", ".join(repr(b.text) for b in rivals[:3])
        detail = f"the source says {said}" if said else "the source gives no such date"
        out.append(_Finding(Issue(kind="date", text=t.text, detail=detail), True))
    return out


def _same_time(claim: TimeRef, backing: TimeRef) -> bool:
    if claim.weekday is not None and claim.weekday == backing.weekday:
        return True
    return any(a.startswith(b) or b.startswith(a) for a in claim.dates for b in backing.dates)


def _negation_issues(claim: Facts, window: _Window) -> list[_Finding]:
    """A negated claim its source affirms (with no negation in sight), or an affirmed one its source negates."""
    out = []
    claim_negated = negated(claim)
    claim_denies = bool(claim.negations) or any(w in PRIVATIVE for w, _ in claim.words)
    for f in window.facts:
        if claim_negated and not f.negations and not any(w in PRIVATIVE for w, _ in f.words):
            flipped = sorted(claim_negated & f.concepts)
            if flipped:
                detail = f"negated here, affirmed in the source: {f.text[:100]!r}"
                out.append(_Finding(Issue(kind="negation", text=_word_for(claim, flipped[0]), detail=detail), True))
        if not claim_denies:
            unflipped = sorted(negated(f) & claim.concepts)
            if unflipped:
                detail = f"affirmed here, negated in the source: {f.text[:100]!r}"
                out.append(_Finding(Issue(kind="negation", text=_word_for(claim, unflipped[0]), detail=detail), True))
    concepts = window.concepts
    for word, c, _ in claim.content:
        opposite = antonym_of(c)
        if opposite and opposite in concepts and c not in concepts:
            detail = f"the source says the opposite ({opposite})"
            out.append(_Finding(Issue(kind="negation", text=word, detail=detail), True))
    return list({f.issue.text: f for f in out}.values())


def _word_for(claim: Facts, concept: str) -> str:
    return next((w for w, c, _ in claim.content if c == concept), concept)


def _novel_issues(claim: Facts, src: _Source) -> list[_Finding]:
    """Content words the whole source lacks: a few make a sentence partial, many (in English) unsupported."""
    names = {k for n in claim.names for k in n.keys}
    novel = list(dict.fromkeys(
        w for w, c, _ in claim.content
        if c not in src.concepts and stem(w) not in src.concepts and not is_generic(w) and w not in names
        and not number_word(w) and not (len(w) >= 5 and w[:5] in src.prefixes) and is_content(w)))
    if not novel:
        return []
    content = len({c for _, c, _ in claim.content}) or 1
    hard = src.english and len(novel) >= _NOVEL_HARD and len(novel) / content >= 0.4
    detail = ("claims content the source lacks: " if hard else "not in the source: ") + ", ".join(novel)
    return [_Finding(Issue(kind="unsupported_content", text=novel[0], detail=detail), hard)]
