"""Choosing like a reporter: which of the document's events, and who, where and when for each.

A 135M model picks poorly among forty names; a reporter does not read that
way. Before the model sees anything, the candidates are ranked with the
features 5W1H extractors use (Giveme5W1H): the position in the text (news
puts the main event in its lead), being the subject of the main verb,
frequency, named-entity cues (a person, an organisation, a place by the
gazetteer or by "in / near / the town of"), and for times and places the
nearness to the event's own sentence. The grammar then offers only the top
few, best first, and computes what needs no choice: the event's type from its
sentence's words, its status from its tense and modal words, the evidence and
summary from its sentence.

A document reports several events when a later sentence of its opening
carries another kind of event with an anchor of its own (its own time or
place): up to three, each with its own evidence; otherwise one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .candidates import Offer
from .dates import candidates as date_candidates
from .dates import date_of, time_expressions
from .extractive import BOILERPLATE, split_sentences, unit_forms
from .gazetteer import place_kind
from .schemas import EVENT_TYPES, count_words
from .status import main_verb, status_of

__all__ = ["Actor", "Happening", "happenings"]

# The words each event type is told by: a stem matches the start of a word, a stem ending in "$"
# the whole word ("poll$" is not "pollution", "elect" would be "electricity"). A "statement" is in
# most news: its words weigh half, and a sentence must score 2 (one sure word) to get a type.
_TYPE_WORDS = {
    "diplomacy.meeting": "meet met$ talks$ summit sideline negotiat reunion reunió cumbre sommet "
                         "rencontr treffen gipfel",
    "diplomacy.statement": "statement urge warn condemn",
    "politics.election": "election elected$ electoral ballot poll$ polls$ polling candidat campaign runoff "
                         "eleccion élection wahl",
    "politics.policy": "law$ laws$ bill$ policy reform budget tax$ taxes$ parliament congress decree sanction "
                       "approv ban$ banned$ bans$ resign regulat ordinance interest ley$ loi$ réforme gesetz",
    "conflict.attack": "attack shell missile bomb killed$ troops drone airstrike ransomware ataque attaque angriff",
    "conflict.protest": "protest demonstrat rally walkout walk(?:ed|s|ing)?[\\s-]out walked$ picket strike$ strikes$ "
                        "protesta grève manifestation huelga",
    "justice.arrest": "arrest detain custody detenid festgenommen",
    "justice.trial": "trial$ court$ sentenc verdict convict acquit juicio tribunal procès gericht",
    "disaster.natural": "earthquake quake flood hurricane storm wildfire tsunami drought volcan typhoon "
                        "terremoto inundac lluvia tormenta riada séisme inondation",
    "disaster.accident": "crash accident collid collision derail explosion fire$ blaze sank$ capsiz accidente",
    "business.deal": "deal$ deals$ acquisition acquire$ acquires$ merger takeover buy$ buys$ bought$ purchase "
                     "agreement contract acuerdo",
    "economy.report": "inflation gdp$ unemployment growth prices$ revenue profit earnings quarter forecast",
    "health.outbreak": "outbreak virus epidemic pandemic measles cholera infection brote épidémie",
    "science.discovery": "discover scientist research study telescope species fossil planet astronom "
                         "palaeontolog dinosaur científic chercheur",
    "sports.result": "match$ championship league tournament cup$ medal marathon race$ final$ striker partido",
}
_STEMS = {t: [re.compile(r"\b" + (stem[:-1] + r"\b" if stem.endswith("$") else stem)) for stem in stems.split()]
          for t, stems in _TYPE_WORDS.items()}
_WEAK_TYPES = {"diplomacy.statement": 0.5}
_SURE = 2.0  # a sentence's one sure word (counted twice): less is no type, "other"
_MAX_ACTORS, _MAX_PLACES, _MAX_TIMES = 3, 2, 2
_CLOSE = 1.5  # a second place or time is offered only when it ranks this close to the first
_SUMMARY_WORDS, _SUMMARY_CHARS, _EVIDENCE_CHARS = 40, 240, 400
_LOOKAHEAD = 10  # sentences of the opening where a further event may be reported
_POINT = re.compile(r"\d|day\b|night|morning|afternoon|evening|tomorrow|yesterday|today|tonight|next|"
                    r"lunes|martes|miércoles|jueves|viernes|sábado|domingo|ayer|hoy|mañana|"
                    r"lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|hier|demain|"
                    r"tag\b|gestern|morgen|heute", re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|«[^»]*»")
_SPEECH_AFTER = re.compile(r"^,? (?:said|says|told|added|announced|reported)\b")


@dataclass(frozen=True)
class Actor:
    """A participant the grammar may offer: name, kind and description fixed by the document."""

    name: str
    kind: str
    description: str | None
    role: str  # agent (the main verb's subject), partner, victim, target (after the verb) or other


@dataclass(frozen=True)
class Happening:
    """One event the document reports, with its candidates best first."""

    evidence: str
    summary: str
    types: list[str]
    status: str
    actors: list[Actor]
    places: list[tuple[str, str | None]]
    times: list[tuple[str, str | None, str]]
    place_required: bool  # the event's own sentence names the place: no null
    time_required: bool


def happenings(offer: Offer, *, limit: int = 3) -> list[Happening]:
    """The events ``offer``'s text reports, the main one first: at most ``limit``, at least one.

    The main event may take its actors, place and time from the two sentences after its own
    (news names the source or the second party there), unless those tell a further event; a
    further event takes them from its own sentence only.
    """
    sentences = split_sentences(offer.text)
    usable = [i for i, s in enumerate(sentences) if _event_sentence(s)]
    if not usable:
        return [_fallback(offer, sentences)] if sentences else []
    main = usable[0]
    first = _happening(offer, sentences, main, near=sentences[main + 1:main + 3])
    further: list[tuple[int, Happening]] = []
    seen = set(first.types)
    for i in usable[1:]:
        if len(further) + 1 >= limit or i > main + _LOOKAHEAD:
            break
        other = _further_event(offer, sentences, i, [first] + [e for _, e in further], seen)
        if other is not None:
            further.append((i, other))
            seen |= set(other.types)
    if further:  # the main event's neighbours exclude the sentences of the others
        taken = {i for i, _ in further}
        first = _happening(offer, sentences, main,
                           near=[s for j, s in enumerate(sentences[main + 1:main + 3], main + 1) if j not in taken])
    return [first] + [e for _, e in further]


def _event_sentence(sentence: str) -> bool:
    words = count_words(sentence)
    return (6 <= words <= 80 and sentence[:1].isalnum() and sentence[-1:] in ".!?…\"”»'’)"
            and len(re.findall(r"[\"“”«»]", sentence)) % 2 == 0
            and sum(c.isupper() for c in sentence) < 0.5 * sum(c.isalpha() for c in sentence)
            and not BOILERPLATE.search(sentence))


def _happening(offer: Offer, sentences: list[str], i: int, *, near: list[str],
               types: list[str] | None = None) -> Happening:
    sentence = sentences[i]
    places = _places(offer, sentence, near)
    status = status_of(sentence)
    times = _times(offer, sentence, near, planned=status == "planned")
    return Happening(
        evidence=_quote(sentence),
        summary=_fit(sentence, _SUMMARY_CHARS, _SUMMARY_WORDS),
        types=types or types_of(sentence, _title(offer.text), " ".join(near)),
        status=status,
        actors=_actors(offer, sentence, near),
        places=[(name, code) for name, code, _ in places],
        times=[(text, date, precision) for text, date, precision, _ in times],
        place_required=bool(places) and places[0][2],
        time_required=bool(times) and times[0][3],
    )


def _further_event(offer: Offer, sentences: list[str], i: int, events: list[Happening],
                   seen: set[str]) -> Happening | None:
    """Another event: a sentence telling of another kind of event (not a claim about one), on a day of its own."""
    sentence = sentences[i]
    if re.match(r"[\"“«']", sentence) or _SPEECH_AFTER.search(sentence[-40:]) or status_of(sentence) == "reported":
        return None
    types = types_of(sentence, "", "")
    families = {t.split(".")[0] for t in seen}
    if types == ["other"] or types[0].split(".")[0] in families or 2 * _type_score(sentence, types[0]) < _SURE:
        return None
    # Its own time, and a point in time: a separate happening is dated apart ("on Wednesday", "next
    # week"); "this year" is background, and a place alone is too weak ("approval in Europe, the
    # United States and China" is the same deal).
    known_times = {t[0].casefold() for e in events for t in e.times}
    if not any(t.casefold() not in known_times and _POINT.search(t) for t in time_expressions(sentence)):
        return None
    event = _happening(offer, sentences, i, near=[], types=[t for t in types if t.split(".")[0] not in families])
    named = event.place_required or any(_find(sentence, actor.name) is not None for actor in event.actors)
    return event if named else None  # "The two sides last met on Monday": no one and nowhere of its own


def _fallback(offer: Offer, sentences: list[str]) -> Happening:
    return Happening(evidence=_quote(sentences[0]), summary=_fit(sentences[0], _SUMMARY_CHARS,
                     _SUMMARY_WORDS), types=["other"], status=status_of(sentences[0]), actors=[], places=[],
                     times=[], place_required=False, time_required=False)


# --- what kind of event -----------------------------------------------------------------------


def types_of(sentence: str, title: str = "", context: str = "") -> list[str]:
    """The event types a sentence's words point to, best first (two when they are close); ``other`` if none."""
    scores = {t: _type_score(sentence, t) * 2 + _type_score(title, t) + 0.5 * _type_score(context, t)
              for t in _STEMS}
    # On a tie, the kind the sentence names first: its main clause ("will walk out … after talks collapsed").
    folded = sentence.casefold()
    first = {t: min((m.start() for stem in _STEMS[t] for m in [stem.search(folded)] if m), default=len(folded))
             for t in _STEMS}
    ranked = sorted((t for t in scores if scores[t] > 0), key=lambda t: (-scores[t], first[t], EVENT_TYPES.index(t)))
    if not ranked or scores[ranked[0]] < _SURE:
        return ["other"]
    best = scores[ranked[0]]
    return [t for t in ranked[:2] if scores[t] >= 0.75 * best]


