"""The pipeline: prompt render -> backend -> validate -> re-ask -> grounding -> Result."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from conftest import SECRET, UNGA, chat_response, sent

from summarizer import OutputValidationError, Summarizer, read_document

URL = "https://llm.test/v1"
COMPLETIONS = f"{URL}/chat/completions"

GOOD_BRIEF = (
    "Russian Foreign Minister Sergei Lavrov discussed cooperation with foreign ministers of Pacific small "
    "island developing states on the sidelines of the 79th session of the UN General Assembly in New York "
    "on Friday. Lavrov said the offline meetings, interrupted by COVID, can resume now that the health "
    "situation has improved. The ministers discussed the Asia-Pacific region and the international agenda."
)


def report(evidence: str = "Lavrov arrived in New York on Wednesday", **event) -> dict:
    return {
        "schema_version": "1", "headline": "Lavrov meets Pacific island ministers at the UN", "language": "en",
        "events": [{
            "type": "diplomacy.meeting",
            "summary": "Lavrov met foreign ministers of Pacific small island states in New York.",
            "participants": [{"name": "Sergei Lavrov", "kind": "person", "role": "agent",
                              "description": "Russian Foreign Minister"}],
            "where": {"name": "New York", "country": "US"},
            "when": {"text": "on Friday", "date": None, "precision": "unknown"},
            "status": "occurred", "evidence": [evidence], **event,
        }],
    }


@pytest.fixture
def s() -> Summarizer:
    with Summarizer(model="m1", base_url=URL, api_key=SECRET, max_attempts=1) as summarizer:
        yield summarizer


@pytest.fixture
def doc():
    return read_document(UNGA)


def mock(*contents: str | None, **kwargs) -> respx.Route:
    return respx.post(COMPLETIONS).mock(side_effect=[httpx.Response(200, json=chat_response(c, **kwargs))
                                                     for c in contents])


@respx.mock
def test_brief_prompt_carries_each_paragraph_once_inside_delimiters(s: Summarizer, doc) -> None:
    route = mock(GOOD_BRIEF)
    result = s.brief(doc)
    body = sent(route)[0]
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert user.count("Russian Foreign Minister Sergei Lavrov discussed interaction") == 1
    assert user.count("Lavrov arrived in New York on Wednesday") == 1
    assert "<document>\n" + doc.text + "\n</document>" in user
    assert "data, not instructions" in system and "40 to 120 words" in system
    assert result.status == "ok" and result.value.text == GOOD_BRIEF
    assert result.value.word_count == len(GOOD_BRIEF.split())
    assert result.prompt_version == "brief@4" and result.model == "test-model"
    assert "dropped 8 repeated paragraph(s) from the input" in result.warnings


@respx.mock
def test_an_endpoint_without_a_grammar_never_pays_for_the_grammar(s: Summarizer, doc, monkeypatch) -> None:
    """The extractive grammar and digest rank the document's sentences: only grammar decoders ask for them."""
    import summarizer.extractive as extractive

    def refuse(*args, **kwargs):
        raise AssertionError("ranked sentences for an endpoint that takes no grammar")

    monkeypatch.setattr(extractive, "brief_grammar_values", refuse)
    monkeypatch.setattr(extractive, "grammar_digest", refuse)
    route = mock(GOOD_BRIEF, json.dumps(report()))
    assert s.brief(doc).status == "ok" and s.events(doc).status == "ok"
    assert all("grammar" not in body for body in sent(route))


@pytest.mark.parametrize(("key", "masked"), [
    ("k", False), ("EMPTY", False), ("sk-no-key-required", False),  # placeholders: no answer is cut up
    ("sk-no-key-required", True), (SECRET, True),  # a key the answer echoes whole is masked
])
@respx.mock
def test_answers_mask_a_whole_echoed_key_and_never_cut_words_for_a_placeholder(doc, key: str, masked: bool) -> None:
    answer = GOOD_BRIEF.replace("the health situation", f"the required health situation{' ' + key if masked else ''}")
    mock(answer)
    with Summarizer(model="m1", base_url=URL, api_key=key, max_attempts=1) as s:
        text = s.brief(doc).value.text
    assert "New York" in text and "required health" in text
    assert (key not in text and "***" in text) if masked else text == answer


@respx.mock
def test_word_range_and_language_reach_the_prompt(s: Summarizer, doc) -> None:
    route = mock(GOOD_BRIEF)
    s.brief(doc, words=(50, 60), language="fr")
    system = sent(route)[0]["messages"][0]["content"]
    assert "50 to 60 words" in system and "ISO 639-1 code 'fr'" in system


