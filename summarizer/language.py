"""Which language a document is in, decided without a model.

A small model asked for a document's ISO 639-1 code answers "en" for Spanish
text; the script and a handful of stop words never do. Grammar-bound decoders
get the detected code as the only choice for ``EventReport.language``.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["detect_language"]

# Scripts that name their language (or the one most written in them), by character range.
_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # kana before Han: Japanese mixes both
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
]
_UKRAINIAN = re.compile(r"[їєіґЇЄІҐ]")
_PERSIAN = re.compile(r"[پچژگ]")
# The commonest short words of the Latin-script languages news is written in.
_STOP_WORDS = {
    "en": "the of and to in is that for on was with by as at from said has have are were will it its this an",
    "es": "el la de que y en los las del se por con una para es al lo como su más pero sus fue ha este",
    "fr": "le la les de des et en du un une est que qui dans pour sur au par pas avec ce il elle ont été",
    "de": "der die das und den von zu mit sich des auf für ist im dem nicht ein eine als auch es an wird",
    "it": "il di che la per un una del della è non con sono gli le da nel alla ha anche come più",
    "pt": "o a de que e do da em um uma para com não os as dos das no na por mais foi ao",
    "nl": "de het een van en in is dat op te zijn met voor niet aan er ook als bij door",
}
_STOP_SETS = {code: set(words.split()) for code, words in _STOP_WORDS.items()}
_WORD = re.compile(r"[^\W\d_]+")
_MIN_SHARE = 0.1  # of the letters, in the script, before the script decides


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or None when nothing points to one."""
    letters = sum(map(str.isalpha, text)) or 1
    for code, pattern in _SCRIPTS:
        if len(pattern.findall(text)) / letters >= _MIN_SHARE:
            return _refine(code, text)
    counts = Counter(w.casefold() for w in _WORD.findall(text))
    scores = {code: sum(counts[w] for w in words) for code, words in _STOP_SETS.items()}
    best = max(scores, key=lambda code: scores[code])
    return best if scores[best] > 0 else None


def _refine(code: str, text: str) -> str:
    if code == "ru" and _UKRAINIAN.search(text):
        return "uk"
    if code == "ar" and _PERSIAN.search(text):
        return "fa"
    return code
