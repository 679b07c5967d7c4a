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

from ..errors import ConfigError

__all__ = ["compact_json_grammar", "first_choice_json", "gbnf_alternatives", "llama_safe_schema", "max_output_tokens",
           "render_grammar"]

_UNSAFE = re.compile(r'["\\]')
_MIN_PIECE = 20  # shorter pieces of a cut enum value are too short to be useful evidence
# Tokens for JSON punctuation and the optional whitespace llama.cpp's grammar allows around it.
_SEPARATOR_TOKENS = 3
_CHARS_PER_TOKEN = 2.5  # a floor for document text (BPE on Latin script gives ~4; Cyrillic ~2.5)
_DRAFT_DEPTH = 32  # levels a draft follows a schema down (a task's schema may refer to itself)


def render_grammar(template: str, values: Mapping[str, Any]) -> str:
    """Fill a GBNF template: strings as they are, lists of strings as quoted alternatives."""
    filled = {k: gbnf_alternatives(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    return string.Template(template).safe_substitute(filled).strip()


def gbnf_alternatives(words: list[str] | tuple[str, ...]) -> str:
    """``"a" | "b"``; any non-blank run when there is nothing to choose from."""
    return " | ".join(json.dumps(w, ensure_ascii=False) for w in words) if words else "[^ \\n\\r]+"


def compact_json_grammar(schema: dict[str, Any]) -> str:
    """GBNF for JSON matching ``schema``, with no whitespace between tokens.

    llama.cpp's converter allows an optional space around every ``:`` and ``,``;
    a small model takes it, and odd spacing splits the text into more, shorter
    tokens (the seed's report: 455 tokens with spaces allowed, ~250 without).
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        gbnf = json_schema_to_gbnf(json.dumps(llama_safe_schema(schema)))
    except (ValueError, AssertionError, KeyError, TypeError, RecursionError) as exc:  # what it cannot express
        raise ConfigError(f"the embedded model cannot be held to this JSON Schema (llama.cpp's converter: "
                          f"{type(exc).__name__}: {str(exc)[:160]}); simplify the schema, or use an endpoint") from None
    return re.sub(r"^space ::= .*$", 'space ::= ""', gbnf, flags=re.MULTILINE)


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


def first_choice_json(schema: dict[str, Any]) -> str:
    """The compact JSON that takes the first choice everywhere (ranked candidates come best first): a draft.

    Where the schema leaves something free (a string without an enum), the draft stops being
    useful there and decoding goes on token by token; it is only ever a guess to verify.
    """
    value = _first(schema, schema.get("$defs", {}), _DRAFT_DEPTH)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _first(node: Any, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict) or depth <= 0:  # a recursive schema (a task's own) stops the guess here
        return None
    if isinstance(node.get("$ref"), str):
        return _first(defs.get(node["$ref"].rsplit("/", 1)[-1], {}), defs, depth - 1)
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    if isinstance(node.get("anyOf"), list) and node["anyOf"]:
        return _first(node["anyOf"][0], defs, depth - 1)
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties")
        return {k: _first(v, defs, depth - 1) for k, v in properties.items()} if isinstance(properties, dict) else {}
    if kind == "array":
        if isinstance(node.get("prefixItems"), list) and "items" not in node:
            return [_first(item, defs, depth - 1) for item in node["prefixItems"]]
        count = node.get("minItems")
        return [_first(node.get("items", {}), defs, depth - 1)] * (count if isinstance(count, int) else 0)
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(str(kind))


def max_output_tokens(schema: dict[str, Any]) -> int | None:
    """The most tokens an answer bound by ``schema`` can take; None if the schema leaves it unbounded.

    Every string must be an enum, a const or have ``maxLength``; every array
    ``maxItems``. A request's ``max_tokens`` set to this always lets the JSON close.
    """
    return _bound(schema, schema.get("$defs", {}))


def _bound(node: Any, defs: dict[str, Any]) -> int | None:
    if "$ref" in node:
        return _bound(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    if "const" in node:
        return _text_tokens(json.dumps(node["const"], ensure_ascii=False))
    if "enum" in node:
        return max((_text_tokens(json.dumps(v, ensure_ascii=False)) for v in node["enum"]), default=1)
    if "anyOf" in node:
        return _most([_bound(option, defs) for option in node["anyOf"]])
    kind = node.get("type")
    if isinstance(kind, list):
        return _most([_bound({**node, "type": k}, defs) for k in kind])
    bound: int | None = _BOUNDS.get(kind, lambda n, d: None)(node, defs)
    return bound


def _object(node: dict[str, Any], defs: dict[str, Any]) -> int | None:
    total = _SEPARATOR_TOKENS
    for key, value in node.get("properties", {}).items():
        inner = _bound(value, defs)
        if inner is None:
            return None
        total += _text_tokens(key) + _SEPARATOR_TOKENS + inner
    return total


def _array(node: dict[str, Any], defs: dict[str, Any]) -> int | None:
    if isinstance(node.get("prefixItems"), list) and "items" not in node:  # a fixed tuple
        bounds = [_bound(item, defs) for item in node["prefixItems"]]
        if any(b is None for b in bounds):
            return None
        return _SEPARATOR_TOKENS + sum((b or 0) + _SEPARATOR_TOKENS for b in bounds)
    items, count = _bound(node.get("items", {}), defs), node.get("maxItems")
    return None if items is None or count is None else _SEPARATOR_TOKENS + count * (items + _SEPARATOR_TOKENS)


def _string(node: dict[str, Any], defs: dict[str, Any]) -> int | None:
    if "maxLength" in node:
        return 2 + int(node["maxLength"])  # one token per character at worst: a free string is the model's
    return 12 if "pattern" in node else None


_BOUNDS: dict[str, Any] = {
    "object": _object, "array": _array, "string": _string,
    "null": lambda n, d: 2, "boolean": lambda n, d: 2, "integer": lambda n, d: 8, "number": lambda n, d: 12,
}


def _most(bounds: list[int | None]) -> int | None:
    return None if any(b is None for b in bounds) or not bounds else max(b for b in bounds if b is not None)


def _text_tokens(text: str) -> int:
    return int(len(text) / _CHARS_PER_TOKEN) + 2
