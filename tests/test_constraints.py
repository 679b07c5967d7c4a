"""Span-constrained extraction for grammar-bound decoders: every choice comes from the document.

The embedded model fills the grounded schema; whatever it picks must validate
and ground cleanly. These tests check the candidates, the deterministic fields
(language, dates, countries) and that any instance of the schema is a faithful
report — without a model: the schema's own first and last choices stand in for it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import UNGA

from summarizer.backends.grammar import llama_safe_schema, max_output_tokens
from summarizer.candidates import offer
from summarizer.constraints import GRAMMAR_LIMITS, grounded_schema
from summarizer.dates import date_of, time_expressions
from summarizer.documents import read_document
from summarizer.evaluation import load_cases
from summarizer.gazetteer import country_of
from summarizer.grounding import SourceIndex, event_warnings
from summarizer.language import detect_language
from summarizer.ranking import Actor, happenings
from summarizer.schemas import ReportAnswer, event_report_schema
from summarizer.validation import validate_events

UNGA_DOCUMENT = read_document(UNGA)
CASES = Path(__file__).resolve().parents[1] / "evals" / "cases"
SCHEMA = event_report_schema(strict=False)


@pytest.mark.parametrize(("text", "code"), [
    ("The minister said on Friday that the talks with the delegation were over.", "en"),
    ("El ministro dijo el viernes que las conversaciones con la delegación habían terminado.", "es"),
    ("Le ministre a déclaré vendredi que les discussions avec la délégation étaient terminées.", "fr"),
    ("Der Minister sagte am Freitag, dass die Gespräche mit der Delegation beendet sind.", "de"),
    ("Министр заявил в пятницу, что переговоры завершены.", "ru"),
    ("Міністр заявив у пʼятницю, що переговори завершені і її немає.", "uk"),
    ("外交部长周五表示，会谈已经结束。", "zh"),
    ("外務大臣は金曜日に、会談は終わったと述べた。", "ja"),
    ("قال الوزير يوم الجمعة إن المحادثات انتهت.", "ar"),
    ("", None),
    ("1234 5678", None),
])
def test_language_is_detected_without_a_model(text: str, code: str | None) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize(("place", "code"), [
    ("New York", "US"), ("Moscú", "RU"), ("the Netherlands", "NL"), ("Kyiv", "UA"), ("GENEVA", "CH"),
    ("U.S.", "US"), ("Wakanda", None), ("Lavrov", None), ("Piraeus", "GR"), ("Europe", None),
])
def test_countries_come_only_from_the_gazetteer(place: str, code: str | None) -> None:
    assert country_of(place) == code


@pytest.mark.parametrize(("text", "expected"), [
    ("Talks ended on Friday.", [("on Friday", ("2024-09-27", "day"))]),
    ("It happened on March 3, 2024 and yesterday.", [("March 3, 2024", ("2024-03-03", "day")),
                                                     ("yesterday", ("2024-09-27", "day"))]),
    ("Le 12 septembre, après-demain.", [("12 septembre", ("2024-09-12", "day")), ("après-demain", ("2024-09-30", "day"))]),
    ("The plant opened in 2019; prices rose last week.", [("in 2019", ("2019", "year")), ("last week", None)]),
    ("Filed 2024-02-30 and 2024-02-29.", [("2024-02-30", None), ("2024-02-29", ("2024-02-29", "day"))]),
    ("You may go. The report may change.", []),
])
def test_time_expressions_are_verbatim_and_dated_deterministically(text: str, expected: list[Any]) -> None:
    found = time_expressions(text)
    assert [(t, date_of(t, dt.date(2024, 9, 28))) for t in found] == expected
    assert all(t in text for t in found)


def _choose(node: Any, defs: dict[str, Any], pick: int) -> Any:
    """An instance of ``node``: the first (pick=0) or last (pick=-1) choice everywhere, arrays at their bound."""
    if "$ref" in node:
        return _choose(defs[node["$ref"].rsplit("/", 1)[1]], defs, pick)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][pick]
    if "anyOf" in node:
        return _choose(node["anyOf"][pick], defs, pick)
    if node.get("type") == "null":
        return None
    if node.get("type") == "object":
        return {key: _choose(value, defs, pick) for key, value in node["properties"].items()}
    if node.get("type") == "array" and "prefixItems" in node:  # a fixed tuple
        return [_choose(item, defs, pick) for item in node["prefixItems"]]
    if node.get("type") == "array":
        return [_choose(node["items"], defs, pick) for _ in range(node.get("maxItems", 1))]
    raise AssertionError(f"an unbounded node in the grounded schema: {node}")


def _cases() -> list[tuple[str, str, dt.date | None]]:
    # The eval set's documents as the pipeline sees them (HTML extracted, repeats dropped).
    return [(case.name, case.document.text, case.document.published) for case in load_cases(CASES.parent)]


@pytest.mark.parametrize(("name", "text", "published"), _cases(), ids=lambda v: v if isinstance(v, str) and
                         len(v) < 40 else "")
@pytest.mark.parametrize("pick", [0, -1])
def test_whatever_a_grammar_bound_model_picks_is_a_faithful_report(
    name: str, text: str, published: dt.date | None, pick: int,
) -> None:
    offered = offer(text, published)
    schema = grounded_schema(SCHEMA, offered)
    report_json = _choose(schema, schema["$defs"], pick)
    source = SourceIndex(text, published)
    report, warnings = validate_events(json.dumps(report_json), "stop", source)
    assert warnings == [] and event_warnings(report, source) == []
    assert report.language == detect_language(text)
    for event in report.events:
        assert all(p.name in text for p in event.participants)
        assert event.where is None or event.where.name in text
        assert event.when is None or event.when.text in text
        assert all(q in text for q in event.evidence)
    assert max_output_tokens(schema) is not None


def test_the_seed_offers_its_people_places_and_days() -> None:
    offered = offer(UNGA_DOCUMENT.text, dt.date(2024, 9, 28))
    assert {"Sergei Lavrov", "UN General Assembly", "New York"} <= set(offered.names)
    assert all(name in UNGA_DOCUMENT.text for name in offered.names)
    assert offered.places == {"New York": "US", "Pacific": None, "Asia-Pacific": None}  # regions have no country
    assert offered.kinds["Sergei Lavrov"] == offered.kinds["Lavrov"] == "person"
    assert offered.kinds["Pacific"] == "location" and offered.kinds["CSTO"] == "organization"
    assert offered.described["Sergei Lavrov"] == ["Russian Foreign Minister"] and offered.language == "en"
    # A reporter's choice: Lavrov (the subject of the lead's verb) acts, in New York (not the
    # Pacific of "Pacific small island developing states"), on Friday (not the later "on Wednesday").
    main = happenings(offered)[0]
    assert main.actors[0] == Actor("Sergei Lavrov", "person", "Russian Foreign Minister", "agent")
    assert main.places == [("New York", "US")] and main.place_required
    assert main.times == [("on Friday", "2024-09-27", "day")] and main.time_required
    assert main.types == ["diplomacy.meeting"] and main.status == "occurred"
    assert main.evidence == main.summary == UNGA_DOCUMENT.text.split("\n\n")[0]


def test_a_document_with_no_names_places_or_times_still_has_a_schema() -> None:
    text = "prices went up again and nobody knows why. it was expected."
    schema = grounded_schema(SCHEMA, offer(text))
    event = schema["properties"]["events"]["prefixItems"][0]["properties"]
    assert event["participants"]["maxItems"] == 0 and event["where"] == {"anyOf": [{"type": "null"}]}
    report = _choose(schema, schema["$defs"], 0)
    assert ReportAnswer.model_validate(report).events[0].participants == []


def test_the_grounded_schema_is_bounded_and_the_plain_one_is_not_treated_as_such() -> None:
    text = "Lavrov met Wang Yi in Beijing on Friday. They discussed trade."
    schema = grounded_schema(SCHEMA, offer(text, dt.date(2024, 9, 28)))
    bound = max_output_tokens(schema)
    assert bound is not None and 100 < bound < 2000
    assert 1 <= schema["properties"]["events"]["maxItems"] <= GRAMMAR_LIMITS["events"]
    assert max_output_tokens({"type": "object", "properties": {"x": {"type": "string"}}}) is None
    assert max_output_tokens({"type": "array", "items": {"type": "string", "maxLength": 10}}) is None


def test_the_grounded_schema_compiles_to_a_llama_cpp_grammar() -> None:
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    text = 'Lavrov said "we will resume" in New York on Friday. Wang Yi met him in Beijing.'
    schema = llama_safe_schema(grounded_schema(SCHEMA, offer(text, dt.date(2024, 9, 28))))
    gbnf = grammar.json_schema_to_gbnf(json.dumps(schema))
    assert grammar.LlamaGrammar.from_string(gbnf, verbose=False) is not None
    assert '\\"New York\\"' in gbnf or "New York" in gbnf


def test_repeated_events_collapse_to_one() -> None:
    event = {"type": "other", "summary": "It rained.", "participants": [], "where": None, "when": None,
             "status": "occurred", "evidence": ["It rained."]}
    report = ReportAnswer.model_validate({"schema_version": "1", "headline": "Rain", "language": "en",
                                         "events": [event, event, {**event, "status": "reported"}]})
    assert [e.status for e in report.events] == ["occurred", "reported"]


@pytest.mark.parametrize("text", [
    "The " + " ".join(f"Word{i}" for i in range(60)) + " Met. It rained in Paris on Friday.",  # a 400-char name run
    'He said "stop \\ now" in Geneva on Monday. "Quotes", she said, "everywhere."',  # what llama.cpp mis-escapes
    "東京で金曜日に会談が行われた。外務大臣が出席した。",  # no Latin names, no spaces
    "a. b. c.",  # almost nothing
    "Ünïcödé Ñame met Zoë Ölund in São Paulo yesterday. Prices rose 45,000% since 2019.",
])
def test_hostile_documents_still_give_a_schema_whose_every_choice_is_faithful(text: str) -> None:
    schema = llama_safe_schema(grounded_schema(SCHEMA, offer(text, dt.date(2024, 9, 28))))
    source = SourceIndex(text, dt.date(2024, 9, 28))
    for pick in (0, -1):
        report, _ = validate_events(json.dumps(_choose(schema, schema["$defs"], pick)), "stop", source)
        assert event_warnings(report, source) == []
    assert max_output_tokens(schema) is not None
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    from summarizer.backends.grammar import compact_json_grammar

    assert grammar.LlamaGrammar.from_string(compact_json_grammar(schema), verbose=False) is not None
