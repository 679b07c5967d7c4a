"""Presentation for the CLI: bulk progress on stderr (only on a terminal), the bulk summary table, the eval scorecard."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .bulk import BulkSummary
from .schemas import Record
from .sources import count_items

__all__ = ["BulkProgress", "PartProgress", "print_scorecard", "print_summary"]

_stderr = Console(stderr=True)


class BulkProgress:
    """Progress on stderr: a bar on a terminal, else a line every ``every`` seconds (logs stay readable).

    The total is counted in a background thread (lines of a JSONL file, files of a folder) and
    shown once known; a stream (stdin, a FIFO) has none: then the count, the rate and no ETA.
    """

    def __init__(self, source: str, *, enabled: bool = True, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, console: Console | None = None) -> None:
        self.console = console or _stderr
        self.enabled = enabled and sys.stderr is not None
        self.tty = self.enabled and self.console.is_terminal
        self.every, self._clock = every, clock
        self._next_line = clock() + every
        self._progress: Progress | None = None
        self._total: int | None = None
        self._counter = threading.Thread(target=self._count, args=(source,), name="summarizer-count", daemon=True)
        if self.enabled:
            self._counter.start()

    def _count(self, source: str) -> None:
        self._total = count_items(source)

    @property
    def total(self) -> int | None:
        """The number of input items, once counted (None until then, and for a stream)."""
        return self._total

    def __enter__(self) -> BulkProgress:
        if self._counter.is_alive():
            self._counter.join(0.2)  # most inputs are counted by now; a huge one goes on counting meanwhile
        if self.tty:
            self._progress = Progress(
                TextColumn("bulk"), BarColumn(bar_width=None), TextColumn("{task.fields[count]}"),
                TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), console=self.console, transient=True,
                expand=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("bulk", total=self._total, stats="", count=self._count_text(0))
        return self

    def update(self, record: Record, summary: BulkSummary) -> None:
        done = summary.done + summary.skipped
        if self._progress is not None:
            stats = f"ok {summary.ok} ✗ {summary.failed} {_rate(summary.docs_per_s)}/s"
            self._progress.update(self._task, completed=done, total=self._total, stats=stats,
                                  count=self._count_text(done))
        elif self.enabled and self._clock() >= self._next_line:
            self._next_line = self._clock() + self.every
            total = f"/{self._total:,}" if self._total else ""
            self.console.print(
                f"summarizer: {done:,}{total} done · ok {summary.ok:,} · failed {summary.failed:,} · "
                f"{_rate(summary.docs_per_s)} docs/s{_eta(self._total, done, summary.docs_per_s)}",
                highlight=False, soft_wrap=True)

    def _count_text(self, done: int) -> str:
        return f"{done}/{self._total}" if self._total is not None else f"{done} done"

    def refresh(self) -> None:
        """Draw the bar now (it redraws itself ten times a second anyway)."""
        if self._progress is not None:
            self._progress.refresh()

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _rate(per_second: float) -> str:
    return f"{per_second:.1f}" if per_second >= 1 else f"{per_second:.3f}"


def _eta(total: int | None, done: int, per_second: float) -> str:
    if not total or per_second <= 0 or done >= total:
        return ""
    seconds = int((total - done) / per_second)
    hours, rest = divmod(seconds, 3600)
    return f" · ETA {hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f" · ETA {rest // 60}:{rest % 60:02d}"


class PartProgress:
    """A long document's parts as they are read, then its combine rounds: one line each on stderr."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled, self.console = enabled and sys.stderr is not None, console or _stderr

    def __call__(self, progress: Any) -> None:
        line = self._line(progress)
        if self.enabled and line:
            self.console.print(f"summarizer: {line}", highlight=False, soft_wrap=True)

    @staticmethod
    def _line(progress: Any) -> str | None:
        done, total = progress.done, progress.total
        if progress.stage == "part":
            return f"long document: reading it in {total} parts" if done == 0 else f"part {done}/{total} read"
        if done == 0:
            return "combining the parts" + (f" in {total} groups (round {progress.round})" if total > 1 else "")
        return f"combine group {done}/{total} done (round {progress.round})" if total > 1 else None


