"""Extractive briefs for grammar-bound decoders: the document's own sentences, chosen and in order.

A 135M model writing free prose invents numbers, days and claims, and plays
its prompt back. Under the grammar built here it can only *choose*: the brief
is the lead (a sentence, or its main clause), then any of the top-ranked
sentences that follow, in document order, each whole or cut at a clause
boundary, joined by single spaces, and the grammar counts the words of every
choice so the total lands in the word range on every path. Nothing in it is
foreign to the document, no preamble or prompt echo is possible, and no two
words can be glued.

``units`` splits and ranks (the lead first, then sentences carrying the
document's most frequent content words, names and numbers — what a reporter
keeps); ``brief_rules`` writes the GBNF that the brief templates place with
``$brief_rules``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from typing import Any

from .documents import estimate_tokens
from .grounding import CAPITALS, lead_names
from .schemas import count_words

__all__ = ["BOILERPLATE", "BRIEF_UNITS", "Unit", "brief_grammar_values", "brief_rules", "grammar_digest", "split_sentences", "unit_forms", "units"]

# A sentence ends at . ! ? … (then a space and a capital, a digit or a quote) — not after an
# abbreviation or an initial ("U.S. Geological Survey", "10:42 p.m. local time", "Mr. Smith").
_END = re.compile(rf"(?<=[.!?…])[\"'”’»)]?\s+(?=[\"'“‘«(]?[{CAPITALS}0-9])|(?<=[。！？])\s*")
_ABBREVIATIONS = set("""
mr mrs ms dr prof st jr sr gen gov sen rep lt col capt sgt maj cmdr adm no nos vs etc inc ltd co corp plc
jan feb mar apr jun jul aug sep sept oct nov dec a.m p.m u.s u.k u.n e.u approx dept est fig mt ft
""".split())
_QUOTES = re.compile(r"[\"“”«»]")
# Where a sentence may be cut to its main clause: a comma, semicolon or dash before a
# dependent clause or an appositive (", citing …", ", which …", ", its third …").
_CLAUSE = re.compile(r"(?:,|;| —| –) (?=(?:which|who|whose|where|while|including|citing|after|before|as|"
                     r"according|its|his|her|their|the|a|an|with|but|and|although|though|bringing|forcing|"
                     r"killing|leaving|making|adding|ending|injuring|saying|amid|despite|following|"
                     r"un|une|le|la|les|el|los|las|que|qui|y|et|mais|pero|según|selon)\b)")
# A sentence opening on one of these has its first comma after the opener, not after a clause.
_OPENER = re.compile(r"(?:according|in|on|at|after|before|under|despite|while|when|as|if|although|though|since|"
                     r"for|with|by|during|from|amid|following|en|selon|según|tras|après|nach)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_STOP = set("""
a an the and or but of to in on at for from by with as is are was were be been has have had it its this that
these those he she they we you his her their our not no than then there which who whom whose what when where
said says will would could should may might can also after before over under about into out up down more most
el la los las un una y de del en que por con para se su sus al es le les des du et à au aux un une il elle
der die das und den dem ein eine im zu mit von auf für ist
""".split())
# A page's furniture, not its article: never a lead, never a unit.
# And what speaks to the model rather than the reader (an injected instruction): never offered either.
BOILERPLATE = re.compile(r"\b(?:newsletter|subscribe|sign up|log in|cookies?|click here|read more|all rights reserved|"
                         r"follow us|share this|advertisement|terms of (?:use|service)|privacy policy|"
                         r"javascript|your browser|you are now|(?:ignore|disregard) (?:all |any )?(?:previous|prior|the above)|"
                         r"system prompt|maintenance mode|(?:reply|respond) (?:only )?with|instructions above)\b",
                         re.IGNORECASE)
_MIN_WORDS, _MAX_UNIT_WORDS = 4, 80
BRIEF_UNITS = 12  # the lead and the best-ranked sentences a brief may be composed of
_DIGEST_TOKENS, _DIGEST_UNITS = 1000, 24


@dataclass(frozen=True)
class Unit:
    """One choice the brief grammar offers: a sentence of the document, and its shorter forms."""

    index: int  # the sentence's place in the document (document order)
    forms: tuple[str, ...]  # the whole sentence first, then cuts at clause boundaries (each ending in ".")
    score: float

    @property
    def text(self) -> str:
        return self.forms[0]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, paragraph by paragraph; a quotation of several sentences stays whole."""
    found: list[str] = []
    for paragraph in text.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        start = 0
        for match in _END.finditer(paragraph):
            piece = paragraph[start:match.start()].rstrip() + paragraph[match.start():match.end()].rstrip()
            if _is_abbreviation(piece) or len(_QUOTES.findall(paragraph[start:match.end()])) % 2:
                continue  # "U.S." / "p.m.", or a full stop inside an open quotation
            found.append(piece.strip())
            start = match.end()
        if paragraph[start:].strip():
            found.append(paragraph[start:].strip())
    return found


