"""Is every sentence of a summary backed by its source? A deterministic, weight-free checker.

``check(summary, source)`` cites, for each summary sentence, the one to three
source sentences that back it (content words, names and numbers they share,
rare ones weighing more; ties go to the earlier sentence), then compares what
the sentence claims with the source. A flag must mean something, so a
sentence is ``unsupported`` only for a hard, well-evidenced problem:

* a name the whole source lacks (a nationality or country word alone is soft:
  "UK" for a "London-based" firm);
* a name put in another's place: the summary's words around it are the
  source's words around a different name, and never around this one
  ("Microsoft chief executive George Kurtz" where the source has "CrowdStrike
  chief executive George Kurtz"); a title given to someone else;
* a number the source lacks that nothing derives — sums and differences of the
  backing sentences' numbers, years apart, "half", "twice", "seven in ten",
  "a decade" are derived — or a scale slip ("1.4 billion" for "1.4 million"),
  or a count bound to the wrong thing ("199 aircraft" where the source has 199
  fire engines and 35 aircraft); a small count the source never contradicts
  ("two states", "ten men") is soft;
* a date or weekday the backing sentences contradict (``published`` resolves
  "yesterday", "last Friday" through ``dates.py``);
* a negation flip, or one of the commonest opposites ("rose"/"fell"), against
  the backing sentences;
* nothing in the source backing the sentence at all.

Softer findings — content words the source lacks, a number from elsewhere in
the source with no sign of a swap — make a sentence ``partial``; else it is
``supported``.

The source is prepared once (sentences, their facts, an inverted index from
content words and names to sentences, name slots) and kept in a small LRU
keyed by its text, so checking several summaries of one document pays once.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import functools
import math
import re
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from .align import fold, sentence_spans
from .schemas import CheckedSentence, Issue, Span
from .facts import (
    CONTINENTAL, Name, PRIVATIVE, PRONOUNS, TITLE_WORDS, Facts, Quantity, TimeRef, antonym_of, close, concept,
    contrasts_of, document_facts, facts_of, is_content, is_generic, negated, number_word, ratios, same_quantity, stem,
)
from .language import detect_language

__all__ = ["Check", "CheckedSentence", "Issue", "IssueKind", "Support", "check", "hard_issues"]

IssueKind = Literal["name", "number", "date", "quantity", "negation", "place", "role", "unsupported_content"]
Support = Literal["supported", "partial", "unsupported"]
_MAX_CITATIONS = 3
_PREPARED = 8  # sources kept prepared (LRU)
_KEEP_CHARS = 50_000  # a longer source is kept prepared only while its run lasts (see _prepared)
_LONG: collections.OrderedDict[tuple[str, dt.date | None], _Source] = collections.OrderedDict()
_LONG_LOCK = threading.Lock()
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
# Country and nationality words: a summary may name the country of a place the source names ("a UK firm" for
# one in London), so one the source lacks is a soft finding, not a flag.
_NATIONAL = frozenset(_DEMONYMS) | frozenset(_DEMONYMS.values()) | frozenset(
    "england english britain great uk us usa america european europe eu un western tories tory".split())
_TITLE_SAME = {"ceo": "chief executive", "chief executive officer": "chief executive", "boss": "chief executive",
               "cfo": "chief financial officer", "kanzler": "bundeskanzler", "premier": "prime minister"}
_LOOSE_TITLES = frozenset({"head", "leader", "boss", "director", "secretary", "engineer", "manager", "founder",
                           "captain", "pilot", "chair", "inspector", "commander"})
_SLOT = 4  # words compared on each side of a name for a swap
_AUXILIARY = frozenset("a an the has have had is are was were be been being will would shall do does did s".split())
_SUBJECTS = frozenset({"he", "she", "it", "they"})
_Sides = Literal["both", "left", "either"]
_AGE = re.compile(r"\baged?\b|year-old|years? old", re.IGNORECASE)
_MULTIPLES = frozenset("half quarter third twice double triple".split())


class Check(BaseModel):
    """The verdict on a whole summary, sentence by sentence."""

    sentences: list[CheckedSentence]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flagged(self) -> bool:
        """Whether any sentence is unsupported."""
        return any(s.support == "unsupported" for s in self.sentences)


# -- a sentence's words, as slots around its names ---------------------------------------------


@dataclass
class _Slots:
    keys: list[str]  # each word's comparison key: a content word's concept, else the word
    names: list[tuple[int, int, Name]]  # the word range of each name
    numbers: list[tuple[int, int, Quantity]]  # the word range of each quantity
    times: list[tuple[int, int, TimeRef]]  # the word range of each time expression


def _slots(facts: Facts, referent: Name | None = None) -> _Slots:
    """``facts`` as word keys with name and number ranges; an opening "He"/"She"/"It"/"They" is a name slot
    for ``referent`` (the previous sentence's first name), its keys and its words as written."""
    kept = [(w, at) for w, at in facts.words if w not in _AUXILIARY]
    keys = ["<p>" if w in _SUBJECTS else concept(w) if is_content(w) else w for w, _ in kept]
    offsets = [at for _, at in kept]

    def words(start: int, end: int) -> tuple[int, int]:
        return bisect.bisect_left(offsets, start), bisect.bisect_left(offsets, end)

    names = [(*words(n.start, n.start + len(n.text)), n) for n in facts.names]
    if referent is not None and kept and kept[0][0] in _SUBJECTS:
        pronoun = facts.text[kept[0][1]:kept[0][1] + len(kept[0][0])]
        names.insert(0, (0, 1, Name(f"{pronoun} ({referent.text})", kept[0][1], referent.keys)))
    numbers = [(*words(q.start, q.start + len(q.text)), q) for q in facts.quantities]
    times = [(*words(t.start, t.start + len(t.text)), t) for t in facts.times if t.weekday is not None or t.dates]
    return _Slots(keys, [(a, b, n) for a, b, n in names if a < b], [(a, b, q) for a, b, q in numbers if a < b],
                  [(a, b, t) for a, b, t in times if a < b])


def _first_name(*sentences: Facts | None) -> Name | None:
    """What an opening pronoun most likely stands for: the first name of the nearest earlier sentence with one."""
    return next((f.names[0] for f in sentences if f is not None and f.names), None)


def _neighbours(slots: _Slots, a: int, b: int) -> tuple[str, str]:
    return (slots.keys[a - 1] if a else "<s>"), (slots.keys[b] if b < len(slots.keys) else "</s>")


# -- the source, prepared once -----------------------------------------------------------------


@dataclass
class _Sentence:
    span: Span
    facts: Facts
    refers_back: bool  # opens with a pronoun or a definite description: its names may be earlier
    slots: _Slots


@dataclass
class _Finding:
    issue: Issue
    hard: bool


_CLAUSE_BREAKS = frozenset(",;:—–(")  # where an extract may cut a sentence short


class _Source:
    def __init__(self, text: str, published: dt.date | None) -> None:
        self.text, self.published = text, published
        self.flat = " ".join(text.split())  # to tell a sentence copied whole from the source
        self._flat: list[str] | None = None  # the same, sentence by sentence (``_flat_sentences``)
        language = detect_language(text[:3000])  # the opening says which language; the whole text costs
        self.continental = language in CONTINENTAL
        self.names = language != "de"  # German capitalises every noun
        self.english = language in (None, "en")
        spans = sentence_spans(text)
        facts = document_facts(text, spans, continental=self.continental, published=published, names=self.names)
        self.sentences = [_Sentence(span, f, bool({w for w, _ in f.words[:4]} & PRONOUNS),
                                    _slots(f, _first_name(*facts[max(0, i - 2):i][::-1])))
                          for i, (span, f) in enumerate(zip(spans, facts))]
        self.index: dict[str, list[int]] = {}  # content concept or name key -> the sentences that have it
        self.words: set[str] = set()
        self.sequence: list[str] = []
        self.slots: dict[tuple[str, str], list[tuple[int, int]]] = {}  # (side, neighbour) -> name slots
        self.number_slots: dict[tuple[str, str], list[tuple[int, int]]] = {}  # the same for quantities
        self.time_slots: dict[tuple[str, str], list[tuple[int, int]]] = {}  # and for time expressions
        for i, s in enumerate(self.sentences):
            for element in s.facts.concepts | s.facts.name_keys:
                self.index.setdefault(element, []).append(i)
            self.words |= {w for w, _ in s.facts.words}
            self.sequence += [w for w, _ in s.facts.words]
            for table, ranges in ((self.slots, s.slots.names), (self.number_slots, s.slots.numbers),
                                  (self.time_slots, s.slots.times)):
                for j, (a, b, _) in enumerate(ranges):
                    left, right = _neighbours(s.slots, a, b)
                    table.setdefault(("L", left), []).append((i, j))
                    table.setdefault(("R", right), []).append((i, j))
        self.concepts = {c for s in self.sentences for c in s.facts.concepts}
        self.name_keys = frozenset(k for s in self.sentences for k in s.facts.name_keys)
        self.prefixes = {w[:5] for w in self.words if len(w) >= 5}
        self.titles = [t for s in self.sentences for t in s.facts.titles]
        self.quantities = [(i, q) for i, s in enumerate(self.sentences) for q in s.facts.quantities]
        self._by_value = sorted((q.value, k) for k, (_, q) in enumerate(self.quantities))
        self._by_count = sorted((q.count, k) for k, (_, q) in enumerate(self.quantities))
        self._marks: dict[str, list[int]] = {}  # clock times and scores, matched by their text
        self.counting: dict[str, list[Quantity]] = {}  # a counted noun -> the bare counts of it
        for k, (_, q) in enumerate(self.quantities):
            if q.dimension and q.dimension.startswith(("clock:", "score:")):
                self._marks.setdefault(q.dimension, []).append(k)
            if not q.year and q.dimension is None and q.currency is None:
                for noun in q.nouns:
                    self.counting.setdefault(noun, []).append(q)
        self.percents = [q.value for _, q in self.quantities if q.dimension == "percent"]
        self.times = [t for s in self.sentences for t in s.facts.times]
        self.years = {int(q.value) for _, q in self.quantities if q.year} | ({published.year} if published else set())
        self.shares = [share for s in self.sentences for _, _, share in ratios(s.facts.text, s.facts.words)]
        self._spelled: dict[str, bool] = {}

    def copied(self, sentence: str) -> list[int]:
        """The source sentence ``sentence`` is copied from — whole, or its opening up to a clause boundary (an
        extract cut short, its full stop the summary's own) — or [] when it is no such copy. A clause from the
        middle is no copy: "the treaty was signed" out of "officials denied the treaty was signed" says the opposite."""
        flat = " ".join(sentence.split())
        if len(flat.split()) < 2 or flat.rstrip(".") not in self.flat:
            return []
        head = flat.rstrip(".")
        for i, text in enumerate(self._flat_sentences()):
            if text == flat or (text.startswith(head) and text[len(head):len(head) + 1] in _CLAUSE_BREAKS):
                return [i]
        return []

    def _flat_sentences(self) -> list[str]:
        """The sentences with their whitespace folded, made on the first copy asked about (then kept)."""
        if self._flat is None:
            self._flat = [" ".join(s.facts.text.split()) for s in self.sentences]
        return self._flat

    def facts(self, text: str) -> Facts:
        return facts_of(text, continental=self.continental, published=self.published, names=self.names,
                        initials=self.name_keys)

    def matching(self, q: Quantity) -> list[tuple[int, Quantity]]:
        """The source quantities that state ``q`` (``same_quantity``), found by bisection on value and count."""
        if q.dimension and q.dimension.startswith(("clock:", "score:")):
            found = set(self._marks.get(q.dimension, ()))
        else:
            slack = max(q.step, q.count_step) + 0.13 * max(abs(q.value), abs(q.count)) + 1e-9
            found = set()
            for table, target in ((self._by_value, q.value), (self._by_count, q.count)):
                lo = bisect.bisect_left(table, (target - slack, -1))
                hi = bisect.bisect_right(table, (target + slack, len(table)))
                found.update(k for _, k in table[lo:hi])
        return [self.quantities[k] for k in sorted(found) if same_quantity(q, self.quantities[k][1])]

    def weight(self, element: str) -> float:
        return math.log(1 + len(self.sentences) / len(self.index.get(element, ()) or (1,)))

    def spells(self, acronym: str) -> bool:
        """Whether consecutive source words have ``acronym``'s letters as initials ("BoE", "USGS", "GDP")."""
        key = acronym.casefold()
        if key not in self._spelled:
            self._spelled[key] = _spells(key, self.sequence)
        return self._spelled[key]


def _spells(letters: str, words: list[str]) -> bool:
    for i, first in enumerate(words):
        if first[:1] != letters[0] and first not in ("us", "uk", "eu", "un"):
            continue
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


def _prepared(text: str, published: dt.date | None) -> _Source:
    """``text`` ready to check against, kept for the next answer: a long one only until ``release``.

    A prepared source is ~0.4 million objects a 1.5 MB text: kept after its run, every later full garbage
    collection walked them all, in whatever thread it ran — 0.46 s instead of 0.03 s, on the service's event
    loop too, for every tenant. Preparing it afresh for each answer instead costs minutes for a 12 MiB one.
    """
    if len(text) < _KEEP_CHARS:
        return _kept(text, published)
    key = (text, published)
    with _LONG_LOCK:
        source = _LONG.pop(key, None)
    if source is None:
        source = _Source(text, published)
    with _LONG_LOCK:
        _LONG[key] = source
        while len(_LONG) > _PREPARED:
            _LONG.popitem(last=False)
    return source


def release(text: str) -> None:
    """Let go of ``text`` prepared as a long source: its run has ended (see ``_prepared``)."""
    with _LONG_LOCK:
        for key in [key for key in _LONG if key[0] is text or key[0] == text]:
            del _LONG[key]


@functools.lru_cache(maxsize=_PREPARED)
def _kept(text: str, published: dt.date | None) -> _Source:
    return _Source(text, published)


@functools.lru_cache(maxsize=_PREPARED)
def _judged(summary: str, source: str, published: dt.date | None) -> tuple[_Judged, ...]:
    """The verdicts on ``summary``, kept: validation asks for them three ways (warnings, hard issues, the check)."""
    src = _prepared(source, published)
    return tuple((span, [src.sentences[i].span for i in cited], findings)
                 for span, cited, findings in _verdicts(summary, src))


def check(summary: str, source: str, *, published: dt.date | None = None) -> Check:
    """Check every sentence of ``summary`` against ``source``; see the module docstring for the rules."""
    checked = []
    for span, citations, findings in _judged(summary, source, published):
        issues = [f.issue for f in findings]
        support: Support = ("unsupported" if any(f.hard for f in findings)
                            else "partial" if findings else "supported")
        checked.append(CheckedSentence(text=span.of(summary), span=span, support=support, issues=issues,
                                       citations=citations))
    return Check(sentences=checked)


def hard_issues(summary: str, source: str, *, published: dt.date | None = None) -> list[Issue]:
    """The issues of ``check`` that make a sentence unsupported, each placed in ``summary``: for callers that
    warn on well-evidenced problems only (``grounding.brief_warnings``)."""
    return [f.issue for _, _, findings in _judged(summary, source, published) for f in findings if f.hard]


_Verdict = tuple[Span, list[int], list["_Finding"]]  # a summary sentence, the source sentences it cites, findings
_Judged = tuple[Span, list[Span], list["_Finding"]]  # the same, the citations as spans of the source


def _verdicts(summary: str, src: _Source) -> list[_Verdict]:
    out: list[_Verdict] = []
    earlier: list[Facts] = []
    for span in sentence_spans(summary):
        copied = src.copied(span.of(summary))
        if copied:  # a sentence (or clause) copied whole says what the source says, wherever it stands
            out.append((span, copied, []))
            earlier.append(src.sentences[copied[0]].facts)  # its names, for a pronoun that follows
            continue
        facts = src.facts(span.of(summary))
        cited = _cite(facts, src)
        findings = _judge(facts, cited, src, _first_name(*earlier[-2:][::-1]))
        out.append((span, cited, [_Finding(_placed(f.issue, summary, span), f.hard) for f in findings]))
        earlier.append(facts)
    return out


def _placed(issue: Issue, summary: str, sentence: Span) -> Issue:
    at = summary.find(issue.text, sentence.start, sentence.end) if issue.text else -1
    if at < 0:
        return issue
    return issue.model_copy(update={"span": Span(start=at, end=at + len(issue.text))})


# -- citations ------------------------------------------------------------------------------


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
    scores: dict[int, float] = {}
    shared: dict[int, set[str]] = {}
    for element in claim.concepts | claim.name_keys:
        posting = src.index.get(element)
        if posting:
            weight = src.weight(element) * (0.3 if is_generic(element) else 1.0)
            for i in posting:
                scores[i] = scores.get(i, 0.0) + weight
                shared.setdefault(i, set()).add(element)
    for q in claim.quantities:
        for i in {i for i, _ in src.matching(q)}:
            scores[i] = scores.get(i, 0.0) + 2.5
            shared.setdefault(i, set()).add(f"#{q.start}")
    if not scores:
        return []
    best = max(scores, key=lambda i: (scores[i], -i))
    cited, covered = [best], set(shared[best])
    while len(cited) < _MAX_CITATIONS:
        gains = [(len(new), i) for i, elements in shared.items() if i not in cited
                 for new in [elements - covered] if len(new) >= 2 and any(_substantive(e, claim) for e in new)]
        if not gains:
            break
        _, pick = max(gains, key=lambda gi: (gi[0], scores[gi[1]], -gi[1]))
        cited.append(pick)
        covered |= shared[pick]
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


def _judge(claim: Facts, cited: list[int], src: _Source, referent: Name | None = None) -> list[_Finding]:
    if not cited:
        return [_Finding(Issue(kind="unsupported_content", text=claim.text[:80],
                               detail="no sentence of the source backs this"), True)]
    window = _window(cited, src)
    return (_name_issues(claim, window, src, referent) + _title_issues(claim, src)
            + _quantity_issues(claim, window, src) + _time_issues(claim, window, src)
            + _negation_issues(claim, window, src) + _novel_issues(claim, src))


# -- names --------------------------------------------------------------------------------------


def _name_issues(claim: Facts, window: _Window, src: _Source, referent: Name | None) -> list[_Finding]:
    """Names the source lacks (hard unless a country word), and names put in another's place (hard) — an
    opening pronoun too, read as the previous sentence's first name."""
    near = {k for f in window.name_facts for k in f.name_keys} | {w for f in window.name_facts for w, _ in f.words}
    slots = _slots(claim, referent)
    out = []
    for a, b, name in slots.names:
        kind = _name_kind(claim.text, name.start)
        absent = [k for k in name.keys if not _known(k, near, src) and not _known(k, src.words, src)]
        if name.text.endswith(")"):  # a pronoun: its referent was judged in its own sentence
            absent = []
        if absent:
            hard = not all(k in _NATIONAL for k in absent) and not _demonym(name)
            out.append(_Finding(Issue(kind=kind, text=name.text, detail=f"{name.text!r} is not in the source"), hard))
            continue
        swap = _swapped(slots, a, b, name, src, place=kind == "place")
        if swap is not None:
            other, sentence = swap
            detail = (f"{name.text!r} stands where the source has {other.text!r}: "
                      f"{sentence.facts.text[:120]!r}")
            out.append(_Finding(Issue(kind=kind, text=name.text, detail=detail), True))
    return out


def _swapped(claim: _Slots, a: int, b: int, name: Name, src: _Source, *, place: bool) -> tuple[Name, _Sentence] | None:
    """The source name whose slot ``name`` fills — words on both sides alike, or three on one for a place or a
    name of two words or more (a lone capitalised word may be a common noun: "the first Test") — when ``name``
    itself never stands in so close a slot in the source."""
    left, right = _neighbours(claim, a, b)
    candidates = {*src.slots.get(("L", left), ()), *src.slots.get(("R", right), ())}
    own, best, found = 0, 0, None
    for i, j in candidates:
        sentence = src.sentences[i]
        c, d, other = sentence.slots.names[j]
        # a place's slot is its left side ("the town of"); what follows it is often a time, shared by many
        strength = _slot_match(claim, a, b, sentence.slots, c, d,
                               sides="left" if place else "either" if len(name.keys) > 1 else "both")
        if not strength:
            continue
        if _same_entity(name, other):
            own = max(own, strength)
        elif strength > best:
            best, found = strength, (other, sentence)
    return found if best > own else None


def _same_entity(name: Name, other: Name) -> bool:
    """A shared word (or its first five letters: "Syrians", "Syria"), an acronym of the other, or an adjective."""
    if _demonym(other) or {k[:5] for k in name.keys} & {k[:5] for k in other.keys}:
        return True
    initials = "".join(k[0] for k in other.keys)
    return any(len(k) >= 2 and k == initials for k in name.keys) or \
        any(len(k) >= 2 and k == "".join(n[0] for n in name.keys) for k in other.keys)


def _slot_match(claim: _Slots, a: int, b: int, source: _Slots, c: int, d: int, *, sides: _Sides) -> int:
    """How alike the words around two slots are (up to four a side, auxiliaries and articles aside): 0 unless
    both sides match, three words in all, or (``sides``) one side, or the left one, three words or more — and
    two of the matched words are content words or numbers."""
    left = right = content = 0
    while left < _SLOT:
        i, j = a - 1 - left, c - 1 - left
        if i < 0 or j < 0:
            left += i < 0 and j < 0  # both open their sentence
            break
        if claim.keys[i] != source.keys[j]:
            break
        content += _telling(claim.keys[i])
        left += 1
    while right < _SLOT:
        i, j = b + right, d + right
        if i >= len(claim.keys) or j >= len(source.keys):
            right += i >= len(claim.keys) and j >= len(source.keys)
            break
        if claim.keys[i] != source.keys[j]:
            break
        content += _telling(claim.keys[i])
        right += 1
    both = left >= 1 and right >= 1 and left + right >= 3
    one = {"both": 0, "left": left, "either": max(left, right)}[sides]
    if content < 2 or not (both or one >= 3):
        return 0
    return left + right


def _telling(key: str) -> bool:
    return key.isdigit() or is_content(key)


def _name_kind(text: str, start: int) -> IssueKind:
    before = [w for w in text[:start].split()[-3:] if fold(w) not in ("the", "a", "an", "la", "el", "le", "der")]
    if len(before) >= 2 and fold(before[-1]) == "of" and fold(before[-2]) in _PLACE_NOUNS:
        return "place"
    return "place" if before and fold(before[-1]) in _LOCATIVE else "name"


def _demonym(name: Name) -> bool:
    """"Basque", "Kenyan", "Chinese": an adjective, not a rival for a person or a place."""
    key = name.keys[-1]
    return len(name.keys) == 1 and (key in _DEMONYMS or key.endswith(("an", "ese", "ish", "que")))


def _known(key: str, words: set[str], src: _Source) -> bool:
    if key in words or key.rstrip("s") in words or _DEMONYMS.get(key, "") in words:
        return True
    if len(key) >= 5 and (key[:5] in src.prefixes if words is src.words else
                          any(w[:5] == key[:5] for w in words if len(w) >= 5)):
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


# -- numbers ------------------------------------------------------------------------------------


def _quantity_issues(claim: Facts, window: _Window, src: _Source) -> list[_Finding]:
    near = [q for f in window.facts for q in f.quantities]
    shares = _shares(claim, src)
    slots = _slots(claim)
    out = []
    for a, b, q in slots.numbers:
        if q.start in shares:
            continue
        slip = next((o for o in near if o.mantissa == q.mantissa and not same_quantity(q, o) and _comparable(q, o)
                     and o.value != q.value and not any(same_quantity(q, x) for x in near)), None)
        if slip is not None:
            out.append(_Finding(Issue(kind="quantity", text=q.text, detail=f"the source says {slip.text!r}"), True))
            continue
        swap = _number_swapped(slots, a, b, q, src)
        if swap is not None:
            other, sentence = swap
            detail = f"{q.text!r} where the source has {other.text!r}: {sentence.facts.text[:120]!r}"
            out.append(_Finding(Issue(kind="number", text=q.text, detail=detail), True))
            continue
        bound = _bound_elsewhere(q, src)
        if bound is not None:
            detail = f"in the source {q.text!r} counts something else; it says {bound.text!r} {' '.join(q.nouns)}"
            out.append(_Finding(Issue(kind="number", text=q.text, detail=detail), True))
            continue
        if any(same_quantity(q, b) for b in near) or _derived(q, claim, near, src):
            continue
        if q.year and int(q.value) in src.years:
            continue
        out += _unbacked(q, near, src)
    return out


def _number_swapped(claim: _Slots, a: int, b: int, q: Quantity, src: _Source) -> tuple[Quantity, _Sentence] | None:
    """The source number whose slot ``q`` fills (the words around alike, as for names), when ``q`` itself never
    stands in so close a slot: "rise by £300 a year to £1,717" where the source has "up by £149 a year to
    £1,717"."""
    if q.word and fold(q.text).split()[0] in _MULTIPLES:
        return None  # "a third of": a share the summary worked out
    if q.nouns and any(set(q.nouns) & set(b.nouns) for _, b in src.matching(q)):
        return None  # the source counts the same things with it ("four wickets")
    left, right = _neighbours(claim, a, b)
    candidates = {*src.number_slots.get(("L", left), ()), *src.number_slots.get(("R", right), ())}
    mentioned = [other for _, _, other in claim.numbers]
    own, best, found = 0, 0, None
    for i, j in candidates:
        sentence = src.sentences[i]
        c, d, other = sentence.slots.numbers[j]
        if not _comparable(q, other):
            continue
        strength = _slot_match(claim, a, b, sentence.slots, c, d, sides="either")
        if not strength:
            continue
        if same_quantity(q, other) or same_quantity(other, q):
            own = max(own, strength)
        elif strength > best and not any(same_quantity(m, other) for m in mentioned):
            best, found = strength, (other, sentence)
    return found if best > own else None


def _comparable(q: Quantity, other: Quantity) -> bool:
    kind = (q.dimension or "").partition(":")[0], q.currency, q.year
    return kind == ((other.dimension or "").partition(":")[0], other.currency, other.year)


def _unbacked(q: Quantity, near: list[Quantity], src: _Source) -> list[_Finding]:
    rivals = [b for b in near if not b.year and _comparable(q, b) and b.currency == q.currency]
    shown = f"; the sentences backing it say {', '.join(repr(b.text) for b in rivals[:3])}" if rivals else ""
    if any(b.dimension == q.dimension for _, b in src.matching(q)):
        # precision: a fused sentence often draws numbers from afar
        return [_Finding(Issue(kind="number", text=q.text, detail=f"{q.text!r} is elsewhere in the source{shown}"),
                         False)]
    other = next((b for b in near if b.mantissa == q.mantissa and b.value != q.value), None)
    if other is not None:
        return [_Finding(Issue(kind="quantity", text=q.text, detail=f"the source says {other.text!r}"), True)]
    # a small count ("two states", "ten men") is often the summary's own counting, a score ("the vote was 6-3")
    # its own reading: soft, unless the backing sentences give another score
    hard = not _small(q) and (not (q.dimension or "").startswith("score:") or bool(rivals))
    return [_Finding(Issue(kind="number", text=q.text, detail=f"{q.text!r} is not in the source{shown}"), hard)]


def _small(q: Quantity) -> bool:
    return q.dimension is None and q.currency is None and not q.year and q.value <= 12 and q.value == int(q.value)


def _bound_elsewhere(q: Quantity, src: _Source) -> Quantity | None:
    """A count the source binds only to other things ("199 fire engines") while it counts ``q``'s things with
    another number ("35 aircraft")."""
    if q.dimension is not None or q.currency is not None or q.year or not q.nouns:
        return None
    nouns = set(q.nouns)
    same = [b for _, b in src.matching(q)]
    if not same or any(not b.nouns or nouns & set(b.nouns) for b in same):
        return None
    return next((b for noun in q.nouns for b in src.counting.get(noun, ())
                 if not same_quantity(q, b) and not same_quantity(b, q)), None)


def _derived(q: Quantity, claim: Facts, near: list[Quantity], src: _Source) -> bool:
    """Whether ``q`` follows from the backing sentences' numbers: a sum or a difference, a ratio written as a
    word ("half", "twice"), years apart ("two years" after 2022), the publication year."""
    values = [b.value for b in near if not b.year and b.dimension == q.dimension and b.value > 0]
    if any(close(q, a + b) or close(q, abs(a - b)) for i, a in enumerate(values) for b in values[i + 1:]):
        return True
    first = fold(q.text).split()[0]
    if q.word and first in _MULTIPLES or q.dimension == "ratio":
        counts = [b.value for b in near if not b.year and b.value > 0]
        if any(abs(a / b - q.value) <= 0.05 * q.value for a in counts for b in counts if a != b):
            return True
    if q.year and src.published is not None and q.value == src.published.year:
        return True
    return _years_apart(q, claim) in {abs(a - b) for a in src.years for b in src.years if a != b}


def _years_apart(q: Quantity, claim: Facts) -> int | None:
    """A whole number of years: "two years", "a decade", or an age ("aged 15")."""
    if q.dimension == "time":
        years = q.value / 3.15e7
        return round(years) if years >= 1 and abs(years - round(years)) < 0.01 else None
    context = claim.text[max(0, q.start - 8):q.start + len(q.text) + 12]
    if q.dimension is None and q.currency is None and not q.year and _AGE.search(context):
        return int(q.value)
    return None


def _shares(claim: Facts, src: _Source) -> set[int]:
    """The counts of a claim's "seven in ten" (both of them) when the source gives that share as a percentage."""
    percents = src.percents + src.shares
    out: set[int] = set()
    for n, m, share in ratios(claim.text):
        if any(abs(p - share) <= 5 for p in percents):
            out |= {n, m}
    for q in claim.quantities:
        if q.dimension == "percent" and any(abs(share - q.value) <= 5 for share in src.shares):
            out.add(q.start)
    return out


# -- dates --------------------------------------------------------------------------------------


def _time_issues(claim: Facts, window: _Window, src: _Source) -> list[_Finding]:
    near = [t for f in window.facts for t in f.times if t.weekday is not None or t.dates]
    years = {str(int(q.value)) for f in window.facts for q in f.quantities if q.year}
    out = []
    for t in claim.times:
        if t.weekday is None and not t.dates:
            continue
        if any(_same_time(t, b) for b in near) or (t.dates and t.dates <= years):
            continue
        if any(_same_time(t, b) for b in src.times):
            swap = _time_swapped(t, claim, src)  # said elsewhere in the source: wrong only if put in another's place
            if swap is not None:
                detail = f"{t.text!r} where the source has {swap.text!r}"
                out.append(_Finding(Issue(kind="date", text=t.text, detail=detail), True))
            continue
        rivals = [b for b in near if (b.weekday is not None) == (t.weekday is not None)
                  and not any(_same_time(other, b) for other in claim.times)]
        said = ", ".join(repr(b.text) for b in rivals[:3])
        detail = f"the source says {said}" if said else "the source gives no such date"
        out.append(_Finding(Issue(kind="date", text=t.text, detail=detail), True))
    return out


def _time_swapped(t: TimeRef, claim: Facts, src: _Source) -> TimeRef | None:
    """The source time expression whose slot ``t`` fills, when ``t`` itself never stands in so close a slot."""
    slots = _slots(claim)
    a, b = next(((a, b) for a, b, x in slots.times if x is t), (0, 0))
    if a == b:
        return None
    left, right = _neighbours(slots, a, b)
    own, best, found = 0, 0, None
    for i, j in {*src.time_slots.get(("L", left), ()), *src.time_slots.get(("R", right), ())}:
        sentence = src.sentences[i]
        c, d, other = sentence.slots.times[j]
        strength = _slot_match(slots, a, b, sentence.slots, c, d, sides="either")
        if not strength or (other.weekday is None) != (t.weekday is None):
            continue
        if _same_time(t, other):
            own = max(own, strength)
        elif strength > best:
            best, found = strength, other
    return found if best > own else None


def _same_time(claim: TimeRef, backing: TimeRef) -> bool:
    """The same weekday, or dates that agree: the source's at least as precise as the claim's, or a month."""
    if claim.weekday is not None and claim.weekday == backing.weekday:
        return True
    return any(b.startswith(a) or (len(b) >= 7 and a.startswith(b)) for a in claim.dates for b in backing.dates)


# -- negation and opposites ---------------------------------------------------------------------


def _negation_issues(claim: Facts, window: _Window, src: _Source) -> list[_Finding]:
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
    for word, c, at in claim.content:
        if c in concepts:
            continue
        around = _around(claim, at) - {c}
        opposite = antonym_of(c)
        if opposite and opposite in concepts and _said_of(opposite, around, window.facts):
            detail = f"the source says the opposite ({opposite})"
            out.append(_Finding(Issue(kind="negation", text=word, detail=detail), True))
        contrary = _contrary(c, around, window, src)
        if contrary:
            detail = f"the source says {contrary!r}, not {c!r}"
            out.append(_Finding(Issue(kind="negation", text=word, detail=detail), True))
    return list({f.issue.text: f for f in out}.values())


def _around(facts: Facts, at: int, reach: int = 4) -> set[str]:
    """What a word at offset ``at`` is said of: the substantive concepts, and numbers, of the words near it."""
    offsets = [o for _, o in facts.words]
    i = bisect.bisect_left(offsets, at)
    near = [w for w, _ in facts.words[max(0, i - reach):i + reach + 1]]
    return {w if w.isdigit() else concept(w) for w in near if w.isdigit() or (is_content(w) and not is_generic(w))}


def _said_of(state: str, around: set[str], sentences: list[Facts]) -> bool:
    """Whether one of ``sentences`` says ``state`` of something the claim's word is said of ("prices", "14")."""
    return any(c == state and around & (_around(f, at) - {state}) for f in sentences for _, c, at in f.content)


def _contrary(c: str, around: set[str], window: _Window, src: _Source) -> str | None:
    """A state that excludes ``c`` ("arrested" for "charged") said of the same thing, in the backing sentences
    — or anywhere in the source, when it never says ``c``."""
    for other in contrasts_of(c):
        if other in window.concepts and _said_of(other, around, window.facts):
            return other
        elsewhere = [src.sentences[i].facts for i in src.index.get(other, ())]
        if c not in src.concepts and _said_of(other, around, elsewhere):
            return other
    return None


def _word_for(claim: Facts, concept_: str) -> str:
    return next((w for w, c, _ in claim.content if c == concept_), concept_)


# -- content the source lacks -------------------------------------------------------------------


def _novel_issues(claim: Facts, src: _Source) -> list[_Finding]:
    """Content words the whole source lacks: soft — faithful summaries paraphrase, and a word list cannot tell a
    synonym from an invention."""
    names = {k for n in claim.names for k in n.keys}
    novel = list(dict.fromkeys(
        w for w, c, _ in claim.content
        if c not in src.concepts and stem(w) not in src.concepts and not is_generic(w) and w not in names
        and not number_word(w) and not (len(w) >= 5 and w[:5] in src.prefixes) and is_content(w)))
    if not novel:
        return []
    return [_Finding(Issue(kind="unsupported_content", text=novel[0],
                           detail="not in the source: " + ", ".join(novel)), False)]
