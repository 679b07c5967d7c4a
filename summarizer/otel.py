"""OpenTelemetry for a run, after the GenAI semantic conventions (the ``otel`` extra).

One span per document and task (``summarize brief``), under it one ``chat {model}``
span per model call attempt with ``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``/``output_tokens``,
``gen_ai.response.finish_reasons`` and, on failure, ``error.type``. Retries,
re-asks, combine rounds, mode step-downs and cache hits are span events; the
grounding outcome is a ``gen_ai.evaluation.result`` event. Metrics:
``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``.

Message content is recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
is true (documents are often private). ``observer_from_env`` sets the SDK up from the
standard ``OTEL_*`` variables when they ask for an exporter, or uses a provider someone
else set up (``opentelemetry-instrument``); otherwise tracing stays off and costs nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._version import __version__
from .errors import TransientError
from .observe import CallWatch, ModelCall, RunObserver

if TYPE_CHECKING:
    from .backends.base import Completion
    from .schemas import Failure, Result

__all__ = ["CAPTURE_CONTENT", "OtelObserver", "joined_trace", "observer_from_env"]

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# The conventions' advisory bucket boundaries.
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_SECOND_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_MAX_EXPLANATION = 1000


class OtelObserver(RunObserver):
    """Spans, metrics and events for every step of a run (see the module docstring)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None,
                 capture_content: bool | None = None) -> None:
        from opentelemetry import metrics, trace

        self._trace = trace
        self.tracer = trace.get_tracer("summarizer", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("summarizer", __version__, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per model call, by type.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of each model call.",
            explicit_bucket_boundaries_advisory=_SECOND_BUCKETS)
        self.capture_content = _env_true(CAPTURE_CONTENT) if capture_content is None else capture_content

    @contextlib.contextmanager
    def document(self, task: str, document_id: str) -> Iterator[None]:
        attributes = {"summarizer.task": task, "summarizer.document.id": document_id}
        with self.tracer.start_as_current_span(f"summarize {task}", attributes=attributes):
            yield

    def document_done(self, record: Result[Any] | Failure) -> None:
        span = self._trace.get_current_span()
        span.set_attributes({
            "summarizer.status": record.status, "summarizer.cached": record.cached,
            "summarizer.requests": record.usage.requests, "summarizer.retries": record.usage.retries,
            "summarizer.reasks": record.usage.reasks, "gen_ai.usage.input_tokens": record.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": record.usage.completion_tokens,
        })
        if record.prompt_version:
            span.set_attribute("summarizer.prompt_version", record.prompt_version)
        if record.error is not None:
            span.set_attribute("error.type", record.error.code)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, record.error.code))

    @contextlib.contextmanager
    def model_call(self, call: ModelCall) -> Iterator[CallWatch]:
        from opentelemetry.trace import SpanKind

        attributes = _call_attributes(call)
        if self.capture_content:
            attributes["gen_ai.input.messages"] = json.dumps(list(call.messages), ensure_ascii=False)
        with self.tracer.start_as_current_span(f"{call.operation} {call.model}", kind=SpanKind.CLIENT,
                                               attributes=attributes, record_exception=False,
                                               set_status_on_exception=False) as span:
            yield _Watch(self, span, attributes)

    def retry(self, error: BaseException, attempt: int, delay: float) -> None:
        self._event("summarizer.retry", {"summarizer.attempt": attempt, "summarizer.delay_s": round(delay, 3),
                                         "error.type": _error_type(error)})

    def reask(self, errors: list[str], reasks: int) -> None:
        self._event("summarizer.reask", {"summarizer.reasks": reasks, "summarizer.errors": errors[:20]})

    def validation_failed(self, errors: list[str]) -> None:
        self._event("summarizer.validation_failed", {"summarizer.errors": errors[:20]})

    def combine(self, round_: int, groups: int, parts: int) -> None:
        self._event("summarizer.combine", {"summarizer.round": round_, "summarizer.groups": groups,
                                           "summarizer.parts": parts})

    def mode_stepdown(self, server: str, rejected: str, next_mode: str) -> None:
        self._event("summarizer.mode_stepdown", {"server.address": _host(server) or server,
                                                 "summarizer.rejected_mode": rejected, "summarizer.next_mode": next_mode})

    def cache_hit(self) -> None:
        self._event("summarizer.cache_hit", {})

    def grounding(self, warnings: list[str]) -> None:
        explanation = "; ".join(warnings)
        self._event("gen_ai.evaluation.result", {
            "gen_ai.evaluation.name": "summarizer.grounding",
            "gen_ai.evaluation.score.label": "fail" if warnings else "pass",
            "gen_ai.evaluation.score.value": float(len(warnings)),
            "gen_ai.evaluation.explanation": explanation[:_MAX_EXPLANATION] or "every checked claim is in the source",
        })

    def _event(self, name: str, attributes: dict[str, Any]) -> None:
        self._trace.get_current_span().add_event(name, attributes)


