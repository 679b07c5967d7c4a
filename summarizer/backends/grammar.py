"""What llama.cpp's grammar machinery needs, in one place.

Grammar-bound decoding (the embedded model, llama.cpp servers) keeps a small
model inside the rules. Two things are specific to llama.cpp: GBNF templates
get lists as quoted alternatives, and its JSON-Schema-to-grammar converter
mis-escapes ``"`` and ``\\`` inside enum values, so enum values are cut at those
characters (each piece is still a verbatim span of the document).
"""

from __future__ import annotations

import copy
import json
import re
import string
from collections.abc import Mapping
from typing import Any

__all__ = ["gbnf_alternatives", "llama_safe_schema", "render_grammar"]

_UNSAFE = re.compile(r'["\\]')
_MIN_PIECE = 20  # shorter pieces of a cut enum value are too short to be useful evidence


def render_grammar(template: str, values: Mapping[str, Any]) -> str:
    """Fill a GBNF template: strings as they are, lists of strings as quoted alternatives."""
    filled = {k: gbnf_alternatives(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    return string.Template(template).safe_substitute(filled).strip()


def gbnf_alternatives(words: list[str] | tuple[str, ...]) -> str:
    """``"a" | "b"``; any non-blank run when there is nothing to choose from."""
    return " | ".join(json.dumps(w, ensure_ascii=False) for w in words) if words else "[^ \\n\\r]+"


def llama_safe_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` whose enum values contain no ``"`` or ``\\`` (llama.cpp mis-escapes them)."""
    schema = copy.deepcopy(schema)
    _fix_enums(schema)
    return schema


def _fix_enums(node: Any) -> None:
    if isinstance(node, dict):
        values = node.get("enum")
        if isinstance(values, list) and any(isinstance(v, str) and _UNSAFE.search(v) for v in values):
            node["enum"] = _safe_pieces(values)
        for value in node.values():
            _fix_enums(value)
    elif isinstance(node, list):
        for item in node:
            _fix_enums(item)


def _safe_pieces(values: list[Any]) -> list[Any]:
    pieces: list[Any] = []
    for value in values:
        if not isinstance(value, str) or not _UNSAFE.search(value):
            pieces.append(value)
            continue
        pieces += [p for p in (p.strip(" ,;") for p in _UNSAFE.split(value)) if len(p) >= _MIN_PIECE]
    return list(dict.fromkeys(pieces))
