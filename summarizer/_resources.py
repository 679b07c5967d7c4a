"""Where the shipped data lives: the prompt templates, the eval set and the example tasks.

In a checkout they are the top-level ``prompts/``, ``evals/`` and ``tasks/``; a wheel
carries them inside the package (``summarizer/prompts``, ``summarizer/evals``,
``summarizer/task_files`` — not ``tasks``, the name of a module — placed there by
hatch's ``force-include``), so an installed copy finds them too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["shipped_dir"]

_CHECKOUT = Path(__file__).resolve().parents[1]


_PACKAGED = {"tasks": "task_files"}


def shipped_dir(name: str) -> Path:
    """``prompts``, ``evals`` or ``tasks``, inside the installed package, else beside it in the checkout."""
    packaged = Path(str(resources.files("summarizer"))) / _PACKAGED.get(name, name)
    return packaged if packaged.is_dir() else _CHECKOUT / name
