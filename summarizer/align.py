"""Where a quote sits in its source: character offsets, exact or fuzzy, and sentence spans.

A model quotes its source, and a reader wants to see the place. ``Aligner``
prepares a source once and finds each quote in it:

* **exact** — the quote (stripped of surrounding whitespace) occurs verbatim:
  ``source[start:end] == quote.strip()``, always.
* **fuzzy** — anything else that still reads as the same words, with a score:
  the harmless normalisations (case, runs of whitespace, NBSP, typographic
  quotes, apostrophes and dashes) score 1.0; otherwise a token alignment
  (a dropped, added or changed word; plural -s) scores
  ``matched tokens / max(quote tokens, span tokens)`` and is accepted only at
  ``FUZZY_THRESHOLD`` (0.75) or above. That is langextract's default
  ``fuzzy_alignment_threshold`` (the share of the quote's tokens that must
  match); we also hold the span to it (langextract's density gate is 1/3),
  so a fuzzy span reads as the quote rather than a window the quote is
  scattered over. Below it: None. A quote may also leave at most
  ``max(2, tokens // 10)`` of its tokens unmatched: an invented clause glued
  onto a real sentence scores high on a long quote, but is not a quote.

Scripts written without spaces (Chinese, Japanese, Thai, …) are tokenised by
character. Finding a quote is linear-ish: exact and normalised matches are
one C-level search; the fuzzy path votes for candidate positions from the
quote's rarest tokens (an index built once) and aligns only a small window
around the best ones, never the whole text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .schemas import Span

__all__ = ["FUZZY_THRESHOLD", "Aligner", "Alignment", "Span", "fold", "sentence_spans", "tokens"]

FUZZY_THRESHOLD = 0.75

TYPOGRAPHY = str.maketrans({
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "‑": "-", "‐": "-", "−": "-", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
})
# Scripts written without spaces between words: a token is a character.
WIDE_RANGES = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fff\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
)
_TOKEN = re.compile(rf"[{WIDE_RANGES}]|[^\W_{WIDE_RANGES}]+")
_MAX_ANCHORS = 8  # distinct quote tokens that vote for a position
_CANDIDATES = 3  # best-voted positions aligned in full


class Alignment(BaseModel):
    """Where a quote was found, how (``exact`` or ``fuzzy``) and how well (1.0 = every token)."""

    model_config = ConfigDict(frozen=True)

    span: Span
    match: Literal["exact", "fuzzy"]
    score: float


def fold(text: str) -> str:
    """Case-folded, typographic quotes and dashes made plain: how two spellings compare."""
    return text.translate(TYPOGRAPHY).casefold()


def tokens(text: str) -> list[tuple[str, int, int]]:
    """``(folded token, start, end)`` for each word (or character of an unspaced script) in ``text``."""
    return [(_token_key(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _token_key(token: str) -> str:
    # langextract's light normalisation: case, and a plural -s ("officials" ~ "official").
    token = fold(token)
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


@dataclass
class _Index:
    keys: list[str]
    starts: list[int]
    ends: list[int]
    positions: dict[str, list[int]]


class Aligner:
    """A source prepared once, for finding many quotes in it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._folded: str | None = None
        self._back: list[int] | None = None  # folded index -> source index, when folding changed lengths
        self._index: _Index | None = None

    def find(self, quote: str) -> Alignment | None:
        """Where ``quote`` is in the source: exact, else fuzzy at or above ``FUZZY_THRESHOLD``, else None."""
        quote = quote.strip()
        if not quote:
            return None
        at = self.source.find(quote)
        if at >= 0:
            return Alignment(span=Span(start=at, end=at + len(quote)), match="exact", score=1.0)
        span = self._normalised(quote)
        if span is not None:
            return Alignment(span=span, match="fuzzy", score=1.0)
        return self._fuzzy(quote)

    # -- case, whitespace and typography ---------------------------------------------------

    def _normalised(self, quote: str) -> Span | None:
        words = fold(quote).split()
        if not words:
            return None
        pattern = r"\s+".join(re.escape(w) for w in words)
        match = re.search(pattern, self._folded_source())
        if match is None:
            return None
        return Span(start=self._to_source(match.start()), end=self._to_source(match.end() - 1) + 1)

    def _folded_source(self) -> str:
        if self._folded is None:
            folded = fold(self.source)
            if len(folded) != len(self.source):  # "ß" -> "ss", "İ" -> "i̇": map each folded char back
                parts = [fold(c) for c in self.source]
                self._back = [i for i, part in enumerate(parts) for _ in part]
                folded = "".join(parts)
            self._folded = folded
        return self._folded

    def _to_source(self, index: int) -> int:
        return self._back[index] if self._back is not None else index

    # -- token alignment ---------------------------------------------------------------------

    def _fuzzy(self, quote: str) -> Alignment | None:
        wanted = [key for key, _, _ in tokens(quote)]
        if not wanted:
            return None
        index = self._token_index()
        best: tuple[float, int, int] | None = None
        for diagonal in _diagonals(wanted, index.positions):
            found = _align_window(wanted, index.keys, diagonal)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        if best is None or best[0] < FUZZY_THRESHOLD:
            return None
        score, first, last = best
        if len(wanted) - round(score * max(len(wanted), last - first + 1)) > _unmatched_allowed(len(wanted)):
            return None  # a few words differ at most: a sentence glued onto a real one is not a quote
        return Alignment(span=Span(start=index.starts[first], end=index.ends[last]), match="fuzzy",
                         score=round(score, 3))

    def _token_index(self) -> _Index:
        if self._index is None:
            found = tokens(self.source)
            positions: dict[str, list[int]] = {}
            for i, (key, _, _) in enumerate(found):
                positions.setdefault(key, []).append(i)
            self._index = _Index([k for k, _, _ in found], [s for _, s, _ in found], [e for _, _, e in found],
                                 positions)
        return self._index


