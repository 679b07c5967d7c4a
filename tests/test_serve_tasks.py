"""The service's task routes (`/v1/tasks/{task}`, `/v1/{task}`) against hostile names and bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from conftest import UNGA  # noqa: E402
from fake_server import FakeServer  # noqa: E402
from test_serve import Service, start  # noqa: E402

BODY = UNGA.read_text("utf-8").split("\n")[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    fake = FakeServer().start()
    service = start(fake, tmp_path_factory.mktemp("tasks"))
    yield service
    service.stop()
    fake.stop()


NAMES = [
    ("unknown", "/v1/tasks/nope", 404),
    ("upper case", "/v1/tasks/BRIEF", 404),
    ("traversal, encoded", "/v1/tasks/..%2F..%2Fetc", 404),
    ("very long", "/v1/tasks/" + "a" * 5000, 404),
    ("unicode", "/v1/tasks/r%C3%A9sum%C3%A9", 404),
    ("nul", "/v1/tasks/brief%00", 404),
    ("a reserved name", "/v1/tasks/jobs", 404),
    ("no name", "/v1/tasks/", 404),
    ("the brief", "/v1/tasks/brief", 200),
    ("the shipped example", "/v1/key_quotes", 200),
]


@pytest.mark.parametrize(("case", "path", "status"), NAMES, ids=[n[0] for n in NAMES])
def test_task_names_in_the_path(served: Service, case: str, path: str, status: int) -> None:
    with served.client() as http:
        answer = http.post(path, json={"text": BODY})
    assert answer.status_code == status, (case, answer.text[:300])
    if status == 404:
        message = answer.json()["error"]["message"]
        assert len(message) < 400 and "a" * 500 not in message  # a long name is not echoed back in full


BODIES = [
    ("verify not a boolean", {"text": BODY, "verify": "yes please"}, 422),
    ("verify null", {"text": BODY, "verify": None}, 422),
    ("unknown field", {"text": BODY, "judge": True}, 422),
    ("words reversed", {"text": BODY, "words": [90, 10]}, 422),
    ("nothing to read", {}, 422),
]


@pytest.mark.parametrize(("case", "body", "status"), BODIES, ids=[b[0] for b in BODIES])
def test_hostile_bodies_on_a_task_route(served: Service, case: str, body: dict, status: int) -> None:
    with served.client() as http:
        answer = http.post("/v1/tasks/brief", json=body)
    assert answer.status_code == status, (case, answer.text[:300])
    assert "Traceback" not in answer.text


def test_verify_through_the_service(served: Service) -> None:
    with served.client() as http:
        answer = http.post("/v1/tasks/brief", json={"text": BODY, "verify": True})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["prompt_version"].endswith("+verify@1") and result["usage"]["requests"] == 2
    assert all(s["judged"] == "supported" for s in result["value"]["sentences"])


@pytest.mark.parametrize("path", ["/v1/tasks/key_quotes", "/v1/key_quotes"])
def test_verify_on_a_task_with_no_claims_is_422_not_ignored(served: Service, path: str) -> None:
    with served.client() as http:
        answer = http.post(path, json={"text": BODY, "verify": True})
    assert answer.status_code == 422, answer.text  # (was 200, unverified, without a word)
    assert "verify does not apply to task 'key_quotes'" in answer.json()["error"]["message"]


def test_a_job_verifies_when_asked_and_refuses_what_it_cannot_verify(served: Service) -> None:
    with served.client() as http:
        job = http.post("/v1/jobs", json={"task": "brief", "verify": True, "documents": [BODY]})
        assert job.status_code == 202, job.text
        http.get(f"/v1/jobs/{job.json()['id']}", params={"wait": 60})
        [line] = http.get(f"/v1/jobs/{job.json()['id']}/results").text.splitlines()
        record = json.loads(line)  # (was: brief@4, one request, nothing judged — the option was dropped)
        assert record["prompt_version"] == "brief@4+verify@1" and record["usage"]["requests"] == 2
        assert all(s["judged"] == "supported" for s in record["value"]["sentences"])
        refused = http.post("/v1/jobs", json={"task": "key_quotes", "verify": True, "documents": [BODY]})
        assert refused.status_code == 422 and "verify does not apply" in refused.json()["error"]["message"]


def test_metrics_name_the_route_template_not_the_task(served: Service, tmp_path: Path) -> None:
    with served.client() as http:
        for i in range(30):
            http.post(f"/v1/tasks/made-up-{i}", json={"text": BODY})
        metrics = http.get("/metrics").text
    assert "made-up" not in metrics and 'route="/v1/tasks/{task}"' in metrics


def test_a_lone_surrogate_in_a_task_body_is_422(served: Service) -> None:
    with served.client() as http:
        answer = http.post("/v1/tasks/brief", content=b'{"text": "ab\\ud800cd"}',
                           headers={"content-type": "application/json"})
    assert answer.status_code == 422 and "lone surrogate" in answer.json()["error"]["message"]
