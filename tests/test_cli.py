"""The CLI end to end against the loopback fake server: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SECRET, UNGA
from fake_server import FakeServer
from typer.testing import CliRunner

from summarizer.cli import app
from summarizer.schemas import EventReport, count_words

runner = CliRunner()


def run(*args: str, input: str | bytes | None = None, env: dict | None = None):
    result = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
    return result


def endpoint(fake: FakeServer, *extra: str) -> list[str]:
    return ["--base-url", fake.base_url, "--model", "fake-model", "--api-key", SECRET, *extra]


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    """One error line (last on stderr; "retrying…" notices may come before it), the exit code, no key."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("summarizer: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert all(line.startswith("summarizer: ") for line in lines), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0]
    assert SECRET not in result.stdout + result.stderr


def test_brief_prints_one_paragraph(fake: FakeServer) -> None:
    result = run("brief", str(UNGA), *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    text = result.stdout.strip()
    assert "\n" not in text and 40 <= count_words(text) <= 120
    assert text.startswith("Russian Foreign Minister Sergei Lavrov")
    assert "warning: dropped 8 repeated paragraph(s)" in result.stderr
    user = fake.requests[0]["messages"][1]["content"]
    assert user.count("Lavrov arrived in New York on Wednesday") == 1


def test_brief_from_stdin(fake: FakeServer) -> None:
    result = run("brief", "-", *endpoint(fake), input=UNGA.read_bytes())
    assert result.exit_code == 0
    assert result.stdout.startswith("Russian Foreign Minister")


def test_brief_json_envelope(fake: FakeServer) -> None:
    result = run("brief", str(UNGA), "--json", "--words", "60-90", *endpoint(fake))
    envelope = json.loads(result.stdout)
    assert envelope["status"] == "ok" and envelope["task"] == "brief" and envelope["id"] == "unga-repeated.txt"
    assert 60 <= envelope["value"]["word_count"] <= 90
    assert envelope["usage"]["requests"] == 1 and envelope["usage"]["prompt_tokens"] > 0
    assert envelope["prompt_version"] == "brief@4" and envelope["model"] == "fake-model"
    assert set(envelope) == {"id", "task", "status", "value", "error", "warnings", "usage", "model",
                             "prompt_version", "latency_ms", "cached", "unsupported", "source"}
    source = envelope["source"]["text"]  # the text the model saw: the repeats dropped
    assert source.count("Then COVID interfered") == 1 and source in fake.requests[0]["messages"][1]["content"]
    sentences = envelope["value"]["sentences"]
    assert sentences and all(s["support"] == "supported" and s["citations"] for s in sentences)
    for sentence in sentences:  # each cites the source sentence it comes from (the fake answers with extracts)
        cited = " ".join(source[c["start"]:c["end"]] for c in sentence["citations"])
        assert sentence["text"].rstrip(".")[:40] in cited
    assert "60 to 90 words" in fake.requests[0]["messages"][0]["content"]


def test_events_prints_a_valid_report(fake: FakeServer) -> None:
    result = run("events", str(UNGA), *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    report = EventReport.model_validate_json(result.stdout)
    assert report.schema_version == "2"
    evidence = report.events[0].evidence[0]
    assert evidence.match == "exact" and evidence.quote in UNGA.read_text()
    assert fake.requests[0]["response_format"]["type"] == "json_schema"


def test_events_recovers_from_faults_on_the_wire(fake: FakeServer) -> None:
    fake.script.extend(["429", "500", "fenced"])
    result = run("events", str(UNGA), "--json", *endpoint(fake))
    envelope = json.loads(result.stdout)
    assert envelope["status"] == "ok"
    assert envelope["usage"]["requests"] == 3 and envelope["usage"]["retries"] == 2
    assert envelope["usage"]["reasks"] == 0


def test_events_falls_back_when_server_lacks_structured_output(fake: FakeServer) -> None:
    fake.supports = ()
    result = run("events", str(UNGA), *endpoint(fake))
    assert result.exit_code == 0
    formats = [r.get("response_format", {}).get("type") for r in fake.requests]
    assert formats == ["json_schema", "json_object", "json_object", None]


def test_schema_events_is_strict_mode_compatible() -> None:
    schema = json.loads(run("schema", "events", "--answer").stdout)

    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for item in node:
                yield from objects(item)

    found = list(objects(schema))
    assert len(found) == 5
    for obj in found:
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])
    assert "maxLength" not in json.dumps(schema)
    assert "maxLength" in run("schema", "events", "--answer", "--full").stdout


def test_prompts_list_and_show() -> None:
    listing = run("prompts", "list").stdout
    for name in ("brief@4", "brief_combine@4", "events@3", "events_combine@2"):
        assert name in listing
    shown = run("prompts", "show", "brief").stdout
    assert "## system" in shown and "## reask" in shown and "$document" in shown


