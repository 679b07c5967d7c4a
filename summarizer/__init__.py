"""summarizer: grounded briefs, event reports and user-defined tasks from any OpenAI-compatible endpoint.

The public API is re-exported here and imported on first use (PEP 562): ``import summarizer``
and ``summarizer --help`` stay fast, and a name costs only the modules behind it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .align import Aligner, Alignment
    from .backends import Backend, Completion, Delta, OutputMode, OutputSpec, Paced, RetryPolicy, Retrying, make_backend
    from .backends.base import Capabilities
    from .backends.layer import Layer, Observed
    from .backends.openai import OpenAIBackend
    from .bulk import BulkRunner, BulkSummary
    from .cache import ResultCache
    from .catalog import default_registry
    from .client import BulkSettings, DocumentLike, OptionSettings, SourceSettings, Summarizer
    from .config import Settings, load_settings
    from .faithfulness import Check, check
    from .documents import Document, fetch_document, read_document
    from .errors import (
        ClusterError, ConfigError, InputError, OutputError, OutputValidationError, ProviderError, SummarizerError,
        TransientError, UsageError,
    )
    from .limits import RateLimiter
    from .observe import CallWatch, ModelCall, Observers, RunObserver
    from .options import TaskOptions
    from .pipeline import DocumentPipeline
    from .prompts import PromptLibrary, PromptTemplate
    from .registry import OutputContext, TaskRegistry, TaskSpec
    from .schemas import (
        EVENT_TYPES, Brief, CheckedSentence, ErrorInfo, Event, EventReport, Evidence, Failure, Issue, Participant,
        Place, Record, Result, SourceText, Span, TaskName, Usage, When, event_report_schema,
    )
    from .sources import BulkItem
    from .tasks import Reask, RunProgress, StreamEvent, TaskRun, run_task
    from .user_tasks import Extraction, model_task

_WHERE = {
    "align": ["Aligner", "Alignment"],
    "faithfulness": ["Check", "check"],
    "backends": ["Backend", "Completion", "Delta", "OutputMode", "OutputSpec", "Paced", "RetryPolicy", "Retrying",
                 "make_backend"],
    "backends.base": ["Capabilities"],
    "backends.layer": ["Layer", "Observed"],
    "backends.openai": ["OpenAIBackend"],
    "bulk": ["BulkRunner", "BulkSummary"],
    "cache": ["ResultCache"],
    "client": ["BulkSettings", "DocumentLike", "OptionSettings", "SourceSettings", "Summarizer"],
    "config": ["Settings", "load_settings"],
    "documents": ["Document", "fetch_document", "read_document"],
    "errors": ["ClusterError", "ConfigError", "InputError", "OutputError", "OutputValidationError", "ProviderError",
               "SummarizerError", "TransientError", "UsageError"],
    "limits": ["RateLimiter"],
    "observe": ["CallWatch", "ModelCall", "Observers", "RunObserver"],
    "options": ["TaskOptions"],
    "pipeline": ["DocumentPipeline"],
    "prompts": ["PromptLibrary", "PromptTemplate"],
    "catalog": ["default_registry"],
    "registry": ["OutputContext", "TaskRegistry", "TaskSpec"],
    "schemas": ["EVENT_TYPES", "Brief", "CheckedSentence", "ErrorInfo", "Event", "EventReport", "Evidence", "Failure",
                "Issue", "Participant", "Place", "SourceText", "Span",
                "Record", "Result", "TaskName", "Usage", "When", "event_report_schema"],
    "sources": ["BulkItem"],
    "tasks": ["Reask", "RunProgress", "StreamEvent", "TaskRun", "run_task"],
    "user_tasks": ["Extraction", "model_task"],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "Aligner", "Alignment", "Backend", "Brief", "BulkItem", "BulkRunner", "BulkSettings", "BulkSummary",
    "CallWatch", "Capabilities", "Check", "CheckedSentence", "ClusterError", "Completion", "ConfigError", "Delta",
    "Document",
    "DocumentLike", "DocumentPipeline", "EVENT_TYPES", "ErrorInfo", "Event", "EventReport", "Evidence",
    "Extraction", "Failure", "InputError", "Issue", "Layer", "ModelCall", "Observed", "Observers",
    "OpenAIBackend", "OptionSettings", "OutputContext", "OutputError", "OutputMode", "OutputSpec",
    "OutputValidationError", "Paced", "Participant", "Place", "PromptLibrary", "PromptTemplate", "ProviderError",
    "RateLimiter", "Reask", "Record", "Result", "ResultCache", "RetryPolicy", "Retrying", "RunObserver", "RunProgress",
    "Settings", "SourceSettings", "SourceText", "Span", "StreamEvent", "Summarizer", "SummarizerError",
    "TaskName", "TaskOptions", "TaskRegistry", "TaskRun", "TaskSpec", "TransientError", "Usage", "UsageError",
    "When", "__version__", "check", "default_registry", "event_report_schema", "load_settings", "make_backend",
    "fetch_document", "model_task", "read_document", "run_task",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'summarizer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return __all__
