"""summarizer: grounded briefs and event reports from any OpenAI-compatible endpoint."""

from .client import Summarizer
from .config import Settings, load_settings
from .documents import Document, read_document
from .errors import ConfigError, InputError, OutputValidationError, ProviderError, SummarizerError
from .llm import Backend, Completion, OpenAIBackend, make_backend
from .prompts import PromptLibrary, PromptTemplate
from .schemas import (
    EVENT_TYPES,
    Brief,
    ErrorInfo,
    Event,
    EventReport,
    Participant,
    Place,
    Result,
    Usage,
    When,
    event_report_schema,
)
from .tasks import TaskOptions, run_task

__version__ = "0.1.0"

__all__ = [
    "EVENT_TYPES", "Backend", "Brief", "Completion", "ConfigError", "Document", "ErrorInfo",
    "Event", "EventReport", "InputError", "OpenAIBackend", "OutputValidationError", "Participant",
    "Place", "PromptLibrary", "PromptTemplate", "ProviderError", "Result", "Settings", "Summarizer",
    "SummarizerError", "TaskOptions", "Usage", "When", "event_report_schema", "load_settings",
    "make_backend", "read_document", "run_task",
]