def _is_abbreviation(piece: str) -> bool:
    last = piece.rstrip("\"'”’»)").rstrip(".!?…").rsplit(" ", 1)[-1].casefold()
    return piece.rstrip("\"'”’»)").endswith(".") and (
        last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()) or bool(re.fullmatch(r"(?:\w\.)+\w", last)))


def units(text: str, *, limit: int = 12, lead: bool = True) -> list[Unit]:
    """The brief's choices from ``text``: the lead and the ``limit`` best-ranked sentences, in document order.

    A unit is a whole sentence of the document (4-80 words, balanced quotes, not shouted,
    not a title line) or, for a long one, also its main clause ended with a full stop.
    """
    sentences = [_within_bound(s) for s in split_sentences(text)]
    # A text with no sentence a reader would quote (all shouted, all fragments) still gets its own.
    usable = [(i, s) for i, s in enumerate(sentences) if _usable(s)] or [
        (i, s) for i, s in enumerate(sentences) if count_words(s) > 0]
    if not usable:
        return []
    weights = _weights(text)
    scored = [(i, s, _score(i, s, weights, usable[0][0])) for i, s in usable]
    first, rest = scored[0], sorted(scored[1:], key=lambda u: (-u[2], u[0]))
    chosen = ([first] if lead else []) + rest[: limit - (1 if lead else 0)]
    if not lead:
        chosen = sorted(scored, key=lambda u: (-u[2], u[0]))[:limit]
    return [Unit(i, unit_forms(s), round(score, 3)) for i, s, score in sorted(chosen)]


