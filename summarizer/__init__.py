"""summarizer: grounded briefs and event reports from any OpenAI-compatible endpoint."""

from ._version import __version__
from .backends import Backend, Completion, Delta, OutputMode, OutputSpec, Paced, RetryPolicy, Retrying, make_backend
from .backends.openai import OpenAIBackend
from .bulk import BulkRunner, BulkSummary
from .cache import ResultCache
from .client import DocumentLike, Summarizer
from .config import Settings, load_settings
from .documents import Document, fetch_document, read_document
from .errors import (
    ConfigError, InputError, OutputError, OutputValidationError, ProviderError, SummarizerError, TransientError,
    UsageError,
)
from .limits import RateLimiter
from .prompts import PromptLibrary, PromptTemplate
from .schemas import (
    EVENT_TYPES, Brief, ErrorInfo, Event, EventReport, Failure, Participant, Place, Record, Result, TaskName, Usage,
    When, event_report_schema,
)
from .sources import BulkItem
from .tasks import Reask, StreamEvent, TaskOptions, TaskRun, run_task


__all__ = [
    "EVENT_TYPES", "__version__", "Backend", "Brief", "BulkItem", "BulkRunner", "BulkSummary", "Completion", "ConfigError", "Delta",
    "Document", "DocumentLike", "ErrorInfo", "Event", "EventReport", "Failure", "InputError", "OpenAIBackend",
    "OutputError", "OutputMode", "OutputSpec", "OutputValidationError", "Paced", "Participant", "Place",
    "PromptLibrary", "PromptTemplate", "ProviderError", "RateLimiter", "Reask", "Record", "Result", "ResultCache",
    "RetryPolicy", "Retrying", "Settings", "StreamEvent", "Summarizer", "SummarizerError", "TaskName",
    "TaskOptions", "TaskRun", "TransientError", "Usage", "UsageError", "When", "event_report_schema",
    "fetch_document", "load_settings", "make_backend", "read_document", "run_task",
]
