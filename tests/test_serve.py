"""The real `summarizer serve` in a subprocess on a free loopback port, against the fake model server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import UNGA
from fake_server import FakeServer

pytest.importorskip("fastapi", reason="the serve extra is not installed")

TOKEN = "tok-alpha-0123456789abcdef"
OTHER = "tok-bravo-0123456789abcdef"
TEXT = UNGA.read_text("utf-8")
BODY = TEXT.split("\n")[0]


@dataclass
class Service:
    url: str
    proc: subprocess.Popen[str]
    data_dir: Path
    stderr: list[str] = field(default_factory=list)  # what it wrote after its "serving on" line
    reader: threading.Thread | None = None

    def client(self, token: str | None = TOKEN, **kwargs: object) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def drain(self) -> None:
        """Read its stderr as it comes, so that a full pipe never stalls the server's access log."""
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def stop(self, *, signal_it: bool = True) -> str:
        """SIGTERM (unless it was sent already) and wait for the exit; return its stderr after startup."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        if self.reader is not None:
            self.reader.join(timeout=60)
        return "".join(self.stderr)


def start(fake: FakeServer, data_dir: Path, *args: str, env: dict[str, str] | None = None,
          database_url: str | None = None) -> Service:
    """Start the console script; return once it says it is serving (its own line on stderr).

    ``database_url``: jobs in that PostgreSQL database instead of SQLite in ``data_dir``.
    """
    if database_url:
        args = ("--database-url", database_url, *args)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_"))}
    environ.update({"SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "fake-model",
                    "SUMMARIZER_SERVICE_TOKENS": f"{TOKEN},{OTHER}", "SUMMARIZER_MAX_ATTEMPTS": "2",
                    "SUMMARIZER_MAX_RETRY_WAIT": "0.01", "XDG_CACHE_HOME": str(data_dir / "xdg-cache"),
                    **(env or {})})
    proc = subprocess.Popen([sys.executable, "-m", "summarizer", "serve", "--port", "0", "--data-dir",
                             str(data_dir), *args], env=environ, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, ""):
        if "serving on " in line:
            url = line.split("serving on ", 1)[1].split()[0]
            service = Service(url, proc, data_dir)
            service.reader = threading.Thread(target=service.drain, daemon=True)
            service.reader.start()
            return service
    raise AssertionError(f"serve exited with {proc.wait()}")


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> str | None:
    """Where jobs are kept: None for SQLite in the data dir, else a PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


@pytest.fixture
def own_store(store: str | None, request: pytest.FixtureRequest) -> str | None:
    """Like ``store``, but a database of this test's own (for a test that starts its own service)."""
    if store is None:
        return None
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


@pytest.fixture(scope="module")
def service(module_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory, store: str | None) -> Iterator[Service]:
    svc = start(module_fake, tmp_path_factory.mktemp("service"), database_url=store)
    yield svc
    svc.stop()


@pytest.fixture
def model(module_fake: FakeServer) -> FakeServer:
    module_fake.script.clear()
    module_fake.requests.clear()
    module_fake.total = 0
    module_fake.latency = 0.0
    module_fake.on_request = None
    module_fake._seen.clear()  # a fault marker fires per document afresh (the other store's service saw it too)
    module_fake.counts.clear()
    return module_fake


# -- routes ---------------------------------------------------------------------------------------


