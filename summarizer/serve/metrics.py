"""Prometheus metrics of one service instance (its own registry: nothing global)."""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("summarizer_http_requests_total", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("summarizer_http_request_duration_seconds", "HTTP request latency by route.",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.documents = Counter("summarizer_documents_total", "Documents summarised, by task and outcome code.",
                                 ["task", "outcome"], registry=self.registry)
        self.tokens = Counter("summarizer_tokens_total", "Model tokens, by direction (in = prompt, out = completion).",
                              ["direction"], registry=self.registry)
        self.model_requests = Counter("summarizer_model_requests_total", "Requests sent to the model.",
                                      registry=self.registry)
        self.retries = Counter("summarizer_retries_total", "Transport retries.", registry=self.registry)
        self.reasks = Counter("summarizer_reasks_total", "Re-asks after invalid model output.", registry=self.registry)
        self.cache_hits = Counter("summarizer_cache_hits_total", "Results served from the cache.",
                                  registry=self.registry)
        self.queue_depth = Gauge("summarizer_queue_depth", "Model calls waiting for a place in the pool.",
                                 registry=self.registry)
        self.in_flight = Gauge("summarizer_model_calls_in_flight", "Model calls running.", registry=self.registry)
        self.jobs = Gauge("summarizer_jobs", "Jobs by state.", ["state"], registry=self.registry)

    def record(self, record: Any) -> None:
        """Count one Result or Failure: outcome, tokens, requests, retries, re-asks, cache hit."""
        outcome = "ok" if record.status == "ok" else (record.error.code if record.error else "error")
        self.documents.labels(record.task, outcome).inc()
        usage = record.usage
        self.tokens.labels("in").inc(usage.prompt_tokens)
        self.tokens.labels("out").inc(usage.completion_tokens)
        self.model_requests.inc(usage.requests)
        self.retries.inc(usage.retries)
        self.reasks.inc(usage.reasks)
        if record.cached:
            self.cache_hits.inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
