"""What a grammar-bound decoder may choose from: the EventReport schema narrowed to the source.

A small model under a grammar cannot invent what the grammar does not allow.
``grounded_schema`` turns every field that must come from the document into an
enum of the document's own spans (``candidates.offer``): names, places, time
expressions, descriptions, summaries, headlines and evidence quotes. Fields a
model should not generate at all are single choices computed here: the
language, a time expression's date and precision, a place's country. Every
array and string is bounded so the JSON closes within ``max_tokens`` (see
``backends.grammar.max_output_tokens``). Only grammar decoders (the embedded
model, llama.cpp servers) see this schema; validation and grounding check every
backend's answer the same way.
"""

from __future__ import annotations

import copy
from typing import Any

from .candidates import Offer

__all__ = ["GRAMMAR_LIMITS", "grounded_schema"]

# How much a grammar-bound report may hold: a small model repeats an entry
# until the bound, so the bounds are what it will write.
GRAMMAR_LIMITS = {"events": 1, "participants": 2, "evidence": 1}


def grounded_schema(schema: dict[str, Any], offer: Offer, quotes: list[str] | None = None) -> dict[str, Any]:
    """The EventReport schema with every document-derived field an enum of ``offer``'s spans."""
    schema = copy.deepcopy(schema)
    props = schema["properties"]
    props["headline"] = _choice(offer.headlines, props["headline"])
    if offer.language:
        props["language"] = {"type": "string", "enum": [offer.language]}
    props["events"]["maxItems"] = GRAMMAR_LIMITS["events"]
    event = schema["$defs"]["Event"]["properties"]
    event["type"] = {"type": "string", "enum": offer.types}
    event["summary"] = _choice(offer.summaries, event["summary"])
    event["participants"] = {"type": "array", "maxItems": GRAMMAR_LIMITS["participants"] if offer.names else 0,
                             "items": _participant(schema["$defs"]["Participant"], offer)}
    event["where"] = {"anyOf": [*({"type": "object", "properties": {"name": {"const": name}, "country": {"const": code}},
                                  "required": ["name", "country"], "additionalProperties": False}
                                 for name, code in offer.places), {"type": "null"}]}
    event["when"] = {"anyOf": [*({"type": "object",
                                 "properties": {"text": {"const": text}, "date": {"const": date},
                                                "precision": {"const": precision}},
                                 "required": ["text", "date", "precision"], "additionalProperties": False}
                                for text, date, precision in offer.times), {"type": "null"}]}
    quotes = quotes if quotes is not None else offer.quotes
    event["evidence"] = {"type": "array", "minItems": 1, "maxItems": GRAMMAR_LIMITS["evidence"],
                         "items": _choice(quotes, event["evidence"]["items"])}
    return schema


def _participant(base: dict[str, Any], offer: Offer) -> dict[str, Any]:
    # Places are countries or locations, and nothing else is: the gazetteer decides which names are places.
    places = {name for name, _ in offer.places}
    others = [name for name in offer.names if name not in places]
    located = [name for name in offer.names if name in places]
    branches = []
    if others:
        branches.append(_participant_branch(base, others, ["person", "organization", "other"], offer.descriptions))
    if located:
        branches.append(_participant_branch(base, located, ["country", "location"], []))
    return branches[0] if len(branches) == 1 else {"anyOf": branches} if branches else _participant_branch(
        base, [""], ["other"], [])


def _participant_branch(base: dict[str, Any], names: list[str], kinds: list[str], descriptions: list[str],
                        ) -> dict[str, Any]:
    participant = copy.deepcopy(base)
    props = participant["properties"]
    props["name"] = {"type": "string", "enum": names}
    props["kind"] = {"type": "string", "enum": kinds}
    props["description"] = ({"anyOf": [{"type": "string", "enum": descriptions}, {"type": "null"}]}
                            if descriptions else {"type": "null"})
    return participant


def _choice(values: list[str], fallback: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "enum": values} if values else fallback