def test_health_readiness_docs_and_page(service: Service) -> None:
    with service.client(token=None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready", "model": "fake-model"}
        spec = http.get("/openapi.json").json()
        assert {"/v1/brief", "/v1/events", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/results",
                "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
        assert {"EventReport", "Event", "Participant", "Failure"} <= set(spec["components"]["schemas"])
        assert "swagger" in http.get("/docs").text.lower()
        page = http.get("/")
        assert page.status_code == 200 and 'id="brief-output"' in page.text


def test_brief_and_events_return_the_cli_envelope(service: Service, model: FakeServer) -> None:
    with service.client() as http:
        brief = http.post("/v1/brief", json={"text": TEXT, "id": "unga", "words": [60, 90]})
        events = http.post("/v1/events", json={"text": TEXT, "published": "2024-09-28"})
    assert brief.status_code == 200 and events.status_code == 200
    envelope = brief.json()
    assert envelope["id"] == "unga" and envelope["status"] == "ok" and 60 <= envelope["value"]["word_count"] <= 90
    assert set(envelope) == {"id", "task", "status", "value", "error", "warnings", "usage", "model",
                             "prompt_version", "latency_ms", "cached", "unsupported", "source"}
    assert "dropped 8 repeated paragraph(s) from the input" in envelope["warnings"]
    source = envelope["source"]["text"]
    assert all(source[c["start"]:c["end"]] for s in envelope["value"]["sentences"] for c in s["citations"])
    for event in events.json()["value"]["events"]:
        assert all(events.json()["source"]["text"][q["start"]:q["end"]] == q["quote"] for q in event["evidence"])
    assert events.json()["value"]["schema_version"] == "2"
    assert "published on 2024-09-28 (a Saturday)" in model.requests[1]["messages"][0]["content"]


def test_html_input_is_extracted(service: Service, model: FakeServer) -> None:
    page = (Path(__file__).parent / "data" / "pages" / "tech-wire-merger.html").read_text()
    with service.client() as http:
        assert http.post("/v1/brief", json={"html": page}).status_code == 200
    sent = model.requests[0]["messages"][1]["content"]
    assert "Contoso Robotics" in sent and "Your privacy choices" not in sent


# -- who gets in ------------------------------------------------------------------------------------


def test_auth_none_wrong_and_another_tenants_job(service: Service, model: FakeServer) -> None:
    with service.client(token=None) as anonymous, service.client(token="tok-wrong-0000000000000000") as wrong:
        for http in (anonymous, wrong):
            answer = http.post("/v1/brief", json={"text": TEXT})
            assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
            assert answer.headers["www-authenticate"] == "Bearer"
    with service.client() as owner, service.client(token=OTHER) as other:
        job = owner.post("/v1/jobs", json={"task": "brief", "documents": [{"id": "a", "text": BODY}]}).json()
        for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/results"):
            assert other.get(path).status_code == 404
        assert other.delete(f"/v1/jobs/{job['id']}").status_code == 404
        assert owner.get(f"/v1/jobs/{job['id']}?wait=30").json()["status"] == "completed"
    assert model.total == 1


@pytest.mark.parametrize(("request_args", "status", "code"), [
    ({"content": b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}', "headers": {"content-type": "application/json"}},
     413, "too_large"),
    ({"content": b"plain text", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    ({"json": {"text": "a", "html": "<p>b</p>"}}, 422, "invalid_request"),
    ({"json": {"words": [60, 90]}}, 422, "invalid_request"),
    ({"json": {"text": "x", "nosuch": 1}}, 422, "invalid_request"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_request"),
    ({"json": {"text": "   "}}, 422, "input_error"),
    ({"json": {"url": "http://127.0.0.1/"}}, 422, "input_error"),
    ({"json": {"text": TEXT, "words": [90, 60]}}, 422, "usage_error"),
])
def test_bad_requests_get_one_clear_status(service: Service, model: FakeServer, request_args: dict[str, object],
                                           status: int, code: str) -> None:
    with service.client() as http:
        answer = http.post("/v1/brief", **request_args)  # type: ignore[arg-type]
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"]["code"] == code and "\n" not in body["error"]["message"]
    assert model.total == 0


def test_model_failures_map_to_statuses_with_the_failure_envelope(service: Service, model: FakeServer) -> None:
    with service.client() as http:
        model.script.extend(["invalid", "invalid", "invalid"])
        invalid = http.post("/v1/events", json={"text": TEXT})
        model.script.extend(["503", "503"])
        failing = http.post("/v1/brief", json={"text": TEXT})
        model.script.extend(["401"])
        rejected = http.post("/v1/brief", json={"text": TEXT})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "output_invalid"
    assert invalid.json()["usage"]["reasks"] == 2
    assert failing.status_code == 502 and failing.json()["error"]["code"] == "provider_error"
    assert rejected.status_code == 503 and rejected.json()["error"]["code"] == "config_error"
    for answer in (invalid, failing, rejected):
        assert "Traceback" not in answer.text and "fake-key" not in answer.text


# -- streaming -----------------------------------------------------------------------------------------


def _events(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in response.text.split("\n\n"):
        if block.strip():
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_sse_streams_deltas_then_the_validated_result(service: Service, model: FakeServer) -> None:
    with service.client() as http:
        response = http.post("/v1/brief", json={"text": TEXT, "stream": True})
        by_header = http.post("/v1/brief", json={"text": TEXT}, headers={"accept": "text/event-stream"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response)
    names = [name for name, _ in events]
    assert names[-1] == "result" and set(names[:-1]) == {"delta"} and len(names) > 3
    streamed = "".join(str(data["text"]) for name, data in events if name == "delta")
    assert streamed.strip() == events[-1][1]["value"]["text"]  # type: ignore[index]
    assert _events(by_header)[-1][0] == "result"
    assert all(body.get("stream") for body in model.requests)


def test_sse_says_retry_and_streams_the_reasked_answer(service: Service, model: FakeServer) -> None:
    model.script.extend(["short"])
    with service.client() as http:
        events = _events(http.post("/v1/brief", json={"text": TEXT, "stream": True}))
    names = [name for name, _ in events]
    retry = names.index("retry")
    assert "delta" in names[:retry] and "delta" in names[retry:] and names[-1] == "result"
    assert any("words" in e for e in events[retry][1]["errors"])  # type: ignore[union-attr]
    second = "".join(str(d["text"]) for n, d in events[retry:] if n == "delta")
    assert second.strip() == events[-1][1]["value"]["text"]  # type: ignore[index]


def test_sse_failure_ends_with_an_error_event(service: Service, model: FakeServer) -> None:
    model.script.extend(["short", "short", "short"])
    with service.client() as http:
        events = _events(http.post("/v1/brief", json={"text": TEXT, "stream": True}))
    assert [n for n, _ in events].count("retry") == 2
    assert events[-1][0] == "error" and events[-1][1]["error"]["code"] == "output_invalid"  # type: ignore[index]


# -- jobs ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_1000_document_job_with_faults_ends_with_every_id_once(service: Service, model: FakeServer) -> None:
    plans = {1: "429", 2: "500", 3: "reset", 4: "fenced", 5: "truncated", 6: "badquote"}
    docs = [{"id": f"d{i}", "text": f"Report d{i}. " + (f"[[fake:{plans[i % 10]}]] " if i % 10 in plans else "")
             + BODY} for i in range(1000)]
    docs += [{"id": "empty", "text": "  "}, {"id": "d5"}, {"text": 12}]  # bad records become error records
    ndjson = "".join(json.dumps(d) + "\n" for d in docs).encode() + b"{broken\n"
    with service.client() as http:
        created = http.post("/v1/jobs?task=events", content=ndjson, headers={"content-type": "application/x-ndjson"})
        assert created.status_code == 202
        job = created.json()
        assert job["counts"]["total"] == 1004 and job["status_url"].endswith(job["id"])
        done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 120}).json()
        lines = http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()
        errors = http.get(f"/v1/jobs/{job['id']}/results", params={"status": "error"}).text.splitlines()
    assert done["status"] == "completed"
    records = [json.loads(line) for line in lines]
    ids = Counter(r["id"] for r in records)
    assert set(ids.values()) == {1} and len(ids) == 1004
    assert {f"d{i}" for i in range(1000)} <= set(ids)
    assert done["counts"] == {"total": 1004, "ok": 1000, "failed": 4, "unsupported": 0, "pending": 0}
    assert sorted(json.loads(line)["error"]["code"] for line in errors) == [
        "duplicate_id", "input_error", "invalid_record", "invalid_record"]
    assert done["usage"]["retries"] >= 300 and done["usage"]["reasks"] >= 200


def test_jobs_json_body_cancel_and_validation(service: Service, model: FakeServer) -> None:
    model.latency = 0.05
    with service.client() as http:
        job = http.post("/v1/jobs", json={"task": "brief", "words": [40, 80], "documents": [
            {"id": f"c{i}", "text": f"Report {i}. {BODY}"} for i in range(300)]}).json()
        cancelled = http.delete(f"/v1/jobs/{job['id']}").json()
        assert cancelled["status"] == "cancelled"
        after = http.get(f"/v1/jobs/{job['id']}").json()
        assert after["status"] == "cancelled" and after["counts"]["ok"] < 300
        assert http.post("/v1/jobs", json={"task": "summary", "documents": []}).status_code == 422
        assert http.post("/v1/jobs", json={"task": "brief", "documents": []}).status_code == 422
        ndjson = http.post("/v1/jobs", content=b'{"text": "x"}\n', headers={"content-type": "application/x-ndjson"})
        assert ndjson.status_code == 422 and "task" in ndjson.json()["error"]["message"]
        assert http.get("/v1/jobs/job_nosuch").status_code == 404


def test_a_job_counts_the_documents_with_unsupported_content(service: Service, model: FakeServer) -> None:
    """The job's counts say how many ok documents carry content the source does not back (issue 19)."""
    marker = {0: "[[fake:badnumber]] "}  # u0's brief gains "at a cost of 987654 dollars."
    with service.client() as http:
        job = http.post("/v1/jobs", json={"task": "brief", "documents": [  # long enough for the added words
            {"id": f"u{i}", "text": f"Report {i}. {marker.get(i, '')}{UNGA.read_text()}"} for i in range(3)]}).json()
        done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
        records = [json.loads(line) for line in http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()]
    assert done["status"] == "completed"
    assert done["counts"] == {"total": 3, "ok": 3, "failed": 0, "unsupported": 1, "pending": 0}
    assert {r["id"]: r["unsupported"] > 0 for r in records} == {"u0": True, "u1": False, "u2": False}


def test_nul_characters_in_ids_and_texts_cost_nothing_but_their_own_records(service: Service, model: FakeServer) -> None:
    """A NUL (``\\u0000``) is fine in JSON and in a record, and no text column of a database takes one."""
    body = (b'{"id": "a\\u0000b", "text": "Report one. ' + BODY.encode() + b'"}\n'
            b'{"id": "\\u0000", "text": "\\u0000\\u0000"}\n\x00\x00\n{"id": "fine", "text": "Report two. '
            + BODY.encode() + b'"}\n')
    with service.client() as http:
        job = http.post("/v1/jobs?task=brief&language=%00", content=body,
                        headers={"content-type": "application/x-ndjson"})
        assert job.status_code in (202, 422), job.text
        if job.status_code == 422:  # the language is refused at submission: the same body without it
            job = http.post("/v1/jobs?task=brief", content=body, headers={"content-type": "application/x-ndjson"})
        done = http.get(f"/v1/jobs/{job.json()['id']}", params={"wait": 30}).json()
        lines = http.get(f"/v1/jobs/{job.json()['id']}/results").text.splitlines()
    assert done["status"] == "completed" and done["counts"]["pending"] == 0 and done["counts"]["total"] == 4
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(["a\x00b", "\x00", "#line-3", "fine"])


@pytest.mark.slow
def test_sigterm_mid_job_then_restart_requests_no_document_twice(tmp_path: Path) -> None:
    fake = FakeServer(latency=0.02).start()
    try:
        first = start(fake, tmp_path)
        docs = [{"id": f"k{i}", "text": f"Report k{i}. {BODY}"} for i in range(400)]
        with first.client() as http:
            job = http.post("/v1/jobs", json={"task": "events", "documents": docs}).json()
        fake.on_request = lambda n: n == 120 and first.proc.send_signal(signal.SIGTERM)
        err = first.stop(signal_it=False)  # the fake model server sends SIGTERM at its 120th request
        assert first.proc.returncode == 0, err
        assert "Traceback" not in err
        fake.on_request = None
        output = tmp_path / "jobs" / job["id"] / "output.jsonl"
        done_before = {json.loads(line)["id"] for line in output.read_text().splitlines()}
        assert 100 <= len(done_before) < 400
        requested_before = fake.total
        assert requested_before <= len(done_before) + 1  # in-flight documents were finished, not dropped
        fake.requests.clear()
        second = start(fake, tmp_path)
        with second.client() as http:
            status = http.get(f"/v1/jobs/{job['id']}", params={"wait": 120}).json()
            lines = http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()
        second.stop()
        assert status["status"] == "completed" and status["counts"]["ok"] == 400
        assert Counter(json.loads(line)["id"] for line in lines) == Counter(d["id"] for d in docs)
        asked_again = {r["messages"][1]["content"].split(".")[0].split()[-1] for r in fake.requests}
        assert not asked_again & done_before
    finally:
        fake.stop()


# -- operations ------------------------------------------------------------------------------------------


def test_metrics_move(service: Service, model: FakeServer) -> None:
    def scrape() -> dict[str, float]:
        with service.client(token=None) as http:
            text = http.get("/metrics").text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    before = scrape()
    with service.client() as http:
        http.post("/v1/events", json={"text": TEXT})
        model.script.extend(["fenced"])
        http.post("/v1/events", json={"text": TEXT})
    after = scrape()
    key = 'summarizer_documents_total{outcome="ok",task="events"}'
    assert after[key] - before.get(key, 0) == 2
    route = 'summarizer_http_requests_total{method="POST",route="/v1/events",status="200"}'
    assert after[route] - before.get(route, 0) == 2
    assert after['summarizer_tokens_total{direction="in"}'] > before.get('summarizer_tokens_total{direction="in"}', 0)
    assert 'summarizer_jobs{state="completed"}' in after


@pytest.mark.slow
def test_access_log_is_json_without_tokens_or_text(fake: FakeServer, tmp_path: Path) -> None:
    svc = start(fake, tmp_path)
    with svc.client() as http:
        http.post("/v1/brief", json={"text": TEXT})
        http.get("/v1/jobs/nosuch")
    err = svc.stop()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {(entry["route"], entry["status"]) for entry in lines} >= {("/v1/brief", 200), ("/v1/jobs/{job_id}", 404)}
    assert all(entry["token"].startswith("t-") for entry in lines if entry["route"] != "unmatched")
    assert TOKEN not in err and OTHER not in err and "Lavrov" not in err


@pytest.mark.slow
@pytest.mark.parametrize(("args", "env", "says"), [
    (["--host", "0.0.0.0"], {"SUMMARIZER_SERVICE_TOKENS": ""}, "no service tokens"),
    (["--host", "0.0.0.0", "--no-auth"], {"SUMMARIZER_SERVICE_TOKENS": ""}, "loopback only"),
    ([], {"SUMMARIZER_SERVICE_TOKENS": "short"}, "at least 16"),
])
def test_refuses_to_start_unsafely(fake: FakeServer, tmp_path: Path, args: list[str], env: dict[str, str],
                                   says: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SUMMARIZER_")}
    environ.update({"SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "m", **env})
    run = subprocess.run([sys.executable, "-m", "summarizer", "serve", "--port", "0", "--data-dir", str(tmp_path),
                          *args], env=environ, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3 and says in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_per_token_rate_limit_and_load(fake: FakeServer, tmp_path: Path) -> None:
    svc = start(fake, tmp_path, "--rpm-per-token", "5")
    try:
        with svc.client() as http:
            answers = [http.post("/v1/brief", json={"text": BODY * 3}) for _ in range(7)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
        assert int(answers[-1].headers["retry-after"]) >= 1
        with svc.client(token=OTHER) as http:  # another token has its own budget
            assert http.post("/v1/brief", json={"text": BODY * 3}).status_code == 200
    finally:
        svc.stop()


@pytest.mark.slow
def test_500_concurrent_requests_get_200_or_429_never_5xx(fake: FakeServer, tmp_path: Path) -> None:
    import asyncio

    fake.latency = 0.2
    svc = start(fake, tmp_path, "--rpm-per-token", "0", "--max-pending", "128")

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=500)
        async with httpx.AsyncClient(base_url=svc.url, headers={"authorization": f"Bearer {TOKEN}"},
                                     timeout=120, limits=limits) as http:
            return await asyncio.gather(*(http.post("/v1/brief", json={"text": f"Report {i}. {BODY}"})
                                          for i in range(500)))

    try:
        answers = asyncio.run(storm())
        rss_kb = int(Path(f"/proc/{svc.proc.pid}/status").read_text().split("VmHWM:")[1].split()[0])
    finally:
        svc.stop()
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {200, 429} and statuses[200] >= 128
    assert all(a.headers.get("retry-after") for a in answers if a.status_code == 429)
    print(f"\n500 concurrent briefs: {dict(statuses)}; server peak RSS {rss_kb / 1024:.0f} MB")
    assert rss_kb < 400 * 1024


def test_a_jobs_database_from_before_the_unsupported_count_opens_and_keeps_its_jobs(tmp_path: Path) -> None:
    import sqlite3

    from summarizer.serve.jobs import JobStore

    with sqlite3.connect(tmp_path / "jobs.sqlite3") as old:  # the schema 0.2.0 shipped
        old.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, task TEXT NOT NULL, options TEXT "
                    "NOT NULL, status TEXT NOT NULL, total INTEGER NOT NULL, ok INTEGER NOT NULL DEFAULT 0, failed "
                    "INTEGER NOT NULL DEFAULT 0, usage TEXT NOT NULL DEFAULT '{}', error TEXT, created REAL NOT NULL, "
                    "updated REAL NOT NULL)")
        old.execute("INSERT INTO jobs VALUES ('job_0123456789abcdef', 'alice', 'brief', '{}', 'completed', 2, 2, 0, "
                    "'{}', NULL, 1.0, 2.0)")
    store = JobStore(tmp_path)
    job = store.get("job_0123456789abcdef")
    assert job is not None and (job.ok, job.unsupported, job.owner) == (2, 0, "alice")
    job.unsupported = 1
    store.save(job)
    assert store.get(job.id).as_dict()["counts"]["unsupported"] == 1  # type: ignore[union-attr]
    store.close()


def test_a_job_s_output_is_counted_and_read_back_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    module_fake: FakeServer) -> None:
    """A job's whole output was counted (ok, failed, unsupported) on the event loop when the job started and
    ended — 0.12 s for one 12 MiB record, more for 20,000 —, and GET .../results?status=error read every line
    of an output without one error on the loop without yielding once. Both run in a thread now."""
    import asyncio
    import threading
    from typing import Any

    from summarizer import Summarizer
    from summarizer.serve import jobs
    from summarizer.serve.jobs import JobManager, JobStore, SqliteQueue

    class InlinePool:  # parses on the spot: this test is about what the job does with its output
        size = 1

        async def call(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("budget", None), kwargs.pop("in_flight", None)
            return fn(*args, **kwargs)

    where: list[tuple[str, bool]] = []
    for name in ("_counts", "line_status"):
        original = getattr(jobs, name)

        def watched(*args: Any, _name: str = name, _original: Any = original) -> Any:
            where.append((_name, threading.current_thread() is threading.main_thread()))
            return _original(*args)

        monkeypatch.setattr(jobs, name, watched)

    async def scenario() -> list[bytes]:
        store = JobStore(tmp_path)
        with Summarizer(model="m", base_url=module_fake.base_url) as summarizer:
            manager = JobManager(store, summarizer, InlinePool(), concurrency=2)  # type: ignore[arg-type]
            queue = SqliteQueue(store)
            queue.attach(manager)
            job_id = store.new_id()
            store.folder(job_id).mkdir(parents=True)
            (store.folder(job_id) / "input.jsonl").write_text(
                "".join(json.dumps({"id": f"d{i}", "text": BODY}) + "\n" for i in range(3)))
            manager.reserve("anonymous")
            await queue.submit(job_id, "anonymous", "brief", {}, 3)
            await queue.wait(job_id, 60)
            assert (await queue.get(job_id)).status == "completed"  # type: ignore[union-attr]
            lines = [line async for line in queue.results(job_id, "error")]
            store.close()
            return lines

    assert asyncio.run(scenario()) == []
    assert {name for name, _ in where} == {"_counts", "line_status"}
    assert not [name for name, on_loop in where if on_loop], where
