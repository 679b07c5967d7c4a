"""What a document offers to choose from: its names, places, times, sentences and spans.

A 135M model cannot write a faithful event report, but it can choose among
spans of the document. Everything here is computed deterministically from the
text (and its publication date): ``constraints`` turns it into the enums of a
grammar-bound schema, so whatever the model picks is in the document.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .dates import date_of, time_expressions
from .documents import sentences
from .gazetteer import country_of
from .grounding import CAPITALS
from .language import detect_language
from .schemas import EVENT_TYPES, count_words

__all__ = ["Offer", "offer"]

_WORD = rf"[{CAPITALS}](?:[\w'’-]|\.(?=\w))*"  # "U.S" of "U.S.": a dot only inside a word
_NAME_RUN = re.compile(rf"{_WORD}(?:(?: (?:de|del|la|van|von|der|al|bin|of|the|for)){{0,2}} {_WORD})*")
_POSSESSIVE = re.compile(r"['’]s?$")
# Capitalised words that name no one: sentence openers, pronouns, time words.
_NOT_NAMES = set("""
a an the this that these those there then he she it we they i you his her its our their my your in on at
for from by with after before when while as but and or if so yet also however meanwhile according
el la los las un una en y pero le les une et mais der die das ein eine und aber im am
monday tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december today yesterday tomorrow mr mrs ms dr
""".split())
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\"”»]\s+|\n)$")
_APPOSITIVE = re.compile(r", ((?:the |a |an |who |el |la |le |der |die )?[^,.;:!?\"()]{3,100}?),")
_TITLE_WORDS = re.compile(
    r"\b(minister|president|secretary|chancellor|premier|king|queen|prince|governor|mayor|ambassador|spokesman|"
    r"spokeswoman|spokesperson|senator|general|chief|director|head|leader|envoy|chairman|ceo|judge|commissioner)\b",
    re.IGNORECASE)
_PLACE_CUE = re.compile(r"\b(?:in|near|en|à|au|aux|im|bei)\s+$")  # "at"/"from" precede companies as often
# One stem per line of thought; a type without one of its words in the document is not offered.
_TYPE_WORDS = {
    "diplomacy.meeting": "meet met talks summit visit sideline reunion reunió cumbre sommet rencontr treffen gipfel",
    "diplomacy.statement": "statement announc declar urge warn condemn dijo afirm declaró déclar affirm erklärt",
    "politics.election": "elect vote ballot poll candidat campaign eleccion élection wahl",
    "politics.policy": "law bill policy reform budget tax parliament congress decree sanction approv council "
                       "resign regulat ordinance ley loi réforme gesetz",
    "conflict.attack": "attack strike bomb missile shell killed troops drone ataque attaque angriff",
    "conflict.protest": "protest demonstrat rally march manifest walkout walked picket union protesta grève",
    "justice.arrest": "arrest detain custody detenid arrêt festgenommen",
    "justice.trial": "trial court judge sentenc verdict convict juicio tribunal procès gericht",
    "disaster.natural": "earthquake flood hurricane storm wildfire tsunami drought volcan typhoon terremoto "
                        "inundac lluvia tormenta riada séisme inondation",
    "disaster.accident": "crash accident colli derail explosion fire sank capsiz injur rescue accidente",
    "business.deal": "deal acqui merger contract bought purchase agreement acuerdo",
    "economy.report": "inflation gdp economy economic unemployment growth prices market rates revenue profit "
                      "earnings quarter sales forecast econom",
    "health.outbreak": "outbreak virus epidemic pandemic vaccin disease infection brote épidémie",
    "science.discovery": "discover scientist research study telescope species científic chercheur",
    "sports.result": "match goal championship league tournament cup medal marathon race coach striker "
                     "partido",
}


@dataclass(frozen=True)
class Offer:
    """The document's own candidates for each field a grammar-bound decoder fills."""

    headlines: list[str]
    summaries: list[str]
    quotes: list[str]
    names: list[str]
    descriptions: list[str]
    places: list[tuple[str, str | None]]  # name, ISO country code when the gazetteer knows it
    times: list[tuple[str, str | None, str]]  # text, ISO date or None, precision
    language: str | None
    types: list[str]