def test_prompts_dir_overrides_and_result_records_its_version(fake: FakeServer, tmp_path: Path) -> None:
    from summarizer.prompts import PromptLibrary

    original = PromptLibrary().get("brief")
    custom = tmp_path / "prompts"
    custom.mkdir()
    (custom / "brief.toml").write_text(
        'version = "custom-7"\n'
        f"system = '''{original.system} Be terse.'''\nuser = '''{original.user}'''\nreask = '''{original.reask}'''\n"
    )
    result = run("brief", str(UNGA), "--json", "--prompts-dir", str(custom), *endpoint(fake))
    assert json.loads(result.stdout)["prompt_version"] == "brief@custom-7"
    assert "Be terse." in fake.requests[0]["messages"][0]["content"]
    assert "brief@custom-7" in run("prompts", "list", "--prompts-dir", str(custom)).stdout


def test_a_short_document_gets_a_brief_no_longer_than_itself(fake: FakeServer, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("The city council of Porto approved a new tram line on Monday after a debate.")  # 15 words
    result = run("brief", str(short), *endpoint(fake))
    assert result.exit_code == 0, result.output
    assert "7 to 15 words" in fake.requests[0]["messages"][0]["content"]
    assert count_words(result.stdout) <= 15 and "expected" not in result.stdout
    assert ("warning: the document has only 15 word(s): the brief is held to 7-15 words instead of 40-120, so that "
            "nothing is invented to fill it") in result.stderr
    narrow = run("brief", str(short), "--words", "5-10", *endpoint(fake))  # a range the document supports: kept
    assert narrow.exit_code == 0 and "5 to 10 words" in fake.requests[-1]["messages"][0]["content"]
    assert "held to" not in narrow.stderr


# -- exit codes ---------------------------------------------------------------------------


def test_binary_input_exits_2(tmp_path: Path, fake: FakeServer) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    assert_one_line_error(run("brief", str(path), *endpoint(fake)), 2, "photo.jpg", "binary")
    assert fake.requests == []


@pytest.mark.parametrize("content", [b"", b"  \n \n"])
def test_empty_input_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    assert_one_line_error(run("brief", str(path)), 2, "empty")


def test_missing_file_exits_2() -> None:
    assert_one_line_error(run("events", "nope.txt"), 2, "nope.txt: no such file")


def test_bad_word_range_exits_2() -> None:
    result = run("brief", str(UNGA), "--words", "90-60")
    assert result.exit_code == 2 and "MIN-MAX" in result.stderr


def test_nothing_configured_exits_3_saying_what_to_set() -> None:
    assert_one_line_error(run("brief", str(UNGA)), 3, "OPENAI_API_KEY", "SUMMARIZER_BASE_URL", "summarizer[local]")


def test_rejected_key_exits_3_without_the_key(fake: FakeServer) -> None:
    fake.script.append("401")
    assert_one_line_error(run("brief", str(UNGA), *endpoint(fake)), 3, "rejected the API key", "HTTP 401")


def test_failing_provider_exits_4_naming_endpoint_and_status(fake: FakeServer) -> None:
    fake.script.extend(["503", "503"])
    result = run("brief", str(UNGA), "--max-attempts", "2", *endpoint(fake))
    assert_one_line_error(result, 4, fake.base_url, "HTTP 503", "after 2 attempts")


def test_hanging_provider_times_out_with_exit_4(fake: FakeServer) -> None:
    fake.script.extend(["hang", "hang"])
    result = run("brief", str(UNGA), "--max-attempts", "2", "--timeout", "0.3", *endpoint(fake))
    assert_one_line_error(result, 4, "did not answer within 0.3s")


def test_unreachable_provider_exits_4() -> None:
    result = run("brief", str(UNGA), "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--max-attempts", "1")
    assert_one_line_error(result, 4, "cannot reach http://127.0.0.1:9/v1")


def test_invalid_output_after_reasks_exits_5(fake: FakeServer) -> None:
    fake.script.extend(["malformed", "invalid", "badquote"])
    assert_one_line_error(run("events", str(UNGA), *endpoint(fake)), 5, "after 2 re-ask(s)")
    reask = fake.requests[-1]["messages"][-1]["content"]
    assert "events: List should have at least 1 item" in reask


def test_config_precedence_flags_over_env_over_file(fake: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "summarizer.toml").write_text(f'base_url = "{fake.base_url}"\nmodel = "from-file"\n')
    assert json.loads(run("brief", str(UNGA), "--json").stdout)["model"] == "from-file"
    env = {"SUMMARIZER_MODEL": "from-env"}
    assert json.loads(run("brief", str(UNGA), "--json", env=env).stdout)["model"] == "from-env"
    assert json.loads(run("brief", str(UNGA), "--json", "-m", "from-flag", env=env).stdout)["model"] == "from-flag"
    assert [r["model"] for r in fake.requests] == ["from-file", "from-env", "from-flag"]


def test_openai_env_names_are_honoured(fake: FakeServer) -> None:
    env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": SECRET, "SUMMARIZER_MODEL": "m"}
    assert run("brief", str(UNGA), env=env).exit_code == 0


def test_bad_config_file_exits_3(tmp_path: Path) -> None:
    (tmp_path / "summarizer.toml").write_text("model = [unclosed")
    assert_one_line_error(run("brief", str(UNGA)), 3, "summarizer.toml")
    (tmp_path / "summarizer.toml").write_text('timeout = "soon"')
    assert_one_line_error(run("brief", str(UNGA)), 3, "timeout")


@pytest.mark.parametrize("name", ["SUMMARIZER_BASE_URL", "OPENAI_BASE_URL"])
def test_a_bad_base_url_in_the_environment_names_the_variable(name: str, tmp_path: Path) -> None:
    result = run("brief", str(UNGA), env={name: "not a url"})
    assert_one_line_error(result, 3, f"(from {name})", "not an http(s) URL")
    assert "config file" not in result.stderr
    (tmp_path / "summarizer.toml").write_text('base_url = "zz"')
    assert_one_line_error(run("brief", str(UNGA)), 3, "(from summarizer.toml)")


def test_a_missing_prompts_dir_is_a_bad_flag_exit_2_and_a_bad_setting_exit_3(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    assert_one_line_error(run("brief", str(UNGA), "--prompts-dir", missing), 2, missing, "does not exist")
    assert_one_line_error(run("prompts", "list", "--prompts-dir", missing), 2, "does not exist")
    result = run("brief", str(UNGA), env={"SUMMARIZER_PROMPTS_DIR": missing})
    assert_one_line_error(result, 3, "(from SUMMARIZER_PROMPTS_DIR)", "does not exist")


def test_real_entry_point_in_a_subprocess(fake: FakeServer, tmp_path: Path) -> None:
    env = {**os.environ, "SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "m", "OPENAI_API_KEY": SECRET}
    ok = subprocess.run([sys.executable, "-m", "summarizer", "events", str(UNGA)],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout)["schema_version"] == "2"
    bad = subprocess.run([sys.executable, "-m", "summarizer", "brief", "-"], input="",
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_brief_streams_when_asked_and_starts_over_after_a_reask(fake: FakeServer) -> None:
    fake.script.extend(["short"])
    result = run("brief", str(UNGA), "--stream", *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    first, second = result.stdout.rstrip("\n").split("\n")
    assert len(first.split()) == 8 and second.startswith("Russian Foreign Minister Sergei Lavrov")
    assert "that broke a rule (it has 8 words; it must have 40-120); asking again" in result.stderr
    assert all(body.get("stream") for body in fake.requests)


def test_brief_does_not_stream_into_a_pipe_or_with_json(fake: FakeServer) -> None:
    assert run("brief", str(UNGA), *endpoint(fake)).exit_code == 0  # CliRunner's stdout is not a terminal
    assert run("brief", str(UNGA), "--json", *endpoint(fake)).exit_code == 0
    assert not any(body.get("stream") for body in fake.requests)


@pytest.mark.parametrize(("missing", "args", "extra"), [
    ("psycopg", ["jobs", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/x"], "serve,postgres"),
    ("psycopg", ["jobs", "show", "job_x", "--database-url", "postgresql://nobody@127.0.0.1:1/x"], "serve,postgres"),
    ("psycopg", ["worker", "--database-url", "postgresql://nobody@127.0.0.1:1/x"], "serve,postgres"),
    ("prometheus_client", ["serve", "--port", "0"], "serve"),
])
def test_a_missing_extra_names_the_extra_instead_of_a_traceback(tmp_path: Path, missing: str, args: list[str],
                                                                 extra: str) -> None:
    # An install without the extra (`pip install -e '.[local,eval]'`, the quick start): the module is shadowed
    # by one that cannot be imported. (Was: a ModuleNotFoundError traceback, exit 1.)
    shadow = tmp_path / "shadow" / missing
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(f"raise ModuleNotFoundError(name={missing!r})\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow"), "SUMMARIZER_SERVICE_TOKENS": "demo-token-0123456789abcdef", "SUMMARIZER_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "summarizer", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip() == (f"summarizer: error: {missing} is not installed; this command needs: "
                                     f"pip install 'summarizer[{extra}]'")


@pytest.mark.parametrize("fmt", ["md", "text"])
def test_json_and_another_format_are_refused_not_one_silently_dropped(fake: FakeServer, fmt: str) -> None:
    # (was: --format md --json printed Markdown, or on failure the JSON error envelope: which one depended on the run)
    result = runner.invoke(app, ["brief", str(UNGA), "--format", fmt, "--json", *endpoint(fake)])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"--json is --format json: it cannot go with --format {fmt}" in result.stderr
    assert fake.requests == []  # refused before any request
    same = runner.invoke(app, ["brief", str(UNGA), "--format", "json", "--json", *endpoint(fake)])
    assert same.exit_code == 0 and json.loads(same.stdout)["status"] == "ok"