@pytest.mark.parametrize(("bad", "complaint"), [
    ("Here is a summary: " + GOOD_BRIEF, "preamble"),
    ("- " + GOOD_BRIEF.replace(". ", ".\n- "), "bullets"),
    (GOOD_BRIEF.replace(". ", ".\n\n", 1), "line breaks"),
    ("Lavrov met ministers.", "it has 3 words; it must have 40-120"),
])
@respx.mock
def test_invalid_brief_is_reasked_with_its_errors(s: Summarizer, doc, bad: str, complaint: str) -> None:
    route = mock(bad, GOOD_BRIEF)
    result = s.brief(doc)
    second = sent(route)[1]["messages"]
    assert second[2] == {"role": "assistant", "content": bad}
    assert second[3]["role"] == "user" and complaint in second[3]["content"]
    assert result.value.text == GOOD_BRIEF
    assert (result.usage.requests, result.usage.reasks) == (2, 1)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (200, 100)


@respx.mock
def test_brief_still_invalid_after_reasks_raises_with_raw_output(s: Summarizer, doc) -> None:
    mock("Too short.", "Too short.", "Still too short.")
    with pytest.raises(OutputValidationError, match="after 2 re-ask") as info:
        s.brief(doc)
    assert info.value.raw_output == "Still too short."
    assert info.value.exit_code == 5
    assert (info.value.usage.requests, info.value.usage.reasks) == (3, 2)


@respx.mock
def test_grounding_warns_about_numbers_and_names_absent_from_source(s: Summarizer, doc) -> None:
    invented = GOOD_BRIEF + " The 12 agreements were praised by Vladimir Putin."
    mock(invented)
    result = s.brief(doc)
    assert "number not in source: 12" in result.warnings
    assert "name not in source: Vladimir Putin" in result.warnings
    assert not any("79" in w or "Lavrov" in w for w in result.warnings)


@respx.mock
def test_grounding_leaves_out_what_the_checker_finds_backed(s: Summarizer, doc) -> None:
    # "UNGA" spells the source's "UN General Assembly": a string test warned, the checker knows better.
    mock(GOOD_BRIEF + " Lavrov also met ministers at UNGA on Wednesday.")
    assert not any("not in source" in w for w in s.brief(doc).warnings)


@respx.mock
def test_grounding_warns_about_a_number_word_and_a_scale_slip(s: Summarizer, doc, tmp_path) -> None:
    mock(GOOD_BRIEF + " He met fourteen of them.")
    assert any(w.startswith("number not in source: fourteen") for w in s.brief(doc).warnings)
    source = tmp_path / "aid.txt"
    source.write_text("The health ministry said aid worth 1.4 million soles had been sent to the quake zone in "
                      "southern Peru on Friday, where rescue teams were still searching for survivors. Families "
                      "waited for news of relatives trapped under the rubble of their homes, and the ministry said "
                      "more teams would arrive over the weekend.", "utf-8")  # long enough for a 40-word brief
    brief = ("The health ministry said aid worth 1.4 billion soles had been sent to the quake zone in southern "
             "Peru on Friday. Rescue teams were still searching for survivors there, the ministry said, as "
             "families waited for news of relatives trapped under the rubble of their homes.")
    mock(brief)
    warnings = s.brief(read_document(source)).warnings
    assert any(w.startswith("number not in source: 1.4 billion") and "1.4 million" in w for w in warnings)


@respx.mock
def test_strict_turns_grounding_warnings_into_reasks(s: Summarizer, doc) -> None:
    route = mock(GOOD_BRIEF + " It cost 987654 dollars.", GOOD_BRIEF)
    result = s.brief(doc, strict=True)
    assert "number not in source: 987654" in sent(route)[1]["messages"][3]["content"]
    assert result.usage.reasks == 1


@respx.mock
def test_events_valid_report(s: Summarizer, doc) -> None:
    route = mock(json.dumps(report()))
    result = s.events(doc)
    body = sent(route)[0]
    assert body["response_format"]["type"] == "json_schema"
    assert result.value.events[0].type == "diplomacy.meeting"
    [evidence] = result.value.events[0].evidence
    assert evidence.quote == "Lavrov arrived in New York on Wednesday" and evidence.match == "exact"
    assert doc.text[evidence.start:evidence.end] == evidence.quote and result.source.text == doc.text
    assert result.prompt_version == "events@3"