def offer(text: str, published: dt.date | None = None, *, limit: int = 40, lead: int = 3) -> Offer:
    """The candidates ``text`` offers, each a verbatim span of it (dates and codes derived deterministically).

    News puts the main event's who, where and when in its first sentences: names, places,
    times and summaries found in the first ``lead`` sentences are offered alone when there
    are any (the rest of the document still supplies evidence and descriptions).
    """
    all_sentences = sentences(text)
    head = " ".join(all_sentences[:lead])
    all_names = [name for name in _names(text) if len(name) <= 120]  # the schema's bounds (Participant, Place)
    names = _within(all_names, head)[:limit]
    return Offer(
        headlines=_headlines(text, all_sentences),
        summaries=_summaries(all_sentences[:lead]) or _summaries(all_sentences),
        quotes=all_sentences,
        names=names,
        descriptions=_descriptions(text, all_names)[:limit],
        places=[(name, country_of(name)) for name in _within(_places(text, all_names), head)][:16],
        times=[(t, *(date_of(t, published) or (None, "unknown")))
               for t in _within(time_expressions(text), head) if len(t) <= 80],
        language=detect_language(text),
        types=_types(text),
    )


def _within(spans: list[str], head: str) -> list[str]:
    inside = [span for span in spans if span in head]
    return inside or spans


def _names(text: str) -> list[str]:
    found: dict[str, None] = {}
    lowered = set(re.findall(r"\b[^\W\d_][\w'’-]*", text)) - set(re.findall(rf"\b[{CAPITALS}][\w'’-]*", text))
    for match in _NAME_RUN.finditer(text):
        words = _POSSESSIVE.sub("", match.group(0)).split(" ")
        if len(words) == 1 and words[0].lower() in lowered and _SENTENCE_START.search(text[:match.start()]):
            continue  # "Eleven people …": a sentence's first word, written in lower case elsewhere
        while words and _not_a_name(words[0]):
            words = words[1:]
        while words and _not_a_name(words[-1]):
            words = words[:-1]
        if not words or (len(words) == 1 and len(words[0]) < 2):
            continue
        run = " ".join(words)
        found.setdefault(run, None)
        if len(words) >= 3 and words[-2][:1].isupper():  # "Russian Foreign Minister Sergei Lavrov": "Sergei Lavrov" too
            found.setdefault(" ".join(words[-2:]), None)
    return list(found)


def _not_a_name(word: str) -> bool:
    return word.casefold() in _NOT_NAMES and not (len(word) > 1 and word.isupper())  # "UN" is a name


def _descriptions(text: str, names: list[str]) -> list[str]:
    found: dict[str, None] = {}
    for name in names:
        words = name.split(" ")
        if len(words) >= 3 and _TITLE_WORDS.search(" ".join(words[:-2])):  # "Russian Foreign Minister"
            found.setdefault(" ".join(words[:-2]), None)
    for match in _APPOSITIVE.finditer(text):
        span = match.group(1).strip()
        if _TITLE_WORDS.search(span) and len(span) <= 160:  # "Sergei Lavrov, Russia's foreign minister,"
            found.setdefault(span, None)
    return list(found)


def _places(text: str, names: list[str]) -> list[str]:
    found: dict[str, None] = {}
    for name in names:
        if country_of(name) is not None:
            found.setdefault(name, None)
    for match in _NAME_RUN.finditer(text):
        if _PLACE_CUE.search(text[max(0, match.start() - 6):match.start()]):
            name = _POSSESSIVE.sub("", match.group(0))
            if not _not_a_name(name) and name in names:
                found.setdefault(name, None)
    return list(found)


def _headlines(text: str, all_sentences: list[str]) -> list[str]:
    found: dict[str, None] = {}
    first = text.strip().split("\n", 1)[0].strip()
    if 0 < len(first) <= 120:  # a title line, or a short first paragraph
        found.setdefault(first, None)
    for sentence in all_sentences[:3]:
        found.setdefault(_cut(sentence, 120), None)
    return [h for h in found if h]


def _summaries(all_sentences: list[str]) -> list[str]:
    fits = [s for s in all_sentences if len(s) <= 240 and count_words(s) <= 40 and count_words(s) >= 4]
    return fits or [_cut(all_sentences[0], 200)] if all_sentences else fits


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")


def _types(text: str, best: int = 3) -> list[str]:
    # The types whose words the document uses most (distinct stems), "other" always: a
    # sports result needs a sports word, and an election's vocabulary outweighs one "won".
    words = set(re.findall(r"\w+", text.casefold()))
    scores = {t: sum(any(word.startswith(stem) for word in words) for stem in stems.split())
              for t, stems in _TYPE_WORDS.items()}
    ranked = sorted((t for t in scores if scores[t]), key=lambda t: -scores[t])[:best]
    return [t for t in EVENT_TYPES if t in ranked or t == "other"]
