"""A task is one prompt file and one JSON Schema: it runs through every driver without a line of code.

The task here is written to a temp folder by the test; the shipped example (tasks/key_quotes) is
added the same way. Both go through `summarizer run`, `bulk`, `bulk --via batch` (the fake Batch
API) and the library, with the same validation, re-asks, verbatim-evidence grounding and cache.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import SECRET, UNGA
from fake_server import FakeServer
from typer.testing import CliRunner

from summarizer import Summarizer, TaskSpec, default_registry
from summarizer.cli import app
from summarizer.errors import ConfigError

runner = CliRunner()
BODY = UNGA.read_text().split("\n")[0]
PROMPT = '''
version = "2"
description = "Who is named in the document, and one sentence that names them."
system = """Name the people in the document. Reply with JSON. Write in $language."""
user = """<document>
$document
</document>"""
reask = """Not valid:
$errors
Try again."""
[task]
evidence = ["people[].sentence"]
'''
SCHEMA = {
    "type": "object",
    "properties": {"people": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 60},
                                         "sentence": {"type": "string"}},
        "required": ["name", "sentence"], "additionalProperties": False}}},
    "required": ["people"], "additionalProperties": False,
}


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "people.toml").write_text(PROMPT)
    (folder / "people.schema.json").write_text(json.dumps(SCHEMA))
    return folder


def endpoint(fake: FakeServer, tasks_dir: Path, *extra: str) -> list[str]:
    return ["--base-url", fake.base_url, "--model", "m", "--api-key", SECRET, "--tasks-dir", str(tasks_dir), *extra]


def test_run_sends_the_tasks_prompt_and_schema_and_prints_the_grounded_value(fake: FakeServer, tasks_dir: Path) -> None:
    result = runner.invoke(app, ["run", "people", str(UNGA), *endpoint(fake, tasks_dir)])
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert value["people"] and all(p["sentence"] in UNGA.read_text() for p in value["people"])
    body = fake.requests[-1]
    assert body["messages"][0]["content"] == "Name the people in the document. Reply with JSON. Write in the same " \
                                              "language as the document."
    assert body["response_format"]["json_schema"]["name"] == "people"
    assert body["response_format"]["json_schema"]["strict"] is True  # every property required, objects closed


def test_a_quote_not_in_the_document_is_sent_back_and_the_envelope_says_so(fake: FakeServer, tasks_dir: Path) -> None:
    text = "Ana Ortiz opened the bridge on Monday. The bridge cost 4 million euros."
    invented = json.dumps({"people": [{"name": "Ana Ortiz", "sentence": "Ana Ortiz resigned in disgrace."}]})
    fake.script.extend([f"content:{invented}"])
    result = runner.invoke(app, ["run", "people", "-", "--json", *endpoint(fake, tasks_dir)], input=text)
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["task"] == "people" and envelope["usage"]["reasks"] == 1
    assert envelope["prompt_version"] == "people@2"
    reask = fake.requests[1]["messages"][-1]["content"]
    assert "people[0].sentence is not a verbatim quote" in reask and "resigned in disgrace" in reask


def test_bulk_runs_it_caches_it_and_resumes_it(fake: FakeServer, tasks_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Report {i}. {BODY}"}) + "\n" for i in range(5)))
    out = tmp_path / "out.jsonl"
    args = ["bulk", str(source), "--task", "people", "--out", str(out), "-q", *endpoint(fake, tasks_dir)]
    assert runner.invoke(app, args).exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(r["id"] for r in records) == Counter(f"d{i}" for i in range(5))
    assert all(r["task"] == "people" and r["status"] == "ok" and r["value"]["people"] for r in records)
    sent = len(fake.requests)
    again = runner.invoke(app, args)  # resumed: every id is done
    assert again.exit_code == 0 and len(fake.requests) == sent
    out.unlink()
    assert runner.invoke(app, args).exit_code == 0  # from the cache
    assert len(fake.requests) == sent
    assert all(json.loads(line)["cached"] for line in out.read_text().splitlines())


def test_the_batch_api_runs_it(fake: FakeServer, tasks_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Report {i}. {BODY}"}) + "\n" for i in range(4)))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--task", "people", "--out", str(out), "--via", "batch", "-q",
                                 "--no-cache", "--poll-interval", "0.02", "--max-poll-interval", "0.05",
                                 *endpoint(fake, tasks_dir)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == [f"d{i}" for i in range(4)]
    assert all(r["status"] == "ok" and r["usage"]["batched"] == 1 for r in records)


def test_the_library_takes_a_task_folder_or_a_spec(fake: FakeServer, tasks_dir: Path) -> None:
    with Summarizer(base_url=fake.base_url, model="m", api_key=SECRET, tasks_dir=tasks_dir) as s:
        assert "people" in s.tasks.names()
        result = s.run("people", BODY)
        assert result.task == "people" and result.value.root["people"]
        spec = s.task("people")
        assert isinstance(spec, TaskSpec) and spec.evidence == ("people[].sentence",)


def test_the_shipped_example_is_a_task_like_any_other(fake: FakeServer) -> None:
    assert "key_quotes" in default_registry().names()
    result = runner.invoke(app, ["key_quotes", str(UNGA), "--base-url", fake.base_url, "--model", "m",
                                 "--api-key", SECRET])
    assert result.exit_code == 0, result.output
    quotes = json.loads(result.stdout)["quotes"]
    assert quotes and all(q["quote"] in UNGA.read_text() for q in quotes)
    schema = runner.invoke(app, ["schema", "key_quotes"])
    assert json.loads(schema.stdout)["properties"]["quotes"]["type"] == "array"


def test_a_copy_of_the_shipped_tasks_folder_takes_the_examples_place(fake: FakeServer, tmp_path: Path) -> None:
    from summarizer.user_tasks import shipped_tasks_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    for path in shipped_tasks_dir().iterdir():  # what a new user does first: copy tasks/ and edit it
        (mine / path.name).write_bytes(path.read_bytes())
    toml = mine / "key_quotes.toml"
    toml.write_text(toml.read_text().replace('version = "1"', 'version = "7"', 1))
    result = runner.invoke(app, ["run", "key_quotes", str(UNGA), "--json", *endpoint(fake, mine)])
    assert result.exit_code == 0, result.output  # (was: exit 3, "already defined (shipped key_quotes.toml)")
    assert json.loads(result.stdout)["prompt_version"] == "key_quotes@7"
    (mine / "brief.toml").write_text(PROMPT)  # a built-in task is still not to be replaced
    (mine / "brief.schema.json").write_text(json.dumps(SCHEMA))
    clash = runner.invoke(app, ["run", "key_quotes", str(UNGA), *endpoint(fake, mine)])
    assert clash.exit_code == 3 and "task 'brief'" in clash.stderr and "is already defined (built-in)" in clash.stderr


BAD_TASKS = [
    ("not TOML", "people.toml", b"version = [", "is not valid TOML"),
    ("binary", "people.toml", b"\x00\xff\xfe" * 50, "is not UTF-8 text"),
    ("no schema", None, None, "its schema people.schema.json does not exist"),
    ("schema not JSON", "people.schema.json", b"{nope", "is not JSON"),
    ("schema not an object", "people.schema.json", b'{"type": "array"}', "must describe a JSON object"),
    ("schema invalid", "people.schema.json", b'{"type": "object", "properties": 3}', "not a valid JSON Schema"),
    ("no $document", "people.toml", PROMPT.replace("$document", "").encode(), "never places $document"),
    ("reask without $errors", "people.toml", PROMPT.replace("$errors", "").encode(), "never places $errors"),
    ("unknown [task] key", "people.toml", (PROMPT + 'colour = "red"\n').encode(), "unknown key(s) colour"),
    ("evidence not a list", "people.toml", PROMPT.replace('evidence = ["people[].sentence"]', 'evidence = 3').encode(),
     "evidence must be a list"),
    ("huge", "people.toml", b"#" * (2 * 1024 * 1024), "larger than 1 MiB"),
    ("bad name", "People Task.toml", PROMPT.encode(), "a task name is lower-case letters"),
    ("clashes with a built-in", "brief.toml", PROMPT.encode(), "is already defined"),
    ("a command's name", "run.toml", PROMPT.encode(), "the name 'run' is taken by a command"),
    ("the judge's prompt's name", "verify.toml", PROMPT.encode(), "the name 'verify' is taken"),  # (unrunnable)
    *[(f"schema {name!r}", "people.toml", (PROMPT + f"schema = {json.dumps(name)}\n").encode(),
       "[task] schema must name a file in the same folder")
      for name in ["../../etc/passwd", "/etc/passwd", "sub/people.json", ".", "..", "x\u0000.json"]],
    ("$ref outside the schema", "people.schema.json",
     json.dumps({**SCHEMA, "properties": {"people": {"$ref": "https://example.com/people.json"}}}).encode(),
     "has a $ref outside it: 'https://example.com/people.json'"),
    ("$ref to nowhere", "people.schema.json",
     json.dumps({**SCHEMA, "properties": {"people": {"$ref": "#/$defs/nope"}}}).encode(),
     "has a $ref that leads nowhere"),
    ("$refs in a loop", "people.schema.json", json.dumps({**SCHEMA, "properties": {"people": {"$ref": "#/$defs/a"}},
                                                          "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}]},
                                                                    "b": {"$ref": "#/$defs/a"}}}).encode(),
     "has $refs that loop without reaching a value"),
    ("nested too deeply", "people.schema.json",
     b'{"type": "object", "properties": {"people": ' + b'{"items": ' * 300 + b"{}" + b"}" * 302, "nested more than 64"),
    ("evidence names no property", "people.toml", PROMPT.replace("people[].sentence", "people[].sentense").encode(),
     "evidence 'people[].sentense' can never hold a quote (the schema has no property 'sentense')"),
    ("evidence walks into a list", "people.toml", PROMPT.replace("people[].sentence", "people.sentence").encode(),
     "evidence 'people.sentence' can never hold a quote (what holds 'sentence' is not an object)"),
]


@pytest.mark.parametrize(("case", "name", "content", "message"), BAD_TASKS, ids=[c[0] for c in BAD_TASKS])
def test_a_bad_task_file_is_one_line_and_exit_3(tasks_dir: Path, case: str, name: str | None, content: bytes | None,
                                                message: str) -> None:
    if name is None:
        (tasks_dir / "people.schema.json").unlink()
    else:
        if name != "people.toml" and name.endswith(".toml"):
            (tasks_dir / "people.toml").unlink()
            (tasks_dir / name.replace(".toml", ".schema.json")).write_text(json.dumps(SCHEMA))
        (tasks_dir / name).write_bytes(content or b"")
    result = runner.invoke(app, ["run", "people", "-", "--tasks-dir", str(tasks_dir), "--base-url",
                                 "http://127.0.0.1:9/v1", "--model", "m"], input="Some text here.")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("summarizer: error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_task_file_that_is_not_a_regular_file_is_refused_not_read(tasks_dir: Path, kind: str) -> None:
    import os
    import subprocess
    import sys

    schema = tasks_dir / "people.schema.json"
    schema.unlink()
    {"fifo": lambda: os.mkfifo(schema), "device": lambda: schema.symlink_to("/dev/zero"),
     "directory": schema.mkdir}[kind]()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_"))}
    result = subprocess.run([sys.executable, "-m", "summarizer", "run", "people", "-", "--tasks-dir", str(tasks_dir),
                             "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], input="Some text here.",
                            capture_output=True, text=True, env=env, timeout=60)  # (it hung on a FIFO, read /dev/zero)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip() == ("summarizer: error: task file " + str(tasks_dir / "people.toml") +
                                     ": cannot read its schema people.schema.json: not a regular file")


def test_an_answer_nested_past_a_recursive_schema_is_sent_back(fake: FakeServer, tasks_dir: Path) -> None:
    (tasks_dir / "people.schema.json").write_text(json.dumps({
        "type": "object", "properties": {"people": {"type": "array"}, "child": {"$ref": "#"}}, "required": ["people"]}))
    deep = '{"people": [], "child": ' * 900 + '{"people": []}' + "}" * 900
    fake.script.extend([f"content:{deep}"] * 3)
    result = runner.invoke(app, ["run", "people", str(UNGA), *endpoint(fake, tasks_dir)])
    assert result.exit_code == 5, result.output  # was a RecursionError traceback (a 500 in the service)
    assert "the JSON is nested too deeply" in result.stderr and "Traceback" not in result.output


def test_a_missing_tasks_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "people", "-", "--tasks-dir", str(tmp_path / "nope"), "--base-url",
                                 "http://127.0.0.1:9/v1", "--model", "m"], input="Some text here.")
    assert result.exit_code == 2 and "does not exist" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["schema", "people"], ["export", "out.jsonl"]])
def test_schema_and_export_find_the_tasks_folder_where_run_does(tasks_dir: Path, tmp_path: Path, command: list[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out.jsonl").write_text("")
    monkeypatch.setenv("SUMMARIZER_TASKS_DIR", str(tasks_dir))
    found = runner.invoke(app, command)  # (schema: "no task named 'people'" — the variable was not read)
    assert found.exit_code == 0, found.output
    monkeypatch.delenv("SUMMARIZER_TASKS_DIR")
    (tmp_path / "summarizer.toml").write_text(f"tasks_dir = {json.dumps(str(tasks_dir))}\n")  # the config file
    assert runner.invoke(app, command).exit_code == 0
    missing = runner.invoke(app, [*command, "--tasks-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "tasks directory" in missing.stderr and "does not exist" in missing.stderr


def test_an_unknown_task_names_the_known_ones() -> None:
    result = runner.invoke(app, ["run", "nope", "-", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
                           input="Some text here.")
    assert result.exit_code == 2 and "no task named 'nope'" in result.stderr and "key_quotes" in result.stderr


def test_a_registry_refuses_a_second_task_of_the_same_name() -> None:
    registry = default_registry()
    with pytest.raises(ConfigError, match="already defined"):
        registry.register(registry.get("brief"))


def test_the_service_runs_it_one_at_a_time_and_as_a_job(fake: FakeServer, tasks_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from test_serve import TOKEN, start

    service = start(fake, tmp_path / "data", "--tasks-dir", str(tasks_dir))
    try:
        with service.client() as http:
            one = http.post("/v1/tasks/people", json={"text": BODY, "verify": False})
            assert one.status_code == 200, one.text
            assert one.json()["task"] == "people" and one.json()["value"]["people"]
            named = http.post("/v1/people", json={"text": BODY})
            assert named.status_code == 200 and named.json()["prompt_version"] == "people@2"
            assert http.post("/v1/tasks/nope", json={"text": BODY}).status_code == 404
            job = http.post("/v1/jobs", json={"task": "people", "documents": [BODY, f"Second. {BODY}"]})
            assert job.status_code == 202, job.text
            done = http.get(f"/v1/jobs/{job.json()['id']}", params={"wait": 60}).json()
            assert done["status"] == "completed" and done["counts"]["ok"] == 2
            lines = http.get(f"/v1/jobs/{job.json()['id']}/results").text.splitlines()
            assert [json.loads(line)["task"] for line in lines] == ["people", "people"]
            refused = http.post("/v1/jobs", json={"task": "../../etc", "documents": [BODY]})
            assert refused.status_code == 422
            unknown = http.post("/v1/jobs", json={"task": "nope", "documents": [BODY]})
            assert unknown.status_code == 422 and "no task named 'nope'" in unknown.json()["error"]["message"]
            schema = http.get("/openapi.json").json()
            assert "/v1/people" in schema["paths"] and "/v1/tasks/{task}" in schema["paths"]
        assert TOKEN not in service.stop()
    finally:
        if service.proc.poll() is None:
            service.proc.kill()


@pytest.mark.slow
def test_ray_runs_it(fake: FakeServer, tasks_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Report {i}. {BODY}"}) + "\n" for i in range(6)))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--task", "people", "--engine", "ray", "--out", str(out), "-q",
                                 "--actors", "1", *endpoint(fake, tasks_dir)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == [f"d{i}" for i in range(6)]
    assert all(r["task"] == "people" and r["value"]["people"] for r in records)


def test_the_shipped_tasks_schemas_are_valid_json_schemas() -> None:
    from jsonschema import Draft202012Validator

    from summarizer.user_tasks import shipped_tasks_dir

    schemas = sorted(shipped_tasks_dir().glob("*.schema.json"))
    assert schemas  # (not checked when loaded: listing the tasks stays fast)
    for path in schemas:
        Draft202012Validator.check_schema(json.loads(path.read_text("utf-8")))
