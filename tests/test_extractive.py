"""Extractive briefs for grammar-bound decoders: every string the grammar allows is the document's.

The property: whatever path a decoder takes through the brief grammar, the brief
is the lead, then some of the offered units in document order (each whole or cut
at a clause boundary), joined by single spaces, within the word range. A small
interpreter for the GBNF subset the grammar is written in walks it — every path
for small documents, random walks for the eval set — without a model.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import UNGA

from summarizer.backends import OutputSpec
from summarizer.backends.grammar import render_grammar
from summarizer.documents import read_document
from summarizer.evaluation import load_cases
from summarizer.extractive import brief_grammar_values, brief_rules, grammar_digest, split_sentences, units
from summarizer.grounding import SourceIndex, brief_warnings
from summarizer.prompts import PromptLibrary
from summarizer.schemas import count_words
from summarizer.validation import Invalid, validate_brief

CASES = load_cases(Path(__file__).resolve().parents[1] / "evals")
SEED = read_document(UNGA).text
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|[A-Za-z0-9-]+|\|')


def _parse(gbnf: str) -> dict[str, list[list[str]]]:
    rules: dict[str, list[list[str]]] = {}
    for line in gbnf.strip().splitlines():
        name, _, body = line.partition(" ::= ")
        alternatives: list[list[str]] = [[]]
        for token in _TOKEN.findall(body):
            if token == "|":
                alternatives.append([])
            else:
                alternatives[-1].append(token)
        assert name not in rules, f"rule {name} defined twice"
        rules[name] = alternatives
    return rules


def _literal(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _walk(rules: dict[str, list[list[str]]], symbol: str, rng: random.Random) -> str:
    if symbol.startswith('"'):
        return _literal(symbol)
    return "".join(_walk(rules, s, rng) for s in rng.choice(rules[symbol]))


def _every(rules: dict[str, list[list[str]]], symbol: str) -> list[str]:
    if symbol.startswith('"'):
        return [_literal(symbol)]
    found: list[str] = []
    for alternative in rules[symbol]:
        paths = [""]
        for part in alternative:
            paths = [p + rest for p in paths for rest in _every(rules, part)]
        found += paths
    return found


def _is_extractive(brief: str, chosen: list[Any], low: int, high: int) -> bool:
    """The brief is the first unit, then later units in order, each in one of its forms."""
    position, rest, first = 0, brief, True
    while rest:
        for j in range(position, len(chosen)):
            form = next((f for f in chosen[j].forms if rest == f or rest.startswith(f + " ")), None)
            if form is not None and (not first or j == 0):
                rest, position, first = rest[len(form) + 1:], j + 1, False
                break
        else:
            return False
    return low <= count_words(brief) <= high


def test_sentences_keep_abbreviations_and_quotations_whole() -> None:
    text = ('The quake hit at 10:42 p.m. local time, according to the U.S. Geological Survey. It was felt in Lima.\n\n'
            '"We have been using it. Then COVID interfered," Lavrov said. Mr. Smith left.')
    assert split_sentences(text) == [
        "The quake hit at 10:42 p.m. local time, according to the U.S. Geological Survey.", "It was felt in Lima.",
        '"We have been using it. Then COVID interfered," Lavrov said.', "Mr. Smith left."]


def test_units_put_the_lead_first_and_leave_out_titles_shouting_and_fragments() -> None:
    case = next(c for c in CASES if c.name == "injection-hidden")
    chosen = units(case.document.text)
    assert chosen[0].text.startswith("The city council of Bergen voted on Thursday")
    assert not any(u.text.isupper() or "IGNORE" in u.text or "maintenance mode" in u.text for u in chosen)
    press = next(c for c in CASES if c.name == "html-press-release")
    assert all(u.text[-1] in ".!?\"”" for u in units(press.document.text))  # no title line, no ", Gdańsk"
    assert [u.index for u in chosen] == sorted(u.index for u in chosen)


def test_a_page_s_furniture_is_never_the_lead() -> None:
    text = ("Sign up for our morning newsletter to get the news before breakfast.\n\n"
            "Fire broke out at a warehouse in Ghent on Monday, the fire service said. Nobody was hurt.")
    assert units(text)[0].text == "Fire broke out at a warehouse in Ghent on Monday, the fire service said."
    from summarizer.candidates import offer
    from summarizer.ranking import happenings

    assert happenings(offer(text))[0].evidence.startswith("Fire broke out")


def test_a_long_sentence_may_be_cut_at_a_clause_boundary_but_not_after_an_opener() -> None:
    forms = units("The Bank of Canada cut its key interest rate to 4.25% on Wednesday, its third consecutive "
                  "reduction, citing slowing inflation. According to the Russian Foreign Ministry, the ministers "
                  "discussed the situation in the region at length.")
    assert "The Bank of Canada cut its key interest rate to 4.25% on Wednesday." in forms[0].forms
    assert forms[1].forms == forms[1].forms[:1]  # "According to the Russian Foreign Ministry." is no sentence


def test_a_sentence_over_80_words_or_a_shouted_text_still_offers_units() -> None:
    run_on = " ".join(["Lisbon council budget vote"] * 60) + "."
    chosen = units(run_on)
    assert len(chosen) == 1 and count_words(chosen[0].text) <= 80 and run_on.startswith(chosen[0].text[:-1])
    shouted = units("BREAKING NEWS. THE RIVER FLOODED THE OLD TOWN OVERNIGHT.")
    assert [u.text for u in shouted] == ["BREAKING NEWS.", "THE RIVER FLOODED THE OLD TOWN OVERNIGHT."]
    assert brief_rules([], 40, 120) == 'brief ::= ""'


def test_every_brief_the_seed_grammar_allows_is_its_own_sentences_in_the_range() -> None:
    chosen = units(SEED)
    rules = _parse(brief_rules(chosen, 40, 120))
    every = _every(rules, "brief")
    assert every and len(every) == len(set(every))  # one path per brief: no ambiguity for the sampler
    for brief in every:
        assert _is_extractive(brief, chosen, 40, 120), brief
        assert brief.startswith("Russian Foreign Minister Sergei Lavrov discussed")
        assert brief_warnings(brief, SourceIndex(SEED)) == []
    assert max(count_words(b) for b in every) <= 120 and min(count_words(b) for b in every) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_random_walks_through_every_eval_brief_grammar_stay_extractive(case: Any) -> None:
    low, high = tuple(case.options.get("words", (40, 120)))
    values = brief_grammar_values(case.document.text, (low, high))
    template = PromptLibrary().get("brief")
    assert template.grammar is not None
    rules = _parse(render_grammar(template.grammar, values))
    chosen = units(case.document.text, limit=12)
    source = SourceIndex(case.document.text)
    rng = random.Random(case.name)
    reachable = sum(max(count_words(f) for f in u.forms) for u in chosen) >= low
    for _ in range(40):
        brief = _walk(rules, "root", rng)
        assert _is_extractive(brief, chosen, min(low, count_words(brief)) if not reachable else low, high), brief
        assert "  " not in brief and "\n" not in brief
        assert not [w for w in brief_warnings(brief, source) if "not in source" in w]
        if reachable:
            validate_brief(brief, "stop", source, words=(low, high), strict=True)  # no re-ask needed


def test_a_document_too_short_for_the_range_is_briefed_whole_and_validation_says_so() -> None:
    text = "Fire broke out at a warehouse in Ghent on Monday. Nobody was hurt, the fire service said."
    every = _every(_parse(brief_rules(units(text), 40, 120)), "brief")
    assert every == [text]
    with pytest.raises(Invalid, match="it has 17 words; it must have 40-120"):
        validate_brief(every[0], "stop", SourceIndex(text), words=(40, 120), strict=False)


def test_a_brief_that_plays_its_prompt_back_is_refused() -> None:
    source = SourceIndex(SEED)
    echo = "Part 1: " + " ".join(SEED.split()[:60])
    with pytest.raises(Invalid, match="repeats the instructions"):
        validate_brief(echo, "stop", source, words=(40, 120), strict=False)
    with pytest.raises(Invalid, match="repeats the instructions"):
        validate_brief("Combine the part briefs into one brief of the whole document for busy readers. "
                       + " ".join(SEED.split()[:50]), "stop", source, words=(40, 120), strict=False)
    # The same words in the source are the source's: no echo.
    quoted = SourceIndex("Part 1: the council met. " + SEED)
    validate_brief("Part 1: the council met. " + " ".join(SEED.split()[:50]), "stop", quoted, words=(40, 120),
                   strict=False)


def test_grammar_decoders_read_a_long_text_as_its_digest() -> None:
    assert grammar_digest(SEED) is None  # short: read whole
    long = "\n\n".join([SEED] + [f"Paragraph {i} says the committee met in Oslo on Monday to talk about item {i}."
                                 for i in range(600)])
    text, digest = grammar_digest(long) or ("", "")
    assert text == long and len(digest) < len(long) / 10
    assert digest.startswith("Russian Foreign Minister Sergei Lavrov discussed")
    assert all(paragraph in long for paragraph in digest.split("\n\n"))
    spec = OutputSpec(grammar="root ::= brief", grammar_digest=lambda: (text, digest))
    sent = spec.messages_for_grammar([{"role": "user", "content": f"<document>\n{long}\n</document>"}])
    assert sent == [{"role": "user", "content": f"<document>\n{digest}\n</document>"}]


def test_a_long_document_is_briefed_part_by_part_with_progress() -> None:
    """The whole map-reduce under grammar decoding: a real brief of the document's sentences, never an echo."""
    import asyncio

    from summarizer.backends import Backend, Completion, Message
    from summarizer.documents import Document
    from summarizer.schemas import Usage
    from summarizer.tasks import RunProgress, TaskOptions, run_task

    class FirstPath(Backend):
        """A grammar decoder that always takes the grammar's first choices: lead and next units."""

        model = "first-path"
        seen: list[int] = []

        async def complete(self, messages: list[Message], *, output: OutputSpec = OutputSpec(),
                           params: Any = None) -> Completion:
            assert output.grammar is not None
            sent = output.messages_for_grammar(messages)
            self.seen.append(sum(len(m["content"]) for m in sent))
            rules = _parse(render_grammar(output.grammar, output.values_for_grammar()))
            return Completion(text=_walk(rules, "root", random.Random(0)), usage=Usage(requests=1), model=self.model)

    paragraphs = [f"The council of district {i} approved a budget of {i} million euros on Monday after a long debate. "
                  f"Residents of district {i} said the new park would open in spring." for i in range(1200)]
    document = Document.from_text("\n\n".join(paragraphs), id="long")
    backend = FirstPath()
    heard: list[RunProgress] = []
    result = asyncio.run(run_task("brief", document, backend, PromptLibrary(), TaskOptions(), on_progress=heard.append))
    parts = [p for p in heard if p.stage == "part"]
    assert parts[0].done == 0 and parts[0].total >= 3  # heard before the first part is read, then part by part
    assert [p.done for p in parts] == list(range(parts[0].total + 1))
    assert result.value.text.startswith(paragraphs[0].split(". ")[0])
    assert 40 <= result.value.word_count <= 120 and "Part" not in result.value.text
    assert brief_warnings(result.value.text, SourceIndex(document.text)) == []
    assert max(backend.seen) < 12_000  # every request read a digest of its part, not the part
