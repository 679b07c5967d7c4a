from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_server import FakeServer  # noqa: E402
from postgres_server import Postgres, available, start_postgres  # noqa: E402


UNGA = Path(__file__).resolve().parents[1] / "examples" / "unga-repeated.txt"  # the quick start's sample
SECRET = "sk-test-SECRET-0123456789"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer environment or config file leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith(("SUMMARIZER_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # Whether the embedded model is installed must not change what a test means:
    # tests of the local backend say so explicitly.
    monkeypatch.setattr("summarizer.backends.local.local_available", lambda: False)


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake(_server: FakeServer) -> FakeServer:
    """The loopback fake OpenAI server, reset for this test."""
    _server.script.clear()
    _server.requests.clear()
    _server.times.clear()
    _server.counts.clear()
    _server._seen.clear()
    _server.latency = 0.0
    _server.supports = ("json_schema", "json_object")
    _server.rpm_limit = None
    _server.rate_window = 60.0
    _server.on_request = None
    _server.total = 0
    _server.connections = 0
    _server.echo_padding = 0
    _server.batch_api.reset()
    _server.forget_rate_window()
    return _server


@pytest.fixture
def unga_text() -> str:
    return UNGA.read_text("utf-8")


def chat_response(content: str | None, *, finish: str = "stop", refusal: str | None = None,
                  prompt_tokens: int = 100, completion_tokens: int = 50) -> dict:
    """A chat.completion body as an OpenAI-compatible server returns it."""
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "test-model",
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def sent(route) -> list[dict]:
    """The JSON bodies a respx route received."""
    return [json.loads(call.request.content) for call in route.calls]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A real PostgreSQL (Debian's package), made in a temp folder for this test process."""
    if not available():
        pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres_server: Postgres) -> str:
    """A fresh database on the test server."""
    return postgres_server.create_database()