@respx.mock
def test_fenced_and_prose_wrapped_json_are_extracted(s: Summarizer, doc) -> None:
    mock("Sure! Here it is:\n```json\n" + json.dumps(report()) + "\n```\nAnything else?",
         "The report: " + json.dumps(report()) + " -- end")
    for _ in range(2):
        result = s.events(doc)
        assert (result.usage.requests, result.usage.reasks) == (1, 0)
        assert result.value.headline == report()["headline"]


@respx.mock
def test_invented_evidence_quote_is_named_in_the_reask(s: Summarizer, doc) -> None:
    invented = "Lavrov said Russia would build a port in Fiji"
    route = mock(json.dumps(report(evidence=invented)), json.dumps(report()))
    result = s.events(doc)
    reask = sent(route)[1]["messages"][3]["content"]
    assert "events[0].evidence[0] is not a verbatim quote" in reask and invented in reask
    assert result.usage.reasks == 1


@respx.mock
def test_quotes_match_despite_typographic_quotes_and_case(s: Summarizer, doc) -> None:
    mock(json.dumps(report(evidence="“we have been using it for quite some time before COVID.")))
    assert s.events(doc).usage.reasks == 0


@pytest.mark.parametrize(("bad", "complaint"), [
    (json.dumps(report(when={"text": "on Friday", "date": "2024-02-30", "precision": "day"})), "not a real calendar date"),
    (json.dumps(report(when={"text": "on Friday", "date": "Friday", "precision": "day"})), "events[0].when.date"),
    (json.dumps(report(type="meeting")), "events[0].type"),
    (json.dumps({**report(), "events": []}), "events: List should have at least 1 item"),
    ('{"schema_version": "1", "headline": "x", ', "malformed"),
    ("I could not find any events.", "no JSON object found"),
])
@respx.mock
def test_schema_violations_are_reasked(s: Summarizer, doc, bad: str, complaint: str) -> None:
    route = mock(bad, json.dumps(report()))
    s.events(doc)
    assert complaint in sent(route)[1]["messages"][3]["content"]


@respx.mock
def test_truncated_output_says_it_was_cut_off(s: Summarizer, doc) -> None:
    text = json.dumps(report())
    route = respx.post(COMPLETIONS).mock(side_effect=[
        httpx.Response(200, json=chat_response(text[:80], finish="length")),
        httpx.Response(200, json=chat_response(text)),
    ])
    s.events(doc)
    assert "cut off" in sent(route)[1]["messages"][3]["content"]


@respx.mock
def test_refusal_is_an_output_error_without_reasks(s: Summarizer, doc) -> None:
    route = mock(None, refusal="I can't help with that.")
    with pytest.raises(OutputValidationError, match="refused"):
        s.events(doc)
    assert len(route.calls) == 1


@respx.mock
def test_long_document_is_map_reduced(s: Summarizer) -> None:
    paragraphs = [f"Paragraph {i}: the council met in Lisbon on Monday and voted on budget line {i}. " * 3
                  for i in range(900)]
    text = "\n\n".join(paragraphs)
    assert len(text.encode()) > 200_000
    calls: list[dict] = []

    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        user = body["messages"][1]["content"]
        first = user.split("\n", 3)[-1][:2000]
        words = " ".join(first.replace("Part 1: ", "").split()[:60]).rstrip(".:,") + "."
        return httpx.Response(200, json=chat_response(words))

    respx.post(COMPLETIONS).mock(side_effect=reply)
    result = s.brief(text)
    parts = [c for c in calls if "<document>" in c["messages"][1]["content"]]
    combines = [c for c in calls if "<part_briefs>" in c["messages"][1]["content"]]
    assert len(parts) > 5 and combines
    assert all(len(json.dumps(c)) < 8192 * 4 for c in calls)
    assert result.prompt_version == "brief@4+brief_combine@4"
    assert result.usage.requests == len(calls)
    assert any("read in" in w and "parts" in w for w in result.warnings)


def test_sync_calls_reuse_one_connection(fake, doc) -> None:
    with Summarizer(model="m1", base_url=fake.base_url) as s:
        s.brief(doc)
        s.events(doc)
        s.brief(doc)
    assert fake.total == 3 and fake.connections == 1


@respx.mock
def test_async_twins(doc) -> None:
    import asyncio

    mock(GOOD_BRIEF, json.dumps(report()))

    async def main():
        async with Summarizer(model="m1", base_url=URL, api_key=SECRET) as s:
            return await s.abrief(doc), await s.aevents(doc)

    brief, events = asyncio.run(main())
    assert brief.value.text == GOOD_BRIEF and events.value.events[0].status == "occurred"


