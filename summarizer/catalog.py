"""The tasks summarizer knows: built in, shipped as examples, from installed plugins, from a tasks folder."""

from __future__ import annotations

from pathlib import Path

from . import brief, events, user_tasks
from .registry import TaskRegistry

__all__ = ["default_registry"]

_BUILT_IN: TaskRegistry | None = None


def default_registry(tasks_dirs: list[Path] | tuple[Path, ...] = ()) -> TaskRegistry:
    """Built-in tasks, then the shipped example tasks, installed plugins' and each of ``tasks_dirs``' tasks.

    A task folder or plugin that defines a name twice, or a bad task file, is a ConfigError
    naming the file: never a task silently missing. A folder's task named like a shipped
    example (a copy of ``tasks/``, edited) replaces the example.
    """
    global _BUILT_IN
    if _BUILT_IN is None:
        built = TaskRegistry()
        built.register(brief.SPEC)
        built.register(events.SPEC)
        for spec in user_tasks.load_folder(user_tasks.shipped_tasks_dir(), origin="shipped"):
            built.register(spec)
        for spec in user_tasks.from_entry_points():
            built.register(spec)
        _BUILT_IN = built
    registry = _BUILT_IN.copy()
    for directory in tasks_dirs:
        for spec in user_tasks.load_folder(Path(directory)):
            # The shipped examples are there to be copied and changed: a folder's own version takes their place.
            registry.register(spec, replace=spec.name in registry and _shipped(registry.get(spec.name).origin))
    return registry


def _shipped(origin: str) -> bool:
    return origin.startswith("shipped ")
