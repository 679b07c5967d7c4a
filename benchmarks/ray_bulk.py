"""Bulk on Ray Data against the loopback fake server, beside direct bulk in the same run.

With C documents in flight and a server that answers after L seconds, nothing
can exceed C/L documents per second. Ray runs ``actors`` actors with
``--concurrency`` each in flight (C = actors × concurrency); direct bulk runs
the same C in this process. Wall time counts the whole job after ``ray.init``
(planning, actor start, reading, writing); "first s" is when the first result
reached the output (Ray hands results over a batch at a time). CPU is the machine's (all Ray
processes: driver, raylet, GCS, workers) minus the fake server's, per document.

    python benchmarks/ray_bulk.py                 # 4000 event reports, L=0.2 s, 32 per actor
    python benchmarks/ray_bulk.py -n 8000 --concurrency 64
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from summarizer import Summarizer  # noqa: E402
from summarizer.ray import RayOptions, run  # noqa: E402

SAMPLE = (
    "Russian Foreign Minister Sergei Lavrov discussed interaction with foreign ministers of Pacific small "
    "island developing states on the sidelines of the 79th session of the UN General Assembly in New York on "
    "Friday.\n\"We have been using it for quite some time before COVID. Then COVID interfered, but now the "
    "health situation has improved. We can resume our offline meetings,\" Lavrov said."
)
_TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds the whole machine spent in user and system mode."""
    fields = Path("/proc/stat").read_text().split("\n")[0].split()[1:]
    return (int(fields[0]) + int(fields[1]) + int(fields[2])) / _TICK


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def measure(server_pid: int, job: object) -> tuple[float, float]:
    cpu0, server0, wall0 = machine_cpu(), process_cpu(server_pid), time.perf_counter()
    job()  # type: ignore[operator]
    wall = time.perf_counter() - wall0
    return wall, (machine_cpu() - cpu0) - (process_cpu(server_pid) - server0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--docs", type=int, default=4000)
    parser.add_argument("-l", "--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32, help="in flight per actor")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per actor call [8 × concurrency]")
    parser.add_argument("--task", choices=["events", "brief"], default="events")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_server.py"), "--latency",
                               str(args.latency), "--no-record"], stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
    settings = {"model": "fake-model", "base_url": base_url, "timeout": 30}
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    source = work / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Report {i}.\n{SAMPLE}"}) + "\n"
                              for i in range(args.docs)))
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        print(f"task={args.task} docs={args.docs} latency={args.latency}s, {os.cpu_count()} cores, "
              f"Ray {ray.__version__}", flush=True)
        print(f"{'engine':<22} {'C':>4} {'wall s':>7} {'docs/s':>7} {'C/L':>5} {'ratio':>6} {'first s':>8} {'CPU ms/doc':>11}")
        for engine, actors in [("direct", 1), ("ray, 1 actor", 1), ("direct", 2), ("ray, 2 actors", 2),
                               ("ray, 2 actors, Parquet", 2), ("ray, 2 actors, permits", 2)]:
            c = actors * args.concurrency
            limit = c / args.latency
            suffix = ".parquet" if "Parquet" in engine else ".jsonl"

            first: list[float] = []

            def arrived(record: object, summary: object) -> None:
                if not first:
                    first.append(time.perf_counter())

            def job(engine: str = engine, actors: int = actors, c: int = c) -> None:
                out = work / f"out-{time.monotonic_ns()}{suffix}"
                if engine == "direct":
                    with Summarizer(**settings) as s:  # type: ignore[arg-type]
                        s.bulk_to_jsonl(source, out, task=args.task, concurrency=c, cache=False, on_record=arrived)
                else:
                    # "permits": every request asks the cluster's permit actor (an RPM far above the pace)
                    rpm = 10_000_000 if "permits" in engine else None
                    run(str(source), str(out), task=args.task, settings=settings, cache=False, on_record=arrived,
                        ray_options=RayOptions(actors=actors, concurrency=args.concurrency, rpm=rpm,
                                               batch_size=args.batch_size, progress_bars=False))

            started = time.perf_counter()
            wall, cpu = measure(server.pid, job)
            to_first = f"{first[0] - started:>8.2f}" if first else f"{'-':>8}"
            print(f"{engine:<22} {c:>4} {wall:>7.2f} {args.docs / wall:>7.1f} {limit:>5.0f} "
                  f"{args.docs / wall / limit:>6.1%} {to_first} {cpu / args.docs * 1000:>11.2f}", flush=True)
    finally:
        ray.shutdown()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
