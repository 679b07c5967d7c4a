"""What a document offers to choose from: its names (and what each is), places and headlines.

A 135M model cannot write a faithful event report, but it can choose among
spans of the document. Everything here is computed deterministically from the
text: names (runs of capitalised words, split into the people and
organisations they hold, and organisations named by a common noun: "the Greek
coast guard", "the city council of Ghent"), each name's kind (a person by a
title, an age or an appositive; an organisation by its words; a place by the
gazetteer or by a cue: "the border town of Dunavka", "Igoumenitsa in Greece"),
what the document calls each person, and places with their countries.
``ranking`` orders them like a reporter and ``constraints`` turns that into
a grammar-bound schema, so whatever the model picks is in the document.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from .documents import sentences
from .gazetteer import country_of, country_of_table, place_kind
from .grounding import CAPITALS
from .language import detect_language

__all__ = ["Offer", "kind_of", "offer"]

_WORD = rf"[{CAPITALS}](?:[\w'’-]|\.(?=\w))*"  # "U.S" of "U.S.": a dot only inside a word
_WORD_CLASS = rf"[{CAPITALS}][\w'’-]*"
_NAME_RUN = re.compile(rf"{_WORD}(?:(?: (?:de|del|la|van|von|der|du|des|da|dos|di|al|bin|of|the|for)){{0,2}} {_WORD})*")
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
_PLACE_CUE = re.compile(r"\b(?:in|near|en|à|au|aux|im|bei)\s+$")  # "at"/"from" precede companies as often
# "the border town of Dunavka", "the Greek island of Evia", "Río Negro province": a place by its own words.
_GEO_NOUN = (r"city|town|village|port|island|region|province|county|state|district|municipality|capital|"
             r"provincia|ciudad|localidad|región|ville|région|département|stadt|gemeinde")
# Capitalised words that make a name a place: "Shevchenko Street", "Place du Luxembourg", "La Cartuja stadium".
_PLACE_WORDS = {"street", "avenue", "square", "road", "boulevard", "place", "plaza", "bridge", "stadium", "airport",
                "station", "harbour", "harbor", "river", "lake", "mountain", "mount", "valley", "bay", "coast",
                "island", "islands", "calle", "rue", "platz", "strasse", "straße"}
# "Igoumenitsa in Greece", "40 kilometres north of Łeba", "from Berlin to Rostock": a place by its neighbours.
_PLACE_AROUND = re.compile(rf"(?:\b(?:north|south|east|west|northeast|northwest|southeast|southwest) of |"
                           rf"\bfrom (?:the )?(?:[a-z]+ )?{_WORD_CLASS} to )$")
_PLACE_OF = re.compile(rf"\b(?:{_GEO_NOUN}) (?:of |de |de la |del )?(?=[{CAPITALS}])", re.IGNORECASE)
_PLACE_THEN = re.compile(rf"^ (?:{_GEO_NOUN})\b", re.IGNORECASE)
# Organisations named by a common noun after a capitalised word: "the Greek coast guard", "Spanish
# police", "the city council of Ghent"; a reporter names them as actors.
_ORG_HEADS = (r"coast ?guard|police|government|parliament|army|military|navy|council|court|ministry|cabinet|"
              r"senate|congress|authorities|fire service|prosecutors?|regulators?|central bank|health authorities")
_ORG_PHRASE = re.compile(
    rf"\b(?:(?:city|town|municipal|regional|county|state|national) (?:council|government|assembly) of "
    rf"{_WORD_CLASS}|(?:{_WORD_CLASS}['’]s |{_WORD_CLASS} ){{1,2}}(?:{_ORG_HEADS}))\b")
# Words that make a name an organisation's.
_ORG_WORDS = set("""
union party council bank agency ministry association company group systems telecom airlines airline airways
university hospital court tribunal commission parliament assembly police guard army institute directorate survey
programme program fund authority service office department federation club bahn organisation organization
foundation corporation corp inc ltd plc bureau centre center committee government nationale nacional reserve
league unit unidad forces navy coalition alliance network press news times post agency congress senate cabinet
movement front council parti partido cour tribunal comité ministère ministerio gericht regierung bundestag
industries industry holdings technologies technology labs robotics motors energy pharma pharmaceuticals capital
partners ventures media foods railways logistics solutions software semiconductors electronics communications
networks resources mining petroleum insurance financial securities investments ag gmbh sa nv bv spa co llc
""".split())
_PERSON_TITLES = re.compile(
    r"\b(?:minister|president|secretary|chancellor|premier|king|queen|prince|princess|pope|governor|mayor|"
    r"ambassador|spokes(?:man|woman|person)|senator|general|chief(?: executive)?|director|head|leader|envoy|"
    r"chair(?:man|woman|person)?|ceo|judge|commissioner|coach|manager|researcher|scientist|professor|dr|mr|mrs|"
    r"ms|lawmaker|candidate|deputy|official|economist|analyst|lawyer|striker|captain|founder|author|"
    r"secretary-general|prosecutor|chief executive|presidente|ministro|ministre|président|alcalde|maire)\b",
    re.IGNORECASE)
_TITLE_BEFORE = re.compile(rf"((?:[\w'’-]+ ){{0,3}}?{_PERSON_TITLES.pattern}) $", re.IGNORECASE)
_PERSON_AFTER = re.compile(r"^(?:,? (?:\d{1,3},|who|said|says|told|added|wrote|explained)|['’]s? (?:wife|husband))")
_NATIONAL = re.compile(rf"[{CAPITALS}][\w-]+['’]s $")  # "Kenya's Ruth Chepngetich"
@dataclass(frozen=True)
class Offer:
    """The document's own candidates for the fields a grammar-bound decoder fills (``ranking`` orders them)."""

    text: str
    published: dt.date | None
    headlines: list[str]
    language: str | None
    names: list[str]  # every name, in document order
    kinds: dict[str, str]  # name -> person | organization | country | location | other
    described: dict[str, list[str]]  # name -> what the document calls them, in document order
    places: dict[str, str | None]  # every place -> its ISO country code when the gazetteer knows it
    cued: set[str] = field(default_factory=set)  # places a cue introduces ("in X", "the town of X")


