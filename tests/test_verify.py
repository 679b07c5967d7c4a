"""--verify: the configured model judges each claim against its cited source text; the mechanics, not the judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SECRET, UNGA
from fake_server import FakeServer
from typer.testing import CliRunner

from summarizer import Summarizer, UsageError
from summarizer.cli import app

runner = CliRunner()
BODY = UNGA.read_text().split("\n")[0]


def endpoint(fake: FakeServer, *extra: str) -> list[str]:
    return ["--base-url", fake.base_url, "--model", "m", "--api-key", SECRET, *extra]


def verdicts(unsupported: int, reason: str = "the excerpt says otherwise", *, of: int) -> str:
    """A scripted judge answer for ``of`` claims: claim ``unsupported`` does not hold."""
    return "content:" + json.dumps({"verdicts": [
        {"claim": n, "supported": n != unsupported, "reason": reason if n == unsupported else "stated"}
        for n in range(1, of + 1)]})


def sentences_of(fake: FakeServer, text: str) -> int:
    """How many sentences the fake server's brief of ``text`` has (it answers with extracts)."""
    with Summarizer(base_url=fake.base_url, model="m", api_key=SECRET) as s:
        count = len(s.brief(text).value.sentences)
    fake.requests.clear()
    return count


def judge_requests(fake: FakeServer) -> list[dict]:
    return [r for r in fake.requests if "You check claims" in r["messages"][0]["content"]]


def test_every_sentence_is_judged_against_its_citations(fake: FakeServer) -> None:
    result = runner.invoke(app, ["brief", str(UNGA), "--verify", "--json", *endpoint(fake)])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    sentences = envelope["value"]["sentences"]
    assert sentences and all(s["judged"] == "supported" for s in sentences)
    assert envelope["usage"]["requests"] == 2 and envelope["prompt_version"] == "brief@4+verify@1"
    [judge] = judge_requests(fake)
    asked = judge["messages"][1]["content"]
    source = envelope["source"]["text"]
    for n, sentence in enumerate(sentences, 1):  # each claim goes with the source text it cites
        assert f"Claim {n}: {sentence['text']}" in asked
        assert all(source[c["start"]:c["end"]] in asked for c in sentence["citations"])
    assert judge["response_format"]["json_schema"]["name"] == "verdicts"
    assert "is every piece of information in the claim supported" in judge["messages"][0]["content"]


def test_an_unsupported_verdict_is_a_warning_and_fails_the_gate(fake: FakeServer) -> None:
    count = sentences_of(fake, UNGA.read_text())
    fake.script.extend(["ok", verdicts(2, "the excerpt says Friday, not Monday", of=count)])
    result = runner.invoke(app, ["brief", str(UNGA), "--verify", "--json", "--fail-on-warnings", *endpoint(fake)])
    assert result.exit_code == 6, result.output
    envelope = json.loads(result.stdout)
    assert "verify: sentence 2 is not supported by the source: the excerpt says Friday, not Monday" \
        in envelope["warnings"]
    assert envelope["unsupported"] == 1
    assert [s["judged"] for s in envelope["value"]["sentences"]] == \
        ["supported", "unsupported"] + ["supported"] * (count - 2)
    without_gate = runner.invoke(app, ["brief", str(UNGA), "--verify", *endpoint(fake)])
    assert without_gate.exit_code == 0


def test_strict_asks_again_naming_the_sentence(fake: FakeServer) -> None:
    count = sentences_of(fake, BODY)
    fake.script.extend(["ok", verdicts(1, "no excerpt mentions Lavrov's team", of=count), "ok"])
    with Summarizer(base_url=fake.base_url, model="m", api_key=SECRET) as s:
        result = s.brief(BODY, verify=True, strict=True)
    assert result.usage.reasks == 1 and result.usage.requests == 4  # brief, judge, brief again, judge again
    reask = [r for r in fake.requests if "You check claims" not in r["messages"][0]["content"]][-1]
    follow_up = reask["messages"][-1]["content"]
    assert "sentence 1" in follow_up and "no excerpt mentions Lavrov's team" in follow_up
    assert not result.unsupported and all(s.judged == "supported" for s in result.value.sentences)


def test_a_malformed_judge_is_asked_again_then_a_warning_never_a_failure(fake: FakeServer) -> None:
    fake.script.extend(["ok", "content:not json at all", 'content:{"verdicts": [{"claim": 9, "supported": true, '
                        '"reason": ""}]}', "content:{}"])
    with Summarizer(base_url=fake.base_url, model="m", api_key=SECRET) as s:
        result = s.brief(BODY, verify=True)
    assert result.status == "ok" and result.usage.reasks == 2
    assert any("verdicts were not usable" in w for w in result.warnings)
    second = judge_requests(fake)[1]["messages"][-1]["content"]
    assert "no JSON object found" in second
    third = judge_requests(fake)[2]["messages"][-1]["content"]
    assert "there is no claim 9" in third and "no verdict for claim(s) 1" in third


