"""The embedded model: load time and generation speed on the sample article.

    python benchmarks/local.py [FILE] [--runs 3]

Prints the model load time (once per process), then per task: wall time,
prompt and completion tokens, completion tokens per second, and whether the
output validated (with how many re-asks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarizer import Summarizer, SummarizerError, read_document  # noqa: E402

SAMPLE = ROOT / "examples" / "unga-repeated.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default=str(SAMPLE))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    doc = read_document(args.file)
    with Summarizer(backend="local") as s:
        started = time.perf_counter()
        local = s.backend_unwrapped
        local.load()  # type: ignore[attr-defined]  # load now, to time it apart from generation
        print(f"model {local.model}: loaded in {time.perf_counter() - started:.2f} s")
        print(f"{'task':<7} {'run':>3} {'wall s':>7} {'prompt tok':>10} {'compl tok':>9} {'tok/s':>6} {'requests':>8}  result")
        for task in ("brief", "events"):
            for run in range(1, args.runs + 1):
                started = time.perf_counter()
                try:
                    result = s.brief(doc) if task == "brief" else s.events(doc)
                    usage, outcome = result.usage, "ok"
                except SummarizerError as exc:
                    usage, outcome = exc.usage, exc.code
                wall = time.perf_counter() - started
                print(f"{task:<7} {run:>3} {wall:>7.2f} {usage.prompt_tokens:>10} {usage.completion_tokens:>9} "
                      f"{usage.completion_tokens / wall:>6.1f} {usage.requests:>8}  {outcome}", flush=True)


if __name__ == "__main__":
    main()
