"""Memory stays flat however long the input: `summarizer bulk` over a large JSONL file.

    python benchmarks/bulk_memory.py            # 100,000 lines, C=64, latency 0

Writes the input to a temporary folder, starts the fake server in its own
process, runs the real CLI (`summarizer bulk … --out FILE --no-cache`) as a
child process and prints lines in/out, docs/s and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulk import SAMPLE, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--lines", type=int, default=100_000)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("-l", "--latency", type=float, default=0.0)
    args = parser.parse_args()
    server, base_url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source, out = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
            with source.open("w") as handle:
                for i in range(args.lines):
                    handle.write(json.dumps({"id": f"doc-{i}", "text": f"Report {i}.\n{SAMPLE}"}) + "\n")
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "summarizer", "bulk", str(source), "--out", str(out), "--no-cache", "-q",
                 "--concurrency", str(args.concurrency), "--base-url", base_url, "--model", "fake-model"],
                check=False,
            )
            wall = time.perf_counter() - started
            lines_out = sum(1 for _ in out.open("rb"))
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"lines in {args.lines:,}  lines out {lines_out:,}  wall {wall:.1f} s  "
              f"{args.lines / wall:.0f} docs/s  peak RSS of `summarizer bulk` {rss_mb:.0f} MB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
