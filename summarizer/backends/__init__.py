"""Backends: one interface to a model, whatever serves it.

``base`` defines the interface (Backend, Completion, OutputSpec, OutputMode);
``openai`` speaks to any OpenAI-compatible endpoint, ``local`` runs the
embedded model; ``layer`` is the base of the layers any backend can be wrapped
in — ``retry``, ``paced``, ``Observed``; ``grammar`` holds what llama.cpp's
grammars need; ``factory`` chooses a backend from Settings (a plugin's too) and
imports it only when chosen. Names are imported on first use: the interface
costs nothing to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import TEXT, Backend, BatchEndpoint, Capabilities, Completion, Delta, Message, OutputMode, OutputSpec

if TYPE_CHECKING:
    from .factory import from_settings, make_backend, retry_policy
    from .paced import Paced
    from .retry import RetryPolicy, Retrying

__all__ = [
    "TEXT", "Backend", "BatchEndpoint", "Capabilities", "Completion", "Delta", "Message", "OutputMode", "OutputSpec", "Paced", "RetryPolicy",
    "Retrying", "from_settings", "make_backend", "retry_policy",
]

_LAZY = {"Paced": "paced", "RetryPolicy": "retry", "Retrying": "retry", "from_settings": "factory",
         "make_backend": "factory", "retry_policy": "factory"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'summarizer.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
