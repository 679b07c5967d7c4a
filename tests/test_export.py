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


FORMULAS = ["=HYPERLINK(\"http://evil.example/\",\"click\")", "+1+1", "-2+3", "@SUM(1+1)", "\tx", "\rx"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_start_with_a_quote(fake: FakeServer, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    records = [{"id": f"{lead}-{n}", "text": f"{lead} {BODY}"} for n, lead in enumerate(FORMULAS)]
    source.write_text("".join(json.dumps(r) + "\n" for r in [*records, {"id": "=empty", "text": ""}]))
    out = tmp_path / "out.jsonl"
    runner.invoke(app, ["bulk", str(source), "--task", "brief", "--out", str(out), "-q", *endpoint(fake)])
    result = runner.invoke(app, ["export", str(out)])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(result.stdout, newline=""))}
    for n, lead in enumerate(FORMULAS):
        row = rows[f"'{lead}-{n}"]  # the id, the brief: text, never a formula (OWASP: a leading ')
        assert row["status"] == "ok"
        if not lead[0].isspace():  # (a document's leading tab or CR is normalised away)
            assert row["text"].startswith(f"'{lead}")
    assert rows["'=empty"]["status"] == "error"
    cells = [value for row in rows.values() for value in row.values()]
    assert all(not value.startswith(("=", "+", "-", "@", "\t", "\r")) for value in cells)


@pytest.mark.parametrize("how", ["the same path", "a link to it"])
def test_export_never_writes_over_the_bulk_output_it_reads(fake: FakeServer, tmp_path: Path, how: str) -> None:
    out = bulk_output(fake, tmp_path, "brief")
    before = out.read_bytes()
    target = out if how == "the same path" else tmp_path / "link.csv"
    if target != out:
        target.symlink_to(out)
    result = runner.invoke(app, ["export", str(out), "-o", str(target)])
    assert result.exit_code == 2 and "is the bulk output being exported" in result.stderr  # (was: emptied, exit 0)
    assert out.read_bytes() == before


def test_a_failed_export_leaves_the_output_file_as_it_was(fake: FakeServer, tmp_path: Path) -> None:
    out = bulk_output(fake, tmp_path, "brief")
    out.write_bytes(out.read_bytes() + b"not a record\n" + out.read_bytes())
    previous = tmp_path / "report.csv"
    previous.write_text("last week's export\n")
    result = runner.invoke(app, ["export", str(out), "-o", str(previous)])
    assert result.exit_code == 2 and "line 4 is not a summarizer result record" in result.stderr
    assert previous.read_text() == "last week's export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report")) == []  # no temp file left


@pytest.mark.parametrize("fmt", ["csv", "md"])
def test_a_last_line_cut_short_is_left_out_with_a_warning(fake: FakeServer, tmp_path: Path, fmt: str) -> None:
    out = bulk_output(fake, tmp_path, "brief")
    whole = out.read_bytes()
    out.write_bytes(whole + whole.splitlines(keepends=True)[0][:40])  # a run still writing (or one that crashed)
    result = runner.invoke(app, ["export", str(out), "--format", fmt])
    assert result.exit_code == 0, result.output  # (was: exit 2, and no export of a run in progress)
    assert "line 4 is cut short" in result.stderr and "exported 3 record(s)" in result.stderr


def test_what_is_not_a_bulk_output_writes_nothing_and_markdown_ids_stay_on_their_line(tmp_path: Path,
                                                                                       fake: FakeServer) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "a", "text": "an input, not an output"}\n')
    refused = runner.invoke(app, ["export", str(other)])
    assert refused.exit_code == 2 and refused.stdout == ""  # (was: the CSV header, then the error)
    out = bulk_output(fake, tmp_path, "brief")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        record["id"] = f"{record['id']}\n\n# Injected heading"
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    digest = runner.invoke(app, ["export", str(out), "--format", "md"])
    assert digest.exit_code == 0, digest.output
    assert "\n# Injected" not in digest.stdout and "## a # Injected heading" in digest.stdout


def test_output_into_a_fifo_or_through_a_link_is_written_there_not_replaced(fake: FakeServer,
                                                                               tmp_path: Path) -> None:
    import os
    import stat
    import threading

    out = bulk_output(fake, tmp_path, "brief")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = runner.invoke(app, ["export", str(out), "-o", str(fifo)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # (was: the FIFO replaced by a regular file, the reader left waiting)
    assert received and received[0].startswith(b"id,task,status,")
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert runner.invoke(app, ["export", str(out), "-o", str(link)]).exit_code == 0
    assert link.is_symlink() and real.read_text().startswith("id,task,status,")  # (was: the link replaced)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # the file's own permissions kept (was: 0600)
    fresh = tmp_path / "fresh.csv"
    assert runner.invoke(app, ["export", str(out), "-o", str(fresh)]).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # as any new file (was: 0600)
    folder = runner.invoke(app, ["export", str(out), "-o", str(tmp_path)])
    assert folder.exit_code == 2 and f"cannot write {tmp_path}: it is a directory" in folder.stderr
