"""Which calendar dates a relative time expression can mean, given the publication date.

"On Friday" in an article published on Saturday 2024-09-28 is 2024-09-27 — or,
for a planned event, 2024-10-04. ``candidates`` returns every date (with its
precision) that follows deterministically from the expression and the
publication date; grounding accepts a model's ``when.date`` only if it is one
of them (or is stated in the text). ``resolve`` picks the likeliest one for
callers that must fill the field themselves (the past reading: news reports
what happened).

English, Spanish, French and German words are known; anything else yields no
candidates, and the date then has to be stated in the text.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata

from .patterns import alternation

__all__ = ["candidates", "date_of", "describe", "may_hold_time", "resolve", "time_expressions"]

_WEEKDAYS = {
    **dict.fromkeys(["monday", "lunes", "lundi", "montag"], 0),
    **dict.fromkeys(["tuesday", "martes", "mardi", "dienstag"], 1),
    **dict.fromkeys(["wednesday", "miercoles", "mercredi", "mittwoch"], 2),
    **dict.fromkeys(["thursday", "jueves", "jeudi", "donnerstag"], 3),
    **dict.fromkeys(["friday", "viernes", "vendredi", "freitag"], 4),
    **dict.fromkeys(["saturday", "sabado", "samedi", "samstag"], 5),
    **dict.fromkeys(["sunday", "domingo", "dimanche", "sonntag"], 6),
}
_MONTHS = {
    **dict.fromkeys(["january", "jan", "enero", "janvier", "januar"], 1),
    **dict.fromkeys(["february", "feb", "febrero", "fevrier", "februar"], 2),
    **dict.fromkeys(["march", "mar", "marzo", "mars", "marz"], 3),
    **dict.fromkeys(["april", "apr", "abril", "avril"], 4),
    **dict.fromkeys(["may", "mayo", "mai"], 5),
    **dict.fromkeys(["june", "jun", "junio", "juin", "juni"], 6),
    **dict.fromkeys(["july", "jul", "julio", "juillet", "juli"], 7),
    **dict.fromkeys(["august", "aug", "agosto", "aout"], 8),
    **dict.fromkeys(["september", "sep", "sept", "septiembre", "setiembre", "septembre"], 9),
    **dict.fromkeys(["october", "oct", "octubre", "octobre", "oktober"], 10),
    **dict.fromkeys(["november", "nov", "noviembre", "novembre"], 11),
    **dict.fromkeys(["december", "dec", "diciembre", "decembre", "dezember"], 12),
}
# Days relative to the publication date: longest phrases first.
_RELATIVE_DAYS = [
    ("the day before yesterday", -2), ("the day after tomorrow", 2), ("avant-hier", -2), ("anteayer", -2),
    ("antier", -2), ("vorgestern", -2), ("apres-demain", 2), ("pasado manana", 2), ("ubermorgen", 2),
    ("last night", -1), ("yesterday", -1), ("ayer", -1), ("hier", -1), ("gestern", -1),
    ("heute morgen", 0), ("esta manana", 0),
    ("tomorrow", 1), ("demain", 1), ("morgen", 1),
    ("today", 0), ("tonight", 0), ("this morning", 0), ("this afternoon", 0), ("this evening", 0),
    ("hoy", 0), ("aujourd'hui", 0), ("aujourdhui", 0), ("ce matin", 0), ("ce soir", 0), ("heute", 0),
]
_PAST = re.compile(r"\b(last|past|previous|pasado|dernier|derniere|letzten|vergangenen)\b")
_NEXT = re.compile(r"\b(next|coming|proximo|prochain|prochaine|nachsten|kommenden)\b")
_THIS = re.compile(r"\b(this|este|ce|cette|diesen)\b")
_WORD = re.compile(r"[a-z']+|\d{1,4}")
_PERIODS = {"month": 1, "mes": 1, "mois": 1, "monat": 1, "year": 12, "ano": 12, "annee": 12, "an": 12, "jahr": 12}

Candidates = dict[str, str]  # ISO date -> precision ("day", "month", "year")


def candidates(text: str, published: dt.date | None) -> Candidates:
    """Every date ``text`` can mean when the document was published on ``published``."""
    if published is None or not text:
        return {}
    plain = _plain(text)
    words = _WORD.findall(plain)
    found: Candidates = {}
    for phrase, offset in _RELATIVE_DAYS:
        if re.search(rf"(^|\W){re.escape(phrase)}($|\W)", plain):
            found[(published + dt.timedelta(days=offset)).isoformat()] = "day"
            return found
    weekday = next((_WEEKDAYS[w] for w in words if w in _WEEKDAYS), None)
    month = next((_MONTHS[w] for w in words if w in _MONTHS and not _is_may_verb(w, words)), None)
    day = next((int(w) for w in words if w.isdigit() and 1 <= int(w) <= 31 and len(w) <= 2), None)
    year_given = any(w.isdigit() and len(w) == 4 for w in words)
    if month is not None and day is not None and not year_given:
        found.update({d.isoformat(): "day" for d in _month_day(published, month, day)})
    elif month is not None and not year_given and day is None:
        found.update({f"{y:04d}-{m:02d}": "month" for y, m in _month_only(published, month)})
    elif weekday is not None:
        found.update({d.isoformat(): "day" for d in _weekday(published, weekday, plain)})
    else:
        found.update(_period(published, plain, words))
    return found


def resolve(text: str, published: dt.date | None) -> tuple[str, str] | None:
    """The likeliest date of ``text``, with its precision; None if none follows.

    News mostly reports what happened: a past reading is preferred unless the
    future one is more than three times nearer ("3 October" in a late-September
    article is next week, not last year).
    """
    found = candidates(text, published)
    if not found or published is None:
        return None

    def score(iso: str) -> tuple[float, int]:
        days = (_start(iso) - published).days
        return (3 * days if days > 0 else -days, 1 if days > 0 else 0)

    choice = min(found, key=score)
    return choice, found[choice]


def _start(iso: str) -> dt.date:
    parts = [int(p) for p in iso.split("-")]
    return dt.date(parts[0], parts[1] if len(parts) > 1 else 7, parts[2] if len(parts) > 2 else 1)


def describe(published: dt.date) -> str:
    """``2024-09-28 (a Saturday)``: how a prompt states the publication date."""
    return f"{published.isoformat()} (a {published.strftime('%A')})"


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _is_may_verb(word: str, words: list[str]) -> bool:
    # "may" is also a verb ("may resume"): a month only next to a day number.
    return word in ("may", "mar", "jun", "jan", "an") and not any(w.isdigit() for w in words)


def _weekday(published: dt.date, weekday: int, plain: str) -> list[dt.date]:
    back = (published.weekday() - weekday) % 7
    latest = published - dt.timedelta(days=back)  # the last such day, publication day included
    following = published + dt.timedelta(days=(weekday - published.weekday()) % 7 or 7)  # the next one
    week = dt.timedelta(days=7)
    if _PAST.search(plain):  # "last Friday": the one before, or (read loosely) the week before that
        before = latest if back else latest - week
        return [before, before - week]
    if _NEXT.search(plain):
        return [following, following + week]
    if _THIS.search(plain):  # the one in the publication's Monday-to-Sunday week
        return [published - dt.timedelta(days=published.weekday() - weekday)]
    return [latest, following]


def _month_day(published: dt.date, month: int, day: int) -> list[dt.date]:
    out = []
    for year in (published.year - 1, published.year, published.year + 1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if -366 <= (candidate - published).days <= 183:  # news looks back further than ahead
            out.append(candidate)
    return out


def _month_only(published: dt.date, month: int) -> list[tuple[int, int]]:
    index = published.year * 12 + published.month - 1
    out = []
    for year in (published.year - 1, published.year, published.year + 1):
        if -12 <= year * 12 + month - 1 - index <= 6:
            out.append((year, month))
    return out


def _period(published: dt.date, plain: str, words: list[str]) -> Candidates:
    unit = next((_PERIODS[w] for w in words if w in _PERIODS), None)
    if unit is None:
        return {}
    step = -1 if _PAST.search(plain) else 1 if _NEXT.search(plain) else 0 if _THIS.search(plain) else None
    if step is None:
        return {}
    if unit == 12:
        return {f"{published.year + step:04d}": "year"}
    index = published.year * 12 + published.month - 1 + step
    return {f"{index // 12:04d}-{index % 12 + 1:02d}": "month"}


# --- time expressions in a text -------------------------------------------------------

_WEEKDAY_WORDS = alternation(_WEEKDAYS)
_MONTH_WORDS = alternation(m for m in _MONTHS if len(m) > 3 or m == "may")
_RELATIVE_WORDS = alternation(p for p, _ in _RELATIVE_DAYS)
_ORDINAL = r"(?:st|nd|rd|th|er|o|\.)?"
_EXPRESSION = re.compile(
    "|".join([
        rf"\b(?:(?:on|last|next|this|el|le|am|este|ce|cette|letzten|kommenden) )?(?:{_WEEKDAY_WORDS})\b"
        rf"(?:,? (?:{_MONTH_WORDS}) \d{{1,2}}{_ORDINAL}|,? \d{{1,2}}{_ORDINAL} (?:de )?(?:{_MONTH_WORDS}))?"
        r"(?: (?:morning|afternoon|evening|night|prochain|dernier|proximo|pasado))?",
        rf"\b(?:\d{{1,2}}{_ORDINAL} (?:de )?)?(?:{_MONTH_WORDS})\b(?: \d{{1,2}}{_ORDINAL}\b)?(?:,? (?:de )?\d{{4}}\b)?",
        r"\b\d{4}-\d{2}-\d{2}\b",
        rf"(?<![\w-])(?:{_RELATIVE_WORDS})(?![\w-])",
        r"\b(?:earlier |later )?(?:last|next|this|past|coming) (?:week|month|year|weekend)\b",
        r"\b(?:in|since|en|im|depuis|desde) (?:19|20)\d{2}\b",
    ]),
)


def _fold(text: str) -> str:
    """Lower case without accents, one character for each of ``text``'s: spans map back unchanged."""
    text = text.replace("’", "'")
    if text.isascii():
        return text.lower()
    table = {ord(c): _fold_char(c) for c in set(text) if not c.isascii()}
    return text.translate(table).lower()  # one character for one: the table maps each to its folded first


