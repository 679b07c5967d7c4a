"""What a sentence claims, in pieces a deterministic check can compare.

Content stems (light stemming, a small paraphrase lexicon of news vocabulary),
names (capitalised runs) and the titles attached to them, quantities (value,
scale and unit, number words included: "1.4 million", "$3bn", "40%",
"two months", "8 tonnes"), time references (weekdays, dates, relative days
resolved with the publication date) and negation cues. ``check.py`` compares
them between a summary sentence and the source sentences that back it.

English carries the lexicon; Spanish, French and German get their number and
negation words; unspaced scripts (Chinese, Japanese, …) get numbers, their
scale characters (万, 亿) and negation, not names or content words.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .align import WIDE_RANGES, Span, fold
from .dates import candidates, date_of, may_hold_time, time_expressions
from .patterns import alternation

__all__ = [
    "CONTINENTAL", "TITLE_WORDS", "Facts", "Quantity", "TimeRef", "antonym_of", "close", "concept", "contrasts_of",
    "document_facts",
    "facts_of", "is_content", "is_generic", "negated", "number_word", "quantities", "ratios", "same_quantity", "stem",
]

# -- words -----------------------------------------------------------------------------------

_STOP = frozenset("""
a an the and or but if of to in on at by for with from as into onto over under about after before since until
while during than then that this these those there here it its it's he him his she her hers they them their theirs
we us our you your i me my mine who whom whose which what when where why how is are was were be been being am do
does did doing done have has had having will would shall should can could may might must also too very just only
even still yet so such not no nor all any some each every both either neither more most much many few other others
another same own up down out off again further once s t re ve ll d one ones per via vs upon amid among against
within without across through throughout toward towards whether though although because however says said say
told tell according added adding stated reported reports report noted announced announcement statement
el la los las de del y en que un una por con para es al lo como su sus se le les des et du est dans pour sur au
par pas ce il elle ont qui der die das und den von zu mit sich auf für ist im dem ein eine als auch es an wird
""".split())
# Words a faithful summary adds or swaps freely: no claim of their own.
_GENERIC = frozenset("""
official officials authorities authority government people person man woman men women year years month months day
days week weeks time times new major significant several number numbers total group part area areas region country
countries city cities place local national international world global public private large small big high low
including include includes included include following followed follow amid despite due result resulted led lead
make made making take took taken give gave given get got become became come came go went set put keep kept
least around nearly almost roughly approximately about some over under more less than just well first last next
previous former latter current recent recently earlier later now today currently already ever never soon far long
away back whole entire single double main key top senior chief head member members side sides case cases way ways
plan plans move moves effort efforts decision issue issues situation deal deals news media press spokesman
spokeswoman spokesperson add also mainly mostly largely partly particularly especially notably overall
percent per cent figure figures data level levels rate rates share shares home homes house houses hit hits
saying called call calls describe described describing warn warned warning claim claimed urged urging
struck strike left remain remains remained line lines aboard aiming aim aims funded fund pledged pledge promise
promised money busy searching wrong fast quickly slowly mid enough old young pre post unit units serve serves
served run runs running held hold holds found find finds showed show shows reached reach reaches topped top
nearly lost lose missed miss hailed hail criticised criticized dismissed according seen see sees saw turned turn
forward put putting bring brought beating beat nationwide across ongoing amount amounts sum sums cost costs
expected expect expects coming response responded respond mean means meant signs sign lived live lives
""".split())
# Paraphrase sets of news vocabulary: any member stands for the set.
_CONCEPTS: dict[str, tuple[str, ...]] = {
    "kill": ("kill", "killed", "killing", "die", "died", "dead", "death", "deaths", "fatal", "fatality", "fatalities",
             "toll", "perish", "perished", "lives", "victim", "victims", "drown", "drowned", "fallecido",
             "muerto", "muertos", "tote", "todesopfer", "gestorben", "morts", "遇难", "死亡"),
    "injure": ("injure", "injured", "injuring", "injury", "injuries", "hurt", "wound", "wounded", "verletzt"),
    "arrest": ("arrest", "arrested", "detain", "detained", "detention", "custody", "apprehended"),
    "resign": ("resign", "resigned", "resignation", "quit", "quits", "stepped", "step"),
    "rise": ("rise", "rose", "risen", "rising", "increase", "increased", "increasing", "climb", "climbed", "jump",
             "jumped", "grow", "grew", "growth", "gain", "gained", "soar", "soared", "surge", "surged", "lift",
             "lifted", "raise", "raised", "raises", "raising", "rises", "increases", "climbs", "climbing", "jumps",
             "hike", "higher", "up", "boost", "boosted", "doubled", "tripled"),
    "fall": ("fall", "fell", "fallen", "falling", "drop", "dropped", "decline", "declined", "decrease",
             "decreased", "lower", "slip", "slipped", "ease", "eased", "slump", "slumped", "plunge", "plunged",
             "down", "shrink", "shrank", "cut", "cuts", "reduce", "reduced", "reducing", "falls", "drops", "dropping",
             "declines", "declining", "lowered", "lowering"),
    "buy": ("buy", "bought", "acquire", "acquired", "acquisition", "purchase", "purchased", "takeover"),
    "win": ("win", "won", "winning", "winner", "beat", "defeated", "defeating", "victory", "retain",
            "retained", "prize"),
    "approve": ("approve", "approved", "pass", "passed", "adopt", "adopted", "back", "backed", "endorse",
                "endorsed", "accept", "accepted", "agree", "agreed", "agreement"),
    "reject": ("reject", "rejected", "refuse", "refused", "dismiss", "dismissed", "oppose", "opposed", "against",
               "veto", "vetoed"),
    "convict": ("convict", "convicted", "conviction", "guilty"),
    "acquit": ("acquit", "acquitted", "acquittal", "innocent", "cleared"),
    "start": ("start", "started", "begin", "began", "begun", "launch", "launched", "open", "opened"),
    "leave": ("leave", "left", "depart", "departed", "exit", "flee", "fled", "evacuate", "evacuated",
              "evacuation", "escape", "escaped"),
    "meet": ("meet", "met", "meeting", "talk", "talks"),
    "sign": ("sign", "signed", "join", "joins", "joined"),
    "strike": ("strike", "strikes", "walkout", "walkouts", "stoppage"),
    "rain": ("rain", "rainfall", "downpour", "lluvia", "lluvias", "regen", "starkregen"),
    "fire": ("fire", "blaze", "flames", "wildfire"),
    "protest": ("protest", "protests", "protester", "protesters", "demonstration", "demonstrator",
                "demonstrators", "march", "marched", "rally"),
    "record": ("record", "records"),
    "trial": ("trial", "study", "studies"),
    "search": ("search", "searching", "look", "looking", "seek", "seeking", "hunt"),
    "rescue": ("rescue", "rescued", "save", "saved", "pulled"),
    "company": ("company", "firm", "group", "business", "carrier", "airline", "bank", "lender", "maker"),
    "ship": ("ship", "vessel", "boat", "ferry"),
    "cancel": ("cancel", "cancelled", "canceled", "scrap", "scrapped", "axe", "axed", "suppress", "supprimer",
               "annuler", "annulés", "annulation"),
    "house": ("house", "houses", "home", "homes", "housing", "dwelling", "residential"),
}
_CONCEPT = {fold(word): name for name, words in _CONCEPTS.items() for word in words}
_ANTONYMS = {"rise": "fall", "fall": "rise", "win": "lose", "approve": "reject", "reject": "approve",
             "convict": "acquit", "acquit": "convict"}
_CONCEPT.update({w: "lose" for w in ("lose", "loses", "lost", "losing", "loser", "defeat", "defeats")})
# States that exclude one another although neither is the other's negation: a claim of the first where the
# source says only the second ("charged" where the source says "arrested") is a predicate error.
_CONTRASTS: dict[str, tuple[str, ...]] = {
    "charge": ("arrest",), "convict": ("charge", "arrest"), "kill": ("injure",), "injure": ("kill",),
    "admit": ("deny",), "deny": ("admit",), "postpone": ("cancel",), "cancel": ("postpone",),
    "draw": ("win", "lose"),
}
_CONCEPT.update({w: name for name, words in {
    "charge": ("charge", "charged", "charges", "charging"), "admit": ("admit", "admits", "admitted", "confessed"),
    "deny": ("deny", "denies", "denied", "denying"), "postpone": ("postpone", "postponed", "delay", "delayed"),
    "draw": ("draw", "drew", "drawn"),
}.items() for w in words})
_SUFFIXES = ("ations", "ation", "ements", "ement", "ments", "ment", "ions", "ion", "ings", "ing", "ies", "ied",
             "ers", "ees", "ed", "es", "er", "ly", "s", "y", "e")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, language-blind stem: common suffixes off, then at most 7 characters."""
    word = fold(word).strip("'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4:
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
    return word[:7]


# Irregular verbs of news copy, base form first: "took", "taken", "taking" are all "take".
_IRREGULAR_VERBS = """
arise arose arisen|become became|begin began begun|break broke broken|bring brought|build built|buy bought|
catch caught|choose chose chosen|come came|deal dealt|draw drew drawn|drive drove driven|eat ate eaten|
fall fell fallen|feel felt|fight fought|find found|flee fled|fly flew flown|forget forgot forgotten|
freeze froze frozen|get got gotten|give gave given|go went gone|grow grew grown|hear heard|hide hid hidden|
hold held|keep kept|know knew known|lead led|leave left|lend lent|lose lost|make made|mean meant|meet met|
pay paid|rise rose risen|run ran|see saw seen|seek sought|sell sold|send sent|shake shook shaken|shoot shot|
show showed shown|sing sang sung|sink sank sunk|sit sat|sleep slept|speak spoke spoken|spend spent|stand stood|
steal stole stolen|stick stuck|strike struck|swear swore sworn|swim swam swum|take took taken|teach taught|
tear tore torn|tell told|think thought|throw threw thrown|understand understood|wake woke woken|wear wore worn|
win won|withdraw withdrew withdrawn|write wrote written|overtake overtook overtaken|beat beaten|blow blew blown|
ride rode ridden|ring rang rung|spread|hit|cut|put|set|shut|quit|let|cost|hurt
"""
_DOUBLED = frozenset("begin dig forget get hit let put quit run set shut sit spin swim win cut".split())


def _inflections(base: str) -> set[str]:
    ing = base[:-1] + "ing" if base.endswith("e") and not base.endswith("ee") else \
        base + base[-1] + "ing" if base in _DOUBLED else base + "ing"
    return {base + ("es" if base.endswith(("o", "ch", "sh")) else "s"), ing}


_IRREGULAR = {form: forms.split()[0] for forms in _IRREGULAR_VERBS.replace("\n", "").split("|")
              for form in {*forms.split(), *_inflections(forms.split()[0])}}


@functools.lru_cache(maxsize=65536)
def concept(word: str) -> str:
    """The paraphrase set a word belongs to, else its stem (an irregular verb's base form's)."""
    key = fold(word)
    if key in _CONCEPT:
        return _CONCEPT[key]
    key = _IRREGULAR.get(key, key)
    return _CONCEPT.get(key) or _CONCEPT.get(stem(key)) or stem(key)


def antonym_of(name: str) -> str | None:
    return _ANTONYMS.get(name)


def contrasts_of(name: str) -> tuple[str, ...]:
    """The states a claim of ``name`` excludes when the source states only them."""
    return _CONTRASTS.get(name, ())


@functools.lru_cache(maxsize=65536)
def is_content(word: str) -> bool:
    key = fold(word)
    return len(key) > 2 and key not in _STOP and not key.isdigit() and not _WIDE.search(key)


@functools.lru_cache(maxsize=65536)
def is_generic(word: str) -> bool:
    key = fold(word)
    return key in _GENERIC or stem(key) in _GENERIC_STEMS


_GENERIC_STEMS = frozenset(stem(w) for w in _GENERIC)

# -- numbers ----------------------------------------------------------------------------------

_NUMBER_WORDS = {
    **dict.fromkeys(["two", "dos", "deux", "zwei"], 2), **dict.fromkeys(["three", "tres", "trois", "drei"], 3),
    **dict.fromkeys(["four", "cuatro", "quatre", "vier"], 4), **dict.fromkeys(["five", "cinco", "cinq", "fünf"], 5),
    **dict.fromkeys(["six", "seis", "sechs"], 6), **dict.fromkeys(["seven", "siete", "sept", "sieben"], 7),
    **dict.fromkeys(["eight", "ocho", "huit", "acht"], 8), **dict.fromkeys(["nine", "nueve", "neuf", "neun"], 9),
    **dict.fromkeys(["ten", "diez", "dix", "zehn"], 10), "eleven": 11, "twelve": 12, "dozen": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "thousand": 1000, "mil": 1000, "mille": 1000,
    "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "fourteenth": 14, "twice": 2, "half": 0.5, "quarter": 0.25, "double": 2, "triple": 3,
}
_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9,
    "billions": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12, "millón": 1e6, "millones": 1e6,
    "millionen": 1e6, "mio": 1e6, "milliard": 1e9, "milliards": 1e9, "milliarde": 1e9, "milliarden": 1e9,
    "mrd": 1e9, "万": 1e4, "亿": 1e8, "千": 1e3, "lakh": 1e5, "crore": 1e7,
}
# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, float]] = {
    **dict.fromkeys(["%", "percent", "per cent", "pct", "por ciento", "pour cent", "prozent"], ("percent", 1.0)),
    **dict.fromkeys(["percentage point", "percentage points", "point", "points"], ("pp", 1.0)),
    **dict.fromkeys(["basis point", "basis points", "bp", "bps"], ("pp", 0.01)),
    **dict.fromkeys(["kg", "kilogram", "kilograms", "kilo", "kilos"], ("mass", 1.0)),
    **dict.fromkeys(["tonne", "tonnes", "ton", "tons", "t"], ("mass", 1000.0)),
    **dict.fromkeys(["km", "kilometre", "kilometres", "kilometer", "kilometers"], ("length", 1000.0)),
    **dict.fromkeys(["mile", "miles"], ("length", 1609.0)),
    **dict.fromkeys(["metre", "metres", "meter", "meters", "meter", "metros", "mètres"], ("length", 1.0)),
    **dict.fromkeys(["foot", "feet", "ft"], ("length", 0.3048)), **dict.fromkeys(["inch", "inches"], ("length", 0.0254)),
    **dict.fromkeys(["square mile", "square miles"], ("area", 2.59e6)),
    **dict.fromkeys(["hectare", "hectares", "ha"], ("area", 1e4)),
    **dict.fromkeys(["gallon", "gallons"], ("volume", 3.785)), **dict.fromkeys(["barrel", "barrels"], ("volume", 159.0)),
    **dict.fromkeys(["litre", "litres", "liter", "liters", "litros"], ("volume", 1.0)),
    **dict.fromkeys(["second", "seconds", "sec"], ("time", 1.0)),
    **dict.fromkeys(["minute", "minutes", "min"], ("time", 60.0)),
    **dict.fromkeys(["hour", "hours", "hrs", "horas", "heures", "stunden"], ("time", 3600.0)),
    **dict.fromkeys(["day", "days", "días", "jours", "tage", "天"], ("time", 86400.0)),
    **dict.fromkeys(["week", "weeks", "semanas", "semaines", "wochen"], ("time", 604800.0)),
    **dict.fromkeys(["month", "months", "meses", "mois", "monate"], ("time", 2.6e6)),
    **dict.fromkeys(["year", "years", "años", "ans", "jahre"], ("time", 3.15e7)),
    **dict.fromkeys(["decade", "decades"], ("time", 3.15e8)), **dict.fromkeys(["fortnight", "fortnights"], ("time", 1.2096e6)),
    **dict.fromkeys(["mph"], ("speed", 1.609)), **dict.fromkeys(["km/h", "kph"], ("speed", 1.0)),
    **dict.fromkeys(["fold", "times"], ("ratio", 1.0)),
    **dict.fromkeys(["mw", "megawatt", "megawatts"], ("power", 1.0)),
}
_CURRENCIES = {"$": "usd", "us$": "usd", "€": "eur", "£": "gbp", "¥": "jpy", "c$": "cad", "a$": "aud",
               "dollars": "usd", "euros": "eur", "pounds": "gbp", "rupees": "inr", "kronor": "sek",
               "kroner": "nok", "taka": "bdt", "yuan": "cny"}
