"""What a grammar-bound decoder may choose from: the EventReport schema narrowed to the source.

A small model under a grammar cannot invent what the grammar does not allow.
``grounded_schema`` turns the events the document reports, as a reporter
would rank them (``ranking.happenings``), into the schema: each event a
fixed object of its own — its type among the one or two its sentence's words
point to, its status computed from its tense (a single value), its summary
and evidence from its own sentence, its participants the top-ranked actors
(names, kinds, descriptions and roles fixed by the document: the main verb's
subject is the agent), where and when among the top two candidates (no null when its
own sentence names one). Fields a model should not generate at all are single
choices computed here: the language, a time expression's date and precision,
a place's country. Every array and string is bounded so the JSON closes
within ``max_tokens`` (see ``backends.grammar.max_output_tokens``). Only
grammar decoders (the embedded model, llama.cpp servers) see this schema;
validation and grounding check every backend's answer the same way.
"""

from __future__ import annotations

import copy
from typing import Any

from .candidates import Offer
from .ranking import Actor, Happening, happenings

__all__ = ["GRAMMAR_LIMITS", "grounded_schema"]

# How much a grammar-bound report may hold (events and participants come as fixed tuples of
# the ranked candidates, so a small model cannot repeat an entry up to the bound).
GRAMMAR_LIMITS = {"events": 3, "participants": 3, "evidence": 1}


def grounded_schema(schema: dict[str, Any], offer: Offer) -> dict[str, Any]:
    """The EventReport schema with every document-derived field fixed or an enum of ``offer``'s spans."""
    schema = copy.deepcopy(schema)
    props = schema["properties"]
    props["headline"] = _choice(offer.headlines[:2], props["headline"])
    if offer.language:
        props["language"] = {"type": "string", "enum": [offer.language]}
    events = happenings(offer, limit=GRAMMAR_LIMITS["events"])
    base = schema["$defs"]["Event"]
    props["events"] = _tuple([_event(base, event) for event in events]) if events else props["events"]
    return schema


def _event(base: dict[str, Any], event: Happening) -> dict[str, Any]:
    fixed = copy.deepcopy(base)
    fixed.pop("title", None)
    fixed.pop("description", None)
    fixed["properties"] = {
        "type": {"type": "string", "enum": event.types},
        "summary": {"type": "string", "enum": [event.summary]},
        "participants": _tuple([_participant(actor) for actor in event.actors[:GRAMMAR_LIMITS["participants"]]]),
        "where": _one_of([{"type": "object", "properties": {"name": {"const": name}, "country": {"const": code}},
                           "required": ["name", "country"], "additionalProperties": False}
                          for name, code in event.places], nullable=not event.place_required),
        "when": _one_of([{"type": "object", "properties": {"text": {"const": text}, "date": {"const": date},
                                                           "precision": {"const": precision}},
                          "required": ["text", "date", "precision"], "additionalProperties": False}
                         for text, date, precision in event.times], nullable=not event.time_required),
        "status": {"type": "string", "enum": [event.status]},
        "evidence": _tuple([{"type": "string", "enum": [event.evidence]}]),
    }
    return fixed


def _participant(actor: Actor) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "name": {"type": "string", "enum": [actor.name]},
        "kind": {"type": "string", "enum": [actor.kind]},
        "role": {"type": "string", "enum": [actor.role]},
        "description": {"type": "string", "enum": [actor.description]} if actor.description else {"type": "null"},
    }, "required": ["name", "kind", "role", "description"], "additionalProperties": False}


def _tuple(items: list[dict[str, Any]]) -> dict[str, Any]:
    # A fixed sequence: llama.cpp compiles prefixItems to exactly these items in this order.
    return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}


def _one_of(options: list[dict[str, Any]], *, nullable: bool) -> dict[str, Any]:
    return {"anyOf": options + ([{"type": "null"}] if nullable or not options else [])}


def _choice(values: list[str], fallback: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "enum": values} if values else fallback
