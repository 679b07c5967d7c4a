"""What a task's JSON Schema must be before summarizer runs it: checked when the task loads.

jsonschema follows ``$ref`` only when it validates an answer — after the model was
paid: a ``$ref`` outside the schema is fetched or fails then, ``$ref``s that loop
and nesting past reason are a RecursionError then. And an ``evidence`` path that
reaches no string of an answer would leave its quotes unchecked without a word.
Pure functions over the parsed schema; no jsonschema import.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

__all__ = ["evidence_gap", "structure_problem"]

_MAX_DEPTH = 64  # levels of nesting in a task's schema: far past any answer, and well short of Python's recursion limit
_IN_PLACE = ("allOf", "anyOf", "oneOf")  # applicators that judge the same value, not a child of it
_IN_PLACE_ONE = ("not", "if", "then", "else")
_DATA = ("enum", "const", "default", "examples")  # values, not schemas: a "$ref" in them is only text


def structure_problem(schema: dict[str, Any]) -> str | None:
    """What makes ``schema`` unusable: nesting past reason, a $ref outside it or to nowhere, $refs that loop."""
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return f"is nested more than {_MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            nodes.append(node)
            stack += [(v, depth + 1) for k, v in node.items() if k not in _DATA]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    for node in nodes:
        ref = node.get("$ref")
        if isinstance(ref, str) and _resolve(schema, ref) is None:
            return (f"has a $ref that leads nowhere: {ref[:120]!r}" if ref.startswith("#") else
                    f"has a $ref outside it: {ref[:120]!r} (only refs within the schema, \"#/...\", are followed)")
    return "has $refs that loop without reaching a value" if _loops(nodes, schema) else None


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any] | None:
    """The subschema a local ``$ref`` ("#", "#/$defs/x") names; None when it names none."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for token in unquote(ref[2:]).split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node if isinstance(node, dict) else None


def _in_place(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The subschemas that judge the same value as ``node``: its $ref, allOf/anyOf/oneOf, not, if/then/else."""
    found = [s for k in _IN_PLACE if isinstance(node.get(k), list) for s in node[k]]
    found += [node.get(k) for k in _IN_PLACE_ONE]
    ref = node.get("$ref")
    found.append(_resolve(root, ref) if isinstance(ref, str) else None)
    return [s for s in found if isinstance(s, dict)]


def _loops(nodes: list[dict[str, Any]], root: dict[str, Any]) -> bool:
    """Whether following in-place subschemas from any node comes back to it (validation would never end)."""
    done: set[int] = set()
    for start in nodes:
        if id(start) in done:
            continue
        path, stack = {id(start)}, [(start, iter(_in_place(start, root)))]
        while stack:
            node, nexts = stack[-1]
            following = next(nexts, None)
            if following is None:
                stack.pop()
                path.discard(id(node))
                done.add(id(node))
            elif id(following) in path:
                return True
            elif id(following) not in done:
                path.add(id(following))
                stack.append((following, iter(_in_place(following, root))))
    return False


def evidence_gap(schema: dict[str, Any], path: str) -> str | None:
    """Why ``path`` ("quotes[].quote") can reach no string of an answer; None when it can, or the schema is open."""
    nodes = [schema]
    for step in (s for s in path.split(".") if s):
        key, each = (step[:-2], True) if step.endswith("[]") else (step, False)
        if key:
            nodes = _alternatives(nodes, schema)
            if all("type" in n and "object" not in _types(n) for n in nodes):
                return f"what holds {key!r} is not an object"
            if not all(isinstance(n.get("properties"), dict) for n in nodes):
                return None  # a schema that does not list its properties: nothing to hold the path to
            nodes = [n["properties"][key] for n in nodes if isinstance(n["properties"].get(key), dict)]
            if not nodes:
                return f"the schema has no property {key!r}"
        if each:
            nodes = _alternatives(nodes, schema)
            items = [n["items"] for n in nodes if isinstance(n.get("items"), dict)]
            if not items:
                open_ended = any("type" not in n or "array" in _types(n) for n in nodes)
                return None if open_ended else f"{step!r} is not a list"
            nodes = items
    leaves = _alternatives(nodes, schema)
    return None if any("type" not in n or "string" in _types(n) for n in leaves) else "it is not a string"


def _alternatives(nodes: list[dict[str, Any]], root: dict[str, Any]) -> list[dict[str, Any]]:
    """``nodes`` with what they refer to and combine (allOf/anyOf/oneOf) spelled out."""
    seen: dict[int, dict[str, Any]] = {}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack += [s for s in _in_place(node, root) if s is not node]
    return [n for n in seen.values() if not (set(n) <= {"$ref", *_IN_PLACE, "$defs", "description", "title"}
                                             and ("$ref" in n or any(k in n for k in _IN_PLACE)))]


def _types(node: dict[str, Any]) -> list[Any]:
    kind = node.get("type")
    return kind if isinstance(kind, list) else [kind]
