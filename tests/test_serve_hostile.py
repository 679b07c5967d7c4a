"""Hostile requests against the real `summarizer serve` (issue 17): every surface a tenant can reach.

The service runs as a subprocess on a free loopback port (the harness of
tests/test_serve.py) against the loopback fake model. Each test drives it the
way a hostile client would — paths where URLs belong, pathological markup,
random routes, concurrent uploads, another tenant's ids, lone surrogates,
UTF-16 — and asserts what a client sees: statuses, bodies, headers, records,
what the server logs, and that it stays responsive.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_server import FakeServer
from test_serve import BODY, OTHER, TOKEN, Service, model, module_fake, own_store, start, store  # noqa: F401

pytest.importorskip("fastapi", reason="the serve extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
SECRET = "SECRET-CANARY-7f3a9c1e"  # in a file on the server: must never come back


@pytest.fixture(scope="module")
def svc(module_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory, store: str | None) -> Iterator[Service]:
    """A service with a short parse budget (1 s), so that over-budget documents end quickly (on each store)."""
    service = start(module_fake, tmp_path_factory.mktemp("hostile"), "--parse-timeout", "1", database_url=store)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Files and a FIFO on the server's disk, named the ways a client might try."""
    root = tmp_path_factory.mktemp("server-files")
    secret = root / "tokens.txt"
    secret.write_text(f"The service token is {SECRET}. {BODY}\n")
    fifo = root / "pipe.txt"
    os.mkfifo(fifo)
    return {"secret": str(secret), "fifo": str(fifo), "dir": str(root), "missing": str(root / "nope.txt"),
            "relative": os.path.relpath(secret)}


def _url_forms(files: dict[str, str]) -> list[str]:
    return [
        files["secret"], files["fifo"], files["dir"], files["missing"], files["relative"], "/etc/passwd",
        "tokens.txt", "./tokens.txt", "~/.bashrc", "file://" + files["secret"], "FILE://" + files["secret"],
        "gopher://127.0.0.1:70/_x", "ftp://127.0.0.1/x", "HTTP://127.0.0.1:9/", "Https://127.0.0.1:9/",
        " http://127.0.0.1:9/", "http://127.0.0.1:9/ ", "\thttp://127.0.0.1:9/", "http://127.0.0.1:9/\n",
        "http://exa mple.com/", "http:/127.0.0.1/", "http://", "https:///etc/passwd", "//127.0.0.1/x",
        "\\\\server\\share\\x", "data:text/plain,hello", "javascript:alert(1)", "", "-", "/dev/stdin",
        "/proc/self/environ", "http://127.0.0.1:99999/",
    ]


# -- item 1: a `url` is an http(s) URL or nothing ----------------------------------------------------------


@pytest.mark.parametrize("allow_urls", [False, True], ids=["urls-off", "urls-on"])
def test_url_never_reads_a_local_path_and_every_refusal_says_the_same(
    module_fake: FakeServer, tmp_path: Path, secret_files: dict[str, str], allow_urls: bool,
) -> None:
    service = start(module_fake, tmp_path, *(["--allow-urls"] if allow_urls else []))
    try:
        messages: set[str] = set()
        with service.client() as http:
            for form in _url_forms(secret_files):
                for route in ("/v1/brief", "/v1/events"):
                    started = time.monotonic()
                    answer = http.post(route, json={"url": form}, timeout=15)
                    assert time.monotonic() - started < 10, f"{form!r} took too long (a FIFO opened?)"
                    assert answer.status_code == 422, (form, answer.status_code, answer.text)
                    assert SECRET not in answer.text and "root:" not in answer.text
                    body = answer.json()
                    assert body["error"]["code"] == "input_error", (form, body)
                    messages.add(body["error"]["message"])
            assert http.get("/healthz").json() == {"status": "ok"}
        assert len(messages) == 1, messages  # no oracle: a path that exists and one that does not read the same
        assert "http" in messages.pop()
    finally:
        err = service.stop()
    assert SECRET not in err and "Traceback" not in err


