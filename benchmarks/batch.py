"""Batch mode at scale: client CPU per document to build the request files and to collect the answers.

Runs `summarizer bulk --via batch --no-wait` (read, render, write request files, upload, create)
and then `summarizer batch collect` (stream the output files, validate, write OUT) as two
processes against the fake server's Batch API, and prints each one's CPU per document and
peak RSS.

    python benchmarks/batch.py                 # 100,000 documents, events
    python benchmarks/batch.py -n 20000 --task brief
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ("Russian Foreign Minister Sergei Lavrov discussed interaction with foreign ministers of Pacific small island "
          "developing states on the sidelines of the 79th session of the UN General Assembly in New York on Friday. "
          "According to the Russian Foreign Ministry, the ministers discussed the situation in the Asia-Pacific region.")


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process, and its stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command[2:5])} failed ({proc.returncode}): {stderr[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--docs", type=int, default=100_000)
    parser.add_argument("--task", choices=["events", "brief"], default="events")
    args = parser.parse_args()
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_server.py"), "--no-record",
                             "--batch-seconds", "86400"], stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None
    base = fake.stdout.readline().strip()
    env = {**os.environ, "SUMMARIZER_BASE_URL": base, "SUMMARIZER_MODEL": "fake"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
            with source.open("w") as handle:
                for i in range(args.docs):
                    handle.write(json.dumps({"id": f"doc-{i}", "text": f"Report {i}. {SAMPLE}"}) + "\n")
            summarizer = [sys.executable, "-m", "summarizer"]
            build = run([*summarizer, "bulk", str(source), "--out", str(out), "--via", "batch", "--task", args.task,
                         "--no-wait", "--no-cache", "-q", "--poll-interval", "0.05"], env)
            httpx.post(base + "/batches/fake-release")  # the provider finishes every batch now
            collect = run([*summarizer, "batch", "collect", str(out), "--task", args.task, "-q", "--json"], env)
            assert json.loads(collect[3])["finished"], collect[3]
            lines = sum(1 for _ in out.open("rb"))
        print(f"{args.docs:,} documents ({args.task}) through the fake Batch API; {lines:,} records written")
        print(f"{'step':<9} {'wall s':>8} {'CPU ms/doc':>11} {'peak RSS MB':>12}")
        for name, (wall, cpu, rss, _) in (("build", build), ("collect", collect)):
            print(f"{name:<9} {wall:>8.1f} {cpu / args.docs * 1000:>11.2f} {rss:>12.0f}")
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    main()