_HEDGES = frozenset("about around nearly almost roughly approximately some over more under less least up "
                    "barely close cerca unos casi environ près presque etwa rund fast knapp mehr".split())
_WIDE = re.compile(f"[{WIDE_RANGES}]")
_WIDE_RUN = re.compile(f"[{WIDE_RANGES}]+")
_NUM = r"\d+(?:[.,]\d+)*"
_QUANTITY = re.compile(
    rf"(?<![^\W\d_{WIDE_RANGES}])(?P<cur>US\$|C\$|A\$|[$€£¥])?\s?(?P<num>{_NUM})(?!\d)"
    r"(?:\s?-?\s?(?P<scale>thousand|millions?|billions?|trillion|bn|mn|tn|m|b|k|millón|millones|Millionen|Mio\.?|"
    r"milliards?|Milliarden?|Mrd\.?|万|亿|千|lakh|crore)(?![a-zA-Z]))?"
    r"(?:\s?-?\s?(?P<unit>%|per ?cent|percentage points?|basis points?|bps|pct|km/h|kph|mph|square miles?|"
    r"kilo(?:gram|metre|meter)s?|km|kg|tonnes?|tons?|miles?|met(?:re|er)s?|feet|foot|ft|inch(?:es)?|hectares?|"
    r"gallons?|barrels?|lit(?:re|er)s?|seconds?|minutes?|hours?|days?|weeks?|fortnights?|months?|years?|decades?|fold|times|MW|"
    r"megawatts?|dollars|euros|pounds|rupees|kronor|kroner|taka|yuan|天)(?![a-zA-Z]))?",
    re.IGNORECASE,
)
_WORD_QUANTITY = re.compile(
    r"\b(?P<num>" + alternation(w.casefold() for w in _NUMBER_WORDS) + r")"
    r"(?:[\s-](?P<scale>thousand|million|billion|trillion|hundred))?"
    r"(?:[\s-](?P<unit>per ?cent|percentage points?|seconds?|minutes?|hours?|days?|weeks?|fortnights?|months?|years?|"
    r"decades?|km|kilometres?|miles?|tonnes?|fold|times))?\b",
    re.IGNORECASE,
)
_POINT_FRACTION = re.compile(r"\b(quarter|half)(?: of)? (?:a )?percentage point", re.I)
_TENS_UNITS = re.compile(r"\b(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)[- ](two|three|four|five|six|"
                         r"seven|eight|nine)\b", re.I)
