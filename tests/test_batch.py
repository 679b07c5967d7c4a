"""`bulk --via batch` through the real CLI against the fake server's Files and Batches API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import SECRET, UNGA
from fake_server import FakeServer
from typer.testing import CliRunner

from summarizer.cli import app

runner = CliRunner()
BODY = UNGA.read_text().split("\n")[0]
FAST = ["--poll-interval", "0.02", "--max-poll-interval", "0.05"]


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def docs(n: int, marker=lambda i: "") -> list[dict]:
    return [{"id": f"doc-{i}", "text": f"Report doc-{i}. {marker(i)}{BODY}"} for i in range(n)]


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def batch(fake: FakeServer, *args: str):
    return runner.invoke(app, ["bulk", *args, "--via", "batch", "--base-url", fake.base_url, "--model", "m",
                               "--api-key", SECRET, "-q", "--no-cache", *FAST])


def doc_of(custom_id: str) -> str:
    return custom_id.split("/")[0]


def test_2000_documents_with_faults_end_with_every_id_once(fake: FakeServer, tmp_path: Path) -> None:
    plans = {1: "500", 2: "malformed", 3: "badquote", 4: "invalid", 5: "missing", 6: "503 missing"}
    source = write(tmp_path / "in.jsonl", docs(2000, lambda i: f"[[fake:{plans[i % 20]}]] " if i % 20 in plans else ""))
    fake.batch_api.expire_next = 0.5  # the first batch expires with half its output done
    out = tmp_path / "out.jsonl"
    result = batch(fake, str(source), "--out", str(out), "--task", "events", "--batch-max-requests", "700", "--json")
    assert result.exit_code == 0, result.output
    records = read_out(out)
    assert Counter(r["id"] for r in records) == Counter(f"doc-{i}" for i in range(2000))
    ok = sum(r["status"] == "ok" for r in records)
    assert ok / 2000 >= 0.99
    summary = json.loads(result.stdout)
    assert summary["finished"] and summary["batches"] >= 4 and len(summary["rounds"]) >= 2
    expired = fake.batch_api.batches[fake.batch_api.created[0]]
    assert expired["status"] == "expired"
    # no document whose first answer was valid is ever sent again
    sent = Counter(doc_of(c) for c in fake.batch_api.submitted)
    clean = [f"doc-{i}" for i in range(700, 2000) if i % 20 not in plans]
    assert all(sent[d] == 1 for d in clean)
    assert all(sent[f"doc-{i}"] >= 2 for i in range(2000) if i % 20 in plans)  # each fault cost one more round
    by_id = {r["id"]: r for r in records}
    assert by_id["doc-40"]["usage"]["batched"] == 1 and by_id["doc-43"]["usage"]["reasks"] == 1
    assert by_id["doc-41"]["usage"]["retries"] == 1 and by_id["doc-41"]["usage"]["requests"] == 2


def test_request_lines_carry_exactly_the_direct_body(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(3))
    assert batch(fake, str(source), "--out", str(tmp_path / "out.jsonl"), "--task", "events").exit_code == 0
    upload = next(f for f in fake.batch_api.files.values() if f["purpose"] == "batch")
    lines = [json.loads(line) for line in upload["data"].splitlines()]
    assert [set(line) for line in lines] == [{"custom_id", "method", "url", "body"}] * 3
    assert {line["method"] for line in lines} == {"POST"} and {line["url"] for line in lines} == {"/v1/chat/completions"}
    direct = runner.invoke(app, ["events", "-", "--base-url", fake.base_url, "--model", "m", "--api-key", SECRET],
                           input=docs(3)[0]["text"])
    assert direct.exit_code == 0
    assert lines[0]["body"] == fake.requests[-1]  # byte for byte what direct mode sent, schema included
    assert lines[0]["body"]["response_format"]["type"] == "json_schema"
    metadata = fake.batch_api.batches[fake.batch_api.created[0]]["metadata"]
    assert metadata["summarizer_run"].startswith("sum_") and metadata["round"] == "1"


def test_file_limits_split_the_requests(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(100))
    fake.batch_api.max_bytes = 50_000  # the provider's own limit; the client splits under it
    result = batch(fake, str(source), "--out", str(tmp_path / "out.jsonl"), "--task", "brief",
                   "--batch-max-bytes", "45000")
    assert result.exit_code == 0, result.output
    uploads = [f for f in fake.batch_api.files.values() if f["purpose"] == "batch"]
    assert len(uploads) == 3 and all(f["bytes"] <= 45000 for f in uploads)
    assert len(fake.batch_api.created) == 3 and len(read_out(tmp_path / "out.jsonl")) == 100


def test_a_batch_refused_for_enqueued_tokens_is_created_again(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.refuse_creates = 2
    result = runner.invoke(app, ["bulk", str(write(tmp_path / "in.jsonl", docs(5))), "--out",
                                 str(tmp_path / "out.jsonl"), "--via", "batch", "--base-url", fake.base_url,
                                 "--model", "m", *FAST])
    assert result.exit_code == 0, result.output
    assert fake.batch_api.refused_creates == 2 and len(fake.batch_api.created) == 1
    assert "enqueued-token limit" in result.stderr


def test_long_documents_map_in_one_round_and_combine_in_the_next(fake: FakeServer, tmp_path: Path) -> None:
    long = "\n\n".join(f"Paragraph {i}: the council of Lisbon met on Monday and voted on budget line {i}. " * 4
                       for i in range(120))
    source = write(tmp_path / "in.jsonl", [{"id": "long", "text": long}, *docs(2)])
    result = runner.invoke(app, ["bulk", str(source), "--out", str(tmp_path / "out.jsonl"), "--via", "batch",
                                 "--task", "brief", "--context-tokens", "4096", "--base-url", fake.base_url,
                                 "--model", "m", "-q", "--no-cache", "--json", *FAST])
    assert result.exit_code == 0, result.output
    record = next(r for r in read_out(tmp_path / "out.jsonl") if r["id"] == "long")
    assert record["status"] == "ok" and record["prompt_version"] == "brief@4+brief_combine@4"
    rounds = json.loads(result.stdout)["rounds"]
    assert rounds[0]["requests"] > 2 and rounds[1]["requests"] == 1  # the parts, then the combine


def test_stragglers_fail_after_max_rounds_or_finish_directly(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(4, lambda i: "[[fake:500 500 500]] " if i == 2 else ""))
    out = tmp_path / "a.jsonl"
    assert batch(fake, str(source), "--out", str(out), "--max-rounds", "2").exit_code == 1
    failed = {r["id"]: r["error"] for r in read_out(out) if r["status"] == "error"}
    assert list(failed) == ["doc-2"] and failed["doc-2"]["code"] == "batch_incomplete"
    assert "HTTP 500" in failed["doc-2"]["message"]
    fake.batch_api.reset()
    fake._seen.clear()
    out = tmp_path / "b.jsonl"
    result = batch(fake, str(source), "--out", str(out), "--max-rounds", "2", "--finish", "direct")
    assert result.exit_code == 0, result.output
    assert all(r["status"] == "ok" for r in read_out(out))
    assert any(r["messages"][1]["content"].startswith("Extract") or "doc-2" in r["messages"][1]["content"]
               for r in fake.requests)  # the straggler went straight to chat completions


def test_no_wait_then_collect_then_status(fake: FakeServer, tmp_path: Path) -> None:
    now = [0.0]
    fake.batch_api.clock = lambda: now[0]  # the provider's time moves only when the test says
    fake.batch_api.durations = (1.0, 1.0, 1.0)
    source = write(tmp_path / "in.jsonl", docs(6, lambda i: "[[fake:badquote]] " if i == 1 else ""))
    out = tmp_path / "out.jsonl"
    submitted = batch(fake, str(source), "--out", str(out), "--no-wait", "--json")
    assert submitted.exit_code == 0
    assert json.loads(submitted.stdout)["batches"] == 1 and not json.loads(submitted.stdout)["finished"]
    endpoint = ["--base-url", fake.base_url, "--model", "m", "--api-key", SECRET, "-q", "--json"]
    waiting = json.loads(runner.invoke(app, ["batch", "collect", str(out), *endpoint]).stdout)
    assert not waiting["finished"] and waiting["batches"] == 0 and not out.read_text()  # still validating
    now[0] += 10
    first = runner.invoke(app, ["batch", "collect", str(out), *endpoint])
    assert first.exit_code == 0 and not json.loads(first.stdout)["finished"]  # round 2 (the re-ask) submitted
    assert json.loads(first.stdout)["batches"] == 1 and len(read_out(out)) == 5
    now[0] += 10
    second = runner.invoke(app, ["batch", "collect", str(out), *endpoint])
    assert second.exit_code == 0 and json.loads(second.stdout)["finished"]
    assert Counter(r["id"] for r in read_out(out)) == Counter(d["id"] for d in docs(6))
    status = json.loads(runner.invoke(app, ["batch", "status", str(out), "--json"]).stdout)
    assert [b["round"] for b in status["batches"]] == [1, 2] and status["open_documents"] == 0


def test_cancel_keeps_what_the_batch_finished(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.durations = (0.0, 3600.0, 0.0)  # it would take an hour
    source = write(tmp_path / "in.jsonl", docs(10))
    out = tmp_path / "out.jsonl"
    assert batch(fake, str(source), "--out", str(out), "--no-wait").exit_code == 0
    endpoint = ["--base-url", fake.base_url, "--model", "m", "--api-key", SECRET]
    cancelled = runner.invoke(app, ["batch", "cancel", str(out), *endpoint])
    assert cancelled.exit_code == 0 and "cancelled 1 batch" in cancelled.stderr
    fake.batch_api.durations = (0.0, 0.0, 0.0)
    collected = runner.invoke(app, ["batch", "collect", str(out), *endpoint, "-q", "--json"])
    assert json.loads(collected.stdout)["finished"]
    records = read_out(out)
    assert Counter(r["id"] for r in records) == Counter(d["id"] for d in docs(10))
    assert all(r["status"] == "ok" for r in records)
    assert len(fake.batch_api.created) == 2  # the cancelled batch's undone part went into round 2


def test_an_endpoint_without_batch_routes_is_a_configuration_error(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.disabled = True
    result = batch(fake, str(write(tmp_path / "in.jsonl", docs(2))), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 3 and "has no Batch API" in result.stderr and SECRET not in result.output


def test_other_settings_on_the_same_output_are_refused(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(2))
    out = tmp_path / "out.jsonl"
    assert batch(fake, str(source), "--out", str(out), "--task", "events").exit_code == 0
    again = batch(fake, str(source), "--out", str(out), "--task", "brief")
    assert again.exit_code == 2 and "holds events results and this run is brief" in again.stderr
    # A brief's word range does not shape an event report (not in its cache key, nor the run's identity) ...
    assert batch(fake, str(source), "--out", str(out), "--task", "events", "--words", "20-30").exit_code == 0
    # ... its language does.
    other_language = batch(fake, str(source), "--out", str(out), "--task", "events", "--language", "de")
    assert other_language.exit_code == 2 and "other settings" in other_language.stderr


@pytest.mark.slow
def test_sigkill_while_polling_then_rerun_creates_no_new_batch(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.durations = (0.0, 1.0, 0.0)
    source = write(tmp_path / "in.jsonl", docs(50, lambda i: "[[fake:badquote]] " if i % 10 == 0 else ""))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "m", "OPENAI_API_KEY": SECRET}
    command = [sys.executable, "-m", "summarizer", "bulk", str(source), "--out", str(out), "--via", "batch",
               "--no-cache", "-q", *FAST]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    fake.batch_api.on_retrieve = lambda n: n == 3 and os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    fake.batch_api.on_retrieve = None
    assert len(fake.batch_api.created) == 1 and not out.exists() or out.read_text() == ""
    rerun = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    rounds = [int(fake.batch_api.batches[b]["metadata"]["round"]) for b in fake.batch_api.created]
    assert rounds == [1, 2]  # round 1 was polled, not made again; round 2 carried the re-asks
    assert Counter(r["id"] for r in read_out(out)) == Counter(d["id"] for d in docs(50))
    assert Counter(re.sub(r"/.*", "", c) for c in fake.batch_api.submitted)["doc-1"] == 1


# -- the state of a run, and an output that lost its records ------------------------------------------


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name not in ("cache", "config")}


def endpoint_args(fake: FakeServer) -> list[str]:
    return ["--base-url", fake.base_url, "--model", "m", "--api-key", SECRET]


def with_cache(fake: FakeServer, *args: str):
    return runner.invoke(app, ["bulk", *args, "--via", "batch", *endpoint_args(fake), *FAST])


def test_a_deleted_output_is_restored_by_the_rerun_from_the_cache(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(5))
    out = tmp_path / "out.jsonl"
    assert with_cache(fake, str(source), "--out", str(out), "-q").exit_code == 0
    first = read_out(out)
    out.unlink()
    rerun = with_cache(fake, str(source), "--out", str(out), "--json")
    assert rerun.exit_code == 0, rerun.output
    assert "holds 0 of the 5 records this batch run wrote to it" in rerun.stderr
    assert "all 5 document(s) were answered from the result cache" in rerun.stderr
    assert sorted(r["id"] for r in read_out(out)) == sorted(r["id"] for r in first)
    assert all(r["status"] == "ok" and r["cached"] for r in read_out(out))
    assert len(fake.batch_api.created) == 1  # nothing asked again
    assert json.loads(rerun.stdout)["finished"]


def test_a_deleted_output_without_a_cache_is_asked_again(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(4))
    out = tmp_path / "out.jsonl"
    assert batch(fake, str(source), "--out", str(out)).exit_code == 0
    out.write_text("".join(line + "\n" for line in out.read_text().splitlines()[:1]))  # cut to its first record
    assert batch(fake, str(source), "--out", str(out)).exit_code == 0
    assert Counter(r["id"] for r in read_out(out)) == Counter(d["id"] for d in docs(4))
    assert len(fake.batch_api.created) == 2 and fake.batch_api.batches[fake.batch_api.created[1]][
        "request_counts"]["total"] == 3  # only the three it lost


def test_collect_on_a_deleted_output_says_how_to_restore_it(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(3))
    out = tmp_path / "out.jsonl"
    assert batch(fake, str(source), "--out", str(out)).exit_code == 0
    out.unlink()
    before = files_in(tmp_path)
    collected = runner.invoke(app, ["batch", "collect", str(out), *endpoint_args(fake)])
    assert collected.exit_code == 2 and "Traceback" not in collected.output
    assert collected.stderr.strip().splitlines() == [
        f"summarizer: error: {out} holds 0 of the 3 records this batch run wrote to it (deleted or cut?): run "
        f"`summarizer bulk SOURCE --via batch --out {out}` again to restore them (from the result cache where it "
        "has them, else asked again)"]
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty-meta"])
def test_a_damaged_state_file_is_one_line_and_exit_2(damage: str, fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(3))
    out = tmp_path / "out.jsonl"
    fake.batch_api.durations = (0.0, 3600.0, 0.0)
    assert batch(fake, str(source), "--out", str(out), "--no-wait").exit_code == 0
    state = tmp_path / "out.jsonl.batch.sqlite3"
    for extra in ("-wal", "-shm"):
        (tmp_path / f"out.jsonl.batch.sqlite3{extra}").unlink(missing_ok=True)
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 3])
    elif damage == "garbage":
        state.write_bytes(b"this is not a database" * 100)
    else:
        import sqlite3

        with sqlite3.connect(state) as db:
            db.execute("UPDATE meta SET value = '{not json' WHERE key = 'round'")
    commands = [["bulk", str(source), "--out", str(out), "--via", "batch", *FAST], ["batch", "collect", str(out)],
                ["batch", "status", str(out)], ["batch", "cancel", str(out)]]
    if damage == "empty-meta":
        commands.pop()  # cancel reads only the batches table, which is intact: it may cancel
    for command in commands:
        result = runner.invoke(app, [*command, *(endpoint_args(fake) if command[1] != "status" else [])])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and "Traceback" not in result.output, (command, result.output)
        assert lines[-1].startswith(f"summarizer: error: {state} is not a readable batch state"), (command, lines)


@pytest.mark.parametrize("command", ["collect", "cancel", "status"])
def test_a_command_on_an_output_with_no_run_creates_nothing(command: str, fake: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["batch", command, str(out), *(endpoint_args(fake) if command != "status" else [])])
    assert result.exit_code == 2 and f"{out} has no batch run" in result.stderr
    assert files_in(tmp_path) == set() and fake.batch_api.created == []


def test_collect_goes_on_with_the_runs_own_task_and_options(fake: FakeServer, tmp_path: Path) -> None:
    now = [0.0]
    fake.batch_api.clock = lambda: now[0]
    source = write(tmp_path / "in.jsonl", docs(3))
    out = tmp_path / "out.jsonl"
    assert batch(fake, str(source), "--out", str(out), "--no-wait", "--task", "brief", "--words", "30-60",
                 "--context-tokens", "4096").exit_code == 0
    for flags, says in [(["--task", "events"], "--task events contradicts the batch run"),
                        (["--words", "40-120"], "--words 40-120 contradicts"),
                        (["--context-tokens", "8192"], "--context-tokens 8192 contradicts")]:
        refused = runner.invoke(app, ["batch", "collect", str(out), *flags, *endpoint_args(fake)])
        assert refused.exit_code == 2 and says in refused.stderr and "started with" in refused.stderr
    now[0] += 10
    collected = runner.invoke(app, ["batch", "collect", str(out), *endpoint_args(fake), "-q", "--json"])
    assert collected.exit_code == 0 and json.loads(collected.stdout)["finished"], collected.output
    records = read_out(out)
    assert {r["task"] for r in records} == {"brief"} and len(records) == 3 and all(r["status"] == "ok" for r in records)


# -- a batch the provider fails at validation ---------------------------------------------------------


def test_a_limit_lower_than_ours_splits_the_file_and_goes_on(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.validation_max_requests = 3
    source = write(tmp_path / "in.jsonl", docs(10))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--out", str(out), "--via", "batch", "--no-cache", "--json",
                                 *endpoint_args(fake), *FAST])
    assert result.exit_code == 0, result.output
    assert "refused batch" in result.stderr and "too_many_tasks: The batch has 10 requests; this model allows at " \
                                                "most 3 per batch" in result.stderr
    assert all(r["status"] == "ok" for r in read_out(out)) and len(read_out(out)) == 10
    api = fake.batch_api
    files = [tuple(json.loads(line)["custom_id"] for line in api.files[api.batches[b]["input_file_id"]]["data"]
                   .splitlines()) for b in api.created]
    assert len(set(files)) == len(files)  # no file sent twice
    refused = [api.batches[b]["request_counts"]["total"] for b in api.refused]
    answered = [api.batches[b]["request_counts"]["total"] for b in api.created if b not in api.refused]
    assert refused[0] == 10 and min(refused) > 3 and sum(answered) == 10 and max(answered) <= 3
    assert len(json.loads(result.stdout)["rounds"]) == 1  # refusals cost no round


def test_a_line_the_provider_refuses_fails_with_its_reason_and_the_rest_go_on(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", docs(4, lambda i: "[[batch:refuse]] " if i == 2 else ""))
    out = tmp_path / "out.jsonl"
    result = batch(fake, str(source), "--out", str(out))
    assert result.exit_code == 1, result.output
    by_id = {r["id"]: r for r in read_out(out)}
    assert [by_id[f"doc-{i}"]["status"] for i in range(4)] == ["ok", "ok", "error", "ok"]
    error = by_id["doc-2"]["error"]
    assert error["code"] == "provider_error" and "invalid_request: The request body is not valid" in error["message"]
    assert "(line 3)" in error["message"]
    refused, again = fake.batch_api.created
    assert fake.batch_api.refused == [refused]  # never sent again unchanged: the second file lacks that line
    assert fake.batch_api.batches[again]["request_counts"]["total"] == 3


def test_a_batch_refused_for_another_reason_is_never_resent(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.validation_error = {"code": "model_mismatch", "message": "The model 'm' is not available for batch."}
    source = write(tmp_path / "in.jsonl", docs(3))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--out", str(out), "--via", "batch", "--no-cache",
                                 *endpoint_args(fake), *FAST])
    assert result.exit_code == 1
    assert "model_mismatch: The model 'm' is not available for batch." in result.stderr
    assert len(fake.batch_api.created) == 1  # one batch, not one per round
    errors = [r["error"] for r in read_out(out)]
    assert len(errors) == 3 and all("model_mismatch: The model 'm' is not available" in e["message"] for e in errors)
    assert not any("without an answer" in e["message"] for e in errors)


def test_an_upload_over_the_providers_byte_limit_is_split(fake: FakeServer, tmp_path: Path) -> None:
    fake.batch_api.max_bytes = 30_000  # lower than ours: the upload itself is refused
    source = write(tmp_path / "in.jsonl", docs(40))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--out", str(out), "--via", "batch", "--no-cache", "--task",
                                 "brief", *endpoint_args(fake), *FAST])
    assert result.exit_code == 0, result.output
    assert "the limit is 30000" in result.stderr and len(read_out(out)) == 40
    uploads = [f for f in fake.batch_api.files.values() if f["purpose"] == "batch"]
    assert all(f["bytes"] <= 30_000 for f in uploads)