def offer(text: str, published: dt.date | None = None) -> Offer:
    """The candidates ``text`` offers, each a verbatim span of it (dates and codes derived deterministically)."""
    names = [name for name in _names(text) if len(name) <= 120]  # the schema's bounds (Participant, Place)
    cued = _cued_places(text)
    kinds = {name: _kind(text, name, names, set(cued)) for name in dict.fromkeys(names + cued)}
    # A place's country: the one among the countries the document names (or whose capitals and
    # large cities it names) when the name is a city in several.
    context = {code for name in names for code in [country_of_table(name)] if code}
    places = {name: country_of(name, context) for name in dict.fromkeys(_places(text, names) + cued)
              if kinds.get(name) in ("country", "location")}
    return Offer(text=text, published=published, headlines=_headlines(text, sentences(text)),
                 language=detect_language(text), names=names, kinds=kinds,
                 described={name: _described(text, name) for name in names}, places=places, cued=set(cued))


def kind_of(name: str, text: str) -> str:
    """Whether ``name`` is a person, an organisation, a country or a location in ``text`` (else ``other``)."""
    return _kind(text, name, _names(text), set(_cued_places(text)))


def _names(text: str) -> list[str]:
    found: dict[str, None] = {}
    lowered = set(re.findall(r"\b[^\W\d_][\w'’-]*", text)) - set(re.findall(rf"\b[{CAPITALS}][\w'’-]*", text))
    for match in _NAME_RUN.finditer(text):
        words = _POSSESSIVE.sub("", match.group(0)).split(" ")
        if len(words) == 1 and words[0].lower() in lowered and _starts_sentence(text, match.start()):
            continue  # "Eleven people …": a sentence's first word, written in lower case elsewhere
        while words and _not_a_name(words[0]):
            words = words[1:]
        while words and _not_a_name(words[-1]):
            words = words[:-1]
        for run in _split_run(words):
            found.setdefault(run, None)
    for match in _ORG_PHRASE.finditer(text):
        words = _POSSESSIVE.sub("", match.group(0)).split(" ")
        while words and _not_a_name(words[0]):
            words = words[1:]
        if words and any(w[:1].isupper() for w in words):
            found.setdefault(" ".join(words), None)
    return [name for name in found if not _is_demonym(name, text) and not _only_a_sentence_opener(name, text)]


def _mentions_of(name: str, text: str, limit: int = 8) -> list[re.Match[str]]:
    """The first mentions of ``name``: what surrounds a name is told by its first few (a long text has hundreds)."""
    found = []
    for match in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
        found.append(match)
        if len(found) >= limit:
            break
    return found


def _starts_sentence(text: str, at: int) -> bool:
    """Whether ``text[at:]`` begins a sentence (a short look back: the text before may be long)."""
    return _SENTENCE_START.search(text[max(0, at - 12):at]) is not None if at >= 12 else bool(
        _SENTENCE_START.search(text[:at]))