def test_a_context_too_small_for_the_prompt_is_a_config_error(doc) -> None:
    from summarizer import ConfigError

    with Summarizer(model="m1", base_url=URL, api_key=SECRET, context_tokens=1536) as s:
        with pytest.raises(ConfigError, match="cannot hold the events@3 prompt.*--context-tokens"):
            s.events(doc)


# -- map-reduce end to end ---------------------------------------------------------------------


def _long_text(paragraphs: int = 120) -> str:
    return "\n\n".join(f"Paragraph {i}: the council of Lisbon met on Monday and voted on budget line {i}, "
                       f"said mayor Carlos Moedas. " * 4 for i in range(paragraphs))


def test_events_map_reduce_passes_part_reports_and_quotes_hold(fake) -> None:
    with Summarizer(model="m", base_url=fake.base_url, context_tokens=4096, chunk_concurrency=2) as s:
        result = s.events(_long_text())
    maps = [r for r in fake.requests if "<document>" in r["messages"][1]["content"]]
    combines = [r for r in fake.requests if "<part_reports>" in r["messages"][1]["content"]]
    assert len(maps) > 2 and len(combines) == 1
    assert combines[0]["messages"][1]["content"].count("Part ") == len(maps)
    assert result.prompt_version == "events@3+events_combine@2"
    text = result.source.text
    assert all(text[q.start:q.end] == q.quote for event in result.value.events for q in event.evidence)
    assert result.usage.requests == len(maps) + len(combines)


def test_reduce_runs_in_rounds_when_the_parts_do_not_fit_together() -> None:
    calls: list[str] = []
    parts_per_combine: list[int] = []

    def reply(request: httpx.Request) -> httpx.Response:
        user = json.loads(request.content)["messages"][1]["content"]
        calls.append("combine" if "<part_briefs>" in user else "map")
        if "<part_briefs>" in user:
            parts_per_combine.append(user.count("Part "))
        words = " ".join(["Lisbon council budget vote"] * 60)  # long part briefs: few fit in one combine
        return httpx.Response(200, json=chat_response(words[:1150].rsplit(" ", 1)[0] + "."))

    with respx.mock:
        respx.post(COMPLETIONS).mock(side_effect=reply)
        with Summarizer(model="m1", base_url=URL, context_tokens=1800, max_attempts=1) as s:
            result = s.brief(_long_text(60), words=(150, 250))
    *first_round, final = parts_per_combine
    assert sum(first_round) == calls.count("map") > 4  # round 1 combines every part, in groups
    assert final == len(first_round) > 1  # round 2 combines round 1's briefs
    assert result.usage.requests == len(calls) and result.value.word_count <= 250


def test_a_failing_part_cancels_the_others_and_reports_the_usage(fake) -> None:
    fake.latency = 0.05
    text = _long_text()
    fake.script.extend(["401"])
    with Summarizer(model="m", base_url=fake.base_url, context_tokens=4096, chunk_concurrency=2) as s:
        with pytest.raises(Exception) as info:
            s.events(text)
    from summarizer import ConfigError

    assert isinstance(info.value, ConfigError)
    assert fake.total <= 3  # the other parts were cancelled, not all sent
    assert info.value.usage is not None and info.value.usage.requests >= 1


def test_the_cache_key_tells_endpoints_models_and_options_apart(fake, tmp_path) -> None:
    from summarizer import ResultCache

    cache = ResultCache(tmp_path / "c.sqlite3")
    docs = [("a", "Report one. " + GOOD_BRIEF)]

    def run(**kwargs) -> bool:
        options = {k: kwargs.pop(k) for k in ("words",) if k in kwargs}
        with Summarizer(**{"model": "m", "base_url": fake.base_url, **kwargs}) as s:
            return next(iter(s.bulk(docs, cache=cache, **options))).cached

    assert run() is False and run() is True
    assert run(base_url=fake.base_url.replace("127.0.0.1", "localhost")) is False  # another endpoint
    assert run(model="m2") is False
    assert run(words=(50, 60)) is False
    assert run(temperature=0.7) is False
    assert run() is True


def test_pacing_wraps_any_backend_on_virtual_time() -> None:
    import asyncio

    from summarizer import Backend, Completion, Paced, RateLimiter, Usage

    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    class Instant(Backend):
        model = "instant"

        async def complete(self, messages, *, output=None, params=None):  # type: ignore[override]
            return Completion(text="x", usage=Usage(requests=1), model=self.model)

    starts: list[float] = []

    async def main() -> None:
        paced = Paced(Instant(), RateLimiter(rpm=600, clock=lambda: now[0], sleep=sleep))
        for _ in range(21):
            await paced.complete([{"role": "user", "content": "hi"}])
            starts.append(now[0])

    asyncio.run(main())
    assert 1.85 < starts[-1] < 2.05  # 10 a second, evenly (the first two start at once)
    assert Instant().max_concurrency is None


