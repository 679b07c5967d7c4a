"""Alignment and check time per document: a ~1,000-word article with a 7-sentence brief, and a 5,000-token one.

    python benchmarks/check.py

Prints the median of repeated runs (ms). Targets (issue 19): check of a typical 5–7 sentence brief
of a ~1,000-word article within 5 ms, of a 5,000-token article within 25 ms — the first check of a
source, which prepares it, included ("cold"); a second brief of the same source reuses the prepared
source ("warm"). A 5,000-token document aligns a quote in well under a millisecond (exact) and a
few ms (fuzzy).
"""

from __future__ import annotations

import statistics
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from summarizer import Aligner, check
from summarizer.faithfulness import _LONG, _judged, _kept

CASES = Path(__file__).resolve().parents[1] / "evals" / "check"


def _median_ms(run: Callable[[], object], repeat: int = 30) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _article(words: int) -> tuple[str, str]:
    """A source of about ``words`` words (the long eval articles, repeated with varied numbers) and a brief."""
    base = tomllib.loads((CASES / "long-plane-crash.toml").read_text("utf-8"))
    source, parts, n = base["source"], [], 0
    while len(" ".join(parts).split()) < words:
        parts.append(source.replace("46", str(46 + n)).replace("Halvorsen", f"Halvorsen-{n}"))
        n += 1
    brief = " ".join(s for s in [base["summaries"][0]["text"], base["summaries"][1]["text"],
                                  base["summaries"][2]["text"]]).replace("\n", " ")
    return "\n\n".join(parts), brief


def main() -> None:
    for label, words in (("~1,000-word article", 1000), ("~5,000-token article", 3800)):
        source, brief = _article(words)
        sentences = len(check(brief, source).sentences)
        aligner = Aligner(source)
        exact_quote = source[len(source) // 2: len(source) // 2 + 120]
        fuzzy_quote = "the controller on duty gave the crew pressure setting of 1013 hectopascals instead of local value"
        fuzzy = aligner.find(fuzzy_quote)
        print(f"{label}: {len(source.split()):,} words, {len(source):,} chars; brief of {sentences} sentences")
        print(f"  Aligner(source) prepare + first exact find : {_median_ms(lambda: Aligner(source).find(exact_quote)):.3f} ms")
        print(f"  exact find                                 : {_median_ms(lambda: aligner.find(exact_quote), 200):.4f} ms")
        print(f"  normalised find (case/typography)          : "
              f"{_median_ms(lambda: aligner.find(exact_quote.upper()), 50):.3f} ms")
        print(f"  fuzzy find (token LCS, index built)        : {_median_ms(lambda: aligner.find(fuzzy_quote), 50):.3f} ms"
              f"  -> {fuzzy.match if fuzzy else None} {fuzzy.score if fuzzy else ''}")
        print(f"  check(brief, source), cold (prepares source): {_cold_ms(brief, source):.2f} ms")
        print(f"  check(brief, source), warm (source prepared): {_warm_ms(brief, source):.2f} ms")


def _cold_ms(brief: str, source: str, repeat: int = 20) -> float:
    """The median first check of a source: the prepared-source cache emptied before each (not timed)."""
    times = []
    for _ in range(repeat):
        _kept.cache_clear()
        _LONG.clear()
        _judged.cache_clear()
        start = time.perf_counter()
        check(brief, source)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _warm_ms(brief: str, source: str, repeat: int = 50) -> float:
    """A new brief of a prepared source: the verdicts' cache emptied before each (not timed)."""
    check(brief, source)
    times = []
    for _ in range(repeat):
        _judged.cache_clear()
        start = time.perf_counter()
        check(brief, source)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    main()