def _split_run(words: list[str]) -> list[str]:
    """The names a run of capitalised words holds: "Kenya's Ruth Chepngetich" is Kenya and Ruth
    Chepngetich, "Finance Minister Jack Chambers" is Jack Chambers, "Akihiko Fukui of the
    University of Tokyo" is Akihiko Fukui and the University of Tokyo."""
    if not words or (len(words) == 1 and len(words[0]) < 2):
        return []
    possessive = next((i for i, w in enumerate(words[:-1]) if re.search(r"['’]s$", w)), None)
    if possessive is not None:
        return _split_run([_POSSESSIVE.sub("", words[possessive])]) + _split_run(words[possessive + 1:])
    run = " ".join(words)
    head, of, tail = run.partition(" of ")
    if of and " " in head and not _has_org_word(head) and _has_org_word(tail):
        return _split_run(head.split(" ")) + _split_run(tail.removeprefix("the ").split(" "))
    titled = _strip_title(run)
    if titled != run:
        return [titled]
    return [run]


def _has_org_word(name: str) -> bool:
    return bool({w.casefold().strip("'’") for w in name.split(" ")} & _ORG_WORDS) or bool(
        re.search(rf"(?:{_ORG_HEADS})$", name))


def _strip_title(run: str) -> str:
    # Everything up to the last title word of a run goes: what is left is the person's name.
    words = run.split(" ")
    last = max((i for i, w in enumerate(words) if _PERSON_TITLES.fullmatch(w)), default=-1)
    rest = words[last + 1:]
    if last < 0 or not rest or len(rest) > 5 or _has_org_word(" ".join(rest)):
        return run
    return " ".join(rest) if all(w[:1].isupper() or w in _CONNECTORS for w in rest) else run


_CONNECTORS = {"de", "del", "la", "van", "von", "der", "du", "des", "da", "dos", "di", "al", "bin", "le"}


def _is_demonym(name: str, text: str) -> bool:
    # "Qatari and Egyptian mediators", "the Greek coast guard": an adjective of nationality, not a name.
    if " " in name or place_kind(name) is not None:
        return False
    after = [m.group(1) for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w'’-])\s*(\S*)", text)
             if not _inside_run(text, m.start(), m.start() + len(name))]
    lower = [w for w in after if w[:1].islower()]
    return bool(after) and len(lower) == len(after) and bool(
        re.search(r"(?:ian|ean|ese|ish|ic|ch|ek|i|an|que|ist|ard|ss|ot)$", name)) and not any(
        w in _SPEECH for w in lower)


def _only_a_sentence_opener(name: str, text: str) -> bool:
    # "Shelling killed …", "Copper mines …", "Young workers …": a single word met only at the start
    # of sentences is a common word capitalised there (a country or an acronym is still a name).
    if " " in name or (len(name) > 1 and name.isupper()) or place_kind(name) == "country":
        return False
    if re.search(rf"[{CAPITALS}][\w'’-]+ {re.escape(name)}(?![\w-]| [{CAPITALS}])", text):
        return False  # a surname: "Lavrov said" after "Sergei Lavrov"
    starts = [_starts_sentence(text, m.start())
              for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
              if not _inside_run(text, m.start(), m.end())]
    # Met three times or more, only plurals and verb forms are taken for common words ("Residents
    # said …"); a company named at the start of its sentences ("Nvidia said …") stays a name.
    return all(starts) and (len(starts) <= 2 or bool(re.search(r"(?:s|ing|ed|ly)$", name)))


def _inside_run(text: str, start: int, end: int) -> bool:
    """The span is part of a longer run of capitalised words ("Pilots" in "Nordic Pilots Union")."""
    before = re.search(rf"{_WORD_CLASS} $", text[max(0, start - 40):start])
    after = re.match(rf" {_WORD_CLASS}", text[end:end + 40])
    return bool(before and not _starts_sentence(text, start - len(before.group(0))) and
                before.group(0).strip().casefold() not in _NOT_NAMES) or bool(after)


_SPEECH = {"said", "says", "told", "added", "won", "met", "was", "is", "has", "had", "will", "would"}


def _not_a_name(word: str) -> bool:
    return word.casefold() in _NOT_NAMES and not (len(word) > 1 and word.isupper())  # "UN" is a name


def _kind(text: str, name: str, names: list[str], cued: set[str]) -> str:
    """person, organization, country, location or other: by the name's own words and what surrounds it."""
    words = name.split(" ")
    if any(n != name and n.endswith(" " + name) and _person_cue(text, n, strong=True) for n in names):
        return "person"  # "Lavrov" after "Russian Foreign Minister Sergei Lavrov"
    if _person_cue(text, name, strong=True):
        return "person"
    if _has_org_word(name):
        return "organization"  # "Bank of Canada", "the Greek coast guard"
    geo = place_kind(name)
    if geo is not None or name in cued or {w.casefold() for w in words} & _PLACE_WORDS:
        return "country" if geo == "country" else "location"
    if any(len(w) > 1 and w.isupper() for w in words):
        return "organization"  # "LIOT", "CLIA Norway"
    if len(words) > 1 and re.search(rf"\b[Tt]he {re.escape(name)}\b", text):
        return "organization"  # "the Guardia Civil", "the Nordic Pilots Union"
    if _person_cue(text, name, strong=False):
        return "person"
    return "other"


