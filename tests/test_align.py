"""Alignment: exact offsets, the harmless normalisations, token-level fuzzy matches and their threshold."""

from __future__ import annotations

import random

import pytest

from summarizer import Aligner, Span
from summarizer.align import FUZZY_THRESHOLD, sentence_spans

SOURCE = (
    "A magnitude 6.8 earthquake struck southern Peru early on Friday, killing at least 14 people.\n\n"
    "Regional governor Rohel Sánchez said rescue teams were “still searching” for at least six people — "
    "believed to be trapped under rubble.\u00a0Power was cut for several hours."
)


@pytest.mark.parametrize(("quote", "match", "expected"), [
    ("killing at least 14 people", "exact", "killing at least 14 people"),
    ("  killing at least 14 people ", "exact", "killing at least 14 people"),
    ("KILLING at least 14 people", "fuzzy", "killing at least 14 people"),
    ('rescue teams were "still searching"', "fuzzy", "rescue teams were “still searching”"),
    ("six people - believed", "fuzzy", "six people — believed"),
    ("rubble. Power was cut", "fuzzy", "rubble.\u00a0Power was cut"),
    ("killing at least 14\n  people", "fuzzy", "killing at least 14 people"),
    ("rescue teams were searching for at least six people", "fuzzy",
     "rescue teams were “still searching” for at least six people"),  # a dropped word
    ("Rohel Sánchez said the rescue teams were still searching", "fuzzy",
     "Rohel Sánchez said rescue teams were “still searching"),  # an added word (a token span: no closing quote)
])
def test_find(quote: str, match: str, expected: str) -> None:
    found = Aligner(SOURCE).find(quote)
    assert found is not None and found.match == match
    assert found.span.of(SOURCE) == expected
    assert found.score >= FUZZY_THRESHOLD
    if match == "exact":
        assert found.score == 1.0 and SOURCE[found.span.start:found.span.end] == quote.strip()


@pytest.mark.parametrize("quote", [
    "the president declared a state of emergency",  # not there at all
    "killing at most 40 people in the north of the country",  # too few of its words
    "",
    "   ",
])
def test_below_the_threshold_is_none(quote: str) -> None:
    assert Aligner(SOURCE).find(quote) is None


def test_cjk_is_aligned_by_character() -> None:
    source = "今年第11号台风“摩羯”于9月6日16时20分前后在海南省文昌市沿海登陆。台风已造成海南全省4人死亡、95人受伤。"
    aligner = Aligner(source)
    exact = aligner.find("在海南省文昌市沿海登陆")
    assert exact is not None and exact.match == "exact" and exact.span.of(source) == "在海南省文昌市沿海登陆"
    fuzzy = aligner.find("台风造成海南全省4人死亡、95人受伤")  # one character dropped
    assert fuzzy is not None and fuzzy.match == "fuzzy"
    assert fuzzy.span.of(source) == "台风已造成海南全省4人死亡、95人受伤"


def test_case_folding_that_changes_length_maps_back() -> None:
    source = "Die Straße in Gießen war gesperrt."
    found = Aligner(source).find("STRASSE in GIESSEN")
    assert found is not None and found.span.of(source) == "Straße in Gießen"


def test_random_substrings_are_found_exactly() -> None:
    rng = random.Random(19)
    words = "the council voted to ban cruise ships from its harbour after protests over air pollution".split()
    source = " ".join(rng.choice(words) + rng.choice(["", ",", "."]) for _ in range(3000))
    aligner = Aligner(source)
    for _ in range(300):
        start = rng.randrange(len(source) - 1)
        end = rng.randrange(start + 1, min(len(source), start + 200) + 1)
        quote = source[start:end]
        if not quote.strip():
            continue
        found = aligner.find(quote)
        assert found is not None and found.match == "exact"
        assert source[found.span.start:found.span.end] == quote.strip()


def test_sentence_spans_keep_offsets_and_abbreviations() -> None:
    text = ("Mr. Smith met Dr. J. K. Rowling in the U.S. capital at 4 p.m. on Friday. “Why?” she asked.\n\n"
            "他来了。她走了。")
    spans = sentence_spans(text)
    assert [s.of(text) for s in spans] == [
        "Mr. Smith met Dr. J. K. Rowling in the U.S. capital at 4 p.m. on Friday.", "“Why?” she asked.",
        "他来了。", "她走了。",
    ]
    assert all(isinstance(s, Span) and text[s.start:s.end] == s.of(text) for s in spans)