def print_summary(summary: BulkSummary) -> None:
    table = Table(title="summarizer bulk", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    failed = ", ".join(f"{code} {n}" for code, n in sorted(summary.failed_by_code.items()))
    rows = [
        ("ok", f"{summary.ok:,}"), ("failed", f"{summary.failed:,}" + (f" ({failed})" if failed else "")),
        ("cached", f"{summary.cached:,}"),
        ("skipped (already in --out)", f"{summary.skipped:,}" + (
            f" ({summary.skipped_failed:,} of them error records)" if summary.skipped_failed else "")),
        ("requests", f"{summary.usage.requests:,}"), ("retries", f"{summary.usage.retries:,}"),
        ("re-asks", f"{summary.usage.reasks:,}"), ("throttled (429)", f"{summary.throttled:,}"),
        ("tokens in / out", f"{summary.usage.prompt_tokens:,} / {summary.usage.completion_tokens:,}"),
        ("wall time", f"{summary.wall_s:.1f} s"), ("docs/s", _rate(summary.docs_per_s)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    _stderr.print(table)


_METRIC_LABELS = {
    "cases": "cases", "schema_validity": "valid at first answer", "reask_rate": "re-ask rate (per request)",
    "final_failure_rate": "final failure rate", "fact_recall": "expected-fact recall",
    "unsupported_claim_rate": "unsupported-claim rate", "length_compliance": "length compliance (all answers)",
    "rouge1": "ROUGE-1 F", "rouge2": "ROUGE-2 F", "rougeL": "ROUGE-L F",
    "evidence_grounding": "evidence grounding (all answers)", "type_accuracy": "event type accuracy",
    "participants_accuracy": "participant recall", "place_accuracy": "place accuracy",
    "date_accuracy": "date accuracy",
}


def print_scorecard(report: Any) -> None:
    """The eval scorecard, the flaws that slipped through, and the thresholds that failed."""
    table = Table(title=f"summarizer eval ({report.mode})", title_justify="left")
    for column in ("metric", "brief", "Lead-3", "events", "overall"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, label in _METRIC_LABELS.items():
        cells = [_fmt(report.metrics[t].get(key), key) for t in ("brief",)]
        cells.append(_fmt(report.baseline.get(key), key) if key.startswith("rouge") else "")
        cells += [_fmt(report.metrics[t].get(key), key) for t in ("events", "overall")]
        if any(cells):
            table.add_row(label, *cells)
    out = Console()
    out.print(table)
    flawed = [o for o in report.outcomes if o.flaw]
    if report.mode == "replay":
        caught = sum(1 for o in flawed if not o.unmet)
        out.print(f"deliberate flaws caught: {caught}/{len(flawed)}", highlight=False)
    if getattr(report, "checker", None):
        for line in _checker_lines(report.checker):
            out.print(line, highlight=False, soft_wrap=True)
    for line in report.slipped:
        out.print(f"[red]check failed[/red] {line}", highlight=False, soft_wrap=True)
    for line in report.regressions:
        out.print(f"[red]below threshold[/red] {line}", highlight=False, soft_wrap=True)
    for line in report.notes:
        out.print(f"note: {line}", highlight=False, soft_wrap=True)
    out.print("[green]PASS[/green]" if report.passed else "[red]FAIL[/red]")


def _checker_lines(c: dict[str, Any]) -> list[str]:
    def prb(d: dict[str, Any]) -> str:
        return f"precision {d['precision']:.3f} · recall {d['recall']:.3f} · balanced accuracy {d['balanced_accuracy']:.3f}"

    by_type = ", ".join(f"{t} {hit}/{n}" for t, (hit, n) in c["recall_by_type"].items())
    flawed = c["flawed_briefs"]
    caught = "; ".join(f"{f['case']}: {', '.join(f['issues']) or 'not flagged'}" for f in flawed)
    return [
        f"checker (evals/check, {c['pairs']} pairs): {prb(c)}",
        f"  dev ({c['dev']['pairs']} pairs): {prb(c['dev'])}",
        f"  test ({c['test']['pairs']} pairs): {prb(c['test'])}",
        f"  recall by error type: {by_type}",
        f"  flawed recorded briefs flagged: {sum(f['flagged'] for f in flawed)}/{len(flawed)} ({caught})",
        f"  clean recorded briefs flagged: {len(c['clean_briefs_flagged'])}/{c['clean_briefs']}"
        + (f" ({', '.join(c['clean_briefs_flagged'])})" if c["clean_briefs_flagged"] else ""),
    ]


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if key == "cases" else f"{value:.3f}"


class BatchProgress:
    """One line on stderr whenever a batch moves (status or counts), at most every ``every`` seconds."""

    def __init__(self, *, enabled: bool = True, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, console: Console | None = None) -> None:
        self.enabled, self.every, self._clock = enabled, every, clock
        self.console = console or _stderr
        self._last: tuple[Any, ...] = ()
        self._next = 0.0

    def update(self, info: dict[str, Any]) -> None:
        if not self.enabled:
            return
        batches = info.get("batches", [])
        key = tuple((b["id"], b["status"], tuple(sorted(b["info"].get("counts", {}).items()))) for b in batches)
        if key == self._last or self._clock() < self._next:
            return
        self._last, self._next = key, self._clock() + self.every
        parts = []
        for b in batches:
            counts = b["info"].get("counts", {})
            parts.append(f"{b['id']} {b['status']} {counts.get('completed', 0)}/{counts.get('total', b['requests'])}")
        self.console.print(f"summarizer: round {info.get('round')}: " + "; ".join(parts), highlight=False,
                           soft_wrap=True)


def print_batch_summary(summary: Any) -> None:
    table = Table(title="summarizer bulk --via batch", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    failed = ", ".join(f"{code} {n}" for code, n in sorted(summary.failed_by_code.items()))
    state = "finished" if summary.finished else f"not finished: {summary.pending:,} request(s) in batches or queued"
    for name, value in [
        ("ok", f"{summary.ok:,}"), ("failed", f"{summary.failed:,}" + (f" ({failed})" if failed else "")),
        ("cached", f"{summary.cached:,}"), ("skipped (already in --out)", f"{summary.skipped:,}"),
        ("batches created", f"{summary.batches:,}"), ("requests submitted", f"{summary.submitted:,}"),
        ("re-asks", f"{summary.usage.reasks:,}"),
        ("tokens in / out", f"{summary.usage.prompt_tokens:,} / {summary.usage.completion_tokens:,}"),
        ("state", state), ("wall time", f"{summary.wall_s:.1f} s"),
    ]:
        table.add_row(name, value)
    _stderr.print(table)
    _print_rounds(summary.rounds)


def print_batch_status(status: dict[str, Any]) -> None:
    out = Console()
    requests = status["requests"]
    out.print(f"run {status['run_id']} · round {status['round']} · {status['phase']} · "
              f"{status['open_documents']:,} document(s) in progress · requests: "
              + ", ".join(f"{k} {v:,}" for k, v in requests.items()), highlight=False, soft_wrap=True)
    table = Table(title="batches", title_justify="left")
    for column in ("batch", "round", "status", "requests", "completed", "failed", "collected"):
        table.add_column(column, justify="left" if column in ("batch", "status") else "right")
    for b in status["batches"]:
        counts = b["counts"]
        table.add_row(b["id"], str(b["round"]), b["status"], f"{b['requests']:,}", f"{counts.get('completed', 0):,}",
                      f"{counts.get('failed', 0):,}", "yes" if b["collected"] else "no")
    out.print(table)
    _print_rounds(status["rounds"], console=out)


def _print_rounds(rounds: list[dict[str, int]], console: Console | None = None) -> None:
    if not rounds:
        return
    table = Table(title="rounds", title_justify="left")
    for column in ("round", "requests", "answered", "failed", "sent again", "tokens in", "tokens out"):
        table.add_column(column, justify="right")
    for r in rounds:
        table.add_row(str(r["round"]), f"{r['requests']:,}", f"{r['answered']:,}", f"{r['failed']:,}",
                      f"{r['resent']:,}", f"{r['prompt_tokens']:,}", f"{r['completion_tokens']:,}")
    (console or _stderr).print(table)
