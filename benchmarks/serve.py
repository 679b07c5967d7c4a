"""The service under load: how close to the physical limit, and what it adds to each request.

Starts the fake model server (latency L) and `summarizer serve` in their own
processes, then keeps C brief requests in flight from this process. No service
can answer more than C/L requests a second; this prints the ratio, the
latency the service adds to L (p50, p99), the server's CPU per request, and
how many cores all three processes kept busy: the load generator, the service
and the fake model share this machine.

    python benchmarks/serve.py                  # C in 64 256, L = 0.2 s, 2,000 requests each
    python benchmarks/serve.py -c 64 -n 4000
    python benchmarks/serve.py --workers 1 2 4  # PostgreSQL: a web-only replica and N `summarizer worker`s

With ``--workers``, a PostgreSQL server is made in a temp folder (Debian's package, as the
tests do); for each N a job of ``--docs`` documents runs on N workers of ``--worker-concurrency``
each (C = N × that), and documents/s is printed as a share of C/L. Then brief requests at
each ``-c`` go to the web-only replica while the workers run another job: the web tier alone
(no jobs in its process) — its added latency and its CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import threading
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"
TEXT = ("Russian Foreign Minister Sergei Lavrov discussed interaction with foreign ministers of Pacific small island "
        "developing states on the sidelines of the 79th session of the UN General Assembly in New York on Friday. "
        "According to the Russian Foreign Ministry, the ministers discussed the situation in the Asia-Pacific region.")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_server.py"), "--latency", str(latency),
                             "--no-record"], stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None
    return fake, fake.stdout.readline().strip()


def start(latency: float, data_dir: str, *args: str,
          fake: tuple[subprocess.Popen[str], str] | None = None) -> tuple[subprocess.Popen[str], subprocess.Popen[str], str]:
    fake_proc, base = fake or start_fake(latency)
    env = {**os.environ, "SUMMARIZER_BASE_URL": base, "SUMMARIZER_MODEL": "fake", "SUMMARIZER_SERVICE_TOKENS": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "summarizer", "serve", "--port", "0", "--data-dir", data_dir,
                               "--rpm-per-token", "0", "--max-in-flight", "512", "--max-pending", "1024", *args],
                              env=env, stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    for line in server.stderr:
        if "serving on" in line:
            url = line.split("serving on ", 1)[1].split()[0]
            break
    else:
        raise SystemExit("summarizer serve did not start")
    threading_drain(server)
    return fake_proc, server, url


def start_worker(base: str, url: str, data_dir: str, concurrency: int) -> subprocess.Popen[str]:
    env = {**os.environ, "SUMMARIZER_BASE_URL": base, "SUMMARIZER_MODEL": "fake"}
    worker = subprocess.Popen([sys.executable, "-m", "summarizer", "worker", "--database-url", url, "--data-dir",
                               data_dir, "--concurrency", str(concurrency)], env=env, stderr=subprocess.PIPE,
                              text=True)
    assert worker.stderr is not None
    for line in worker.stderr:
        if "taking jobs" in line:
            threading_drain(worker)
            return worker
    raise SystemExit("summarizer worker did not start")


def run_job(url: str, docs: int, tag: str) -> tuple[float, dict[str, object]]:
    """Submit a job of ``docs`` briefs and wait for its end; (seconds from accepted to done, its status)."""
    body = "".join(json.dumps({"id": f"{tag}{i}", "text": f"Report {tag}{i}. {TEXT}"}) + "\n" for i in range(docs))
    with httpx.Client(base_url=url, timeout=600, headers={"authorization": f"Bearer {TOKEN}"}) as http:
        job = http.post("/v1/jobs?task=brief", content=body.encode(),
                        headers={"content-type": "application/x-ndjson"}).json()
        started = time.perf_counter()
        while True:
            status = http.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
            if status["status"] not in ("queued", "running"):
                return time.perf_counter() - started, status


def threading_drain(proc: subprocess.Popen[str]) -> None:
    """Keep reading the access log so that the pipe never fills and blocks the server."""
    import threading

    assert proc.stderr is not None
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]


async def load(url: str, concurrency: int, total: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    # One client per 8 workers: httpcore's pool bookkeeping grows with the square of what is in flight
    # in one pool, and the load generator must not be the bottleneck it measures.
    clients = [httpx.AsyncClient(base_url=url, timeout=60, headers={"authorization": f"Bearer {TOKEN}"})
               for _ in range((concurrency + 7) // 8)]

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            response = await http.post("/v1/brief", json={"text": f"Report {i}. {TEXT}"})
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(clients[n // 8]) for n in range(concurrency)))
    finally:
        for http in clients:
            await http.aclose()
    return time.perf_counter() - started, latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--concurrency", type=int, nargs="*", default=[64, 256])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-l", "--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, nargs="*", default=None, help="PostgreSQL with N workers, each N")
    parser.add_argument("--docs", type=int, default=2000, help="documents in each workers' job")
    parser.add_argument("--worker-concurrency", type=int, default=16, help="documents in flight per worker")
    parser.add_argument("--busy", action="store_true", help="the sync load while the workers run a job")
    args = parser.parse_args()
    if args.workers:
        return with_workers(args)
    with tempfile.TemporaryDirectory() as data_dir:
        fake, server, url = start(args.latency, data_dir)
        try:
            asyncio.run(load(url, 16, 100))  # warm-up: imports, connections, pools
            print(f"L={args.latency}s, brief requests through `summarizer serve` (pid {server.pid})")
            print(f"{'C':>5} {'requests':>9} {'errors':>7} {'req/s':>7} {'C/L':>6} {'ratio':>6} "
                  f"{'p50 added ms':>13} {'p99 added ms':>13} {'server CPU ms/req':>18} {'cores busy':>11}")
            for c in args.concurrency:
                sync_row(url, server, fake, c, args)
        finally:
            server.terminate()
            server.wait(30)
            fake.terminate()
            fake.wait(30)


def sync_row(url: str, server: subprocess.Popen[str], fake: subprocess.Popen[str], c: int,
             args: argparse.Namespace) -> None:
    asyncio.run(load(url, c, 2 * c))  # warm-up at this concurrency: connections, client pools
    cpu0, mine0, fake0 = cpu_seconds(server.pid), cpu_seconds(os.getpid()), cpu_seconds(fake.pid)
    wall, latencies, errors = asyncio.run(load(url, c, args.requests))
    cpu = cpu_seconds(server.pid) - cpu0
    busy = (cpu + cpu_seconds(os.getpid()) - mine0 + cpu_seconds(fake.pid) - fake0) / wall
    latencies.sort()
    p50 = (latencies[len(latencies) // 2] - args.latency) * 1000
    p99 = (latencies[int(len(latencies) * 0.99)] - args.latency) * 1000
    rate, limit = args.requests / wall, c / args.latency
    print(f"{c:>5} {args.requests:>9} {errors:>7} {rate:>7.1f} {limit:>6.0f} {rate / limit:>6.1%} "
          f"{p50:>13.1f} {p99:>13.1f} {cpu / args.requests * 1000:>18.2f} {busy:>11.2f}", flush=True)


def with_workers(args: argparse.Namespace) -> None:
    """Jobs on N workers over PostgreSQL, then the web-only replica's sync latency while they work."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import start_postgres

    pg = start_postgres()
    fake, base = start_fake(args.latency)
    try:
        print(f"L={args.latency}s, jobs of {args.docs} briefs on N `summarizer worker`s "
              f"({args.worker_concurrency} in flight each) over PostgreSQL, a web-only replica in front")
        print(f"{'workers':>7} {'C':>5} {'docs/s':>8} {'C/L':>6} {'ratio':>6}")
        for n in args.workers:
            url = pg.create_database()
            with tempfile.TemporaryDirectory() as data_dir:
                _, server, web = start(args.latency, data_dir, "--database-url", url, "--no-worker",
                                       fake=(fake, base))
                workers = [start_worker(base, url, data_dir, args.worker_concurrency) for _ in range(n)]
                try:
                    run_job(web, 50, "warm")
                    wall, status = run_job(web, args.docs, "d")
                    c = n * args.worker_concurrency
                    rate = args.docs / wall
                    print(f"{n:>7} {c:>5} {rate:>8.1f} {c / args.latency:>6.0f} {rate / (c / args.latency):>6.1%}"
                          + ("" if status["status"] == "completed" else f"  ({status['status']})"), flush=True)
                    if n != args.workers[-1]:
                        continue
                    busy = "while the workers run a job" if args.busy else "(the workers idle)"
                    print(f"\nbrief requests to the web-only replica (pid {server.pid}) {busy}")
                    print(f"{'C':>5} {'requests':>9} {'errors':>7} {'req/s':>7} {'C/L':>6} {'ratio':>6} "
                          f"{'p50 added ms':>13} {'p99 added ms':>13} {'server CPU ms/req':>18} {'cores busy':>11}")
                    def busy_workers() -> None:
                        with contextlib.suppress(httpx.HTTPError, ValueError):  # it ends with the benchmark
                            run_job(web, args.docs * 4, "bg")

                    if args.busy:  # on one machine the workers take the same cores as the web tier
                        threading.Thread(target=busy_workers, daemon=True).start()
                    for c in args.concurrency:
                        sync_row(web, server, fake, c, args)
                finally:
                    for proc in (*workers, server):
                        proc.terminate()
                    for proc in (*workers, server):
                        proc.wait(60)
    finally:
        fake.terminate()
        fake.wait(30)
        pg.stop()


if __name__ == "__main__":
    main()
