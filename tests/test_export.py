"""`brief --format md` and `summarizer export`: results as people read them, every claim with its source."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import SECRET, UNGA
from fake_server import FakeServer
from typer.testing import CliRunner

from summarizer.cli import app

runner = CliRunner()
BODY = UNGA.read_text().split("\n")[0]


def endpoint(fake: FakeServer) -> list[str]:
    return ["--base-url", fake.base_url, "--model", "m", "--api-key", SECRET]


def test_brief_as_markdown_cites_each_sentence_in_a_footnote(fake: FakeServer) -> None:
    result = runner.invoke(app, ["brief", str(UNGA), "--format", "md", *endpoint(fake)])
    assert result.exit_code == 0, result.output
    body, notes = result.stdout.split("\n\n", 1)
    markers = body.count("[^")
    assert markers >= 3 and notes.count("\n[^") + 1 == markers
    first = notes.splitlines()[0]
    assert first.startswith("[^1]: “Russian Foreign Minister Sergei Lavrov") and "(characters 0–212)" in first


def test_an_unsupported_sentence_says_so_in_its_footnote(fake: FakeServer) -> None:
    text = "About 2,000 dockers walked out on Monday in Antwerp, the union said. The strike will last two days."
    fake.script.extend(["content:Some 40 dockers walked out on Monday in Antwerp, the union said. The strike will "
                        "last two days."])
    result = runner.invoke(app, ["brief", "-", "--format", "md", "--words", "5-40", *endpoint(fake)], input=text)
    assert result.exit_code == 0, result.output
    assert "[^1]: “About 2,000 dockers walked out on Monday in Antwerp, the union said.”" in result.stdout
    assert "**not backed by the source**: number “40”" in result.stdout


def bulk_output(fake: FakeServer, tmp_path: Path, task: str) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "a", "text": BODY}, {"id": "b", "text": ""}, {"id": "c", "text": f"Second report. {BODY}"}]))
    out = tmp_path / f"{task}.jsonl"
    runner.invoke(app, ["bulk", str(source), "--task", task, "--out", str(out), "-q", *endpoint(fake)])
    return out


@pytest.mark.parametrize("task", ["brief", "events", "key_quotes"])
def test_export_csv_has_a_row_per_document(fake: FakeServer, tmp_path: Path, task: str) -> None:
    out = bulk_output(fake, tmp_path, task)
    result = runner.invoke(app, ["export", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(r["id"] for r in rows) == ["a", "b", "c"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["b"]["status"] == "error" and by_id["b"]["error_code"] == "input_error"
    assert by_id["a"]["status"] == "ok" and by_id["a"]["text"] and by_id["a"]["task"] == task
    assert "exported 3 record(s)" in result.stderr


def test_export_markdown_digest_to_a_file(fake: FakeServer, tmp_path: Path) -> None:
    out = bulk_output(fake, tmp_path, "events")
    digest = tmp_path / "digest.md"
    result = runner.invoke(app, ["export", str(out), "--format", "md", "-o", str(digest)])
    assert result.exit_code == 0, result.output
    text = digest.read_text()
    assert "## a" in text and "## c" in text and "## Failed" in text and "- b: input_error" in text
    assert "> “Russian Foreign Minister Sergei Lavrov" in text and "(characters 0–" in text


@pytest.mark.parametrize(("content", "message"), [
    (b"not json\n", "line 1 is not a summarizer result record"),
    (b'{"id": "x"}\n', "line 1 is not a summarizer result record"),
    (b"\x00\xff\xfe\x00" * 100, "is not a summarizer result record"),
    (b'"\\ud800"\n', "line 1 is not a summarizer result record"),
    (b"[" * 100000 + b"\n", "line 1 is not a summarizer result record"),
])
def test_export_refuses_what_is_not_a_bulk_output(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(content)
    result = runner.invoke(app, ["export", str(path)])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_export_of_a_missing_file_or_to_an_unwritable_place(tmp_path: Path, fake: FakeServer) -> None:
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    out = bulk_output(fake, tmp_path, "brief")
    blocked = runner.invoke(app, ["export", str(out), "-o", str(tmp_path / "no-dir" / "x.csv")])
    assert blocked.exit_code == 2 and "cannot write" in blocked.stderr