_UNIT_WORDS = frozenset({"mw", "km", "kg", "hpa", "mph", "ha", "ft", "bn", "mn"})
_FOLD_WORD = re.compile(r"\b(thirty|twenty|forty|fifty|hundred|two|three|ten)fold\b", re.IGNORECASE)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
_A_PERIOD = re.compile(r"\b(?:a|one|une?)\s+(decade|fortnight)\b", re.IGNORECASE)
# "seven flights in ten", "one in five", "sept vols sur dix": a share, read as a percentage by the checker
_NUMBER_TOKEN = alternation(
    "one two three four five six seven eight nine ten un une deux trois quatre cinq six sept huit neuf dix "
    "uno dos tres cuatro cinco seis siete ocho nueve diez".split())
_RATIO = re.compile(rf"\b(?P<n>{_NUMBER_TOKEN}|\d{{1,2}})(?:\s+[^\W\d_]+){{0,2}}?\s+(?:in|out of|sur|de cada|of every)\s+"
                    rf"(?P<m>{_NUMBER_TOKEN}|\d{{1,3}})\b", re.IGNORECASE)
_ONES = {"one": 1.0, "un": 1.0, "une": 1.0, "uno": 1.0}
_RATIO_FIRST = frozenset(
    "one two three four five six seven eight nine ten un une deux trois quatre cinq six sept huit neuf dix "
    "uno dos tres cuatro cinco seis siete ocho nueve diez".split())