def test_job_url_records_never_read_a_local_path(svc: Service, model: FakeServer,
                                                  secret_files: dict[str, str]) -> None:
    forms = _url_forms(secret_files)
    docs = [{"id": f"u{i}", "url": form} for i, form in enumerate(forms)] + [{"id": "good", "text": BODY}]
    ndjson = "".join(json.dumps(d) + "\n" for d in docs).encode()
    with svc.client() as http:
        for created in (http.post("/v1/jobs", json={"task": "brief", "documents": docs}),
                        http.post("/v1/jobs?task=brief", content=ndjson,
                                  headers={"content-type": "application/x-ndjson"})):
            assert created.status_code == 202, created.text
            job = created.json()
            done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
            assert done["status"] == "completed"
            records = [json.loads(line) for line in http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()]
            assert Counter(r["id"] for r in records) == Counter(d["id"] for d in docs)
            assert {r["id"] for r in records if r["status"] == "ok"} == {"good"}
            assert SECRET not in json.dumps(records)
    assert all(SECRET not in json.dumps(r) for r in model.requests)


# -- item 2: parsing off the event loop, with a budget ------------------------------------------------------

LEAD = "<html><body><article><p>" + BODY + "</p></article>"
PATHOLOGICAL = {  # each took lxml and trafilatura from 10 s to minutes on the event loop
    "attributes": LEAD + "<div " + " ".join(f"a{i}=x" for i in range(60000)) + "></div></body></html>",
    "comment-run": "<!--" * 200000,
    "open-tags": "<p>" + "<a" * 200000,
    "spaced-open-tags": "<p>" + BODY + "</p>" + "<p " * 100000,
    "nesting": "<div>" * 120000 + BODY + "</div>" * 120000,
}


def _too_complex(answer: httpx.Response) -> bool:
    return answer.status_code == 422 and "too complex" in answer.json()["error"]["message"]


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_html_is_refused_at_once(svc: Service, model: FakeServer, name: str) -> None:
    started = time.monotonic()
    with svc.client() as http:
        answer = http.post("/v1/brief", json={"html": PATHOLOGICAL[name]})
    assert _too_complex(answer), answer.text
    assert time.monotonic() - started < 3
    assert model.total == 0


def _slow_page(seed: int) -> str:
    """Markup under every pre-check that lxml and trafilatura still take seconds over."""
    return LEAD + f"<p id=s{seed}>" + "<span>a</span>" * 45000 + "</p></body></html>"


