"""Where the shipped data lives: the prompt templates and the eval set.

In a checkout they are the top-level ``prompts/`` and ``evals/``; a wheel
carries them inside the package (``summarizer/prompts``, ``summarizer/evals``,
placed there by hatch's ``force-include``), so an installed copy finds them too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["shipped_dir"]

_CHECKOUT = Path(__file__).resolve().parents[1]


def shipped_dir(name: str) -> Path:
    """``prompts`` or ``evals``, inside the installed package, else beside it in the checkout."""
    packaged = Path(str(resources.files("summarizer"))) / name
    return packaged if packaged.is_dir() else _CHECKOUT / name
