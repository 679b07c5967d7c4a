"""An event's status from its sentence's tense and modal words, decided without a model.

A 135M model asked whether an event occurred, is planned or was denied
answers at random; the sentence says it. The first cue of the sentence's main
clause (relative clauses and appositives set aside: "Ionescu, who denied the
charges, can appeal" is not a denial) decides: will / plans / expected to →
planned; denied / rejected → denied; is/are …ing, under way → ongoing;
said / according to → reported; a past verb → occurred. With no cue at all,
news reports what happened: occurred.

English, Spanish, French and German cue words are known.
"""

from __future__ import annotations

import re

__all__ = ["STATUSES", "main_verb", "status_of"]

STATUSES = ("occurred", "ongoing", "planned", "reported", "denied")

# (status, cue) in no particular order: the cue found first in the main clause wins.
_CUES: list[tuple[str, str]] = [
    ("planned", r"will|won't|shall|plans? to|planned|planning to|is (?:set|due|scheduled|expected|to) to|"
                r"are (?:set|due|scheduled|expected) to|(?:is|are) to|expected to|scheduled to|intends? to|"
                r"aims? to|would|going to|next (?:week|month|year)|va a|van a|prevé|planea|será|serán|"
                r"va|vont|prévoit|sera|seront|doit|doivent|wird|werden|soll|sollen"),
    ("denied", r"denie[sd]|deny|denying|rejecte?d?s?|refuted|dismissed (?:the|as)|negó|niega|rechazó|"
               r"a démenti|dément|a nié|bestreitet|bestritt|dementiert"),
    ("ongoing", r"(?:is|are|was|were|remains?|remained) (?:still )?\w+ing|continues?|continuing|"
                r"under way|underway|ongoing|está \w+ndo|están \w+ndo|sigue|siguen|seguían|en cours|"
                r"dauert an|laufen"),
    ("reported", r"said|says|told|according to|reported(?:ly)?|claimed|alleged(?:ly)?|announced|stated|declares|"
                 r"argues|argued|writes|"
                 r"dijo|según|informó|afirmó|a déclaré|selon|a annoncé|sagte|laut|berichtete"),
    ("occurred", r"\w{3,}ed|has \w+|have \w+|had \w+|was|were|struck|won|broke|fell|rose|took|made|gave|held|"
                 r"sank|hit|cut|met|began|drove|brought|caught|chose|came|did|found|got|left|lost|led|paid|ran|"
                 r"saw|sold|sent|set|shot|spoke|stood|swept|threw|tore|went|wrote|froze|flew|fought|grew|"
                 r"ha \w+[ao]do|han \w+[ao]do|a \w+é(?:e|s|es)?|ont \w+é(?:e|s|es)?|hat \w+|haben \w+|cayeron|dejaron"),
]
_CUE = re.compile("|".join(f"(?P<{status}{i}>\\b(?:{cue})\\b)" for i, (status, cue) in enumerate(_CUES)),
                  re.IGNORECASE)
# Set aside before looking: relative clauses and appositives between commas, and quotations.
_ASIDE = re.compile(r",\s*(?:who|which|whose|where|when|while|as|after|before|un|une|qui|que|quien|que)\b[^,]*,"
                    r"|\"[^\"]*\"|“[^”]*”|«[^»]*»", re.IGNORECASE)
# "By 31 votes" etc. are not verbs: a past-participle cue must not be a name or a number's unit.
_NOT_VERBS = {"need", "speed", "seed", "feed", "breed", "bred", "red", "bed", "shed", "united", "limited",
              "based", "led", "hundred", "indeed", "unemployment", "sacred", "naked", "wicked", "aged"}


def status_of(sentence: str) -> str:
    """The status the sentence's main clause gives its event (``occurred`` when nothing says otherwise)."""
    match = _first_cue(_ASIDE.sub(lambda m: "," + " " * (len(m.group(0)) - 1), sentence))
    if match is None:
        return "occurred"
    kind = next(name for name, value in match.groupdict().items() if value is not None)
    return kind.rstrip("0123456789")


def main_verb(sentence: str) -> int:
    """Where the main clause's verb starts (the end of its subject); the sentence's length if none is found."""
    match = _first_cue(_ASIDE.sub(lambda m: "," + " " * (len(m.group(0)) - 1), sentence))
    return match.start() if match is not None else len(sentence)


def _first_cue(main: str) -> re.Match[str] | None:
    for match in _CUE.finditer(main):
        if match.group(0).casefold() not in _NOT_VERBS and (not match.group(0)[:1].isupper() or match.start() == 0):
            return match
    return None