def test_healthz_answers_in_100_ms_while_8_hostile_bodies_parse(svc: Service, model: FakeServer) -> None:
    pages = [_slow_page(i) for i in range(4)] + [PATHOLOGICAL[n] for n in ("attributes", "comment-run",
                                                                         "open-tags", "spaced-open-tags")]
    bodies = [json.dumps({"html": page}).encode() for page in pages]  # encoded now: the probes share this GIL
    answers: list[httpx.Response] = []

    def send(body: bytes) -> None:
        with svc.client() as http:
            answers.append(http.post("/v1/brief", content=body, headers={"content-type": "application/json"},
                                     timeout=120))

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    latencies = []
    with svc.client(token=None) as http:
        http.get("/healthz")  # the connection is open before timing
        while any(t.is_alive() for t in threads):
            started = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
    for thread in threads:
        thread.join()
    assert len(answers) == 8 and all(_too_complex(a) for a in answers), [a.text[:200] for a in answers]
    assert len(latencies) >= 100
    ordered = sorted(latencies)
    print(f"\n/healthz while 8 hostile bodies parse: {len(latencies)} probes, median "
          f"{ordered[len(ordered) // 2] * 1000:.1f} ms, p99 {ordered[len(ordered) * 99 // 100] * 1000:.1f} ms, "
          f"max {ordered[-1] * 1000:.1f} ms")
    # Under 100 ms. The event loop never parses, so only the OS scheduler can delay a probe: on two
    # cores shared with other test processes (pytest -n) a rare probe waits for a core, so 1 % may
    # be over; none comes near the seconds to minutes a parse on the loop took.
    assert ordered[len(ordered) * 99 // 100] < 0.1 and ordered[-1] < 1.0


def test_a_job_document_over_the_budget_is_one_error_record(svc: Service, model: FakeServer) -> None:
    docs = [{"id": "a", "text": BODY}, {"id": "slow", "html": _slow_page(99)},
            {"id": "nasty", "html": PATHOLOGICAL["comment-run"]}, {"id": "b", "html": LEAD + "</body></html>"}]
    with svc.client() as http:
        job = http.post("/v1/jobs", json={"task": "brief", "documents": docs}).json()
        done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
        records = {json.loads(line)["id"]: json.loads(line) for line in
                   http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()}
    assert done["status"] == "completed" and done["counts"] == {"total": 4, "ok": 2, "failed": 2, "unsupported": 0, "pending": 0}
    for name in ("slow", "nasty"):
        assert records[name]["status"] == "error" and "too complex" in records[name]["error"]["message"]


# -- item 3: /metrics stays bounded --------------------------------------------------------------------------

_KNOWN_ROUTES = {"/v1/brief", "/v1/events", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/results",
                 "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/", "/static/{name}", "unmatched"}


def _labels(text: str, name: str) -> set[str]:
    return set(re.findall(name + r'="([^"]*)"', text))


def test_metrics_labels_stay_bounded_and_nothing_redirects(svc: Service) -> None:
    with svc.client() as http:
        job = http.post("/v1/jobs", json={"task": "brief", "documents": [BODY]}).json()
        size_before = len(http.get("/metrics").content)
        for i in range(150):
            http.get(f"/random-{i}")
            http.post(f"/nothing/{i}", content=b"{}", headers={"content-type": "application/json"})
            http.request(("PUT", "PATCH", "OPTIONS")[i % 3], "/v1/brief")
            http.get(f"/v1/jobs/job_{i:016x}")
            http.get(f"/v1/jobs/job_{i:016x}/results/")
        for i in range(3):
            http.post(f"/big/{i}", content=b"x" * (3 * 1024 * 1024), headers={"content-type": "application/json"})
        slash = http.get(f"/v1/jobs/{job['id']}/", headers={"host": "evil.example"})
        assert slash.status_code == 404 and "location" not in slash.headers
        assert http.get("/healthz/").status_code == 404
        text = http.get("/metrics").text
    assert _labels(text, "route") <= _KNOWN_ROUTES, _labels(text, "route") - _KNOWN_ROUTES
    assert _labels(text, "method") <= {"GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT", "PATCH", "other"}
    assert not re.search(r"job_[0-9a-f]", text) and "evil" not in text
    assert len(text.encode()) - size_before < 20_000, (size_before, len(text))


# -- item 4: job caps, taken atomically; bodies streamed to disk ---------------------------------------------


def test_job_caps_are_taken_atomically_per_tenant_and_overall(module_fake: FakeServer, tmp_path: Path,
                                                             own_store: str | None) -> None:
    module_fake.latency = 0.3
    service = start(module_fake, tmp_path, "--max-jobs", "3", "--max-jobs-per-token", "2", database_url=own_store)
    body = "".join(json.dumps({"id": f"d{i}", "text": f"Report {i}. {BODY}"}) + "\n" for i in range(20)).encode()

    async def submit_at_once(token: str, n: int) -> list[int]:
        started = asyncio.Event()
        waiting = [0]

        async def chunks() -> Any:
            yield body[:100]
            waiting[0] += 1
            if waiting[0] == n:
                started.set()
            await started.wait()  # every request is in before any body ends
            yield body[100:]

        async with httpx.AsyncClient(base_url=service.url, timeout=60,
                                     headers={"authorization": f"Bearer {token}"}) as http:
            answers = await asyncio.gather(*(http.post(
                "/v1/jobs?task=brief", content=chunks(), headers={"content-type": "application/x-ndjson"})
                for _ in range(n)))
        return [a.status_code for a in answers]

    try:
        first = asyncio.run(submit_at_once(TOKEN, 10))
        assert sorted(first) == [202, 202] + [429] * 8, first
        second = asyncio.run(submit_at_once(OTHER, 5))  # the other tenant still gets in, up to the global cap
        assert sorted(second) == [202] + [429] * 4, second
        with service.client(token=OTHER) as http:
            refused = http.post("/v1/jobs", json={"task": "brief", "documents": [BODY]})
        assert refused.status_code == 429 and refused.headers["retry-after"]
    finally:
        module_fake.latency = 0.0
        service.stop()


@pytest.mark.slow
def test_job_bodies_are_streamed_to_disk_not_held_in_memory(module_fake: FakeServer, tmp_path: Path,
                                                            own_store: str | None) -> None:
    # With a database, the web tier alone (--no-worker): what a worker holds is its documents in flight, not bodies.
    web_only = ("--no-worker",) if own_store else ()
    service = start(module_fake, tmp_path, "--max-jobs", "16", "--max-jobs-per-token", "8", *web_only,
                    database_url=own_store)
    line = (json.dumps({"text": "word " * 400_000}) + "\n").encode()  # 2 MB a document
    body = line * 24  # 48 MB a job

    def peak_kb() -> int:
        return int(Path(f"/proc/{service.proc.pid}/status").read_text().split("VmHWM:")[1].split()[0])

    async def upload(token: str) -> int:
        async with httpx.AsyncClient(base_url=service.url, timeout=120,
                                     headers={"authorization": f"Bearer {token}"}) as http:
            answer = await http.post("/v1/jobs?task=brief", content=body,
                                     headers={"content-type": "application/x-ndjson"})
            if answer.status_code == 202:
                await http.delete(f"/v1/jobs/{answer.json()['id']}")
            return answer.status_code

    async def storm() -> list[int]:
        return await asyncio.gather(*(upload(TOKEN if i % 2 else OTHER) for i in range(8)))

    try:
        with service.client() as http:
            http.post("/v1/brief", json={"text": BODY})  # warm: the first request's imports are not the upload's
        before = peak_kb()
        statuses = asyncio.run(storm())
        grew = peak_kb() - before
    finally:
        service.stop()
    print(f"\n8 concurrent 48 MB job uploads: peak RSS grew {grew / 1024:.0f} MB")
    assert statuses == [202] * 8
    assert grew < 120 * 1024


# -- item 5: the cache is no oracle between tenants ------------------------------------------------------------


def test_another_tenant_never_gets_a_cached_answer(svc: Service, model: FakeServer) -> None:
    document = {"id": "same", "text": "A unique report for the cache test. " + BODY}
    results = {}
    for token in (TOKEN, OTHER):
        with svc.client(token=token) as http:
            job = http.post("/v1/jobs", json={"task": "brief", "documents": [document]}).json()
            http.get(f"/v1/jobs/{job['id']}", params={"wait": 60})
            results[token] = json.loads(http.get(f"/v1/jobs/{job['id']}/results").text)
    assert results[OTHER]["cached"] is False and results[OTHER]["usage"]["requests"] == 1
    assert model.total == 2
    with svc.client() as http:  # the owner's own repeat is still a hit
        job = http.post("/v1/jobs", json={"task": "brief", "documents": [document]}).json()
        http.get(f"/v1/jobs/{job['id']}", params={"wait": 60})
        assert json.loads(http.get(f"/v1/jobs/{job['id']}/results").text)["cached"] is True


# -- item 7: headers -------------------------------------------------------------------------------------------


def test_two_authorization_headers_are_refused(svc: Service, model: FakeServer) -> None:
    with httpx.Client(base_url=svc.url, timeout=30) as http:
        for pair in ((TOKEN, "nobody-0000000000000000"), ("nobody-0000000000000000", TOKEN), (TOKEN, TOKEN)):
            answer = http.post("/v1/brief", json={"text": BODY},
                               headers=[("authorization", f"Bearer {pair[0]}"), ("authorization", f"Bearer {pair[1]}")])
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_request"
    assert model.total == 0


def test_page_and_docs_send_csp_nosniff_and_load_nothing_from_elsewhere(svc: Service) -> None:
    with svc.client(token=None) as http:
        page = http.get("/")
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), "inline script in the page"
        assert "<style" not in page.text and "style=" not in page.text
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            served = http.get(asset)
            assert served.status_code == 200 and served.headers["x-content-type-options"] == "nosniff"
        docs = http.get("/docs")
        assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text) + re.findall(r"url: '([^']+)'", docs.text)
        assert sources and all(s.startswith("/") for s in sources), sources
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text):
            served = http.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset
        assert http.get("/static/../../etc/passwd").status_code == 404
        assert http.get("/static/nosuch.js").status_code == 404
        spec = http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert any(s == {"type": "http", "scheme": "bearer"} for s in
               ({k: v for k, v in s.items() if k in ("type", "scheme")} for s in schemes.values()))
    for path in ("/v1/brief", "/v1/events"):
        assert spec["paths"][path]["post"]["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


# -- item 8: lone surrogates -------------------------------------------------------------------------------------

SURROGATE_BODIES = [
    b'{"text": "The council voted. \\ud800 Then it rained."}',
    b'{"text": "' + BODY.encode() + b'", "id": "x\\udfff"}',
    b'{"html": "<p>' + BODY.encode() + b' \\udbff</p>"}',
    b'{"text": "' + BODY.encode() + b'", "language": "\\ud800"}',
    b'{"url": "http://example.com/\\ud800"}',
]


@pytest.mark.parametrize("raw", SURROGATE_BODIES, ids=["text", "id", "html", "language", "url"])
def test_a_lone_surrogate_in_a_sync_request_is_422(svc: Service, model: FakeServer, raw: bytes) -> None:
    with svc.client() as http:
        for route in ("/v1/brief", "/v1/events"):
            answer = http.post(route, content=raw, headers={"content-type": "application/json"})
            assert answer.status_code == 422, answer.text
            assert "surrogate" in answer.json()["error"]["message"]
        assert http.get("/healthz").status_code == 200
    assert model.total == 0


def test_a_job_with_lone_surrogates_finishes_and_restarts_cleanly(module_fake: FakeServer, tmp_path: Path) -> None:
    marker = "Zanzibarian"  # document text that must never reach the log
    lines = [json.dumps({"id": "good1", "text": f"{marker} report one. {BODY}"}),
             '{"id": "bad-text", "text": "' + marker + ' \\ud800 broken"}',
             '{"id": "bad\\udc00id", "text": "' + marker + ' fine text"}',
             json.dumps({"id": "good2", "text": f"{marker} report two. {BODY}"})]
    first = start(module_fake, tmp_path)
    with first.client() as http:
        ndjson = http.post("/v1/jobs?task=events", content="\n".join(lines).encode(),
                           headers={"content-type": "application/x-ndjson"}).json()
        as_json = http.post("/v1/jobs", content=(
            '{"task": "brief", "documents": [{"id": "j1", "text": "' + marker + ' \\ud800"}, "'
            + BODY + '", {"id": "j3", "text": "' + BODY + '"}]}').encode(),
            headers={"content-type": "application/json"})
        assert as_json.status_code == 202, as_json.text
        jobs = {"ndjson": ndjson, "json": as_json.json()}
        done = {k: http.get(f"/v1/jobs/{j['id']}", params={"wait": 60}).json() for k, j in jobs.items()}
        records = {k: [json.loads(x) for x in http.get(f"/v1/jobs/{j['id']}/results").text.splitlines()]
                   for k, j in jobs.items()}
    err = first.stop()
    assert done["ndjson"]["status"] == "completed" and done["json"]["status"] == "completed"
    assert done["ndjson"]["counts"] == {"total": 4, "ok": 2, "failed": 2, "unsupported": 0, "pending": 0}
    assert done["json"]["counts"] == {"total": 3, "ok": 2, "failed": 1, "unsupported": 0, "pending": 0}
    by_id = {r["id"]: r for r in records["ndjson"]}
    assert by_id["bad-text"]["status"] == "error" and "surrogate" in by_id["bad-text"]["error"]["message"]
    assert {"good1", "good2"} <= set(by_id) and len(by_id) == 4
    second = start(module_fake, tmp_path)
    with second.client() as http:
        again = http.get(f"/v1/jobs/{ndjson['id']}").json()
    err += second.stop()
    assert again["status"] == "completed"
    assert "Traceback" not in err and marker not in err


# -- item 9: UTF-16 NDJSON ---------------------------------------------------------------------------------------

NDJSON3 = "".join(json.dumps({"id": f"n{i}", "text": f"Report n{i} — café. {BODY}"}, ensure_ascii=False) + "\n"
                  for i in range(3))


@pytest.mark.parametrize("encoded", [NDJSON3.encode("utf-16"), NDJSON3.encode("utf-16-be").join([b"\xfe\xff", b""]),
                                     NDJSON3.replace("\n", "\r\n").encode("utf-16"), b"\xef\xbb\xbf" + NDJSON3.encode()],
                         ids=["utf-16-le-bom", "utf-16-be-bom", "utf-16-crlf", "utf-8-bom"])
def test_utf16_ndjson_jobs_are_decoded_then_split(svc: Service, model: FakeServer, encoded: bytes) -> None:
    with svc.client() as http:
        created = http.post("/v1/jobs?task=events", content=encoded, headers={"content-type": "application/x-ndjson"})
        assert created.status_code == 202, created.text
        assert created.json()["counts"]["total"] == 3
        done = http.get(f"/v1/jobs/{created.json()['id']}", params={"wait": 60}).json()
    assert done["status"] == "completed" and done["counts"] == {"total": 3, "ok": 3, "failed": 0, "unsupported": 0, "pending": 0}


def test_a_stray_byte_in_utf16_costs_its_line_only(svc: Service, model: FakeServer) -> None:
    lines = NDJSON3.splitlines(keepends=True)
    encoded = b"\xff\xfe" + lines[0].encode("utf-16-le") + b"\x00\xd8" + lines[1].encode("utf-16-le") \
        + lines[2].encode("utf-16-le")  # a lone high surrogate code unit opens the second line
    with svc.client() as http:
        created = http.post("/v1/jobs?task=events", content=encoded, headers={"content-type": "application/x-ndjson"})
        assert created.status_code == 202, created.text
        done = http.get(f"/v1/jobs/{created.json()['id']}", params={"wait": 60}).json()
        records = [json.loads(x) for x in http.get(f"/v1/jobs/{created.json()['id']}/results").text.splitlines()]
    assert done["status"] == "completed" and done["counts"] == {"total": 3, "ok": 2, "failed": 1, "unsupported": 0, "pending": 0}
    assert {r["id"] for r in records if r["status"] == "ok"} == {"n0", "n2"}


# -- item 12b: a bad data dir is one line and exit 3 ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "corrupt-db", "db-is-a-folder"])
def test_a_bad_data_dir_is_one_line_and_exit_3(module_fake: FakeServer, tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    if kind == "file":
        data.write_text("not a folder")
    elif kind == "corrupt-db":
        data.mkdir()
        (data / "jobs.sqlite3").write_bytes(b"this is not a database" * 100)
    else:
        (data / "jobs.sqlite3").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_"))}
    env.update({"SUMMARIZER_BASE_URL": module_fake.base_url, "SUMMARIZER_MODEL": "m",
                "SUMMARIZER_SERVICE_TOKENS": TOKEN})
    run = subprocess.run([sys.executable, "-m", "summarizer", "serve", "--port", "0", "--data-dir", str(data)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert str(data) in run.stderr


# -- item 14: job options checked at submission ---------------------------------------------------------------


def test_job_options_are_checked_when_the_job_is_submitted(svc: Service, model: FakeServer) -> None:
    with svc.client() as http:
        sync = http.post("/v1/brief", json={"text": BODY, "words": [100, 10]})
        as_json = http.post("/v1/jobs", json={"task": "brief", "words": [100, 10], "documents": [BODY]})
        ndjson = http.post("/v1/jobs?task=brief&words=100-10", content=json.dumps({"text": BODY}).encode(),
                           headers={"content-type": "application/x-ndjson"})
        listed = http.get("/v1/jobs").json()
    assert sync.status_code == 422
    for answer in (as_json, ndjson):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["message"] == sync.json()["error"]["message"]
    assert model.total == 0
    assert all(j["options"].get("words") != [100, 10] for j in listed["jobs"])


# -- item 20: listing jobs, plain strings, the README ---------------------------------------------------------


def test_jobs_are_listed_for_their_owner_only_page_by_page(module_fake: FakeServer, tmp_path: Path,
                                                           own_store: str | None) -> None:
    service = start(module_fake, tmp_path, database_url=own_store)
    try:
        with service.client() as mine, service.client(token=OTHER) as theirs:
            made = []
            for i in range(5):  # one after the other: a token has at most 4 jobs at once
                made.append(mine.post("/v1/jobs", json={"task": "brief", "documents": [f"Report {i}. {BODY}"]}).json()["id"])
                mine.get(f"/v1/jobs/{made[-1]}", params={"wait": 60})
            foreign = theirs.post("/v1/jobs", json={"task": "brief", "documents": [BODY, "Another. " + BODY]}).json()
            pages, after = [], None
            while True:
                page = mine.get("/v1/jobs", params={"limit": 2, **({"after": after} if after else {})}).json()
                pages.append([j["id"] for j in page["jobs"]])
                after = page["next"]
                if after is None:
                    break
            assert [len(p) for p in pages] == [2, 2, 1]
            assert sorted(sum(pages, [])) == sorted(made)
            assert sum(pages, [])[0] == made[-1]  # newest first
            assert [j["id"] for j in theirs.get("/v1/jobs").json()["jobs"]] == [foreign["id"]]
            assert foreign["counts"]["total"] == 2  # plain strings are documents
            assert mine.get("/v1/jobs", params={"after": foreign["id"]}).status_code == 404
            assert mine.get("/v1/jobs", params={"after": "job_nosuch"}).status_code == 404
            assert mine.get("/v1/jobs", params={"limit": 0}).status_code == 422
            assert mine.get("/v1/jobs", params={"limit": 10_000}).status_code == 422
    finally:
        service.stop()


def test_the_readme_serve_example_sets_the_token_it_uses() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### `summarizer serve`", 1)[1].split("\n### ", 1)[0]
    assert re.search(r"export TOKEN=\S{16,}", section)
    assert section.index("export TOKEN=") < section.index("$TOKEN")
    assert "SUMMARIZER_SERVICE_TOKENS=$TOKEN" in section or 'SUMMARIZER_SERVICE_TOKENS="$TOKEN"' in section


# -- the hostile table: bodies and fields --------------------------------------------------------------------

J = {"content-type": "application/json"}
N = {"content-type": "application/x-ndjson"}
HOSTILE: list[tuple[str, str, str, dict[str, Any], set[int]]] = [
    ("brief-not-json", "POST", "/v1/brief", {"content": b"{nope", "headers": J}, {422}),
    ("brief-empty-body", "POST", "/v1/brief", {"content": b"", "headers": J}, {422}),
    ("brief-binary", "POST", "/v1/brief", {"content": bytes(range(256)) * 8, "headers": J}, {422}),
    ("brief-array", "POST", "/v1/brief", {"content": b"[1, 2]", "headers": J}, {422}),
    ("brief-deep-json", "POST", "/v1/brief", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": J}, {422}),
    ("brief-utf16-json", "POST", "/v1/brief", {"content": json.dumps({"text": BODY}).encode("utf-16"),
                                               "headers": J}, {200, 422}),
    ("brief-huge", "POST", "/v1/brief", {"content": b'{"text": "' + b"a " * 2_000_000 + b'"}', "headers": J}, {413}),
    ("brief-text-number", "POST", "/v1/brief", {"json": {"text": 5}}, {422}),
    ("brief-text-null-byte", "POST", "/v1/brief", {"json": {"text": "\x00" * 50}}, {422}),
    ("brief-id-huge", "POST", "/v1/brief", {"json": {"text": BODY, "id": "x" * 10_000}}, {422}),
    ("brief-id-surrogate", "POST", "/v1/brief", {"content": b'{"text": "a b c", "id": "\\ud83d"}', "headers": J},
     {422}),
    ("brief-words-huge", "POST", "/v1/brief", {"json": {"text": BODY, "words": [10, 10**12]}}, {422}),
    ("brief-published-bad", "POST", "/v1/brief", {"json": {"text": BODY, "published": "2024-02-30"}}, {422}),
    ("brief-url-path", "POST", "/v1/brief", {"json": {"url": "/etc/passwd"}}, {422}),
    ("brief-url-list", "POST", "/v1/brief", {"json": {"url": ["/etc/passwd"]}}, {422}),
    ("brief-html-empty", "POST", "/v1/brief", {"json": {"html": ""}}, {422}),
    ("events-html-scripts", "POST", "/v1/events", {"json": {"html": "<script>x</script>"}}, {422}),
    ("jobs-not-json", "POST", "/v1/jobs", {"content": b"{nope", "headers": J}, {422}),
    ("jobs-empty-json", "POST", "/v1/jobs", {"content": b"", "headers": J}, {422}),
    ("jobs-deep-json", "POST", "/v1/jobs", {"content": b"[" * 100_000, "headers": J}, {422}),
    ("jobs-documents-not-list", "POST", "/v1/jobs", {"json": {"task": "brief", "documents": "x"}}, {422}),
    ("jobs-bad-task", "POST", "/v1/jobs", {"json": {"task": "../../etc", "documents": [BODY]}}, {422}),
    ("jobs-ndjson-empty", "POST", "/v1/jobs?task=brief", {"content": b"", "headers": N}, {422}),
    ("jobs-ndjson-blank-lines", "POST", "/v1/jobs?task=brief", {"content": b"\n \r\n\n", "headers": N}, {422}),
    ("jobs-ndjson-binary", "POST", "/v1/jobs?task=brief", {"content": bytes(range(256)) * 8, "headers": N}, {202}),
    ("jobs-ndjson-bad-task", "POST", "/v1/jobs?task=summary", {"content": b'{"text": "x"}', "headers": N}, {422}),
    ("jobs-ndjson-words-text", "POST", "/v1/jobs?task=brief&words=abc", {"content": b'{"text": "x"}', "headers": N},
     {422}),
    ("jobs-text-plain", "POST", "/v1/jobs?task=brief", {"content": b"x", "headers": {"content-type": "text/plain"}},
     {415}),
    ("job-other-tenant", "GET", "/v1/jobs/{other}", {}, {404}),
    ("job-results-other-tenant", "GET", "/v1/jobs/{other}/results", {}, {404}),
    ("job-delete-other-tenant", "DELETE", "/v1/jobs/{other}", {}, {404}),
    ("job-list-after-other-tenant", "GET", "/v1/jobs?after={other}", {}, {404}),
    ("job-id-traversal", "GET", "/v1/jobs/..%2F..%2Fjobs.sqlite3", {}, {404}),
    ("job-id-huge", "GET", "/v1/jobs/" + "j" * 5000, {}, {404, 422}),
    ("job-id-nul", "GET", "/v1/jobs/job_%00", {}, {404}),
    ("job-delete-nul", "DELETE", "/v1/jobs/%00", {}, {404}),
    ("job-list-after-nul", "GET", "/v1/jobs?after=%00", {}, {404}),
    ("jobs-language-nul", "POST", "/v1/jobs?task=brief&language=%00", {"content": b'{"text": "x"}', "headers": N},
     {202, 422}),
    ("jobs-ndjson-nul-ids", "POST", "/v1/jobs?task=brief",
     {"content": b'{"id": "a\\u0000", "text": "a b"}\n{"id": "\\u0000", "text": "\\u0000"}\n\x00\n', "headers": N},
     {202}),
    ("job-wait-negative", "GET", "/v1/jobs/{mine}?wait=-1", {}, {422}),
    ("job-results-bad-status", "GET", "/v1/jobs/{mine}/results?status=../x", {}, {422}),
]


@pytest.fixture(scope="module")
def job_ids(svc: Service) -> dict[str, str]:
    with svc.client() as mine, svc.client(token=OTHER) as theirs:
        return {"mine": mine.post("/v1/jobs", json={"task": "brief", "documents": [BODY]}).json()["id"],
                "other": theirs.post("/v1/jobs", json={"task": "brief", "documents": [BODY]}).json()["id"]}


@pytest.mark.parametrize(("name", "method", "path", "args", "statuses"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_service_table(svc: Service, model: FakeServer, job_ids: dict[str, str], name: str, method: str,
                               path: str, args: dict[str, Any], statuses: set[int]) -> None:
    with svc.client() as http:
        answer = http.request(method, path.format(**job_ids), **args)
        assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
        assert answer.status_code < 500 and "Traceback" not in answer.text
        if answer.status_code >= 400:
            message = answer.json()["error"]["message"]
            assert "\n" not in message and len(message) < 500
        assert http.get("/healthz").status_code == 200