_LETTERS = re.compile(r"[^\W\d_]+")
_NOUN_RUN = re.compile(r"[^\W\d_]+|[\d.,;:()!?\"“”]")
_SCORE = re.compile(r"\b\d{1,2}-\d{1,2}\b")


@dataclass(frozen=True)
class Quantity:
    """A number as written, with what it counts: value in base units, its dimension, currency, precision."""

    text: str
    start: int
    value: float
    dimension: str | None = None
    currency: str | None = None
    step: float = 1.0  # the precision it was written with (1.4 million: 100,000)
    hedged: bool = False
    mantissa: float = 0.0  # the digits as written ("1.4" of "1.4 billion")
    year: bool = False
    count: float = 0.0  # value without its unit ("11,000" of "11,000 hours")
    count_step: float = 1.0  # the precision of ``count``
    word: bool = False  # written as a word ("two")
    nouns: tuple[str, ...] = ()  # concepts of the words it counts ("199 fire engines": fire, engin)


CONTINENTAL = frozenset({"de", "es", "fr", "it", "pt", "nl"})  # they write 1.000,5 where English writes 1,000.5


def _parse_number(raw: str, continental: bool) -> tuple[float, float] | None:
    """The value of "1,200.5" / "1.200,5" and its step (precision)."""
    thousands, decimal = (".", ",") if continental else (",", ".")
    if re.fullmatch(rf"\d{{1,3}}(?:\{thousands}\d{{3}})+(?:\{decimal}\d+)?", raw):
        raw = raw.replace(thousands, "")
    raw = raw.replace(decimal, ".")
    if raw.count(".") > 1:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    places = len(raw.partition(".")[2])
    return value, 10.0 ** -places