def _type_score(text: str, kind: str) -> float:
    folded = text.casefold()
    return sum(bool(stem.search(folded)) for stem in _STEMS[kind]) * _WEAK_TYPES.get(kind, 1.0)


def _title(text: str) -> str:
    first = text.strip().split("\n", 1)[0].strip()
    return first if 0 < len(first) <= 120 and first[-1:] not in ".!?" else ""


# --- who, where, when -------------------------------------------------------------------------


def _actors(offer: Offer, sentence: str, near: list[str]) -> list[Actor]:
    verb = main_verb(sentence)
    near = [_QUOTED.sub(" ", s) for s in near]  # a name only a quotation mentions is not an actor
    scored: dict[str, float] = {}
    for name in offer.names:
        kind = offer.kinds.get(name, "other")
        at = _find(sentence, name)
        subject = at is not None and at < verb
        if kind in ("country", "location") and not (at == 0 and not re.match(rf"{re.escape(name)}['’]", sentence)):
            continue  # places answer where; a country opening the sentence may still act ("Russia launched …")
        if at is not None:
            score = 3.0 + (2.5 if subject else 0.0)
        elif any(_find(s, name) is not None for s in near):
            score = 1.2
        else:
            continue
        score += 0.4 * min(_mentions(offer.text, name), 5) + (1.0 if kind in ("person", "organization") else 0.0)
        if re.search(rf"{re.escape(name)},? (?:said|says|told)\b|according to (?:the )?{re.escape(name)}", offer.text):
            score += 1.0  # the source of a reported event takes part in it
        scored[name] = score
    names = [n for n in sorted(scored, key=lambda n: -scored[n])
             if not any(o != n and _find(o, n) is not None and scored[o] >= scored[n] - 1 for o in scored)]
    # The event's own sentence names its actors first; the next sentences fill the places left.
    own = [n for n in names if _find(sentence, n) is not None]
    chosen = (own + [n for n in names if n not in own])[:_MAX_ACTORS]
    chosen.sort(key=lambda n: -scored[n])
    return [Actor(name, offer.kinds.get(name, "other"), _description(offer, name), _role(sentence, name, verb))
            for name in chosen]