def _person_cue(text: str, name: str, *, strong: bool) -> bool:
    """Strong: a title before the name, an appositive with a title, an age, a country's possessive.
    Weak: a two- to four-word name that says something ("…, Marta Reis said")."""
    if len(name.split(" ")) > 5:
        return False
    if strong and any(_PERSON_TITLES.search(d) for d in _described(text, name)):
        return True
    for match in _mentions_of(name, text):
        before, after = text[max(0, match.start() - 60):match.start()], text[match.end():match.end() + 20]
        if strong and (_TITLE_BEFORE.search(before) or re.match(r", \d{1,3},", after) or (
                _NATIONAL.search(before) and " " in name)):
            return True
        if not strong and " " in name and _PERSON_AFTER.search(after):
            return True
    return False


def _described(text: str, name: str) -> list[str]:
    """The descriptions ``text`` gives ``name``: a title before it ("former transport minister"),
    an appositive before ("Portugal's health minister, Marta Reis") or after ("Lindqvist, 44, a former teacher,")."""
    found: dict[str, None] = {}
    for match in _mentions_of(name, text):
        before, after = text[max(0, match.start() - 100):match.start()], text[match.end():match.end() + 120]
        title = _TITLE_BEFORE.search(before)
        if title:
            span = re.split(r"[,.;:!?\"“”()]", title.group(1))[-1].strip()
            words = span.split(" ")
            while words and (words[0].casefold() in _LEADING or words[0][:1].isdigit() or (
                    words[0][:1].islower() and words[0].endswith("ed"))):
                words = words[1:]
            if words and _PERSON_TITLES.search(" ".join(words)):
                found.setdefault(" ".join(words), None)
        apposed = re.search(r"([^,.;:!?\"“”()]{3,100}), $", before)
        if apposed and _PERSON_TITLES.search(apposed.group(1)):
            starts = [m.start() for m in _NP_START.finditer(apposed.group(1))]
            if starts:  # "The announcement, made by Qatar's minister of state, X": from "Qatar's"
                found.setdefault(apposed.group(1)[starts[-1]:].strip(), None)
        trailing = re.match(r", (?:\d{1,3}, )?((?:the |a |an )?[^,.;:!?\"“”()]{3,100}?),", after)
        if trailing and (_PERSON_TITLES.search(trailing.group(1)) or trailing.group(1).startswith(("a former", "the former"))):
            found.setdefault(trailing.group(1).strip(), None)
    return [d for d in found if len(d) <= 160 and d in text]


_LEADING = _NOT_NAMES | {"said", "says", "told", "by", "to", "of", "for", "with", "from", "be", "is", "was",
                         "were", "are", "has", "had", "have", "and", "or", "that", "who"} - {"the", "a", "an"}
_NP_START = re.compile(rf"(?:^|(?<=\s))(?:[{CAPITALS}][\w-]*['’]s |(?:the|a|an|its|his|her|their|le|la|el|der|die) )",
                       re.IGNORECASE)


def _cued_places(text: str) -> list[str]:
    found: dict[str, None] = {}
    for match in _PLACE_OF.finditer(text):
        run = _NAME_RUN.match(text, match.end())
        if run:
            found.setdefault(_POSSESSIVE.sub("", run.group(0)), None)
    for match in _NAME_RUN.finditer(text):
        name = _POSSESSIVE.sub("", match.group(0))
        after = re.match(rf" in (?:the )?({_WORD_CLASS}(?: {_WORD_CLASS})*)", text[match.end():match.end() + 60])
        if _PLACE_THEN.match(text, match.end()) or _PLACE_AROUND.search(text[max(0, match.start() - 60):match.start()]) \
                or (after and place_kind(after.group(1)) in ("country", "region")):
            if not _not_a_name(name) and place_kind(name) != "country":
                found.setdefault(name, None)
        head, of, tail = name.partition(" of ")
        if of and place_kind(tail) == "city":  # "University Hospital of Brno"
            found.setdefault(tail, None)
    return [name for name in found if not _not_a_name(name) and len(name) <= 120
            and not _only_a_sentence_opener(name, text)]


def _places(text: str, names: list[str]) -> list[str]:
    found: dict[str, None] = {}
    for name in names:
        if country_of(name) is not None or place_kind(name) is not None:
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
        found.setdefault(_cut(sentence, _HEADLINE_CHARS), None)
    return [h for h in found if h]


_HEADLINE_CHARS = 100  # the schema allows 120; a shorter cut reads as well and is fewer tokens to write


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