def quantities(text: str, continental: bool = False, words: list[tuple[str, int]] | None = None) -> list[Quantity]:
    """Every quantity in ``text``: digits (with scale, unit, currency) and number words.

    ``words`` — ``text``'s folded words and their offsets, when the caller has them — spares a pass.
    """
    found: list[Quantity] = []
    low = text.lower()  # cheap substring tests spare whole-text scans for the rare patterns below
    clocks = list(_CLOCK.finditer(text)) if ":" in text else []
    scores = list(_SCORE.finditer(text)) if "-" in text else []
    taken = _Taken([m.span() for m in clocks] + [m.span() for m in scores])
    for m in clocks:
        found.append(Quantity(m.group(), m.start(), -1.0, dimension="clock:" + m.group()))
    for m in scores:  # "3-0" is "0-3" from the loser's side
        a, b = sorted(int(x) for x in m.group().split("-"))
        found.append(Quantity(m.group(), m.start(), -1.0, dimension=f"score:{a}-{b}"))
    for m in _QUANTITY.finditer(text):
        if taken.covers(m.start("num")):
            continue
        parsed = _parse_number(m.group("num"), continental)
        if parsed is None:
            continue
        found.append(_quantity(text, m, parsed[0], parsed[1], m.group("cur")))
        taken.add(m.span())
    for m in _TENS_UNITS.finditer(text) if "ty" in low else ():
        value = float(_NUMBER_WORDS[m.group(1).casefold()] + _NUMBER_WORDS[m.group(2).casefold()])
        found.append(Quantity(m.group(), m.start(), value, mantissa=value, count=value, word=True))
        taken.add(m.span())
    if words is None:
        words = [(m.group(), m.start()) for m in _LETTERS.finditer(low)]
    for at in (at for w, at in words if w in _NUMBER_WORDS):
        word = _WORD_QUANTITY.match(text, at)
        if word is None or taken.covers(at) or _not_a_number(text, word):
            continue
        number = float(_NUMBER_WORDS[word.group("num").casefold()])
        found.append(_quantity(text, word, number, 1.0, None))
    for m in _POINT_FRACTION.finditer(text) if "percentage point" in low else ():
        value = 0.25 if m.group(1).casefold() == "quarter" else 0.5
        found.append(Quantity(m.group(), m.start(), value, dimension="pp", step=0.01, mantissa=value, count=value))
    for m in _FOLD_WORD.finditer(text) if "fold" in low else ():
        number = float(_NUMBER_WORDS.get(m.group(1).casefold(), 30 if m.group(1).casefold() == "thirty" else 0))
        found.append(Quantity(m.group(), m.start(), number, dimension="ratio", mantissa=number))
    for m in _A_PERIOD.finditer(text) if "decade" in low or "fortnight" in low else ():
        unit = _UNITS[m.group(1).casefold()][1]
        found.append(Quantity(m.group(), m.start(), unit, "time", step=unit, mantissa=1.0, count=1.0, word=True))
    for q in found:
        object.__setattr__(q, "nouns", _counted(text, q.start + len(q.text)))  # still being built: not shared yet
    return found


