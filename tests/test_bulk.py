"""Bulk runs end to end against the loopback fake server: nothing lost, nothing done twice."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import UNGA
from fake_server import FakeServer
from typer.testing import CliRunner

import pytest

from summarizer import Summarizer, UsageError
from summarizer.sinks import JsonlSink
from summarizer.sources import read_jsonl
from summarizer.cli import app

runner = CliRunner()
BODY = UNGA.read_text().split("\n")[0]


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def docs(n: int, marker=lambda i: "") -> list[dict]:
    return [{"id": f"doc-{i}", "text": f"Report doc-{i}. {marker(i)}{BODY}"} for i in range(n)]


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def bulk(fake: FakeServer, *args: str):
    result = runner.invoke(app, ["bulk", *args, "--base-url", fake.base_url, "--model", "fake-model", "-q"],
                           catch_exceptions=False)
    return result


def requested_ids(fake: FakeServer) -> list[str]:
    return [m.group(0) for r in fake.requests for m in [re.search(r"doc-\d+", r["messages"][1]["content"])] if m]


def test_jsonl_run_writes_one_envelope_per_line(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(30))
    out = tmp_path / "out.jsonl"
    result = bulk(fake, str(source), "--out", str(out), "--task", "events", "--json")
    assert result.exit_code == 0, result.output
    records = read_out(out)
    assert sorted(r["id"] for r in records) == sorted(f"doc-{i}" for i in range(30))
    assert all(r["status"] == "ok" and r["value"]["schema_version"] == "2" for r in records)
    summary = json.loads(result.stdout)
    assert summary["ok"] == 30 and summary["requests"] == 30 and summary["failed"] == 0


def test_bad_records_become_error_records_and_the_run_goes_on(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [
        *docs(3), "{not json", '["a list"]', {"id": "no-text"}, {"id": "doc-1", "text": "dup"},
        {"id": "blank", "text": "   "}, {"text": "No id here. " + BODY},
    ])
    out = tmp_path / "out.jsonl"
    result = bulk(fake, str(source), "--out", str(out))
    assert result.exit_code == 1
    by_id = {r["id"]: r for r in read_out(out)}
    assert {k: (v["error"] or {}).get("code") for k, v in by_id.items()} == {
        "doc-0": None, "doc-1": None, "doc-2": None, "#line-4": "invalid_record", "#line-5": "invalid_record",
        "no-text": "invalid_record", "doc-1#line-7": "duplicate_id", "blank": "input_error", "#line-9": None,
    }
    assert "line 7: id 'doc-1' appeared on an earlier line" in by_id["doc-1#line-7"]["error"]["message"]


def test_custom_fields(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"doc_id": 7, "body": BODY}])
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out), "--id-field", "doc_id", "--text-field", "body").exit_code == 0
    assert read_out(out)[0]["id"] == "7"


def test_folder_input_is_recursive_and_typed(fake: FakeServer, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text(BODY)
    (corpus / "sub" / "b.html").write_text(f"<html><body><p>{BODY}</p></body></html>")
    (corpus / "sub" / "c.md").write_text(BODY)
    (corpus / "skip.jpg").write_bytes(b"\xff\xd8")
    (corpus / "bin.txt").write_bytes(b"\x00\x01binary")
    out = tmp_path / "out.jsonl"
    result = bulk(fake, str(corpus), "--task", "brief", "--out", str(out))
    assert result.exit_code == 1
    status = {r["id"]: r["status"] for r in read_out(out)}
    assert status == {"a.txt": "ok", "bin.txt": "error", "sub/b.html": "ok", "sub/c.md": "ok"}
    html_request = [r for r in fake.requests if "<p>" in r["messages"][1]["content"]]
    assert html_request == []


def test_streams_stdin_to_stdout(fake: FakeServer) -> None:
    lines = "".join(json.dumps(d) + "\n" for d in docs(5))
    result = runner.invoke(app, ["bulk", "-", "--out", "-", "--base-url", fake.base_url, "--model", "m", "-q"],
                           input=lines)
    assert result.exit_code == 0
    assert sorted(json.loads(line)["id"] for line in result.stdout.splitlines()) == [f"doc-{i}" for i in range(5)]


def test_rerun_resumes_and_redoes_nothing(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(20))
    out = tmp_path / "out.jsonl"
    bulk(fake, str(source), "--out", str(out), "--no-cache")
    assert fake.total == 20
    result = bulk(fake, str(source), "--out", str(out), "--no-cache", "--json")
    assert fake.total == 20
    assert json.loads(result.stdout)["skipped"] == 20
    assert len(read_out(out)) == 20


def test_torn_last_line_is_repaired_on_resume(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(10))
    out = tmp_path / "out.jsonl"
    bulk(fake, str(source), "--out", str(out), "--no-cache")
    lines = out.read_bytes().splitlines(keepends=True)
    torn_id = json.loads(lines[-1])["id"]
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # a crash mid-write
    fake.requests.clear()
    bulk(fake, str(source), "--out", str(out), "--no-cache")
    assert requested_ids(fake) == [torn_id]
    records = read_out(out)
    assert sorted(r["id"] for r in records) == sorted(f"doc-{i}" for i in range(10))


def test_retry_failed_redoes_only_error_records(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(10, lambda i: "[[fake:refusal]] " if i in (3, 7) else ""))
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out)).exit_code == 1
    assert sorted(r["id"] for r in read_out(out) if r["status"] == "error") == ["doc-3", "doc-7"]
    fake.requests.clear()
    # the plain rerun leaves the failures alone
    bulk(fake, str(source), "--out", str(out))
    assert fake.requests == []
    # the fake server's marker plan is spent, so the retry succeeds
    assert bulk(fake, str(source), "--out", str(out), "--retry-failed").exit_code == 0
    assert sorted(requested_ids(fake)) == ["doc-3", "doc-7"]
    records = read_out(out)
    assert Counter(r["id"] for r in records) == Counter(f"doc-{i}" for i in range(10))
    assert all(r["status"] == "ok" for r in records)


def test_retry_failed_keeps_duplicate_records_once(fake: FakeServer, tmp_path: Path) -> None:
    rows = docs(4, lambda i: "[[fake:refusal]] " if i == 2 else "") + [{"id": "doc-1", "text": "again, same id"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out), "--no-cache").exit_code == 1
    codes = {r["id"]: r["error"]["code"] for r in read_out(out) if r["status"] == "error"}
    assert set(codes) == {"doc-2", "doc-1#line-5"} and codes["doc-1#line-5"] == "duplicate_id"
    fake.requests.clear()
    assert bulk(fake, str(source), "--out", str(out), "--retry-failed", "--no-cache").exit_code == 1  # the repeat stays
    assert requested_ids(fake) == ["doc-2"]
    records = read_out(out)
    assert Counter(r["id"] for r in records) == Counter(["doc-0", "doc-1", "doc-2", "doc-3", "doc-1#line-5"])
    assert [r["id"] for r in records if r["status"] == "error"] == ["doc-1#line-5"]


def test_an_output_of_the_other_task_is_refused_not_skipped(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(3))
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out), "--task", "brief", "--no-cache").exit_code == 0
    before = out.read_bytes()
    fake.requests.clear()
    result = bulk(fake, str(source), "--out", str(out), "--no-cache")  # events (the default) into a brief output
    assert result.exit_code == 2 and "holds brief results and this run is events" in result.stderr
    assert out.read_bytes() == before and fake.requests == []


def test_cache_makes_identical_documents_free(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(12))
    bulk(fake, str(source), "--out", str(tmp_path / "a.jsonl"))
    assert fake.total == 12
    result = bulk(fake, str(source), "--out", str(tmp_path / "b.jsonl"), "--json")
    assert fake.total == 12
    assert json.loads(result.stdout)["cached"] == 12
    assert all(r["cached"] for r in read_out(tmp_path / "b.jsonl"))
    values = {name: {r["id"]: r["value"] for r in read_out(tmp_path / name)} for name in ("a.jsonl", "b.jsonl")}
    assert values["a.jsonl"] == values["b.jsonl"]  # lines arrive in completion order: compare by id
    bulk(fake, str(source), "--out", str(tmp_path / "c.jsonl"), "--no-cache")
    assert fake.total == 24
    # a different task or option is a different key
    bulk(fake, str(source), "--out", str(tmp_path / "d.jsonl"), "--task", "brief")
    assert fake.total == 36


def test_cache_is_safe_with_concurrent_writers(tmp_path: Path) -> None:
    from summarizer.cache import ResultCache

    script = ("import sys; from summarizer.cache import ResultCache; c = ResultCache(sys.argv[1]); "
              "[c.put(f'{sys.argv[2]}-{i}', {'v': i}) for i in range(300)]")
    path = tmp_path / "cache.sqlite3"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(n)]) for n in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    cache = ResultCache(path)
    assert all(cache.get(f"{n}-{i}") == {"v": i} for n in range(4) for i in range(300))


@pytest.mark.slow
def test_fault_injection_1000_documents(fake: FakeServer, tmp_path: Path) -> None:
    plans = {1: "429", 2: "500 503", 3: "reset", 4: "fenced", 5: "truncated", 6: "malformed",
             7: "badquote", 8: "hang", 9: "invalid prose"}
    refused, broken = {15, 415, 815, 215, 615}, {25, 525, 925}

    def marker(i: int) -> str:
        if i in refused:
            return "[[fake:refusal]] "
        if i in broken:
            return "[[fake:500 500 500]] "
        return f"[[fake:{plans[i % 10]}]] " if i % 10 in plans else ""

    source = write_jsonl(tmp_path / "in.jsonl", docs(1000, marker))
    out = tmp_path / "out.jsonl"
    result = bulk(fake, str(source), "--out", str(out), "--concurrency", "64", "--timeout", "1",
                  "--max-attempts", "3", "--no-cache", "--json")
    assert result.exit_code == 1
    records = read_out(out)
    assert Counter(r["id"] for r in records) == Counter(f"doc-{i}" for i in range(1000))
    failed = {r["id"]: r["error"]["code"] for r in records if r["status"] == "error"}
    assert failed == {**{f"doc-{i}": "output_invalid" for i in refused}, **{f"doc-{i}": "provider_error" for i in broken}}
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 990
    summary = json.loads(result.stdout)
    spoiled = refused | broken
    # one transport retry per 429/reset/hang, two for "500 503", two per persistent-500 doc
    retries_per = {1: 1, 2: 2, 3: 1, 8: 1}
    assert summary["retries"] == sum(retries_per.get(i % 10, 0) for i in range(1000) if i not in spoiled) + 2 * len(broken)
    # one re-ask per truncated / malformed / badquote / invalid-then-prose doc
    assert summary["reasks"] == sum(1 for i in range(1000) if i % 10 in (5, 6, 7, 9) and i not in spoiled)
    for counted in ("429", "500", "503", "reset", "hang", "fenced", "truncated", "malformed", "badquote", "invalid"):
        assert fake.counts.get(counted, 0) >= 90, counted


@pytest.mark.slow
def test_rate_limit_keeps_429s_rare(fake: FakeServer, tmp_path: Path) -> None:
    fake.rpm_limit, fake.rate_window = 10, 1.0  # the server allows 10 requests a second
    source = write_jsonl(tmp_path / "in.jsonl", docs(30))
    unlimited = bulk(fake, str(source), "--out", str(tmp_path / "a.jsonl"), "--no-cache", "--json",
                     "--concurrency", "16")
    assert json.loads(unlimited.stdout)["throttled"] >= 10  # without a limit the server pushes back
    fake.counts.clear()
    fake.forget_rate_window()  # forget the first run's requests
    limited = bulk(fake, str(source), "--out", str(tmp_path / "b.jsonl"), "--no-cache", "--json",
                   "--concurrency", "16", "--rpm", "540")
    summary = json.loads(limited.stdout)
    assert limited.exit_code == 0 and summary["ok"] == 30
    assert summary["throttled"] <= 3  # paced at 9/s: at most a stray one when the loop stalls


@pytest.mark.slow
def test_kill_mid_run_then_rerun_yields_every_id_once(fake: FakeServer, tmp_path: Path) -> None:
    fake.latency = 0.02
    source = write_jsonl(tmp_path / "in.jsonl", docs(300))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "m"}
    command = [sys.executable, "-m", "summarizer", "bulk", str(source), "--out", str(out), "--concurrency", "8", "-q"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fake.on_request = lambda n: n == 150 and os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(120) == -signal.SIGKILL
    fake.on_request = None
    written_ok = {r["id"] for r in (json.loads(line) for line in out.read_bytes().splitlines()
                                    if line.endswith(b"}")) if r["status"] == "ok"}
    assert 50 < len(written_ok) < 300
    fake.requests.clear()
    rerun = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    records = read_out(out)
    assert Counter(r["id"] for r in records) == Counter(f"doc-{i}" for i in range(300))
    assert not written_ok & set(requested_ids(fake))


def test_library_bulk_async_iterator(fake: FakeServer) -> None:
    async def main() -> list:
        async with Summarizer(model="m", base_url=fake.base_url) as s:
            return [r async for r in s.abulk([(f"d{i}", BODY) for i in range(10)] + [("empty", " ")],
                                             task="events", concurrency=4, cache=False)]

    results = asyncio.run(main())
    assert sorted(r.id for r in results) == sorted([f"d{i}" for i in range(10)] + ["empty"])
    assert {r.id for r in results if r.status == "error"} == {"empty"}


def test_sink_refuses_a_file_that_is_not_ours_and_read_jsonl_numbers_lines(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    content = b'{"id":"a","task":"brief","status":"ok"}\nnot json\n{"id":"b","task":"brief","status":"error"}\n'
    out.write_bytes(content)
    with pytest.raises(UsageError, match="line 2 is not a result record"):
        JsonlSink(out)
    assert out.read_bytes() == content
    out.write_bytes(content.replace(b"not json\n", b"") + b'{"id":"c","ta')  # a torn last line
    sink = JsonlSink(out)
    sink.close()
    assert sink.done == {"a": "ok", "b": "error"} and sink.repaired
    assert out.read_bytes().count(b"\n") == 2 and out.read_bytes().endswith(b"}\n")
    items = list(read_jsonl([b'{"id": "x", "text": "hi"}', b"", b"oops"]))
    assert [i.id for i in items] == ["x", "#line-3"]


# -- text that is not valid Unicode ------------------------------------------------------------

SURROGATES = [  # JSON escapes as the lines carry them: each decodes to a lone surrogate
    '{"id": "in-text", "text": "Report \\ud800 here. ' + BODY + '"}',
    '{"id": "in-\\udc00-id", "text": "' + BODY + '"}',
    '{"id": "in-html", "html": "<p>\\udfff ' + BODY + '</p>"}',
    '{"id": "in-url", "url": "http://127.0.0.1:9/\\ud800"}',
    '{"id": "in-date", "text": "Dated. ' + BODY + '", "published": "\\ud800"}',
]


def test_lone_surrogates_cost_their_record_and_the_run_goes_on(fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [docs(1)[0], *SURROGATES, docs(2)[1]])
    out = tmp_path / "out.jsonl"
    result = bulk(fake, str(source), "--out", str(out), "--task", "brief")
    assert result.exit_code == 1, result.output
    by_id = {r["id"]: r for r in read_out(out)}
    assert {k: r["status"] for k, r in by_id.items()} == {
        "doc-0": "ok", "in-text": "error", "#line-3": "error", "in-html": "error", "in-url": "error",
        "in-date": "ok", "doc-1": "ok"}
    for doc_id in ("in-text", "#line-3", "in-html", "in-url"):
        assert by_id[doc_id]["error"]["code"] == "input_error"
        assert "not valid Unicode (a lone surrogate" in by_id[doc_id]["error"]["message"]
    assert "the record is named #line-3" in by_id["#line-3"]["error"]["message"]
    assert any("is not a YYYY-MM-DD date" in w for w in by_id["in-date"]["warnings"])
    again = bulk(fake, str(source), "--out", str(out), "--task", "brief", "--retry-failed")  # resumable as ever
    assert again.exit_code == 1 and len(read_out(out)) == 7


@pytest.mark.parametrize("task", ["brief", "events"])
def test_an_answer_with_a_lone_surrogate_is_written_with_a_replacement_character(
        task: str, fake: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", docs(3, lambda i: "[[fake:surrogate]] " if i == 1 else ""))
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out), "--task", task).exit_code == 0
    by_id = {r["id"]: r for r in read_out(out)}
    assert [by_id[f"doc-{i}"]["status"] for i in range(3)] == ["ok", "ok", "ok"]
    value = json.dumps(by_id["doc-1"]["value"], ensure_ascii=False)
    assert "\ufffd" in value and any("lone surrogates" in w for w in by_id["doc-1"]["warnings"])


def test_a_record_that_cannot_be_encoded_is_written_as_its_error_record(tmp_path: Path) -> None:
    from summarizer.schemas import ErrorInfo, Failure

    sink = JsonlSink(tmp_path / "out.jsonl", task="brief")
    written = sink.write(Failure(id="a\ud800", task="brief", error=ErrorInfo(code="x", message="m \udc00")))
    sink.close()
    assert written.id == "a\\ud800" and written.error is not None and written.error.code == "output_error"
    assert read_out(tmp_path / "out.jsonl") == [written.model_dump(mode="json")]


def test_utf16_input_with_a_stray_byte_is_decoded_then_split(fake: FakeServer, tmp_path: Path) -> None:
    good = "".join(json.dumps(d) + "\n" for d in docs(2)).encode("utf-16-le")
    bad = "".join(json.dumps(d) + "\n" for d in docs(4)[2:]).encode("utf-16-le")
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xff\xfe" + good + bad[:40] + b"\x00" + bad[40:])  # a stray byte in line 3
    out = tmp_path / "out.jsonl"
    result = bulk(fake, str(source), "--out", str(out), "--task", "brief")
    assert result.exit_code == 1, result.output
    by_id = {r["id"]: r for r in read_out(out)}
    assert by_id["doc-0"]["status"] == by_id["doc-1"]["status"] == "ok"
    assert set(by_id) == {"doc-0", "doc-1", "#line-3"} and by_id["#line-3"]["error"]["code"] == "invalid_record"
    assert "stray or missing byte in UTF-16" in by_id["#line-3"]["error"]["message"]


def test_a_file_name_in_another_encoding_is_read_with_an_escaped_id(fake: FakeServer, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / os.fsdecode(b"caf\xe9.txt")).write_text(BODY)
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(corpus), "--out", str(out), "--task", "brief").exit_code == 0
    assert [r["id"] for r in read_out(out)] == ["caf\\xe9.txt"]


# -- progress ------------------------------------------------------------------------------------


def _plain_progress(source: str, ticks: list[tuple[float, int]]) -> list[str]:
    """The lines BulkProgress prints (no terminal) as ``(time, done)`` arrive at one doc a second."""
    import io

    from rich.console import Console

    from summarizer.bulk import BulkSummary
    from summarizer.progress import BulkProgress

    out, now = io.StringIO(), [0.0]
    progress = BulkProgress(source, every=10, clock=lambda: now[0], console=Console(file=out, width=200))
    summary = BulkSummary(started=0.0)
    with progress:
        for t, done in ticks:
            now[0] = summary.wall_s = t
            summary.ok = done
            progress.update(None, summary)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def test_progress_knows_the_total_of_a_folder_and_of_jsonl_and_gives_an_eta(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for i in range(30):
        (corpus / ("sub" if i % 2 else "") / f"d{i}.txt").write_text(BODY)
    (corpus / "notes.csv").write_text("not read")
    source = write_jsonl(tmp_path / "in.jsonl", docs(40))
    (tmp_path / "u16.jsonl").write_bytes(source.read_text().encode("utf-16"))
    (tmp_path / "blank.jsonl").write_text(source.read_text().replace("\n", "\n\n  \n"))
    ticks = [(10.0, 10), (20.0, 20)]
    assert _plain_progress(str(corpus), ticks)[0] == "summarizer: 10/30 done · ok 10 · failed 0 · 1.0 docs/s · ETA 0:20"
    for name in ("in.jsonl", "u16.jsonl", "blank.jsonl"):
        lines = _plain_progress(str(tmp_path / name), ticks)
        assert lines == ["summarizer: 10/40 done · ok 10 · failed 0 · 1.0 docs/s · ETA 0:30",
                         "summarizer: 20/40 done · ok 20 · failed 0 · 1.0 docs/s · ETA 0:20"], name
    assert _plain_progress("-", ticks)[0] == "summarizer: 10 done · ok 10 · failed 0 · 1.0 docs/s"


def test_the_progress_bar_shows_the_count_without_a_question_mark(tmp_path: Path) -> None:
    import io
    import re as regex

    from rich.console import Console

    from summarizer.bulk import BulkSummary
    from summarizer.progress import BulkProgress

    for source, shown in ((str(write_jsonl(tmp_path / "in.jsonl", docs(50))), "7/50"), ("-", "7 done")):
        out = io.StringIO()
        summary = BulkSummary(started=0.0)
        summary.ok, summary.wall_s = 7, 7.0
        with BulkProgress(source, console=Console(file=out, width=100, force_terminal=True)) as progress:
            progress.update(None, summary)  # type: ignore[arg-type]
            progress.refresh()
        text = regex.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
        assert shown in text and "/?" not in text


def test_a_long_document_says_which_part_it_is_on(fake: FakeServer, tmp_path: Path) -> None:
    long = tmp_path / "long.txt"
    long.write_text("\n\n".join(f"Paragraph {i}: the council of Lisbon met on Monday and voted on budget line {i}. "
                                * 4 for i in range(120)))
    result = runner.invoke(app, ["brief", str(long), "--context-tokens", "4096", "--base-url", fake.base_url,
                                 "--model", "m"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:5] == [
        "summarizer: long document: reading it in 3 parts", "summarizer: part 1/3 read", "summarizer: part 2/3 read",
        "summarizer: part 3/3 read", "summarizer: combining the parts"]


def test_a_reader_that_stops_early_closes_the_run_even_with_every_record_waiting(fake: FakeServer) -> None:
    """A cancelled job or a stopping server stops reading while finished records fill the queue: closing the
    results must still end (it waited for room for its end marker forever, and the service never exited)."""
    from summarizer.documents import Document
    from summarizer.sources import BulkItem

    async def read_one_then_close() -> list[str]:
        with Summarizer(base_url=fake.base_url, model="m", api_key="k", max_attempts=1) as s:
            runner = s.bulk_runner("brief", concurrency=4)
            items = [BulkItem(f"d{i}", Document.from_text(f"Report {i}. {UNGA.read_text()}", id=f"d{i}"))
                     for i in range(40)]
            loop, answered = asyncio.get_running_loop(), asyncio.Event()
            fake.on_request = lambda n: n >= 6 and loop.call_soon_threadsafe(answered.set)
            results = runner.results(items)
            first = await anext(results)
            await answered.wait()  # more answers than the queue's 4 places meanwhile: it is full
            closing = asyncio.ensure_future(results.aclose())
            done, _ = await asyncio.wait({closing}, timeout=30)  # a guard: a hang fails, never blocks the suite
            return [first.id] if done else []

    assert asyncio.run(read_one_then_close()), "closing the results hung"
    assert len(fake.requests) < 40