@functools.lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    return unicodedata.normalize("NFKD", c)[:1].lower()[:1] or " "


_TIME_WORDS = (frozenset(_WEEKDAYS) | {m for m in _MONTHS if len(m) > 3 or m == "may"}
               | {w for phrase, _ in _RELATIVE_DAYS for w in re.findall(r"[a-z]+", phrase)}
               | {"week", "month", "year", "weekend", "aujourdhui"}) - {"the", "day", "before", "after", "last",
                                                                        "this", "ce", "esta"}


def may_hold_time(words: list[str]) -> bool:
    """Whether folded words include one that every time expression has: a weekday, a month, "yesterday",
    "week", a year... A sentence without one has none, and ``time_expressions`` need not read it."""
    return any(w in _TIME_WORDS or (len(w) == 4 and w.isdigit()) or (not w.isascii() and _fold(w) in _TIME_WORDS)
               for w in words)


def time_expressions(text: str, *, limit: int = 24) -> list[str]:
    """The time expressions ``text`` contains, verbatim, each once: "on Friday", "March 3, 2024", "yesterday"."""
    found: dict[str, None] = {}
    for match in _EXPRESSION.finditer(_fold(text)):
        span = text[match.start():match.end()].strip(" ,")
        if span and not (span.casefold() == "may" or span.isdigit()):
            found.setdefault(span, None)
    return list(found)[:limit]


def date_of(text: str, published: dt.date | None) -> tuple[str, str] | None:
    """The date (ISO, precision) a time expression fixes: stated in full, or resolved from ``published``."""
    words = _WORD.findall(_plain(text))
    iso = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", text)
    if iso:
        return _checked(int(iso[1]), int(iso[2]), int(iso[3]))
    year = next((int(w) for w in words if len(w) == 4 and w.isdigit() and 1900 <= int(w) <= 2099), None)
    if year is None:
        return resolve(text, published)
    month = next((_MONTHS[w] for w in words if w in _MONTHS), None)
    day = next((int(w) for w in words if w.isdigit() and len(w) <= 2 and 1 <= int(w) <= 31), None)
    if month is None:
        return f"{year:04d}", "year"
    if day is None:
        return f"{year:04d}-{month:02d}", "month"
    return _checked(year, month, day)


def _checked(year: int, month: int, day: int) -> tuple[str, str] | None:
    try:
        return dt.date(year, month, day).isoformat(), "day"
    except ValueError:
        return None