class _Taken:
    """Character spans already read as a quantity: a sorted list, searched by bisection."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans = sorted(spans)

    def covers(self, at: int) -> bool:
        i = bisect.bisect_right(self.spans, (at, len(self.spans) + 1 << 62)) - 1
        return i >= 0 and self.spans[i][0] <= at < self.spans[i][1]

    def add(self, span: tuple[int, int]) -> None:
        bisect.insort(self.spans, span)


def _counted(text: str, end: int) -> tuple[str, ...]:
    """What a number counts: the word right after it ("199 fire engines": fire), when it says something."""
    m = _NOUN_RUN.search(text, end, min(len(text), end + 32))
    if m is None or not m.group()[0].isalpha():
        return ()
    word = m.group()
    vague = is_generic(word) or not is_content(word) or fold(word) in _NUMBER_WORDS or word[0].isupper()
    return () if vague else (concept(word),)


def ratios(text: str, words: list[tuple[str, int]] | None = None) -> list[tuple[int, int, float]]:
    """("seven flights in ten" -> (start of "seven", start of "ten", 70.0)): a share written as two counts."""
    if words is None:
        words = [(m.group().casefold(), m.start()) for m in _WORD.finditer(text)]
    out = []
    for m in (_RATIO.match(text, at) for w, at in words if w in _RATIO_FIRST or (w.isdigit() and len(w) <= 2)):
        if m is None:
            continue
        n, d = (_ONES.get(g.casefold()) or _NUMBER_WORDS.get(g.casefold()) or (float(g) if g.isdigit() else 0)
                for g in (m["n"], m["m"]))
        if 0 < n < d and d in (3, 4, 5, 10, 100):
            out.append((m.start("n"), m.start("m"), 100.0 * n / d))
    return out


def _not_a_number(text: str, m: re.Match[str]) -> bool:
    word = m.group("num").casefold()
    after = text[m.end():m.end() + 12].casefold()
    before = text[max(0, m.start() - 6):m.start()].casefold()
    if word in ("second", "third", "quarter", "half") and not m.group("unit") and not m.group("scale"):
        # ordinals and fractions count only where they are clearly numbers ("a third of", "second place")
        return not after.lstrip().startswith(("of", "place", "round", "consecutive", "straight", "term"))
    if word in ("sept", "mil", "mille", "dos", "six") and before.strip().endswith(("le", "el", "de")):
        return True
    return word == "may"


def _quantity(text: str, m: re.Match[str], number: float, step: float, currency: str | None) -> Quantity:
    scale_word = (m.group("scale") or "").casefold().rstrip(".")
    unit_word = " ".join((m.group("unit") or "").casefold().split())
    scale = _SCALES.get(scale_word, 100.0 if scale_word == "hundred" else 1.0)
    if scale_word in ("m", "b", "k") and not currency:
        scale, unit_word = 1.0, unit_word or ("metre" if scale_word == "m" else "")  # "40 m" is metres
    dimension, factor = _UNITS.get(unit_word, (None, 1.0))
    if dimension == "time" and re.match(r"\s?-?\s?old\b", text[m.end():m.end() + 5]):  # "58-year-old": an age
        dimension, factor = None, 1.0
    cur = _CURRENCIES.get((currency or "").casefold()) or _CURRENCIES.get(unit_word)
    if cur is None:
        trailing = re.match(r"\s*(\w+)", text[m.end():m.end() + 12])
        cur = _CURRENCIES.get(trailing.group(1).casefold()) if trailing else None
    before = re.findall(r"[\w']+", text[max(0, m.start() - 20):m.start()].casefold())
    hedged = bool(before) and (before[-1] in _HEDGES or before[-2:] in (["more", "than"], ["at", "least"],
                                                                             ["less", "than"], ["up", "to"]))
    whole = number * scale * factor
    year = dimension is None and cur is None and scale == 1.0 and step == 1.0 and 1900 <= number <= 2100
    return Quantity(m.group().strip(), m.start(), whole, dimension, cur, step * scale * factor, hedged, number,
                    year, number * scale, step * scale, not m.group("num")[:1].isdigit())


def same_quantity(claim: Quantity, backing: Quantity) -> bool:
    """Whether ``backing`` (from the source) states ``claim`` (from a summary), allowing rounding and hedges."""
    if claim.dimension and claim.dimension.startswith(("clock:", "score:")):
        return claim.dimension == backing.dimension
    if claim.dimension and backing.dimension and claim.dimension != backing.dimension:
        return False
    if claim.currency and backing.currency and claim.currency != backing.currency:
        return False
    if not (claim.dimension and backing.dimension):
        return close(claim, backing.count, claim.count, claim.count_step)
    return close(claim, backing.value)


def close(claim: Quantity, value: float, own: float | None = None, step: float | None = None) -> bool:
    """Whether ``value`` rounds to ``claim`` (its written precision), or is near it when the claim hedges."""
    target = claim.value if own is None else own
    step = claim.step if step is None else step
    if value == target:
        return True
    slack = max(step / 2, abs(target) * 0.005)
    if claim.hedged or step > 1:
        slack = max(slack, abs(target) * 0.12)
    return abs(value - target) <= slack


# -- names, titles, times, negation -----------------------------------------------------------

CAPITAL = "A-ZÀ-ÖØ-ÞĀ-ŽА-ЯЁΑ-Ω"
_NAME_WORD = rf"[{CAPITAL}][\w'’.-]*"
_NAME_RUN = re.compile(rf"(?<![\w'’-]){_NAME_WORD}"
                       rf"(?:(?:\s+|\s+(?:of|for|de|del|la|al|el|bin|van|von|der|da|di|le)\s+){_NAME_WORD})*")
_VOCABULARY_ACRONYMS = frozenset("tv ceo cfo coo gdp ai pm mp dna id it pr vat ok cctv suv gps hiv aids covid "
                                  "ipo ev evs faq hq rpm mph".split())
_TITLES = (
    "prime minister", "deputy prime minister", "foreign minister", "finance minister", "defence minister",
    "defense minister", "interior minister", "justice secretary", "transport secretary", "secretary of state",
    "general secretary", "chief executive", "chief financial officer", "chief scientist", "project scientist",
    "chief executive officer", "regional director", "regional governor", "opposition leader", "party president",
    "council leader", "water minister", "shipping minister", "police chief", "lead negotiator",
    "health minister", "health secretary", "home secretary", "business secretary", "energy secretary",
    "transport minister", "culture secretary", "education secretary", "interior minister", "shadow chancellor",
    "commander", "chair", "headteacher", "commissioner", "prosecutor", "ambassador", "inspector", "superintendent",
    "president", "minister", "governor", "mayor", "premier", "chancellor", "king", "queen", "ceo", "cfo",
    "chairman", "chairwoman", "director", "manager", "coach", "captain", "pilot", "engineer", "judge", "leader",
    "secretary", "spokesman", "spokeswoman", "founder", "economist", "analyst", "lawyer", "negotiator",
    "head", "boss", "ministerpräsident", "bundeskanzler", "kanzler", "presidente", "ministre", "rey", "roi",
)
TITLE_WORDS = frozenset(w for t in _TITLES for w in t.split())
_TITLE_STARTS = frozenset(t.split()[0] for t in _TITLES)
_TITLE = re.compile(r"\b(" + alternation(_TITLES) + r")\b", re.I)
_LOWER_TITLE = re.compile(r"\b(" + alternation(_TITLES) + r")\b")  # on lower-cased text: 5x faster than re.I
_MONTHS_WEEKDAYS = frozenset(
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split()
)
_NEGATION = frozenset(
    "not n't no never none nobody nothing neither nor without cannot unable failed refused denied denies deny "
    "declined nunca ni sin ne pas jamais aucun aucune sans nicht kein keine keinen keinem keiner nie niemals ohne "
    "不 没 未 无 非".split()
)
PRIVATIVE = frozenset("lost lose loses lack lacks lacking missing absent short failed unable without zero".split())
_CLAUSE_END = re.compile(r"[,;:()\"“”]|\s(?:but|and|while|whereas|although|pero|mais|aber)\s")
_NEGATION_PHRASES = re.compile(r"\b(?:no one|not yet|no longer|has yet to|have yet to|ruled out|rather than|"
                               r"instead of)\b", re.I)
_WORD = re.compile(rf"[{WIDE_RANGES}]|[^\W_{WIDE_RANGES}]+(?:['’]t)?")
PRONOUNS = frozenset("he she him his her hers they them their it its il elle ils elles er sie".split())


@dataclass(frozen=True)
class Name:
    text: str
    start: int
    keys: tuple[str, ...]  # folded words, connectors left out


@dataclass(frozen=True)
class TimeRef:
    text: str
    start: int
    weekday: int | None
    dates: frozenset[str]  # ISO dates/months/years it can mean


_Placed = TypeVar("_Placed", TimeRef, Quantity)


@dataclass
class Facts:
    """The checkable pieces of one sentence (or a window of them)."""

    text: str
    words: list[tuple[str, int]] = field(default_factory=list)  # (folded word, offset)
    concepts: set[str] = field(default_factory=set)
    content: list[tuple[str, str, int]] = field(default_factory=list)  # (word, concept, offset)
    names: list[Name] = field(default_factory=list)
    name_keys: set[str] = field(default_factory=set)
    quantities: list[Quantity] = field(default_factory=list)
    times: list[TimeRef] = field(default_factory=list)
    titles: list[tuple[str, str]] = field(default_factory=list)  # (title, surname key)
    negations: list[int] = field(default_factory=list)  # word indexes of negation cues


def facts_of(text: str, *, continental: bool = False, published: dt.date | None = None,
             sentence_start: bool = True, names: bool = True, initials: frozenset[str] = frozenset()) -> Facts:
    """The facts of one sentence: words, concepts, names, titles, quantities, times, negations.

    A capitalised word alone at the start of a sentence is a name only if it is among ``initials`` (folded):
    "The", "Police", "Lava" are not; "CrowdStrike" may be.
    """
    folded = fold(text)
    words = [(m.group(), m.start()) for m in _WORD.finditer(folded)]
    return _facts(text, words, _times(text, published), quantities(text, continental, words), sentence_start,
                  names, initials)


def document_facts(text: str, spans: list[Span], *, continental: bool = False, published: dt.date | None = None,
                   names: bool = True) -> list[Facts]:
    """``facts_of`` each sentence of a document, with the costly passes (folding, dates) made once over it."""
    folded = fold(text)
    if len(folded) != len(text):  # "ß" -> "ss" shifts offsets: then sentence by sentence
        return [facts_of(s.of(text), continental=continental, published=published, names=names) for s in spans]
    words = [(m.group(), m.start()) for m in _WORD.finditer(folded)]  # folding keeps word boundaries
    upper: set[str] = set()
    lower: set[str] = set()
    for w, at in words:
        (upper if text[at].isupper() else lower).add(w)
    initials = frozenset(upper - lower - TITLE_WORDS - _STOP - _GENERIC)
    numbers = sorted(quantities(text, continental, words), key=lambda q: q.start)
    starts = [at for _, at in words]
    out = []
    for span in spans:
        lo, hi = bisect.bisect_left(starts, span.start), bisect.bisect_left(starts, span.end)
        inner = [(w, at - span.start) for w, at in words[lo:hi]]
        piece = span.of(text)
        times = _times(piece, published) if may_hold_time([w for w, _ in inner]) else []
        out.append(_facts(piece, inner, times, _within(numbers, span), True, names, initials))
    return out


def _within(items: list[_Placed], span: Span) -> list[_Placed]:
    """The items (sorted by start) wholly inside ``span``, their offsets made relative to it."""
    lo = bisect.bisect_left(items, span.start, key=lambda x: x.start)
    hi = bisect.bisect_left(items, span.end, key=lambda x: x.start)
    return [_moved(x, x.start - span.start) for x in items[lo:hi] if x.start + len(x.text) <= span.end]


def _moved(item: _Placed, start: int) -> _Placed:
    """``item`` at another offset: ``dataclasses.replace`` without its cost (hundreds per document)."""
    copy = object.__new__(type(item))
    copy.__dict__.update(item.__dict__, start=start)
    return copy


def _facts(text: str, words: list[tuple[str, int]], times: list[TimeRef], numbers: list[Quantity],
           sentence_start: bool, names: bool, initials: frozenset[str]) -> Facts:
    f = Facts(text)
    f.words = words
    wide = not text.isascii() and bool(_WIDE.search(text))
    if names and not wide:
        f.names = _names(text, sentence_start, initials)
        f.name_keys = {k for n in f.names for k in n.keys}
        f.titles = _titles(text, f.names) if _TITLE_STARTS & {w for w, _ in f.words} else []
    for i, (word, offset) in enumerate(f.words):
        cue, c = _word_info(word)
        if cue:
            f.negations.append(i)
        if c is not None and word not in f.name_keys:
            f.concepts.add(c)
            f.content.append((word, c, offset))
    if _NEGATION_PHRASES.search(text):
        f.negations.append(-1)
    for run in _WIDE_RUN.findall(text) if wide else ():
        f.concepts |= {run[i:i + 2] for i in range(len(run) - 1)}
    f.quantities = numbers
    f.times = times
    date_spans = [(t.start, t.start + len(t.text)) for t in f.times]
    f.quantities = [q for q in f.quantities
                    if not any(a <= q.start < b for a, b in date_spans) or q.year]
    return f


@functools.lru_cache(maxsize=65536)
def _word_info(word: str) -> tuple[bool, str | None]:
    """(a negation cue?, the concept of a content word — None for function words, months, number words)."""
    cue = word in _NEGATION or word.endswith("n't")
    content = is_content(word) and word not in _MONTHS_WEEKDAYS and word not in _NUMBER_WORDS
    return cue, concept(word) if content else None


def _names(text: str, sentence_start: bool, initials: frozenset[str]) -> list[Name]:
    out = []
    for m in _NAME_RUN.finditer(text):
        words = m.group().split()
        start = m.start()
        initial = sentence_start and not text[:m.start()].strip(" \"'“‘(")
        if initial and len(words) == 1 and _name_key(words[0]) in initials and fold(words[0]) not in TITLE_WORDS:
            pass  # "CrowdStrike said": a word the text never writes in lower case
        elif initial and (fold(words[0]) in _STOP or fold(words[0]) in _GENERIC or len(words) == 1):
            if len(words) == 1 or fold(words[0]) in _STOP:
                words = words[1:]
                start = m.start() + m.group().find(words[0]) if words else start
        for part, at in _split_at_titles(words, text, start):
            keys = tuple(k for k in (_name_key(w) for w in part) if k and k not in _STOP
                         and k not in _MONTHS_WEEKDAYS and not _TITLE.fullmatch(k))
            if keys:
                out.append(Name(" ".join(part).rstrip("."), at, keys))
    return out


def _split_at_titles(words: list[str], text: str, start: int) -> list[tuple[list[str], int]]:
    """The name(s) in a capitalised run: "Health Minister Andrew Slater" -> "Andrew Slater"; "Microsoft Chief
    Executive George Kurtz" -> "Microsoft", "George Kurtz". A run without a title phrase is one name."""
    run = " ".join(words)
    titles = [m for m in _TITLE.finditer(run) if m.end() < len(run)]
    if not titles:
        return [(words, start)]
    head = run[:titles[0].start()].split()
    tail = run[titles[-1].end():].split()
    out = [(head, start)] if head else []
    return out + [(tail, text.index(tail[0], start + titles[-1].end()))] if tail else out