def _role(sentence: str, name: str, verb: int) -> str:
    """agent: the main verb's subject; partner: "with X" / "X and"; victim: after killing/injuring; else target
    (acted on, after the verb) or other (named elsewhere)."""
    at = _find(sentence, name)
    if at is None:
        return "other"
    if at < verb:
        return "agent"
    before = sentence[max(0, at - 40):at]
    if re.search(r"\b(?:with|and|alongside|joined by)\s+(?:the\s+)?$", before, re.IGNORECASE):
        return "partner"
    if re.search(r"\b(?:killing|injuring|wounding|against|hitting)\s+(?:the\s+)?\S*\s*$", before, re.IGNORECASE):
        return "victim"
    return "target" if at < verb + 120 else "other"


def _description(offer: Offer, name: str) -> str | None:
    found = offer.described.get(name) or []
    return found[0] if found else None


def _places(offer: Offer, sentence: str, near: list[str]) -> list[tuple[str, str | None, bool]]:
    scored: dict[str, tuple[float, bool]] = {}
    for name, code in offer.places.items():
        at = _find(sentence, name)
        if at is not None:
            score, own = 3.0, True
            if re.search(r"\b(?:in|at|near|off|outside|of)\s+(?:the\s+)?$", sentence[max(0, at - 30):at]):
                score += 1.0
        elif any(_find(s, name) is not None for s in near):
            score, own = 1.0, False
        else:
            continue
        # The most specific place wins: a city or a cued location over its country, a country over a
        # continent or an ocean ("Pacific small island states" is no place of the event).
        specific = 1.5 if place_kind(name) != "region" and offer.kinds.get(name) == "location" else 0.0
        score += specific - (1.5 if place_kind(name) == "region" else 0.0) + 0.3 * min(_mentions(offer.text, name), 3)
        scored[name] = (score, own)
    ranked = sorted(scored, key=lambda n: -scored[n][0])
    ranked = [n for n in ranked if scored[n][0] >= scored[ranked[0]][0] - _CLOSE][:_MAX_PLACES]
    return [(name, offer.places[name], scored[name][1]) for name in ranked]