def _within_bound(sentence: str) -> str:
    """A sentence of at most 80 words: a longer one is cut to its longest clause within that, or to its words."""
    if count_words(sentence) <= _MAX_UNIT_WORDS:
        return sentence
    fitting = [form for form in unit_forms(sentence)[1:] if count_words(form) <= _MAX_UNIT_WORDS]
    if fitting:
        return fitting[-1]
    words = sentence.split(" ")[:_MAX_UNIT_WORDS * 3 // 4]
    return " ".join(words).rstrip(" ,;:") + "."


def _usable(sentence: str) -> bool:
    words = count_words(sentence)
    letters = [c for c in sentence if c.isalpha()]
    shouted = sum(c.isupper() for c in letters) > 0.6 * len(letters)
    opens = sentence[:1].isupper() or sentence[:1].isdigit() or sentence[:1] in "\"“«'‘¿¡"
    closes = sentence[-1:] in ".!?…\"”»'’)"  # a title line or a fragment has no full stop
    return (_MIN_WORDS <= words <= _MAX_UNIT_WORDS and opens and closes and not shouted
            and len(_QUOTES.findall(sentence)) % 2 == 0 and not BOILERPLATE.search(sentence))


def _weights(text: str) -> Counter[str]:
    words = [w.casefold() for w in _WORD.findall(text)]
    return Counter(w for w in words if w not in _STOP and len(w) > 2)


def _score(index: int, sentence: str, weights: Counter[str], first: int) -> float:
    # Position (news puts the main event first), then what the sentence shares with the whole
    # document, and the facts it carries (names and numbers); a sentence opening on a pronoun
    # leans on one before it, and one in the second person speaks to someone (not news).
    words = {w.casefold() for w in _WORD.findall(sentence)} - _STOP
    content = sum(weights[w] - 1 for w in words) / (len(words) or 1)
    facts = len(re.findall(r"\d+|\b[" + CAPITALS + r"]\w+", sentence[1:])) / (count_words(sentence) or 1)
    position = 3.0 / (1 + 0.4 * (index - first))
    penalty = 1.0 if re.match(r"(?:it|they|he|she|this|these|those|that)\b", sentence, re.IGNORECASE) else 0.0
    penalty += 2.0 if re.search(r"\b(?:you|your)\b", _QUOTES.split(sentence)[0], re.IGNORECASE) else 0.0
    return position + min(content, 3.0) + 2.0 * facts - penalty


def unit_forms(sentence: str) -> tuple[str, ...]:
    """The sentence, then its cuts at clause boundaries (8 words or more, ended with a full stop)."""
    forms = [sentence]
    for n, match in enumerate(_CLAUSE.finditer(sentence)):
        if n == 0 and _OPENER.match(sentence):
            continue  # "According to the ministry, the ministers …": the first comma ends an opener
        head = sentence[:match.start()].rstrip(" ,;")
        if count_words(head) >= 8 and len(_QUOTES.findall(head)) % 2 == 0 and head.count("(") == head.count(")"):
            forms.append(head + ".")
    return tuple(dict.fromkeys(forms))


def grammar_digest(text: str, *, of: str | None = None, budget: int = _DIGEST_TOKENS,
                   limit: int = _DIGEST_UNITS) -> tuple[str, str] | None:
    """``(text, digest)``: what a grammar decoder reads in place of ``text`` in its prompt.

    Under an extractive or grounded grammar a decoder can only choose among ranked sentences,
    so it reads those (the lead and the best-ranked, in document order) rather than thousands
    of tokens it cannot use: a 7,000-token part costs a 135M model on 2 cores a minute to read,
    its digest seconds. ``text`` within ``budget`` tokens is read whole; ``of`` reads another
    text's sentences in its place (combining: the part briefs' own, without their "Part 1:"
    labels, or the document's where the part answers are JSON).
    """
    if estimate_tokens(text) <= budget:
        return None
    return text, "\n\n".join(unit.text for unit in units(text if of is None else of, limit=limit))


def brief_grammar_values(text: str, words: tuple[int, int]) -> dict[str, Any]:
    """What the brief templates' grammar places: ``$brief_rules`` (the extractive brief of ``text``),
    and for templates written before it, ``$lead_words`` and the word bounds of the free-prose grammar."""
    low, high = words
    # The free-prose grammar counts space-separated words; validation counts "45,000" as two and a
    # lone dash as none: a tenth of the range (at least a word) is kept clear at each end.
    margin = max(1, (high - low) // 10)
    # An extractive brief takes at least the range's lower three eighths (70 of 40-120 words): a
    # shorter one drops facts that any summary keeps (on the eval set, lead + sentences to 40 words
    # scores ROUGE-1 0.62 against Lead-3's 0.66; to 70 words, 0.72).
    floor = low + (high - low) * 3 // 8
    return {"brief_rules": brief_rules(units(text, limit=BRIEF_UNITS), floor, high),
            "lead_words": lead_names(text), "min_more": min(low - 1 + margin, high - 1),
            "max_more": max(high - 1 - margin, low - 1), "min_chars": low * 6, "max_chars": high * 6}


def brief_rules(chosen: list[Unit], low: int, high: int, *, lead: bool = True, name: str = "brief") -> str:
    """GBNF rules defining ``name``: the units in document order (the first one always, with ``lead``),
    each in one of its forms, separated by one space, ``low``-``high`` words in all.

    When the units cannot reach ``low`` words, the brief is all it can hold (at most ``high``):
    validation then says the document is too short for the range, rather than the model padding it.
    """
    words = [[count_words(form) for form in unit.forms] for unit in chosen]
    low = min(low, _most_words(tuple(tuple(w) for w in words), high))
    feasible = _Feasible(words, low, high)
    firsts = range(min(1, len(chosen)) if lead else len(chosen))
    starts = [f"u{j}-{v} s{j + 1}-{w}" for j in firsts for v, w in enumerate(words[j]) if feasible(j + 1, w)]
    lines = [f"{name} ::= " + (" | ".join(starts) or '""')]
    lines += [f"u{j}-{v} ::= {_literal(form)}" for j, unit in enumerate(chosen) for v, form in enumerate(unit.forms)]
    # s{j}-{k}: k words so far, slot j decides (one of its forms after a space, or nothing); after the last, stop.
    for j in range(1, len(chosen) + 1):
        for k in range(1, high + 1):
            if not feasible(j, k):
                continue
            if j == len(chosen):
                lines.append(f's{j}-{k} ::= ""')
                continue
            alternatives = [f'" " u{j}-{v} s{j + 1}-{k + w}' for v, w in enumerate(words[j]) if feasible(j + 1, k + w)]
            if feasible(j + 1, k):
                alternatives.append(f"s{j + 1}-{k}")
            lines.append(f"s{j}-{k} ::= " + " | ".join(alternatives))
    return "\n".join(lines)


class _Feasible:
    """Whether, from slot j with k words so far, some choice of the rest ends in the range."""

    def __init__(self, words: list[list[int]], low: int, high: int) -> None:
        self.words, self.low, self.high = words, low, high
        self.memo: dict[tuple[int, int], bool] = {}

    def __call__(self, j: int, k: int) -> bool:
        if k > self.high:
            return False
        key = (j, k)
        if key not in self.memo:
            if j == len(self.words):
                self.memo[key] = self.low <= k
            else:
                self.memo[key] = self(j + 1, k) or any(self(j + 1, k + w) for w in self.words[j])
        return self.memo[key]


@lru_cache(maxsize=64)
def _most_words(words: tuple[tuple[int, ...], ...], high: int) -> int:
    # The most words (at most ``high``) a choice can hold: a subset-sum over the units' forms.
    reachable = {0}
    for forms in words:
        reachable |= {k + w for k in reachable for w in forms if k + w <= high}
    return max(reachable)


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'
