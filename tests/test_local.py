"""The embedded backend: selection and messages (fast), then the real model (slow)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UNGA
from typer.testing import CliRunner

from summarizer import Completion, ConfigError, EventReport, Settings
from summarizer.backends import from_settings
from summarizer.backends import local as local_module
from summarizer.cli import app
from summarizer.extractive import split_sentences
from summarizer.schemas import Usage, count_words

runner = CliRunner()
SOURCE = UNGA.read_text()


def test_auto_without_endpoint_or_model_names_both_ways_out() -> None:
    with pytest.raises(ConfigError) as info:
        from_settings(Settings())
    assert "OPENAI_API_KEY" in str(info.value) and "summarizer[local]" in str(info.value)


def test_explicit_local_without_the_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "bundled_model_path", lambda: None)
    with pytest.raises(ConfigError, match=r"summarizer\[local\]"):
        from_settings(Settings(backend="local"))


def test_auto_prefers_a_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "local_available", lambda: True)
    assert type(from_settings(Settings(base_url="http://x/v1", model="m"))).__name__ == "OpenAIBackend"


def test_cli_on_the_local_backend_prints_its_notice_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the local extra (llama-cpp-python) is not installed")
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(local_module, "local_available", lambda: True)
    monkeypatch.setattr(local_module, "bundled_model_path", lambda: model)
    brief = " ".join(SOURCE.split()[:45]).rstrip(",") + "."

    async def complete(self, messages, *, output, params=None):
        assert output.grammar and output.grammar.startswith("root ::= brief")
        return Completion(text=brief, usage=Usage(requests=1), model=self.model)

    monkeypatch.setattr(local_module.LocalBackend, "complete", complete)
    result = runner.invoke(app, ["brief", str(UNGA)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == brief
    notices = [line for line in result.stderr.splitlines() if "embedded local model" in line]
    assert len(notices) == 1 and "SUMMARIZER_BASE_URL" in notices[0]


# --- the real model ----------------------------------------------------------------------------

@pytest.fixture
def real_local(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.undo()  # conftest hides the model from other tests; these want it
    path = local_module.bundled_model_path()
    if path is None:
        pytest.skip("summarizer[local] is not installed")
    return path


@pytest.mark.slow
def test_local_brief_and_events_on_the_sample(real_local: Path) -> None:
    brief = runner.invoke(app, ["brief", str(UNGA), "--backend", "local", "--json"])
    assert brief.exit_code == 0, brief.output
    envelope = json.loads(brief.stdout)
    assert envelope["model"] == "local:SmolLM2-135M-Instruct.Q4_1" and envelope["usage"]["reasks"] == 0
    text = envelope["value"]["text"]
    assert "\n" not in text and 40 <= count_words(text) <= 120
    # The seed's brief quotes the lead (Lavrov met the Pacific island ministers in New York on
    # Friday) and then only the document's own sentences: nothing in it is false or foreign.
    lead = SOURCE.splitlines()[0]
    assert text.startswith(lead) and envelope["warnings"] == ["dropped 8 repeated paragraph(s) from the input"]
    assert all(sentence.rstrip(".") in SOURCE for sentence in split_sentences(text))
    events = runner.invoke(app, ["events", str(UNGA), "--backend", "local", "--json", "--published", "2024-09-28"])
    assert events.exit_code == 0, events.output
    envelope = json.loads(events.stdout)
    report = EventReport.model_validate(envelope["value"])
    # Valid at the first answer, everything chosen from the document, the fields a model should not
    # write filled deterministically, and nothing for grounding to flag.
    assert envelope["usage"]["reasks"] == 0 and envelope["warnings"] == ["dropped 8 repeated paragraph(s) from the input"]
    assert report.language == "en"
    main = report.events[0]
    assert (main.participants[0].name, main.participants[0].kind) == ("Sergei Lavrov", "person")
    assert main.where is not None and (main.where.name, main.where.country) == ("New York", "US")
    assert main.when is not None and (main.when.text, main.when.date) == ("on Friday", "2024-09-27")
    assert main.type == "diplomacy.meeting" and main.status == "occurred" and [e.quote for e in main.evidence] == [lead]
    for event in report.events:
        assert all(e.quote in SOURCE for e in event.evidence)
        assert all(p.name in SOURCE and (p.description is None or p.description in SOURCE)
                   for p in event.participants)
        assert event.summary in SOURCE and report.headline in SOURCE


LOCAL_SCHEMAS = [
    ("refers to itself", {"type": "object", "properties": {"name": {"type": "string"}, "child": {
        "anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "required": ["name", "child"], "additionalProperties": False},
     "Unsupported ref #"),
    ("not", {"type": "object", "properties": {"x": {"not": {"type": "string"}}}, "required": ["x"]},
     "Unrecognized schema"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "schema", "reason"), LOCAL_SCHEMAS, ids=[c[0] for c in LOCAL_SCHEMAS])
def test_a_task_schema_the_embedded_model_cannot_follow_is_one_line(real_local: Path, tmp_path: Path, case: str,
                                                                    schema: dict, reason: str) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "odd.toml").write_text('version = "1"\nsystem = "Reply with JSON."\nuser = "$document"\n'
                                     'reask = "$errors"\n')
    (folder / "odd.schema.json").write_text(json.dumps(schema))
    result = runner.invoke(app, ["run", "odd", str(UNGA), "--backend", "local", "--tasks-dir", str(folder)])
    assert result.exit_code == 3, result.output  # (was a ValueError / AssertionError traceback from llama.cpp)
    assert "the embedded model cannot be held to this JSON Schema" in result.stderr and reason in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.slow
def test_a_schema_that_refers_to_itself_through_defs_is_drafted_without_recursing_forever(real_local: Path,
                                                                                          tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "tree.toml").write_text('version = "1"\nsystem = "Reply with JSON."\nuser = "$document"\n'
                                      'reask = "$errors"\n')
    node = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "child": {
        "anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["name", "child"],
        "additionalProperties": False}
    (folder / "tree.schema.json").write_text(json.dumps({
        "$defs": {"node": node}, "type": "object", "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"], "additionalProperties": False}))
    result = runner.invoke(app, ["run", "tree", str(UNGA), "--backend", "local", "--tasks-dir", str(folder),
                                 "--max-reasks", "0"])
    assert result.exit_code in (0, 5), result.output  # (was a RecursionError traceback: the draft followed the $ref)
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.slow
def test_a_30000_word_document_gets_a_real_brief_with_progress(real_local: Path, tmp_path: Path) -> None:
    """Map-reduce on the embedded model: part by part (a line each), then a brief of the document's sentences."""
    paragraphs = [f"The council of district {i} approved a budget of {i} million euros on Monday after a debate "
                  f"that lasted {i % 7 + 2} hours. Residents of district {i} said the new park would open in spring, "
                  f"and the mayor promised {i % 5 + 1} new bus lines." for i in range(1000)]
    path = tmp_path / "long.txt"
    path.write_text("\n\n".join(paragraphs), "utf-8")
    assert count_words(path.read_text("utf-8")) >= 30_000
    result = subprocess.run([sys.executable, "-m", "summarizer", "brief", str(path), "--backend", "local", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("summarizer: part ")]
    assert len(progress) >= 3 and progress[-1].startswith(f"summarizer: part {len(progress)}/{len(progress)} read")
    envelope = json.loads(result.stdout)
    text = envelope["value"]["text"]
    assert envelope["status"] == "ok" and text.startswith("The council of district 0 approved a budget")
    assert all(sentence.rstrip(".") in path.read_text("utf-8") for sentence in split_sentences(text))
    assert "Part" not in text and "brief" not in text.casefold()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["spanish-floods", "french-pension-vote", "ferry-collision-dated", "football-final",
                                  "earthquake-chile", "merger-deal"])
