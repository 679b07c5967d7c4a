"""The house reads top-down: every import points down (or sideways), and nothing imports in a circle.

Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are
not counted; imports inside functions are (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "summarizer"

# Top to bottom. A module may import its own layer or any layer below it.
LAYERS: list[set[str]] = [
    {"__main__", "cli", "progress"},
    {"serve", "ray", "evaluation"},
    {"client"},
    {"bulk", "batch", "parquet", "export"},
    {"pipeline"},
    {"sinks", "sources"},
    {"tasks"},
    {"catalog"},
    {"brief", "events", "user_tasks"},
    {"registry"},
    {"verify"},
    {"validation", "constraints", "backends"},
    {"ranking"},
    {"grounding", "candidates", "faithfulness", "facts", "extractive"},
    {"cache", "prompts", "documents", "limits", "config", "options", "otel"},
    {"extract", "fetch", "dates", "language", "gazetteer", "align", "charsets", "status"},
    {"schemas", "errors", "observe", "_resources", "_version", "patterns", "schema_checks"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


def _top(name: str) -> str:
    return name.split(".")[0]


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
            names = [target] if node.module else [f"{target}.{a.name}".lstrip(".") for a in node.names]
            found |= {n for n in names if n}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                full = module or alias.name
                if full.startswith("summarizer."):
                    found.add(full.removeprefix("summarizer."))
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules or _top(m) in modules}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p, _module_name(p)) for p in PACKAGE.rglob("*.py")}


def _layer(name: str) -> int:
    if name == "__init__":
        return -1  # the package's re-exports sit above everything
    for index, layer in enumerate(LAYERS):
        if _top(name) in layer:
            return index
    raise AssertionError(f"summarizer/{name}.py is in no layer: add it to LAYERS in {__file__}")


def test_every_import_points_down() -> None:
    upward = [f"{a} -> {b}" for a, targets in _graph().items() for b in targets
              if _top(a) != _top(b) and _layer(b) < _layer(a)]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_check_sees_imports() -> None:
    graph = _graph()
    assert "pipeline" in graph["bulk"] and "backends" in graph["tasks"] and "backends.base" in graph["backends.openai"]