def test_answers_about_a_long_source_are_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking an answer against a 1.5 MiB source took a second of CPU on the event loop, which stalled every
    other request of the service (/healthz: 945 ms). Past _OFF_LOOP_CHARS the source is split and the answers
    taken in a thread; a short source's stay on the loop (a thread hop would cost bulk more than the check)."""
    import asyncio
    import threading

    from typing import Any

    from summarizer import Backend, Completion, PromptLibrary, Usage
    from summarizer.documents import Document
    from summarizer.tasks import _OFF_LOOP_CHARS, TaskOptions, TaskRun, run_task

    lead = ("The council approved a budget of 12 million euros on Monday after a long debate about the new park. "
            "Residents said the park would open in spring and that the old market would close in the summer.")

    class Copying(Backend):
        model = "copying"

        async def complete(self, messages, *, output=None, params=None):  # type: ignore[override]
            return Completion(text=lead + " " + lead.replace("council", "assembly"), usage=Usage(requests=1),
                              model=self.model)

    taken: list[tuple[int, int, bool]] = []  # (document length, source length, on the loop's thread)
    receive = TaskRun.receive

    def watched(self: TaskRun, request: Any, completion: Completion) -> Any:
        taken.append((len(self.document.text), len(request.source.text),
                      threading.current_thread() is threading.main_thread()))
        return receive(self, request, completion)

    started: list[tuple[int, bool]] = []
    start = TaskRun.start

    def watched_start(self: TaskRun) -> Any:
        started.append((len(self.document.text), threading.current_thread() is threading.main_thread()))
        return start(self)

    monkeypatch.setattr(TaskRun, "receive", watched)
    monkeypatch.setattr(TaskRun, "start", watched_start)
    for size in (2_000, 2 * _OFF_LOOP_CHARS):
        text = "\n\n".join(f"{lead.replace('12', str(i))}" for i in range(size // len(lead) + 1))
        asyncio.run(run_task("brief", Document.from_text(text, id="d"), Copying(), PromptLibrary(), TaskOptions()))
    assert taken and all(on_loop == (length < _OFF_LOOP_CHARS) for length, _, on_loop in taken), taken
    assert any(length >= _OFF_LOOP_CHARS for length, _, _ in taken) and any(on_loop for _, _, on_loop in taken)
    # The long document was read in parts, and a part's answer left the loop too: the last one indexes the
    # whole document for the combine step (12 MiB: 0.8 s on the loop).
    assert any(length >= _OFF_LOOP_CHARS > source for length, source, _ in taken), taken
    assert [on_loop for _, on_loop in started] == [True, False]  # splitting a long source leaves the loop too


def test_a_long_document_s_run_is_set_up_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting up a brief's run counts the document's words to fit the range: 0.4 s for a 12 MiB job document,
    held on the service's event loop (/healthz stalled with it). A long document's run is made in a thread; a
    short one's on the loop."""
    import asyncio
    import threading

    from summarizer import Backend, Completion, PromptLibrary, Usage
    from summarizer import tasks
    from summarizer.documents import Document
    from summarizer.tasks import _OFF_LOOP_CHARS, TaskOptions, run_task

    lead = "The council approved a budget of 12 million euros on Monday after a long debate about the new park."

    class Echo(Backend):
        model = "echo"

        async def complete(self, messages, *, output=None, params=None):  # type: ignore[override]
            return Completion(text=lead, usage=Usage(requests=1), model=self.model)

    counted: list[tuple[int, bool]] = []
    count_words = tasks.count_words

    def watched(text: str) -> int:
        counted.append((len(text), threading.current_thread() is threading.main_thread()))
        return count_words(text)

    monkeypatch.setattr(tasks, "count_words", watched)
    for size in (2_000, 2 * _OFF_LOOP_CHARS):
        text = "\n\n".join(lead.replace("12", str(i)) for i in range(size // len(lead) + 1))
        asyncio.run(run_task("brief", Document.from_text(text, id="d"), Echo(), PromptLibrary(),
                             TaskOptions(words=(5, 30))))
    assert [(length >= _OFF_LOOP_CHARS, on_loop) for length, on_loop in counted] == [(False, True), (True, False)]
    # Nor does the long source stay prepared once its run ended: every full garbage collection would walk it.
    import gc

    from summarizer.faithfulness import _Source

    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, _Source) and len(o.text) >= _OFF_LOOP_CHARS]