def test_local_event_reports_on_eval_documents_are_valid_and_from_the_document(real_local: Path, case: str) -> None:
    from summarizer import Summarizer
    from summarizer.evaluation import load_cases
    from summarizer.grounding import SourceIndex, event_warnings

    document = load_cases(Path(__file__).resolve().parents[1] / "evals", [case])[0].document
    with Summarizer(backend="local") as s:
        result = s.events(document)
    assert result.usage.reasks == 0
    assert event_warnings(result.value, SourceIndex(document.text, document.published)) == []
    assert result.value.language == {"spanish-floods": "es", "french-pension-vote": "fr"}.get(case, "en")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def llama_server(real_local: Path):
    """llama.cpp's own OpenAI-compatible server on loopback, with the bundled model."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(real_local), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stderr:  # blocks until uvicorn says it listens (or the process dies)
        if "Uvicorn running on" in line:
            break
    else:
        pytest.fail(f"llama_cpp.server exited with {proc.wait()}")
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(30)


@pytest.mark.slow
def test_openai_backend_against_a_real_llama_cpp_server(llama_server: str) -> None:
    endpoint = ["--base-url", llama_server, "--model", "smollm2", "--server-grammar"]
    brief = runner.invoke(app, ["brief", str(UNGA), "--json", *endpoint])
    assert brief.exit_code == 0, brief.output
    envelope = json.loads(brief.stdout)
    assert envelope["model"] == "smollm2" and envelope["usage"]["prompt_tokens"] > 0
    assert 40 <= envelope["value"]["word_count"] <= 120
    events = runner.invoke(app, ["events", str(UNGA), "--json", *endpoint])
    assert events.exit_code == 0, events.output
    report = EventReport.model_validate(json.loads(events.stdout)["value"])
    assert all(e.quote in SOURCE for event in report.events for e in event.evidence)