def _times(offer: Offer, sentence: str, near: list[str], *, planned: bool) -> list[tuple[str, str | None, str, bool]]:
    verb = main_verb(sentence)
    found: list[tuple[float, str, bool]] = []
    for text in time_expressions(sentence):
        at = sentence.find(text)
        found.append((3.0 - abs(at - verb) / 200, text, True))
    if not found:
        found = [(1.0, text, False) for s in near for text in time_expressions(s)]
    ranked: list[tuple[str, str | None, str, bool]] = []
    for _, text, own in sorted(found, key=lambda f: -f[0] - (1.0 if date_of(f[1], offer.published) else 0.0)):
        if len(text) <= 80 and text not in {r[0] for r in ranked}:
            date, precision = _date(text, offer.published, planned=planned)
            ranked.append((text, date, precision, own))
    return ranked[:_MAX_TIMES]


def _date(text: str, published: dt.date | None, *, planned: bool) -> tuple[str | None, str]:
    """The date a time expression fixes; for a planned event the next such day ("will walk out from Friday")."""
    if planned and published is not None:
        ahead = sorted(iso for iso in date_candidates(text, published) if iso >= published.isoformat())
        if ahead:
            return ahead[0], date_candidates(text, published)[ahead[0]]
    return date_of(text, published) or (None, "unknown")


def _find(text: str, name: str) -> int | None:
    match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
    return match.start() if match else None


def _mentions(text: str, name: str) -> int:
    count = len(re.findall(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text))
    surname = name.rsplit(" ", 1)[-1]
    if surname != name and len(surname) > 3:
        count = max(count, len(re.findall(rf"(?<![\w-]){re.escape(surname)}(?![\w-])", text)))
    return count


def _quote(sentence: str) -> str:
    """The sentence as evidence: whole, or verbatim up to a clause boundary (or a word) within the bound."""
    if len(sentence) <= _EVIDENCE_CHARS:
        return sentence
    heads = [form[:-1] for form in unit_forms(sentence)[1:] if len(form) - 1 <= _EVIDENCE_CHARS]
    return heads[0] if heads else sentence[:_EVIDENCE_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:")


def _fit(sentence: str, chars: int, words: int) -> str:
    """The sentence, or its longest main-clause form within the bounds, or its start cut at a word."""
    for form in unit_forms(sentence):
        if len(form) <= chars and count_words(form) <= words:
            return form
    cut = " ".join(sentence.split(" ")[:words])
    return cut[:chars].rsplit(" ", 1)[0].rstrip(" ,;:") if len(cut) > chars else cut.rstrip(" ,;:")