def _unmatched_allowed(count: int) -> int:
    """Quote tokens that may find no partner in the span: a dropped or changed word or two, a tenth of a long quote."""
    return max(2, count // 10)


def _diagonals(wanted: list[str], positions: dict[str, list[int]]) -> list[int]:
    """Likely start positions of ``wanted`` in the source: votes from its rarest tokens."""
    present = [key for key in dict.fromkeys(wanted) if key in positions]
    anchors = sorted(present, key=lambda key: len(positions[key]))[:_MAX_ANCHORS]
    votes: Counter[int] = Counter()
    for key in anchors:
        offsets = [j for j, w in enumerate(wanted) if w == key]
        for p in positions[key]:
            for j in offsets:
                votes[p - j] += 1
    return [diagonal for diagonal, _ in votes.most_common(_CANDIDATES)]


def _align_window(wanted: list[str], keys: list[str], diagonal: int) -> tuple[float, int, int] | None:
    """LCS of ``wanted`` against the source tokens around ``diagonal``: (score, first, last token)."""
    m = len(wanted)
    slack = max(2, m // 4 + 1)
    lo, hi = max(0, diagonal - slack), min(len(keys), diagonal + m + slack)
    window = keys[lo:hi]
    n = len(window)
    if n == 0:
        return None
    table = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(m):
        row, nxt, w = table[i], table[i + 1], wanted[i]
        for j in range(n):
            nxt[j + 1] = row[j] + 1 if window[j] == w else max(row[j + 1], nxt[j])
    matched = []
    i, j = m, n
    while i and j:
        if wanted[i - 1] == window[j - 1] and table[i][j] == table[i - 1][j - 1] + 1:
            matched.append(j - 1)
            i, j = i - 1, j - 1
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    if not matched:
        return None
    first, last = lo + min(matched), lo + max(matched)
    return len(matched) / max(m, last - first + 1), first, last


# -- sentences -----------------------------------------------------------------------------

_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+|(?<=[。！？])[”」』）]*\s*|\n\s*\n")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof gen col lt sgt capt cmdr adm gov sen rep st mt ft jr sr inc corp co ltd bros no nos vs "
    "etc approx dept est fig jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n e.u e.g i.e "
    "sra srta dra av ca bzw ggf usw z.b mme mlle".split()
)
_LAST_WORD = re.compile(r"([\w.]+)\.[\"'”’»)\]]*\s*$")


def sentence_spans(text: str) -> list[Span]:
    """The sentences of ``text`` as spans (stripped of surrounding whitespace), in order.

    Splits after ``.!?…`` followed by space and after ``。！？``, and at blank
    lines; not after an abbreviation ("Mr.", "Jan.", "U.S.") or an initial
    ("J. K.") when the next word could continue the sentence.
    """
    spans: list[Span] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group().count("\n") < 2 and _continues(text, match):
            continue
        _add(spans, text, start, match.start())
        start = match.end()
    _add(spans, text, start, len(text))
    return spans


def _continues(text: str, match: re.Match[str]) -> bool:
    """Whether the boundary candidate at ``match`` is an abbreviation inside a sentence."""
    if text[match.end():match.end() + 1].islower():  # '"Why?" she asked', 'e.g. the'
        return True
    word = _LAST_WORD.search(text[max(0, match.start() - 12):match.end()])
    if text[match.start() - 1:match.start()] != "." or word is None:
        return False
    last = word.group(1)
    return last.casefold() in _ABBREVIATIONS or (len(last) == 1 and last.isupper())


def _add(spans: list[Span], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        spans.append(Span(start=start + lead, end=start + lead + len(stripped)))
