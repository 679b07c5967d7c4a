"""OpenTelemetry after the GenAI semantic conventions, read back from the SDK's in-memory exporters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SECRET, UNGA
from fake_server import FakeServer

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from summarizer import Summarizer  # noqa: E402
from summarizer.otel import OtelObserver  # noqa: E402

BODY = UNGA.read_text().split("\n")[0]


class Telemetry:
    def __init__(self, capture_content: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.observer = OtelObserver(tracer_provider=tracer_provider,
                                     meter_provider=MeterProvider(metric_readers=[self.metrics]),
                                     capture_content=capture_content)

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        return [point for resource in data.resource_metrics for scope in resource.scope_metrics
                for metric in scope.metrics if metric.name == name for point in metric.data.data_points]


def summarizer(fake: FakeServer, telemetry: Telemetry) -> Summarizer:
    return Summarizer(base_url=fake.base_url, model="fake-model", api_key=SECRET, observer=telemetry.observer,
                      max_retry_wait=0.05)


def test_a_brief_with_one_retry_and_one_reask(fake: FakeServer) -> None:
    telemetry = Telemetry()
    fake.script.extend(["429", "preamble"])  # a transient failure, then an answer that breaks a rule
    with summarizer(fake, telemetry) as s:
        result = s.brief(BODY)
    assert result.usage.retries == 1 and result.usage.reasks == 1

    spans = telemetry.finished()
    [document] = [s for s in spans if s.name == "summarize brief"]
    calls = sorted((s for s in spans if s.name == "chat fake-model"), key=lambda s: s.start_time)
    assert len(spans) == 4 and len(calls) == 3
    assert all(c.parent is not None and c.parent.span_id == document.context.span_id for c in calls)
    assert document.parent is None and document.attributes["summarizer.task"] == "brief"
    assert document.attributes["summarizer.status"] == "ok" and document.attributes["summarizer.reasks"] == 1

    failed, invalid, accepted = calls
    assert all(c.kind is SpanKind.CLIENT for c in calls)
    for call in calls:
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.provider.name"] == "openai"
        assert call.attributes["gen_ai.request.model"] == "fake-model"
        assert call.attributes["server.address"] == "127.0.0.1"
        assert "gen_ai.input.messages" not in call.attributes  # content only when opted in
    assert failed.attributes["error.type"] == "429" and failed.status.status_code is StatusCode.ERROR
    for call in (invalid, accepted):
        assert call.attributes["gen_ai.usage.input_tokens"] > 0 and call.attributes["gen_ai.usage.output_tokens"] > 0
        assert call.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert "error.type" not in call.attributes

    events = [e.name for e in document.events]
    assert events == ["summarizer.retry", "summarizer.reask", "gen_ai.evaluation.result"]
    reask = document.events[1]
    assert "starts with a preamble" in reask.attributes["summarizer.errors"][0]
    evaluation = document.events[2].attributes
    assert evaluation["gen_ai.evaluation.name"] == "summarizer.grounding"
    assert evaluation["gen_ai.evaluation.score.label"] == "pass"

    durations = telemetry.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 3
    assert {p.attributes.get("error.type") for p in durations} == {"429", None}
    tokens = telemetry.points("gen_ai.client.token.usage")
    assert {p.attributes["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    assert all(p.count == 2 for p in tokens)  # the two calls that answered


def test_a_bulk_of_three_documents_has_a_span_per_document(fake: FakeServer) -> None:
    telemetry = Telemetry()
    with summarizer(fake, telemetry) as s:
        records = list(s.bulk([(f"d{i}", f"Report {i}. {BODY}") for i in range(3)], task="events", cache=False))
    assert [r.status for r in records] == ["ok"] * 3
    spans = telemetry.finished()
    documents = {s.attributes["summarizer.document.id"]: s for s in spans if s.name == "summarize events"}
    assert sorted(documents) == ["d0", "d1", "d2"]
    calls = [s for s in spans if s.name == "chat fake-model"]
    assert len(calls) == 3
    assert {c.parent.span_id for c in calls} == {d.context.span_id for d in documents.values()}
    assert len({d.context.trace_id for d in documents.values()}) == 3  # one trace per document
    assert sum(p.count for p in telemetry.points("gen_ai.client.token.usage")) == 6


def test_message_content_only_when_asked(fake: FakeServer) -> None:
    telemetry = Telemetry(capture_content=True)
    with summarizer(fake, telemetry) as s:
        s.brief(BODY)
    [call] = [s for s in telemetry.finished() if s.name.startswith("chat")]
    sent = json.loads(call.attributes["gen_ai.input.messages"])
    assert sent[0]["role"] == "system" and BODY in sent[1]["content"]
    answered = json.loads(call.attributes["gen_ai.output.messages"])
    assert answered[0]["role"] == "assistant" and answered[0]["parts"][0]["content"]


def test_a_failed_document_marks_its_span(fake: FakeServer) -> None:
    telemetry = Telemetry()
    fake.script.extend(["invalid", "invalid", "invalid"])
    with summarizer(fake, telemetry) as s:
        [record] = list(s.bulk([("bad", BODY)], task="events", cache=False))
    assert record.status == "error"
    [document] = [s for s in telemetry.finished() if s.name == "summarize events"]
    assert document.status.status_code is StatusCode.ERROR
    assert document.attributes["error.type"] == "output_invalid"
    assert [e.name for e in document.events] == ["summarizer.reask", "summarizer.reask",
                                                 "summarizer.validation_failed"]


def test_the_cli_sets_up_the_sdk_from_the_standard_variables(fake: FakeServer, tmp_path: Any) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "summarizer", "brief", str(UNGA), "--base-url", fake.base_url, "--model", "m"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OTEL_TRACES_EXPORTER": "console",
             "OTEL_METRICS_EXPORTER": "none", "OTEL_SERVICE_NAME": "brief-test", "SUMMARIZER_API_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    assert '"name": "summarize brief"' in result.stdout and '"name": "chat m"' in result.stdout
    assert '"service.name": "brief-test"' in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_the_service_joins_the_callers_trace(fake: FakeServer, tmp_path: Any) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    import os
    import signal
    import subprocess
    import sys

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_", "OTEL_"))}
    env.update(SUMMARIZER_BASE_URL=fake.base_url, SUMMARIZER_MODEL="m", OTEL_TRACES_EXPORTER="console",
               OTEL_METRICS_EXPORTER="none", OTEL_SERVICE_NAME="svc", XDG_CACHE_HOME=str(tmp_path / "cache"))
    spans = tmp_path / "spans.txt"
    with spans.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "summarizer", "serve", "--port", "0", "--no-auth",
                                 "--data-dir", str(tmp_path / "data")], env=env, stdout=out,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            url = next(line.split("serving on ", 1)[1].split()[0] for line in proc.stderr if "serving on " in line)
            trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
            answer = httpx.post(f"{url}/v1/brief", json={"text": BODY},
                                headers={"traceparent": f"00-{trace}-{parent}-01"}, timeout=60)
            assert answer.status_code == 200, answer.text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    printed = spans.read_text()
    assert '"name": "summarize brief"' in printed and f'"trace_id": "0x{trace}"' in printed
    assert f'"parent_id": "0x{parent}"' in printed  # the document's span hangs under the caller's
