"""Bulk throughput against the loopback fake server: how close to the physical limit?

With C documents in flight and a server that answers after L seconds, no
client can exceed C/L documents per second. This prints, per concurrency C,
docs/s, the ratio to C/L, client CPU ms per document (user+sys of this
process only: the server runs in its own process) and peak RSS.

    python benchmarks/bulk.py                      # C in 1 16 64 256, L=0.2 s, 2000 docs, events
    python benchmarks/bulk.py -c 64 -n 2000 --task brief
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarizer import Summarizer  # noqa: E402

SAMPLE = (
    "Russian Foreign Minister Sergei Lavrov discussed interaction with foreign ministers of Pacific small "
    "island developing states on the sidelines of the 79th session of the UN General Assembly in New York on "
    "Friday.\n\"We have been using it for quite some time before COVID. Then COVID interfered, but now the "
    "health situation has improved. We can resume our offline meetings,\" Lavrov said.\nAccording to the "
    "Russian Foreign Ministry, the ministers discussed the situation in the Asia-Pacific region and issues on "
    "the current international agenda, and confirmed the mood to develop cooperation in various areas."
)


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_server.py"), "--latency", str(latency), "--no-record"],
        stdout=subprocess.PIPE, text=True,
    )
    return server, server.stdout.readline().strip()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(base_url: str, task: str, docs: int, concurrency: int) -> tuple[float, float, int]:
    documents = [(f"doc-{i}", f"Report {i}.\n{SAMPLE}") for i in range(docs)]
    ok = 0
    async with Summarizer(model="fake-model", base_url=base_url, timeout=30) as s:
        # warm-up: imports, connection pool, schema build
        async for _ in s.abulk(documents[:concurrency], task=task, concurrency=concurrency, cache=False):
            pass
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        async for result in s.abulk(documents, task=task, concurrency=concurrency, cache=False):
            ok += result.status == "ok"
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds() - cpu0
    return wall, cpu, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--concurrency", type=int, nargs="*", default=[1, 16, 64, 256])
    parser.add_argument("-n", "--docs", type=int, default=2000)
    parser.add_argument("-l", "--latency", type=float, default=0.2)
    parser.add_argument("--task", choices=["events", "brief"], default="events")
    args = parser.parse_args()
    server, base_url = start_server(args.latency)
    try:
        print(f"task={args.task} docs={args.docs} latency={args.latency}s  (fake server pid {server.pid})")
        print(f"{'C':>5} {'docs':>6} {'ok':>6} {'wall s':>8} {'docs/s':>8} {'C/L':>7} {'ratio':>6} {'CPU ms/doc':>11} {'peak RSS MB':>12}")
        for c in args.concurrency:
            n = min(args.docs, max(50, int(c / args.latency * 8))) if c == 1 else args.docs
            wall, cpu, ok = asyncio.run(run(base_url, args.task, n, c))
            limit = c / args.latency
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{c:>5} {n:>6} {ok:>6} {wall:>8.2f} {n / wall:>8.1f} {limit:>7.0f} {n / wall / limit:>6.1%} "
                  f"{cpu / n * 1000:>11.2f} {rss:>12.0f}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
