"""The offline eval set: replay recorded model responses through the real pipeline and score them.

Replay goes prompt render -> openai client -> httpx (a MockTransport that
answers from the recording) -> parse -> validate -> re-ask -> grounding,
exactly the path users run; only the server is a recording. Each recording also says what the pipeline must do
with it (re-ask, warn, fail), so a deliberately flawed response that slips
through is reported. ``live`` scores the configured endpoint instead, and
``record`` saves what it answered as the new recordings.

Layout of the eval set: ``evals/README.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

from ._resources import shipped_dir
from .backends import Backend, Completion, Message, OutputSpec
from .documents import Document, sentences
from .extract import parse_date
from .errors import ConfigError, ProviderError, SummarizerError, UsageError, redact
from .grounding import SourceIndex, claims
from .schemas import TASK_NAMES, Brief, EventReport, Result, TaskName, Usage, count_words
from .tasks import fitted_words
from .validation import extract_json

if TYPE_CHECKING:
    from .client import Summarizer

__all__ = [
    "CheckPair", "EvalCase", "EvalReport", "TaskOutcome", "default_evals_dir", "load_cases", "load_check_pairs",
    "run_eval", "score_checker",
]

REPLAY_URL = "http://recorded.eval.invalid/v1"


# --- the eval set ----------------------------------------------------------------------


@dataclass
class Recording:
    responses: list[dict[str, Any]]
    expect: dict[str, Any] = field(default_factory=dict)
    flaw: str | None = None


@dataclass
class EvalCase:
    name: str
    category: str
    document: Document
    reference_brief: str
    expected_facts: list[str]
    expected_events: list[dict[str, Any]]
    options: dict[str, Any]
    recordings: dict[str, Recording]
    tags: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))  # what --live/--record ask for


def default_evals_dir() -> Path:
    """``./evals`` when it holds cases, else the eval set shipped with summarizer."""
    local = Path("evals")
    return local if (local / "cases").is_dir() else shipped_dir("evals")


def load_cases(directory: Path, names: list[str] | None = None) -> list[EvalCase]:
    """The cases of an eval set; no cases at all is a usage error, not an empty pass."""
    if not (directory / "cases").is_dir():
        raise UsageError(f"{directory} is not an eval set (no cases/ folder in it)")
    paths = sorted((directory / "cases").glob("*.toml"))
    if not paths:
        raise UsageError(f"{directory / 'cases'} holds no cases (*.toml)")
    if names:
        paths = [p for p in paths if p.stem in names]
        missing = set(names) - {p.stem for p in paths}
        if missing:
            raise UsageError(f"no eval case named {', '.join(sorted(missing))} in {directory / 'cases'}")
    return [_load_case(path, directory / "recordings" / f"{path.stem}.json") for path in paths]


def _load_case(path: Path, recordings_path: Path) -> EvalCase:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"eval case {path}: {exc}") from None
    recorded = json.loads(recordings_path.read_text("utf-8")) if recordings_path.is_file() else {}
    return EvalCase(
        name=path.stem,
        category=data.get("category", "other"),
        tags=list(data.get("tags", [])),
        document=Document.from_text(data["document"], id=path.stem, html=data.get("html"),
                                    published=parse_date(data.get("published"))),
        reference_brief=" ".join(data["reference_brief"].split()),
        expected_facts=list(data.get("expected_facts", [])),
        expected_events=list(data.get("expected_events", [])),
        options=dict(data.get("options", {})),
        tasks=[str(t) for t in data.get("tasks", TASK_NAMES)],
        recordings={task: Recording(responses=r["responses"], expect=r.get("expect", {}), flaw=r.get("flaw"))
                    for task, r in recorded.items()},
    )


# --- running ---------------------------------------------------------------------------


@dataclass
class TaskOutcome:
    case: str
    task: TaskName
    status: str  # "ok" or an error code
    result: Result[Any] | None
    reasks: int
    requests: int
    warnings: list[str]
    responses: list[str]  # every answer the model gave, in order
    problems: list[str] = field(default_factory=list)  # expectations not met + prompt-contract breaks
    unmet: list[str] = field(default_factory=list)  # of those, what the recording expected
    flaw: str | None = None
    recorded: list[dict[str, Any]] = field(default_factory=list)  # live answers, for --record
    secrets: list[str] = field(default_factory=list, repr=False)  # to scrub from recordings


@dataclass
class EvalReport:
    outcomes: list[TaskOutcome]
    metrics: dict[str, dict[str, float | None]]
    baseline: dict[str, float | None]
    slipped: list[str]
    regressions: list[str]
    mode: str
    notes: list[str] = field(default_factory=list)  # what the run did not do, or wrote
    checker: dict[str, Any] | None = None  # the faithfulness checker on evals/check (score_checker)

    @property
    def passed(self) -> bool:
        return not self.slipped and not self.regressions

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "passed": self.passed, "metrics": self.metrics, "lead3_baseline": self.baseline,
            "slipped": self.slipped, "regressions": self.regressions, "notes": self.notes, "checker": self.checker,
            "cases": [{"case": o.case, "task": o.task, "status": o.status, "reasks": o.reasks,
                       "requests": o.requests, "warnings": o.warnings, "flaw": o.flaw, "problems": o.problems}
                      for o in self.outcomes],
        }


def run_eval(
    directory: Path, *, names: list[str] | None = None, live: bool = False, record: bool = False,
    summarizer_factory: Callable[..., Summarizer] | None = None,
) -> EvalReport:
    """Replay (or, with ``live``/``record``, call the configured endpoint) and score every case.

    ``summarizer_factory(**settings)`` builds the Summarizer for one case (the
    case's own settings, such as a small context, are passed in).
    """
    from .client import Summarizer

    cases = load_cases(directory, names)
    factory = summarizer_factory or Summarizer
    outcomes: list[TaskOutcome] = []
    for case in cases:
        for task in case.tasks if live or record else case.recordings:
            if live or record:
                outcomes.append(_run_live(case, task, factory))
            else:
                outcomes.append(_replay(case, task, factory))
    notes = []
    if record:
        notes += [f"wrote {path}" for path in _save_recordings(directory, outcomes)]
    metrics, baseline = _score(cases, outcomes)
    checker = None if names else score_checker(directory, cases)
    if checker is not None:
        metrics["check"] = {k: checker[k] for k in ("precision", "recall", "balanced_accuracy")}
    slipped = [] if live or record else [f"{o.case}/{o.task}: {p}" for o in outcomes for p in o.problems]
    if names:
        notes.append("thresholds not checked: --case runs a subset of the set")
        regressions = []
    else:
        regressions = _check_thresholds(metrics, directory / "thresholds.toml")
    return EvalReport(outcomes, metrics, baseline, slipped, regressions,
                      "record" if record else "live" if live else "replay", notes, checker)


def _call(summarizer: Summarizer, case: EvalCase, task: TaskName, *, live: bool = False,
          ) -> tuple[str, Result[Any] | None, Usage | None]:
    """One case's task: its outcome code, result and usage.

    Live, an endpoint that cannot be reached (or keeps failing) or refuses the configuration
    stops the run: scoring nothing as a failure rate of 1.0 would pass a gate that never ran.
    """
    options = case.options
    try:
        result = summarizer.run(task, case.document, words=_pair(options.get("words")), language=options.get("language"),
                                strict=bool(options.get("strict")), verify=bool(options.get("verify")))
        return "ok", result, result.usage
    except ProviderError as exc:
        if live:
            raise ProviderError(f"live eval stopped at {case.name}/{task}: the endpoint could not be reached "
                                f"or kept failing: {exc}") from None
        return exc.code, None, exc.usage
    except SummarizerError as exc:
        if live and isinstance(exc, ConfigError):
            raise
        return exc.code, None, exc.usage


def _pair(words: Any) -> tuple[int, int] | None:
    return (int(words[0]), int(words[1])) if words else None


def _settings_for(case: EvalCase) -> dict[str, Any]:
    settings: dict[str, Any] = {"chunk_concurrency": 1}  # part requests in document order: replayable
    if "context_tokens" in case.options:
        settings["context_tokens"] = case.options["context_tokens"]
    return settings


def _replay(case: EvalCase, task: TaskName, factory: Callable[..., Summarizer]) -> TaskOutcome:
    import httpx

    from .backends.openai import OpenAIBackend

    recording = case.recordings[task]
    queue = list(recording.responses)
    given: list[str] = []
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if not queue:
            return httpx.Response(500, json={"error": {"message": "recording exhausted: the pipeline asked again"}})
        response = queue.pop(0)
        if not _judging(bodies[-1]):  # the task's answers, not --verify's verdicts
            given.append(response.get("content") or "")
        return httpx.Response(200, json=_chat_completion(response))

    replayed = OpenAIBackend(model="recorded", base_url=REPLAY_URL, api_key="replay",
                             transport=httpx.MockTransport(answer))
    with factory(backend=replayed, max_attempts=1, **_settings_for(case)) as summarizer:
        status, result, usage = _call(summarizer, case, task)
    outcome = _outcome(case, task, status, result, usage, given, recording.flaw)
    outcome.unmet = _unmet(recording, outcome, unused=len(queue))
    outcome.problems = outcome.unmet + _prompt_problems(case, task, bodies)
    return outcome


def _prompt_problems(case: EvalCase, task: TaskName, bodies: list[dict[str, Any]]) -> list[str]:
    """The prompt contract: delimited document, each paragraph once, the injection guard, the task's rules."""
    problems: list[str] = []
    bodies = [b for b in bodies if not _judging(b)]  # --verify's verdicts have their own prompt
    first_asks = [b for b in bodies if len(b.get("messages", [])) == 2]  # re-asks repeat the conversation
    reading = [b for b in first_asks if "<document>" in b["messages"][1]["content"]]
    if not reading:
        return ["no request carried the document between <document> tags"]
    seen = "\n".join(b["messages"][1]["content"] for b in reading)
    for paragraph in case.document.paragraphs:
        if seen.count(paragraph) != 1:
            problems.append(f"prompt carries a paragraph {seen.count(paragraph)} times: {paragraph[:60]!r}")
    for body in first_asks:
        system = body["messages"][0]["content"]
        if "not instructions" not in system:
            problems.append("system prompt lost the rule that the document's instructions are content")
        if task == "brief":
            asked = case.options.get("words", (40, 120))
            (low, high), _ = fitted_words((int(asked[0]), int(asked[1])), case.document)  # as a brief of it may be
            if f"{low} to {high} words" not in system:
                problems.append(f"brief prompt does not ask for {low} to {high} words")
        elif task == "events" and ("evidence" not in system or "verbatim" not in system.lower()
                                   and "character for character" not in system):
            problems.append("events prompt lost the verbatim-evidence rule")
    return list(dict.fromkeys(problems))


def _judging(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format") or {}
    return isinstance(fmt, dict) and (fmt.get("json_schema") or {}).get("name") == "verdicts"


class _Recorder(Backend):
    """A backend that passes every call through and keeps what the model answered (for --record)."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.model = inner, inner.model
        self.answers: list[dict[str, Any]] = []

    async def complete(
        self, messages: list[Message], *, output: OutputSpec | None = None, params: Any = None,
    ) -> Completion:
        completion = await self.inner.complete(messages, output=output or OutputSpec(), params=params)
        self.answers.append({"content": completion.text, "finish_reason": completion.finish_reason,
                             "refusal": completion.refusal})
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run_live(case: EvalCase, task: TaskName, factory: Callable[..., Summarizer]) -> TaskOutcome:
    settings = _settings_for(case)
    with factory(**settings) as endpoint:
        recorder = _Recorder(endpoint.backend_unwrapped)
        with factory(backend=recorder, **settings) as summarizer:
            status, result, usage = _call(summarizer, case, task, live=True)
        key = endpoint.settings.api_key
    answers = recorder.answers
    outcome = _outcome(case, task, status, result, usage, [a["content"] or "" for a in answers], None)
    outcome.recorded = answers
    outcome.secrets = [key.get_secret_value()] if key else []
    return outcome


def _outcome(case: EvalCase, task: TaskName, status: str, result: Result[Any] | None, usage: Any,
             given: list[str], flaw: str | None) -> TaskOutcome:
    return TaskOutcome(
        case=case.name, task=task, status=status, result=result,
        reasks=usage.reasks if usage else 0, requests=usage.requests if usage else 0,
        warnings=result.warnings if result else [], responses=given, flaw=flaw,
    )


def _unmet(recording: Recording, outcome: TaskOutcome, unused: int) -> list[str]:
    """What the recording says the pipeline must do, and it did not."""
    expect = recording.expect
    problems = []
    label = f" (flaw: {recording.flaw})" if recording.flaw else ""
    if outcome.status != expect.get("outcome", "ok"):
        problems.append(f"ended {outcome.status}, expected {expect.get('outcome', 'ok')}{label}")
    if "reasks" in expect and outcome.reasks != expect["reasks"]:
        problems.append(f"{outcome.reasks} re-ask(s), expected {expect['reasks']}{label}")
    for warning in expect.get("warnings", []):
        if not any(warning in w for w in outcome.warnings):
            problems.append(f"no warning containing {warning!r}{label}")
    if unused:
        problems.append(f"{unused} recorded response(s) never requested{label}")
    return problems


def _chat_completion(response: dict[str, Any]) -> dict[str, Any]:
    content = response.get("content")
    return {
        "id": "chatcmpl-recorded", "object": "chat.completion", "created": 0, "model": "recorded",
        "choices": [{"index": 0, "finish_reason": response.get("finish_reason", "stop"),
                     "message": {"role": "assistant", "content": content, "refusal": response.get("refusal")}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": len(content or "") // 4,
                  "total_tokens": len(content or "") // 4},
    }


def _save_recordings(directory: Path, outcomes: list[TaskOutcome]) -> list[Path]:
    secrets = [secret for outcome in outcomes for secret in outcome.secrets]
    by_case: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        recorded = outcome.recorded
        by_case.setdefault(outcome.case, {})[outcome.task] = {
            "flaw": None,
            "expect": {"outcome": outcome.status, "reasks": outcome.reasks},
            "responses": [{k: _scrub(v, secrets) for k, v in r.items() if v is not None} for r in recorded],
        }
    target = directory / "recordings"
    target.mkdir(exist_ok=True)
    written = []
    for name, recordings in by_case.items():
        path = target / f"{name}.json"
        path.write_text(json.dumps(recordings, indent=2, ensure_ascii=False) + "\n", "utf-8")
        written.append(path)
    return written


def _scrub(value: Any, secrets: list[str]) -> Any:
    return redact(value, secrets, mask="[REDACTED]") if isinstance(value, str) else value


# --- scoring ---------------------------------------------------------------------------


def _score(
    cases: list[EvalCase], outcomes: list[TaskOutcome],
) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    by_name = {c.name: c for c in cases}
    briefs = [o for o in outcomes if o.task == "brief"]
    events = [o for o in outcomes if o.task == "events"]
    metrics = {
        "brief": {**_common(briefs), **_brief_metrics(briefs, by_name)},
        "events": {**_common(events), **_event_metrics(events, by_name)},
        **{task: _common([o for o in outcomes if o.task == task])  # other tasks: validity, re-asks, failures
           for task in sorted({o.task for o in outcomes} - {"brief", "events"})},
        "overall": _common(outcomes),
    }
    lead = _rouge([(by_name[o.case].reference_brief, _lead3(by_name[o.case].document)) for o in briefs])
    return metrics, lead


def _common(outcomes: list[TaskOutcome]) -> dict[str, float | None]:
    requests = sum(o.requests for o in outcomes)
    return {
        "cases": float(len(outcomes)),
        "schema_validity": _share(o.status == "ok" and o.reasks == 0 for o in outcomes),
        "reask_rate": sum(o.reasks for o in outcomes) / requests if requests else None,
        "final_failure_rate": _share(o.status != "ok" for o in outcomes),
    }


def _brief_metrics(outcomes: list[TaskOutcome], cases: dict[str, EvalCase]) -> dict[str, float | None]:
    ok = [(o, o.result.value.text) for o in outcomes if o.result is not None]
    recall = [_fact_recall(cases[o.case].expected_facts, text) for o, text in ok]
    claim_counts = [_claim_count(text) for _, text in ok]
    unsupported = [sum(1 for w in o.warnings if w.startswith(("number not", "name not"))) for o, _ in ok]
    lengths = [
        _in_range(response, cases[o.case].options.get("words", (40, 120)))
        for o in outcomes for response in o.responses
    ]
    return {
        "fact_recall": _mean(recall),
        "unsupported_claim_rate": sum(unsupported) / sum(claim_counts) if sum(claim_counts) else None,
        "length_compliance": _share(lengths),
        **_rouge([(cases[o.case].reference_brief, text) for o, text in ok]),
    }


def _event_metrics(outcomes: list[TaskOutcome], cases: dict[str, EvalCase]) -> dict[str, float | None]:
    ok = [(o, o.result.value) for o in outcomes if o.result is not None]
    grounded = [_quotes_grounded(r, cases[o.case].document) for o in outcomes for r in o.responses]
    quotes = sum(total for _, total in grounded)
    recall = [_fact_recall(cases[o.case].expected_facts, report.model_dump_json()) for o, report in ok]
    fields = [_event_fields(e, report) for o, report in ok for e in cases[o.case].expected_events]
    return {
        "evidence_grounding": sum(g for g, _ in grounded) / quotes if quotes else None,
        "fact_recall": _mean(recall),
        **{f"{name}_accuracy": _mean_of(fields, name) for name in ("type", "participants", "place", "date")},
    }


def _share(flags: Any) -> float | None:
    values = list(flags)
    return sum(values) / len(values) if values else None


def _mean_of(rows: list[dict[str, float | None]], key: str) -> float | None:
    return _mean([row.get(key) for row in rows])


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def _norm(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", " ".join(text.split())).casefold().replace("’", "'")


def _fact_recall(facts: list[str], text: str) -> float | None:
    if not facts:
        return None
    haystack = _norm(text)
    return sum(_norm(fact) in haystack for fact in facts) / len(facts)


def _claim_count(text: str) -> int:
    numbers, names = claims(text)
    return len(numbers) + len(names)


def _in_range(text: str, words: Any) -> bool:
    low, high = int(words[0]), int(words[1])
    return low <= count_words(text) <= high


def _quotes_grounded(raw: str, document: Document) -> tuple[int, int]:
    try:
        data = extract_json(raw)
        quotes = [q for e in data.get("events", []) for q in e.get("evidence", []) if isinstance(q, str)]
    except (ValueError, AttributeError, TypeError):
        return 0, 0
    source = SourceIndex(document.text)
    return sum(source.contains(q) for q in quotes), len(quotes)


def _event_fields(expected: dict[str, Any], report: Any) -> dict[str, float | None]:
    """Field accuracy against the reported event that matches ``expected`` best."""
    best: dict[str, float | None] = {"type": 0.0, "participants": 0.0, "place": 0.0, "date": 0.0}
    for event in report.events:
        names = " | ".join(p.name for p in event.participants).casefold()
        wanted = expected.get("participants", [])
        row: dict[str, float | None] = {
            "type": float(event.type == expected.get("type")),
            "participants": sum(w.casefold() in names for w in wanted) / len(wanted) if wanted else None,
            "place": (float(bool(event.where) and expected["place"].casefold() in event.where.name.casefold())
                      if expected.get("place") else None),
            "date": (float(bool(event.when) and event.when.date == expected["date"])
                     if expected.get("date") else None),
        }
        if sum(v or 0 for v in row.values()) > sum(v or 0 for v in best.values()):
            best = row
    for key in ("participants", "place", "date"):
        if not expected.get(key):
            best[key] = None
    return best


def _lead3(document: Document) -> str:
    return " ".join(sentences(document.text)[:3])


def _rouge(pairs: list[tuple[str, str]]) -> dict[str, float | None]:
    if not pairs:
        return {"rouge1": None, "rouge2": None, "rougeL": None}
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ConfigError("ROUGE needs the rouge-score package: pip install 'summarizer[eval]'") from None
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(reference, candidate) for reference, candidate in pairs]
    return {name: mean(s[name].fmeasure for s in scores) for name in ("rouge1", "rouge2", "rougeL")}


def _check_thresholds(metrics: dict[str, dict[str, float | None]], path: Path) -> list[str]:
    if not path.is_file():
        return []
    limits = tomllib.loads(path.read_text("utf-8"))
    failures = []
    for task, table in limits.items():
        for name, bound in table.items():
            value = metrics.get(task, {}).get(name)
            if value is None:
                failures.append(f"{task}.{name}: no value to check")
            elif "min" in bound and value < bound["min"]:
                failures.append(f"{task}.{name} = {value:.3f}, below the minimum {bound['min']}")
            elif "max" in bound and value > bound["max"]:
                failures.append(f"{task}.{name} = {value:.3f}, above the maximum {bound['max']}")
    return failures


# --- the faithfulness checker's labelled set -----------------------------------------------------


@dataclass
class CheckPair:
    """One labelled source/summary pair of ``evals/check/<article>.toml``."""

    article: str
    split: str  # "dev" or "test": by a hash of the article's name, never chosen by hand
    source: str
    published: dt.date | None
    summary: str
    faithful: bool
    error: str | None  # the error type of an unfaithful summary


def load_check_pairs(directory: Path) -> list[CheckPair]:
    """The pairs of ``directory/check``; empty when the eval set has none."""
    pairs = []
    for path in sorted((directory / "check").glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"checker pairs {path}: {exc}") from None
        split = "test" if int(hashlib.sha256(path.stem.encode()).hexdigest(), 16) % 3 == 0 else "dev"
        published = dt.date.fromisoformat(data["published"]) if data.get("published") else None
        for item in data["summaries"]:
            faithful = item["label"] == "faithful"
            pairs.append(CheckPair(path.stem, split, data["source"], published, " ".join(item["text"].split()),
                                   faithful, None if faithful else item["error"]))
    return pairs


def score_checker(directory: Path, cases: list[EvalCase]) -> dict[str, Any] | None:
    """Precision, recall and balanced accuracy of ``check`` on the labelled pairs, overall, per split, per error
    type; and whether the deliberately flawed briefs of the recordings are flagged."""
    from .faithfulness import check

    pairs = load_check_pairs(directory)
    if not pairs:
        return None
    flagged = [check(p.summary, p.source, published=p.published).flagged for p in pairs]
    rows = list(zip(pairs, flagged))
    scores = _confusion(rows)
    scores["pairs"] = len(pairs)
    for split in ("dev", "test"):
        scores[split] = _confusion([(p, f) for p, f in rows if p.split == split])
    types = sorted({p.error for p in pairs if p.error})
    scores["recall_by_type"] = {t: [sum(f for p, f in rows if p.error == t), sum(p.error == t for p in pairs)]
                                for t in types}
    scores.update(_recorded_briefs(cases))
    return scores


def _confusion(rows: list[tuple[CheckPair, bool]]) -> dict[str, Any]:
    tp = sum(f and not p.faithful for p, f in rows)
    fp = sum(f and p.faithful for p, f in rows)
    fn = sum(not f and not p.faithful for p, f in rows)
    tn = sum(not f and p.faithful for p, f in rows)
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    return {"pairs": len(rows), "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": recall,
            "balanced_accuracy": (recall + specificity) / 2, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _recorded_briefs(cases: list[EvalCase]) -> dict[str, Any]:
    """``check`` on the recorded briefs: the ones flawed in content (they expect a warning) and the clean ones."""
    from .faithfulness import check

    flawed, clean = [], []
    for case in cases:
        recording = case.recordings.get("brief")
        if recording is None or not recording.responses:
            continue
        answers = [r for r in recording.responses if not r.get("judge")]  # not --verify's verdicts
        if not answers:
            continue
        judged = any(w.startswith("verify:") for w in recording.expect.get("warnings", []))
        if judged:
            continue  # a flaw for the judge (--verify) to report: the mechanics are scored by the replay itself
        if recording.flaw and recording.expect.get("warnings"):
            text = answers[0].get("content") or ""
            result = check(text, case.document.text, published=case.document.published)
            issues = [f"{i.kind} {i.text!r}" for s in result.sentences for i in s.issues
                      if s.support == "unsupported"]
            flawed.append({"case": case.name, "flaw": recording.flaw, "flagged": result.flagged, "issues": issues})
        elif recording.expect.get("outcome", "ok") == "ok":
            text = answers[-1].get("content") or ""
            result = check(text, case.document.text, published=case.document.published)
            clean.append({"case": case.name, "flagged": result.flagged})
    return {"flawed_briefs": flawed, "clean_briefs": len(clean),
            "clean_briefs_flagged": [c["case"] for c in clean if c["flagged"]]}