def test_events_are_judged_on_who_where_and_when(fake: FakeServer) -> None:
    report = {"schema_version": "1", "headline": "Lavrov meets ministers", "language": "en", "events": [{
        "type": "diplomacy.meeting", "summary": "Lavrov met Pacific island ministers.", "status": "occurred",
        "participants": [{"name": "Sergei Lavrov", "kind": "person", "role": "agent",
                          "description": "Russian Foreign Minister"}],
        "where": {"name": "New York", "country": "US"}, "when": {"text": "on Friday", "date": None,
                                                                "precision": "unknown"},
        "evidence": [BODY]}]}
    fake.script.extend([f"content:{json.dumps(report)}", verdicts(1, "the excerpt names Geneva", of=1)])
    with Summarizer(base_url=fake.base_url, model="m", api_key=SECRET) as s:
        result = s.run("events", BODY, verify=True)
    claim = judge_requests(fake)[0]["messages"][1]["content"]
    assert "Sergei Lavrov (agent, Russian Foreign Minister)" in claim and "It happened in New York." in claim
    assert f"Document excerpt 1: {BODY}" in claim
    assert "verify: events[0] is not supported by the source: the excerpt names Geneva" in result.warnings


def test_bulk_and_batch_verify_and_count_the_unsupported(fake: FakeServer, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Report {i}. {BODY}"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["bulk", str(source), "--task", "brief", "--verify", "--out", str(out), "-q",
                                 "--json", "--no-cache", "--concurrency", "1", *endpoint(fake)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unsupported"] == 0
    assert all(s["judged"] == "supported" for line in out.read_text().splitlines()
               for s in json.loads(line)["value"]["sentences"])
    batch_out = tmp_path / "batch.jsonl"
    batched = runner.invoke(app, ["bulk", str(source), "--task", "brief", "--verify", "--out", str(batch_out),
                                  "--via", "batch", "-q", "--no-cache", "--poll-interval", "0.02",
                                  "--max-poll-interval", "0.05", *endpoint(fake)])
    assert batched.exit_code == 0, batched.output
    records = [json.loads(line) for line in batch_out.read_text().splitlines()]
    assert len(records) == 3 and all(r["usage"]["batched"] == 2 for r in records)  # the answer and the verdicts
    assert all(s["judged"] == "supported" for r in records for s in r["value"]["sentences"])


def test_verify_on_a_task_with_no_claims_is_refused_not_ignored(fake: FakeServer, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": BODY}) + "\n")
    message = "verify does not apply to task 'key_quotes': it has no claims a judge could check"
    for args in (["run", "key_quotes", str(UNGA)], ["bulk", str(source), "--task", "key_quotes", "--out",
                                                     str(tmp_path / "out.jsonl")]):
        result = runner.invoke(app, [*args, "--verify", *endpoint(fake)])
        assert result.exit_code == 2 and message in result.stderr, result.output  # (was: exit 0, nothing judged)
    assert fake.requests == [] and not (tmp_path / "out.jsonl").exists()
    with Summarizer(base_url=fake.base_url, model="m", api_key=SECRET) as s, pytest.raises(UsageError, match=message):
        s.run("key_quotes", BODY, verify=True)


def test_verify_is_refused_on_a_backend_that_declares_it_cannot_judge() -> None:
    """The embedded model approved every sentence as a judge: a backend says so (capabilities.judge), and
    --verify is refused before any request rather than run as a check that checks nothing."""
    from summarizer.backends import Backend, Capabilities, Completion, Message, OutputSpec

    class Tiny(Backend):
        model = "tiny"
        capabilities = Capabilities(judge=False)
        calls = 0

        async def complete(self, messages: list[Message], *, output: OutputSpec = OutputSpec(),
                           params: Any = None) -> Completion:
            Tiny.calls += 1
            raise AssertionError("no request should be made")

    with Summarizer(backend=Tiny()) as s:
        with pytest.raises(UsageError, match="verify needs a model that can judge claims, and tiny cannot"):
            s.brief(BODY, verify=True)
        with pytest.raises(UsageError, match="tiny cannot"):
            s.pipeline("events", s.options(verify=True))
    assert Tiny.calls == 0


def test_the_embedded_model_declares_it_cannot_judge() -> None:
    from summarizer.backends.local import LocalBackend

    assert LocalBackend.capabilities.judge is False


def test_a_wordy_judge_verdict_is_cut_not_thrown_away() -> None:
    from summarizer.verify import parse_verdicts

    raw = json.dumps({"verdicts": [{"claim": 1, "supported": False, "reason": "no; " + "x" * 900}]})
    (verdict,) = parse_verdicts(raw, 1)
    assert verdict.supported is False and len(verdict.reason) == 400 and verdict.reason.startswith("no; x")
