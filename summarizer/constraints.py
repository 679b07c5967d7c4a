"""What a grammar-bound decoder may choose from: the EventReport schema narrowed to the source.

A small model under a grammar cannot invent what the grammar does not allow.
These schemas turn fields that must come from the document (evidence quotes)
into enums of the document's own spans, so every choice is verbatim by
construction. Only grammar decoders (the embedded model, llama.cpp servers)
see them; validation and grounding check every backend's answer the same way.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["with_evidence_choices"]


def with_evidence_choices(schema: dict[str, Any], quotes: list[str]) -> dict[str, Any]:
    """A copy of the EventReport schema whose evidence items must be one of ``quotes``."""
    schema = copy.deepcopy(schema)
    if quotes:
        schema["$defs"]["Event"]["properties"]["evidence"]["items"] = {"type": "string", "enum": quotes}
    return schema