def _name_key(word: str) -> str:
    word = "-".join(part for part in word.split("-") if part[:1].isupper()) or word
    key = fold(word).strip(".'-")
    key = key[:-2] if key.endswith("'s") else key
    return "" if key in _VOCABULARY_ACRONYMS or key in _UNIT_WORDS else key


def _titles(text: str, names: list[Name]) -> list[tuple[str, str]]:
    """(title, surname) pairs: "President Dina Boluarte", "Ken Farley, the mission's project scientist"."""
    pairs = []
    low = text.lower()
    for m in _LOWER_TITLE.finditer(low) if len(low) == len(text) else _TITLE.finditer(text):
        title = fold(m.group())
        after = [n for n in names if 0 <= n.start - m.end() <= 3 or n.start == m.start()]
        before = [n for n in names if 0 < m.start() - (n.start + len(n.text)) <= 30
                  and re.fullmatch(r",\s*(?:the|a|an|its|his|her|[\w’'-]+['’]s|\w+)?\s*(?:[\w-]+\s+){0,2}",
                                   text[n.start + len(n.text):m.start()])]
        for n in after[:1] or before[-1:]:
            pairs.append((title, n.keys[-1]))
    return pairs


_TIME_HINT = re.compile(r"\d|day|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|week|month|year|tonight|morning|"
                        r"yesterday|tomorrow|hier|demain|ayer|gestern|morgen|heute|hoy|lunes|martes|jueves|viernes|"
                        r"sábado|domingo|lundi|mardi|jeudi|vendredi|samedi|dimanche|tag|woch|jahr|mes|año|mois|ans",
                        re.I)


