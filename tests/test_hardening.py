"""Regressions from trying to break it (issue 8) that a one-command table cannot express."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
import respx
from conftest import SECRET, UNGA
from fake_server import FakeServer
from rich.console import Console
from typer.testing import CliRunner

from summarizer import BulkSummary, ConfigError, OpenAIBackend, Summarizer, UsageError
from summarizer.cli import app
from summarizer.errors import redact
from summarizer.progress import BulkProgress
from summarizer.schemas import Failure
from summarizer.sinks import JsonlSink, lock_path

runner = CliRunner()
BODY = UNGA.read_text().split("\n")[0]


def write(path: Path, records: list[dict | bytes]) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records))
    return path


def ids_in(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["id"] for line in path.read_bytes().splitlines())


def bulk(fake: FakeServer, *args: str):
    return runner.invoke(app, ["bulk", *args, "--base-url", fake.base_url, "--model", "m", "-q"])


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 503])
@respx.mock
def test_a_key_anywhere_in_a_long_error_body_never_shows_not_even_cut(status: int) -> None:
    backend = OpenAIBackend(model="m", base_url="https://llm.test/v1", api_key=SECRET)
    for position in range(0, 420, 5):
        for shown in (SECRET, SECRET.upper()):
            body = ("x" * position) + shown + (" trailing words" * 20)
            respx.post("https://llm.test/v1/chat/completions").mock(
                return_value=httpx.Response(status, json={"error": {"message": body}}))
            with pytest.raises(Exception) as info:
                asyncio.run(backend.complete([{"role": "user", "content": "hi"}]))
            folded = str(info.value).casefold()
            assert not any(SECRET[i:i + 6].casefold() in folded for i in range(len(SECRET) - 5)), (position, folded)


@pytest.mark.parametrize("shown", [SECRET, SECRET.upper(), SECRET[:-1], SECRET[3:], "sk-test-S***6789 " + SECRET[:12]])
def test_redact_masks_whole_cut_and_case_changed_keys(shown: str) -> None:
    assert SECRET[4:12].casefold() not in redact(f"Incorrect API key provided: {shown}.", [SECRET]).casefold()


# -- bulk output -----------------------------------------------------------------------------------


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [{"id": "a", "text": BODY}])
    out = tmp_path / "out.jsonl"
    first = JsonlSink(out, input_path=source)  # a run in progress
    try:
        second = bulk(fake, str(source), "--out", str(out))
        assert second.exit_code == 2 and "another run is writing" in second.stderr
        assert fake.total == 0
    finally:
        first.close()
    assert bulk(fake, str(source), "--out", str(out)).exit_code == 0  # released: resumable
    assert ids_in(out) == Counter(["a"]) and lock_path(out).exists()


@pytest.mark.slow
def test_two_concurrent_cli_runs_never_duplicate(fake: FakeServer, tmp_path: Path) -> None:
    fake.latency = 0.01
    source = write(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": f"Doc {i}. {BODY}"} for i in range(200)])
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "m"}
    command = [sys.executable, "-m", "summarizer", "bulk", str(source), "--out", str(out), "-q", "--no-cache"]
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    codes = sorted(p.wait(120) for p in procs)
    assert codes in ([0, 0], [0, 2])  # the second either found it locked, or found everything done
    assert ids_in(out) == Counter(f"d{i}" for i in range(200))


def test_generated_ids_never_collide_and_retry_failed_loses_nothing(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [
        {"id": "a", "text": BODY}, b"{broken", {"id": "line-2", "text": BODY},
        {"id": "x", "text": "[[fake:refusal]] " + BODY},
    ])
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out)).exit_code == 1
    expected = Counter(["a", "#line-2", "line-2", "x"])
    assert ids_in(out) == expected
    assert bulk(fake, str(source), "--out", str(out), "--retry-failed").exit_code == 1  # #line-2 stays broken
    assert ids_in(out) == expected
    again = bulk(fake, str(source), "--out", str(out))
    assert again.exit_code == 1 and ids_in(out) == expected


def test_rerun_exits_1_while_the_output_holds_error_records(fake: FakeServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [{"id": "a", "text": BODY}, {"id": "b", "text": "  "}])
    out = tmp_path / "out.jsonl"
    assert bulk(fake, str(source), "--out", str(out)).exit_code == 1
    rerun = runner.invoke(app, ["bulk", str(source), "--out", str(out), "--base-url", fake.base_url,
                                "--model", "m", "--json", "-q"])
    assert rerun.exit_code == 1
    summary = json.loads(rerun.stdout)
    assert summary["skipped"] == 2 and summary["skipped_failed"] == 1 and summary["requests"] == 0


def test_a_failed_rewrite_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id":"a","task":"brief","status":"ok"}\n{"id":"b","task":"brief","status":"error"}\n')

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        JsonlSink(out, retry_failed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.lock"]


# -- the cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("breakage", ["corrupt", "under-a-file"])
def test_a_broken_cache_warns_once_and_the_run_completes(fake: FakeServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, breakage: str) -> None:
    cache_home = tmp_path / "cachehome"
    if breakage == "corrupt":
        (cache_home / "summarizer").mkdir(parents=True)
        (cache_home / "summarizer" / "results.sqlite3").write_bytes(b"this is not a database" * 100)
    else:
        cache_home.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    source = write(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": BODY} for i in range(5)])
    result = bulk(fake, str(source), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("result cache") == 1 and "running without it" in result.stderr
    assert ids_in(tmp_path / "out.jsonl") == Counter(f"d{i}" for i in range(5))


# -- the library -------------------------------------------------------------------------------------


def test_library_bulk_turns_bad_items_into_error_records(fake: FakeServer) -> None:
    import datetime

    items = ["A text. " + BODY, None, ("x", BODY), 42, {"id": "d", "text": BODY, "date": datetime.date(2024, 1, 2)},
             ("x", BODY), (0, BODY), {"id": "e"}]
    with Summarizer(model="m", base_url=fake.base_url) as s:
        records = list(s.bulk(items, task="brief", cache=False))
    by_id = {r.id: r for r in records}
    assert len(records) == len(items)
    assert {k: (r.error.code if isinstance(r, Failure) else "ok") for k, r in by_id.items()} == {
        "#item-1": "ok", "#item-2": "invalid_record", "x": "ok", "#item-4": "invalid_record", "d": "ok",
        "x#item-6": "duplicate_id", "0": "ok", "e": "invalid_record",
    }


def test_a_summarizer_shared_by_threads(fake: FakeServer) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    with Summarizer(model="m", base_url=fake.base_url) as s:
        def work(n: int) -> None:
            try:
                for _ in range(5):
                    results.append(s.brief(f"Report {n}. {BODY}").value.text)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == [] and len(results) == 40


def test_sync_api_works_inside_a_running_event_loop(fake: FakeServer) -> None:
    async def notebook_cell() -> str:
        with Summarizer(model="m", base_url=fake.base_url) as s:
            return s.brief(BODY).value.text

    assert asyncio.run(notebook_cell()).startswith("Russian Foreign Minister")


@respx.mock
def test_arguments_are_checked_before_any_request() -> None:
    route = respx.post("https://llm.test/v1/chat/completions")
    with Summarizer(model="m", base_url="https://llm.test/v1") as s:
        for call in (lambda: s.brief(BODY, words=(90, 60)), lambda: s.brief(None),  # type: ignore[arg-type]
                     lambda: s.brief(BODY, words=(0, 10)), lambda: s.run("summary", BODY),  # type: ignore[call-overload]
                     lambda: list(s.bulk([BODY], concurrency=0))):
            with pytest.raises(UsageError):
                call()
    assert not route.called
    with pytest.raises(TypeError, match="nosuch"):
        Summarizer(nosuch=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="timeuot"):
        Summarizer(timeuot=5)  # type: ignore[call-arg]
    with pytest.raises(UsageError, match="timeout"):
        Summarizer(timeout=0)
    assert Summarizer(max_reasks=0, base_url="http://x/v1", model="m").settings.max_reasks == 0


def test_zero_from_the_environment_means_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_MAX_REASKS", "0")
    assert Summarizer().settings.max_reasks == 0
    monkeypatch.setenv("SUMMARIZER_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="timeout.*SUMMARIZER_TIMEOUT"):
        Summarizer()


# -- what a new user trips over ----------------------------------------------------------------------


def test_brief_json_prints_the_error_envelope_on_failure(fake: FakeServer) -> None:
    fake.script.extend(["short", "short", "short"])
    result = runner.invoke(app, ["brief", str(UNGA), "--json", "--base-url", fake.base_url, "--model", "m"])
    assert result.exit_code == 5
    envelope = json.loads(result.stdout)
    assert envelope["status"] == "error" and envelope["error"]["code"] == "output_invalid"
    assert envelope["usage"]["requests"] == 3 and envelope["usage"]["reasks"] == 2
    assert envelope["error"]["raw_output"] and envelope["id"] == "unga-repeated.txt"


def test_eval_says_what_it_skipped_and_what_it_wrote(tmp_path: Path) -> None:
    subset = runner.invoke(app, ["eval", "--case", "unga-lavrov"])
    assert subset.exit_code == 0 and "thresholds not checked" in subset.stdout


@respx.mock
def test_eval_live_takes_the_endpoint_options(tmp_path: Path) -> None:
    import shutil

    evals = tmp_path / "evals"
    (evals / "cases").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "evals" / "cases" / "unga-lavrov.toml", evals / "cases")
    route = respx.post("https://live.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json={"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}))
    result = runner.invoke(app, ["eval", "--evals-dir", str(evals), "--record", "--base-url", "https://live.test/v1",
                                 "--model", "flag-model", "--api-key", SECRET, "--max-reasks", "0"])
    assert route.called and json.loads(route.calls[0].request.content)["model"] == "flag-model"
    assert f"wrote {evals / 'recordings' / 'unga-lavrov.json'}" in result.stdout
    assert SECRET not in (evals / "recordings" / "unga-lavrov.json").read_text()


def test_the_embedded_backend_takes_one_document_at_a_time(fake: FakeServer, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OpenAIBackend, "max_concurrency", 1)  # as the embedded backend says of itself
    source = write(tmp_path / "in.jsonl", [{"id": "a", "text": BODY}])
    result = runner.invoke(app, ["bulk", str(source), "--out", str(tmp_path / "o.jsonl"), "--concurrency", "16",
                                 "--base-url", fake.base_url, "--model", "m", "--json"])
    assert "takes 1 document at a time" in result.stderr
    assert json.loads(result.stdout)["concurrency"] == 1


def test_progress_lines_without_a_terminal_and_slow_rates() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = BulkProgress("-", every=10, clock=lambda: now[0], console=Console(file=out, width=200))
    summary = BulkSummary(started=0.0)
    summary.ok, summary.wall_s = 3, 300.0
    with progress:
        for t in (1.0, 5.0, 11.0, 15.0, 22.0):
            now[0] = t
            progress.update(None, summary)  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "ok 3" in lines[0] and "0.010 docs/s" in lines[0]


def test_the_progress_bar_fits_80_columns(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("{}\n" * 10000)
    out = io.StringIO()
    progress = BulkProgress(str(source), console=Console(file=out, width=80, force_terminal=True))
    summary = BulkSummary(started=0.0)
    summary.ok, summary.failed, summary.wall_s = 1234, 56, 10.0
    with progress:
        progress.update(None, summary)  # type: ignore[arg-type]
        progress.refresh()
    import re

    lines = re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()))
    last = [line for line in lines if "1290/10000" in line]
    assert last and len(last[-1]) <= 80 and "-:--:--" in last[-1] and last[-1].endswith("ok 1234 ✗ 56 129.0/s")


def test_help_text_is_clean() -> None:
    texts = [runner.invoke(app, [*command, "--help"], terminal_width=100).stdout
             for command in ([], ["brief"], ["events"], ["bulk"], ["eval"], ["prompts", "show"])]
    joined = "\n".join(texts)
    assert "<list[str]>" not in joined and "{document}" not in joined and "…" not in joined
    assert "SUMMARIZER_API_KEY" in texts[1]
    bad = runner.invoke(app, ["brief", str(UNGA), "--words", "abc"])
    assert bad.exit_code == 2 and "--words" in bad.stderr