class _Watch(CallWatch):
    def __init__(self, observer: OtelObserver, span: Any, attributes: dict[str, Any]) -> None:
        self.observer, self.span, self.started = observer, span, time.perf_counter()
        # Metric attributes: low cardinality (no document, no message).
        self.metric: dict[str, Any] = {k: attributes[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name",
                                                  "gen_ai.request.model", "server.address") if k in attributes}

    def done(self, completion: Completion) -> None:
        usage = completion.usage
        self.span.set_attributes({
            "gen_ai.response.model": completion.model, "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.response.finish_reasons": [completion.finish_reason or "unknown"],
            "summarizer.output_mode": completion.mode,
        })
        if self.observer.capture_content:
            self.span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": completion.text}],
                  "finish_reason": completion.finish_reason or "unknown"}], ensure_ascii=False))
        metric = {**self.metric, "gen_ai.response.model": completion.model}
        self.observer.token_usage.record(usage.prompt_tokens, {**metric, "gen_ai.token.type": "input"})
        self.observer.token_usage.record(usage.completion_tokens, {**metric, "gen_ai.token.type": "output"})
        self.observer.duration.record(time.perf_counter() - self.started, metric)

    def failed(self, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        kind = _error_type(error)
        self.span.set_attribute("error.type", kind)
        self.span.set_status(Status(StatusCode.ERROR, kind))
        self.observer.duration.record(time.perf_counter() - self.started, {**self.metric, "error.type": kind})


def _call_attributes(call: ModelCall) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": call.operation, "gen_ai.provider.name": call.provider,
        "gen_ai.request.model": call.model,
    }
    for key, name in (("max_tokens", "gen_ai.request.max_tokens"), ("temperature", "gen_ai.request.temperature")):
        if isinstance(call.params.get(key), (int, float)):
            attributes[name] = call.params[key]
    if call.server:
        parts = urlsplit(call.server)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attributes


def _error_type(error: BaseException) -> str:
    # Low cardinality, as the conventions ask: an HTTP status when there is one, else the class.
    if isinstance(error, TransientError) and error.status is not None:
        return str(error.status)
    return type(error).__name__


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# -- set-up from the environment -------------------------------------------------------------------

_EXPORTER_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


def observer_from_env() -> OtelObserver | None:
    """An observer when OpenTelemetry is asked for, else None (and nothing imported).

    Asked for: an SDK provider is already installed (``opentelemetry-instrument``), or the
    standard variables name an exporter (``OTEL_TRACES_EXPORTER=otlp|console``,
    ``OTEL_EXPORTER_OTLP_ENDPOINT=…``). ``OTEL_SDK_DISABLED=true`` turns it all off.
    """
    if _env_true("OTEL_SDK_DISABLED"):
        return None
    wanted = any(os.environ.get(name) for name in _EXPORTER_VARIABLES)
    try:
        from opentelemetry import trace
    except ImportError:
        if wanted:
            from .errors import ConfigError

            raise ConfigError("OTEL_* variables ask for tracing, which needs the otel extra: "
                              "pip install 'summarizer[otel]'") from None
        return None
    if _sdk_installed(trace.get_tracer_provider()):
        return OtelObserver()
    if not wanted:
        return None
    _configure_sdk()
    return OtelObserver()


@contextlib.contextmanager
def joined_trace(headers: Mapping[str, str]) -> Iterator[None]:
    """The caller's trace (``traceparent``) made current for the code inside: a service's spans join it.

    Nothing is imported when OpenTelemetry is not installed or nobody set it up.
    """
    if "traceparent" not in headers:
        yield
        return
    try:
        from opentelemetry import context, propagate
    except ImportError:
        yield
        return
    token = context.attach(propagate.extract(headers))
    try:
        yield
    finally:
        context.detach(token)


def _sdk_installed(provider: Any) -> bool:
    return type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")


def _configure_sdk() -> None:
    """The SDK's providers with the exporters the standard variables name (otlp by default)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "summarizer"})
    tracer_provider = TracerProvider(resource=resource)
    traces = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if traces == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    readers = []
    exported = os.environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower()
    if exported == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif exported == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)
    # Flush what a short CLI run recorded before the process ends.
    atexit.register(meter_provider.shutdown)
    atexit.register(tracer_provider.shutdown)