def _times(text: str, published: dt.date | None, limit: int = 24) -> list[TimeRef]:
    if not _TIME_HINT.search(text):  # time_expressions folds every character: skip sentences with no hint of a date
        return []
    out = []
    for expression in time_expressions(text, limit=limit):
        folded = fold(expression)
        weekday = next((i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                                  "saturday", "sunday")) if d in folded), None)
        dates = set(candidates(expression, published))
        stated = date_of(expression, published)
        if stated:
            dates.add(stated[0])
        out += [TimeRef(expression, m.start(), weekday, frozenset(dates))
                for m in re.finditer(re.escape(expression), text)]
    return sorted(out, key=lambda t: t.start)


def negated(facts: Facts) -> set[str]:
    """What each negation cue is about: the first content word within three words after it, in its clause."""
    out: set[str] = set()
    for i in facts.negations:
        if i < 0:
            continue
        start = facts.words[i][1]
        end = _CLAUSE_END.search(facts.text, start + 1)
        stop = end.start() if end else len(facts.text)
        following = [(w, at) for w, at in facts.words[i + 1:i + 4] if at < stop]
        for word, at in following:
            if is_content(word) and word not in _NEGATION:
                out.add(concept(word))
                break
    return out


def number_word(word: str) -> bool:
    return fold(word) in _NUMBER_WORDS
