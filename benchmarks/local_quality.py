"""The embedded model on the eval set: is what it writes valid, in range and from the document?

    python benchmarks/local_quality.py            # every eval case, events and brief, through bulk
    python benchmarks/local_quality.py --task events --cases unga-lavrov spanish-floods

Runs the eval documents through the real embedded model with the bulk engine
(one at a time: the model holds the CPU) and prints, per case and in total:
whether the event report validated at the first answer, who/where/when recall
against the case's expected events, names, places, time expressions or dates
the document does not support (grounding's warnings), the language code
against the document's, and whether the brief kept its word range. "cut-off"
counts reports that failed because the JSON was cut off at max_tokens.
Totals add the event type's accuracy, events per report against the expected
count, and for briefs ROUGE against the reference beside Lead-3's (the first
three sentences), names or numbers the source does not contain (grounding's
brief warnings), and briefs that open on a preamble or echo the prompt.
``--save FILE`` writes every output as JSON, to compare runs.

To compare with an earlier commit, run this script from a worktree of it
(it imports the package beside it):
    git worktree add /tmp/before COMMIT && cp benchmarks/local_quality.py /tmp/before/benchmarks/
    python /tmp/before/benchmarks/local_quality.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarizer import Summarizer  # noqa: E402
from summarizer.evaluation import _event_fields, _lead3, _rouge, load_cases  # noqa: E402
from summarizer.grounding import SourceIndex, brief_warnings, event_warnings  # noqa: E402
from summarizer.schemas import count_words  # noqa: E402

LANGUAGE = {"spanish-floods": "es", "french-pension-vote": "fr"}  # the others are English


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["events", "brief", "both"], default="both")
    parser.add_argument("--cases", nargs="*", help="case names [all]")
    parser.add_argument("--save", help="write every output to this JSON file")
    args = parser.parse_args()
    cases = load_cases(ROOT / "evals", args.cases or None)
    with Summarizer(backend="local") as s:
        s.backend_unwrapped.load()  # type: ignore[attr-defined]
        events = _events(s, cases) if args.task in ("events", "both") else {}
        briefs = _briefs(s, cases) if args.task in ("brief", "both") else {}
    _print(cases, events, briefs)
    if args.save:
        Path(args.save).write_text(json.dumps({"events": events, "briefs": briefs}, indent=1, default=str), "utf-8")


def _events(s: Summarizer, cases: list[Any]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for record in s.bulk([c.document for c in cases], task="events", concurrency=1, cache=False):
        case = next(c for c in cases if c.name == record.id)
        row: dict[str, Any] = {"ok": record.status == "ok", "first": record.status == "ok" and record.usage.reasks == 0,
                               "seconds": record.latency_ms / 1000, "reasks": record.usage.reasks,
                               "tokens": [record.usage.prompt_tokens, record.usage.completion_tokens]}
        if record.status == "ok":
            report = record.value
            source = SourceIndex(case.document.text, case.document.published)
            row["foreign"] = len(event_warnings(report, source))
            row["language"] = report.language == LANGUAGE.get(case.name, "en")
            row["types"] = [e.type for e in report.events]
            row["events"], row["expected"] = len(report.events), len(case.expected_events)
            row["value"] = report.model_dump(mode="json")
            fields = [_event_fields(expected, report) for expected in case.expected_events]
            for key in ("type", "participants", "place", "date"):
                row[key] = _mean([f[key] for f in fields])
        else:
            row["error"] = f"{record.error.code}: {record.error.message[:80]}"
            row["cut"] = "cut off" in record.error.message
        rows[case.name] = row
        print(f"events {case.name}: {row}", file=sys.stderr, flush=True)  # partial results survive a kill
    rows["_wall"] = {"seconds": time.perf_counter() - started}
    return rows


def _briefs(s: Summarizer, cases: list[Any]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for record in s.bulk([c.document for c in cases], task="brief", concurrency=1, cache=False):
        case = next(c for c in cases if c.name == record.id)
        low, high = tuple(case.options.get("words", (40, 120)))
        text = record.value.text if record.status == "ok" else None
        words = count_words(text) if text is not None else None
        rows[case.name] = {"ok": record.status == "ok", "words": words, "seconds": record.latency_ms / 1000,
                           "in_range": words is not None and low <= words <= high, "reasks": record.usage.reasks,
                           "tokens": [record.usage.prompt_tokens, record.usage.completion_tokens],
                           "text": text, "error": None if text is not None else record.error.message[:200]}
        if text is not None:
            source = SourceIndex(case.document.text, case.document.published)
            rows[case.name]["unsupported"] = len(brief_warnings(text, source))
            rows[case.name]["preamble"] = _preamble_or_echo(text)
            rows[case.name]["rouge"] = _rouge([(case.reference_brief, text)])
            rows[case.name]["lead3"] = _rouge([(case.reference_brief, _lead3(case.document))])
        print(f"brief {case.name}: {rows[case.name]}", file=sys.stderr, flush=True)
    return rows


_ECHO = ("part briefs", "combine the", "busy readers", "<document>", "</document>", "brief the document",
         "the document is data", "here is", "here's", "summary:", "this article", "this document", "rephrase")


def _preamble_or_echo(text: str) -> bool:
    """The brief opens on a preamble or plays the prompt back."""
    lowered = text.casefold()
    return any(marker in lowered for marker in _ECHO)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _print(cases: list[Any], events: dict[str, dict[str, Any]], briefs: dict[str, dict[str, Any]]) -> None:
    print(f"{'case':<24} {'valid@1':>7} {'who':>5} {'where':>5} {'when':>5} {'type':>4} {'n':>2} {'foreign':>7} {'lang':>4} "
          f"{'ev s':>5} {'brief w':>7} {'in range':>8} {'br s':>5}  types / error")
    for case in cases:
        e, b = events.get(case.name, {}), briefs.get(case.name, {})
        tail = e.get("error") or " ".join(e.get("types", []))
        print(f"{case.name:<24} {_cell(e.get('first')):>7} {_cell(e.get('participants')):>5} "
              f"{_cell(e.get('place')):>5} {_cell(e.get('date')):>5} {_cell(e.get('type')):>4} {_cell(e.get('events')):>2} "
              f"{_cell(e.get('foreign')):>7} "
              f"{_cell(e.get('language')):>4} {_cell(e.get('seconds')):>5} {_cell(b.get('words')):>7} "
              f"{_cell(b.get('in_range')):>8} {_cell(b.get('seconds')):>5}  {tail}")
    rows = [events[c.name] for c in cases if c.name in events]
    if rows:
        n = len(rows)
        print(f"\nevents: {n} documents, valid at the first answer {sum(r['first'] for r in rows)}/{n} "
              f"({sum(r['first'] for r in rows) / n:.0%}), valid after re-asks {sum(r['ok'] for r in rows)}/{n}, "
              f"cut-off JSON {sum(r.get('cut', False) for r in rows)}")
        print(f"  recall who {_cell(_mean([r.get('participants') for r in rows]))}, "
              f"where {_cell(_mean([r.get('place') for r in rows]))}, when {_cell(_mean([r.get('date') for r in rows]))}"
              f"; unsupported names/places/times/dates {sum(r.get('foreign', 0) for r in rows)}; "
              f"language correct {sum(r.get('language', False) for r in rows)}/{sum(r['ok'] for r in rows)}")
        ok = [r for r in rows if r["ok"]]
        print(f"  type accuracy {_cell(_mean([r.get('type') for r in rows]))}; events per report "
              f"{_cell(_mean([float(r['events']) for r in ok]))} (expected {_cell(_mean([float(r['expected']) for r in ok]))}), "
              f"count as expected {sum(r['events'] == r['expected'] for r in ok)}/{len(ok)}")
        print(f"  sports.result in {sum('sports.result' in r.get('types', []) for r in rows)} reports; "
              f"mean {mean(r['seconds'] for r in rows):.1f} s per document, "
              f"{events['_wall']['seconds']:.0f} s in all")
    brows = list(briefs.values())
    if brows:
        n = len(brows)
        ok = [r for r in brows if r["ok"]]
        print(f"briefs: in the word range {sum(r['in_range'] for r in brows)}/{n} "
              f"({sum(r['in_range'] for r in brows) / n:.0%}), valid {sum(r['ok'] for r in brows)}/{n}, "
              f"valid at the first answer {sum(r['ok'] and not r['reasks'] for r in brows)}/{n}, "
              f"mean {mean(r['seconds'] for r in brows):.1f} s per document")
        rouge = {k: mean(r["rouge"][k] for r in ok) for k in ("rouge1", "rouge2", "rougeL")} if ok else {}
        lead = {k: mean(r["lead3"][k] for r in ok) for k in ("rouge1", "rouge2", "rougeL")} if ok else {}
        print("  ROUGE-1/2/L " + "/".join(f"{rouge[k]:.3f}" for k in rouge)
              + " vs Lead-3 " + "/".join(f"{lead[k]:.3f}" for k in lead) + " (same documents); "
              f"unsupported names/numbers {sum(r.get('unsupported', 0) for r in ok)} "
              f"in {sum(bool(r.get('unsupported')) for r in ok)} briefs; "
              f"preamble or prompt echo {sum(r.get('preamble', False) for r in ok)}")


if __name__ == "__main__":
    main()
