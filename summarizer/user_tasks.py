"""Tasks users add without writing a driver: a prompt file and a JSON Schema, or a pydantic model.

A tasks folder holds, per task, ``<name>.toml`` — a prompt template (``system``,
``user`` with ``$document``, ``reask`` with ``$errors``, ``version``, ``[params]``)
with an optional ``[task]`` table — and ``<name>.schema.json``, the JSON Schema of
its answer. ``[task]`` may say ``description``, ``evidence`` (paths such as
``"quotes[].quote"`` whose strings must be verbatim quotes from the document),
``version`` (of the answer's shape) and ``schema`` (another schema file name).
``<name>_combine.toml``, if present, merges the parts of a long document;
otherwise the shipped ``task_combine`` template does.

The answer is validated against the schema (``jsonschema``), its evidence
checked against the source, and any problem sent back in a re-ask — the same
loop as the built-in tasks. Plugins register ``TaskSpec`` objects (or callables
returning them) under the entry point group ``summarizer.tasks``; ``model_task``
builds one from a pydantic model.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tomllib
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel, ValidationError

from ._resources import shipped_dir
from .errors import ConfigError
from .grounding import SourceIndex
from .options import TaskOptions
from .prompts import PromptTemplate, template_from_data
from .registry import RESERVED_NAMES, TaskSpec, task_name_pattern
from .schema_checks import evidence_gap, structure_problem

__all__ = ["Extraction", "evidence_strings", "from_entry_points", "load_folder", "load_task", "model_task",
           "shipped_tasks_dir"]

_MAX_TASK_FILE = 1024 * 1024  # a prompt or a schema larger than this is not a task definition
_TASK_KEYS = {"description", "evidence", "version", "schema"}


class Extraction(RootModel[dict[str, Any]]):
    """The answer of a task defined by a JSON Schema: the JSON object itself."""


def shipped_tasks_dir() -> Path:
    """The example tasks that ship with summarizer (``tasks/`` in a checkout)."""
    return shipped_dir("tasks")


def load_folder(directory: Path, *, origin: str | None = None) -> list[TaskSpec[Any]]:
    """Every task in ``directory`` (``*.toml`` but ``*_combine.toml``); ConfigError for a bad one, naming it."""
    if not directory.is_dir():
        if origin == "shipped":
            return []
        raise ConfigError(f"tasks directory {directory} does not exist")
    names = sorted(p.stem for p in directory.glob("*.toml") if not p.stem.endswith("_combine"))
    return [load_task(directory / f"{name}.toml", origin=origin) for name in names]


def load_task(path: Path, *, origin: str | None = None) -> TaskSpec[Any]:
    """The task defined by ``path`` (a prompt TOML) and its schema file."""
    name = path.stem
    where = origin and f"{origin} {path.name}" or str(path)
    if not task_name_pattern.match(name):
        raise ConfigError(f"task file {where}: a task name is lower-case letters, digits and _ (at most 40)")
    if name in RESERVED_NAMES:
        raise ConfigError(f"task file {where}: the name {name!r} is taken by a command, route or prompt of "
                          "summarizer: choose another")
    data = _toml(path, where)
    task = data.pop("task", {})
    if not isinstance(task, dict) or set(task) - _TASK_KEYS:
        unknown = ", ".join(sorted(set(task) - _TASK_KEYS)) if isinstance(task, dict) else "not a table"
        raise ConfigError(f"task file {where}: [task]: unknown key(s) {unknown}; known: {', '.join(sorted(_TASK_KEYS))}")
    template = template_from_data(name, data, where)
    schema_path = path.with_name(_schema_name(task.get("schema") or f"{name}.schema.json", where))
    schema = _schema(schema_path, where, check=origin != "shipped")
    evidence = _evidence_paths(task.get("evidence", []), where)
    for evidence_path in evidence:
        gap = evidence_gap(schema, evidence_path)
        if gap:
            raise ConfigError(f"task file {where}: [task] evidence {evidence_path!r} can never hold a quote "
                              f"({gap}), so none would be checked")
    templates = {name: template}
    combine = path.with_name(f"{name}_combine.toml")
    combine_name = "task_combine"
    if combine.is_file():
        templates[combine.stem] = template_from_data(combine.stem, _toml(combine, str(combine)), str(combine))
        combine_name = combine.stem
    return TaskSpec(
        name=name, value_model=Extraction, validate=_schema_validator(schema, evidence, where), schema=schema,
        strict_schema=_strict_compatible(schema), description=str(task.get("description") or template.description),
        version=str(task.get("version", "1")), evidence=evidence, combine_prompt=combine_name,
        templates=templates, origin=where, options=("language",),
    )


def model_task(
    name: str, model: type[BaseModel], *, system: str, user: str, reask: str, description: str = "",
    version: str = "1", evidence: tuple[str, ...] = (), params: dict[str, Any] | None = None,
) -> TaskSpec[Any]:
    """A task whose answer is ``model`` (a plugin's pydantic model), asked with the given prompt texts."""
    template = template_from_data(name, {"version": version, "description": description, "system": system,
                                         "user": user, "reask": reask, "params": params or {}}, f"plugin task {name}")

    def validate(raw: str, finish: str | None, source: SourceIndex, options: TaskOptions) -> tuple[Any, list[str]]:
        data = _parsed(raw, finish)
        try:
            value = model.model_validate(data)
        except ValidationError as exc:
            from .validation import Invalid, pydantic_errors

            raise Invalid(pydantic_errors(exc)) from None
        _check_evidence(value.model_dump(mode="json"), evidence, source)
        return value, []

    schema = model.model_json_schema()
    return TaskSpec(name=name, value_model=model, validate=validate, schema=schema,
                    strict_schema=_strict_compatible(schema), description=description, version=version,
                    evidence=evidence, combine_prompt="task_combine", templates={name: template},
                    origin=f"plugin task {name}")


def from_entry_points(group: str = "summarizer.tasks") -> list[TaskSpec[Any]]:
    """Tasks installed plugins declare: each entry point is a TaskSpec, or a callable returning one (or a list)."""
    found: list[TaskSpec[Any]] = []
    for point in metadata.entry_points(group=group):
        try:
            loaded = point.load()
            made = loaded() if callable(loaded) and not isinstance(loaded, TaskSpec) else loaded
        except Exception as exc:  # noqa: BLE001 - a broken plugin is named, never a traceback
            raise ConfigError(f"task plugin {point.name} ({point.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from None
        specs = made if isinstance(made, (list, tuple)) else [made]
        for spec in specs:
            if not isinstance(spec, TaskSpec):
                raise ConfigError(f"task plugin {point.name} ({point.value}) gave a {type(spec).__name__}, "
                                  "not a summarizer.TaskSpec")
            found.append(spec)
    return found


# -- validation of an answer --------------------------------------------------------------------------


def _schema_validator(schema: dict[str, Any], evidence: tuple[str, ...],
                      where: str = "") -> Callable[..., tuple[Any, list[str]]]:
    checkers: list[Any] = []  # made on the first answer: jsonschema is not imported to list the tasks

    def validate(raw: str, finish: str | None, source: SourceIndex, options: TaskOptions) -> tuple[Any, list[str]]:
        from jsonschema import Draft202012Validator
        from referencing.exceptions import Unresolvable

        from .validation import Invalid

        if not checkers:
            checkers.append(Draft202012Validator(schema))
        data = _parsed(raw, finish)
        try:
            errors = sorted(checkers[0].iter_errors(data), key=lambda e: list(e.absolute_path))[:12]
        except RecursionError:
            raise Invalid(["the JSON is nested too deeply: write a flatter answer"]) from None
        except Unresolvable as exc:  # a $ref the load-time check could not see (one inside a property named "enum")
            raise ConfigError(f"task file {where}: its schema has a $ref that cannot be followed: "
                              f"{str(exc)[:160]}") from None
        if errors:
            raise Invalid([f"{_where(list(e.absolute_path))}: {e.message[:300]}" for e in errors])
        _check_evidence(data, evidence, source)
        return Extraction(data), []

    return validate


def _parsed(raw: str, finish: str | None) -> Any:
    from .validation import Invalid, extract_json

    try:
        return extract_json(raw)
    except ValueError as exc:
        cut = "the output was cut off before the JSON ended; " if finish == "length" else ""
        raise Invalid([f"{cut}{exc}"]) from None


def _check_evidence(data: Any, paths: tuple[str, ...], source: SourceIndex) -> None:
    missing = [f"{where} is not a verbatim quote from the document: {quote[:160]!r}"
               for path in paths for where, quote in evidence_strings(data, path) if source.locate(quote) is None]
    if missing:
        from .validation import Invalid

        raise Invalid(missing[:12])


def evidence_strings(data: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(where, string)`` for every string at ``path`` ("quotes[].quote": each quote of each item)."""

    def walk(node: Any, steps: list[str], where: str) -> Iterator[tuple[str, str]]:
        if not steps:
            if isinstance(node, str):
                yield where, node
            return
        step, rest = steps[0], steps[1:]
        key, each = (step[:-2], True) if step.endswith("[]") else (step, False)
        child = node.get(key) if key and isinstance(node, dict) else node if not key else None
        label = f"{where}.{key}" if key and where else key or where
        if each:
            for i, item in enumerate(child if isinstance(child, list) else []):
                yield from walk(item, rest, f"{label}[{i}]")
        elif child is not None:
            yield from walk(child, rest, label)

    yield from walk(data, [s for s in path.split(".") if s], "")


def _where(path: list[Any]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "root"


# -- reading task files ---------------------------------------------------------------------------------


def _read_regular(path: Path) -> bytes:
    """At most 1 MiB + 1 bytes of ``path``; OSError unless it is a regular file (a FIFO or a device never ends)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens at once instead of blocking
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read(_MAX_TASK_FILE + 1)


def _toml(path: Path, where: str) -> dict[str, Any]:
    try:
        raw = _read_regular(path)
        if len(raw) > _MAX_TASK_FILE:
            raise ConfigError(f"task file {where} is larger than 1 MiB")
        return tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read task file {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"task file {where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"task file {where} is not valid TOML: {exc}") from None


def _schema(path: Path, where: str, *, check: bool = True) -> dict[str, Any]:
    """The task's JSON Schema; ``check``: that it is a valid one (the shipped tasks' are, by a test)."""
    try:
        raw = _read_regular(path)
    except FileNotFoundError:
        raise ConfigError(f"task file {where}: its schema {path.name} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"task file {where}: cannot read its schema {path.name}: {exc.strerror}") from None
    if len(raw) > _MAX_TASK_FILE:
        raise ConfigError(f"task file {where}: its schema {path.name} is larger than 1 MiB")
    try:
        schema = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"task file {where}: its schema {path.name} is not JSON ({exc})") from None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ConfigError(f"task file {where}: its schema {path.name} must describe a JSON object (\"type\": \"object\")")
    if not check:
        return schema
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    problem = structure_problem(schema)
    if problem:
        raise ConfigError(f"task file {where}: its schema {path.name} {problem}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"task file {where}: its schema {path.name} is not a valid JSON Schema: "
                          f"{exc.message[:200]}") from None
    return schema


def _schema_name(value: Any, where: str) -> str:
    """``[task] schema``: a file beside the prompt, never a path that leads elsewhere."""
    if not isinstance(value, str) or Path(value).name != value or value in (".", "..") or "\x00" in value:
        raise ConfigError(f"task file {where}: [task] schema must name a file in the same folder, "
                          f"not {str(value)[:80]!r}")
    return value


def _evidence_paths(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ConfigError(f"task file {where}: [task] evidence must be a list of paths like \"quotes[].quote\"")
    return tuple(p.strip() for p in value)


def _strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes ``schema``: every object closed and every property required."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(properties):
                return False
        return all(_strict_compatible(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_strict_compatible(v) for v in schema)
    return True
