"""How long one tenant's big document holds the service's event loop: /healthz latency while it runs.

Starts the real ``summarizer serve`` (SQLite jobs) against the loopback fake model running in its own
process (so the fake does not share this process's GIL with the probe), sends one piece of work in a
thread and calls ``/healthz`` back to back until it ends; prints the probes' p50 / p99 / max.

    python benchmarks/loop_stall.py                    # a 1.5 MiB brief, a 4 MiB job document, 20,000 small ones
    python benchmarks/loop_stall.py --job-mib 12       # the 12 MiB job document of the issue-17 audit

Work: ``brief`` — POST /v1/brief with a long text; ``job`` — an NDJSON job of one long document;
``small`` — a job of many small documents (run after ``job``: what a big run leaves behind matters).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_serve import Service, start  # noqa: E402

_NAMES = ["Alvarez", "Brennan", "Chowdhury", "Dimitrov", "Eriksen", "Fontaine", "Gallagher", "Haddad"]
_PLACES = ["Lisbon", "Nairobi", "Oslo", "Lima", "Hanoi", "Quito", "Accra", "Riga"]


def _text(chars: int, seed: int) -> str:
    """News-like paragraphs that do not repeat (repeats would be dropped before any check)."""
    rnd, out, size, i = random.Random(seed), [], 0, 0
    while size < chars:
        i += 1
        paragraph = (f"On day {i} minister {rnd.choice(_NAMES)} met {rnd.randint(2, 900)} delegates in "
                     f"{rnd.choice(_PLACES)}. The talks covered trade, fisheries and a port worth "
                     f"{rnd.randint(1, 90)} million euros, officials said on {rnd.choice(['Monday', 'Friday'])}.")
        out.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(out)


class _Fake:
    """tests/fake_server.py in a process of its own, on a free port."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_server.py"), "--port",
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the fake model server did not start")


def _job(svc: Service, body: bytes) -> str:
    with svc.client() as http:
        created = http.post("/v1/jobs", content=body, headers={"content-type": "application/x-ndjson"},
                            params={"task": "brief"}, timeout=600)
        assert created.status_code == 202, created.text[:300]
        job = created.json()["id"]
        while http.get(f"/v1/jobs/{job}", params={"wait": 60}, timeout=120).json()["status"] in ("queued", "running"):
            pass
        return str(http.get(f"/v1/jobs/{job}").json()["counts"])


def _brief(svc: Service, body: bytes) -> str:
    with svc.client() as http:
        answer = http.post("/v1/brief", content=body, headers={"content-type": "application/json"}, timeout=600)
        return f"HTTP {answer.status_code}"


def _probe(svc: Service, label: str, work: Callable[[], str]) -> None:
    said: list[str] = []
    worker = threading.Thread(target=lambda: said.append(work()))
    started = time.perf_counter()
    worker.start()
    latencies: list[float] = []
    with svc.client(token=None) as http:
        http.get("/healthz")
        while worker.is_alive():
            at = time.perf_counter()
            http.get("/healthz")
            latencies.append(time.perf_counter() - at)
    worker.join()
    ordered = sorted(latencies) or [0.0]
    print(f"{label:<34} {time.perf_counter() - started:7.1f} s  {len(ordered):7d}  {ordered[len(ordered) // 2] * 1e3:8.1f}"
          f"  {ordered[len(ordered) * 99 // 100] * 1e3:8.1f}  {ordered[-1] * 1e3:8.1f}  {said[0] if said else 'failed'}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brief-mib", type=float, default=1.5)
    parser.add_argument("--job-mib", type=float, default=4)
    parser.add_argument("--small", type=int, default=20_000)
    args = parser.parse_args()
    fake = _Fake()
    svc = start(fake, Path(tempfile.mkdtemp()))  # type: ignore[arg-type]  (start reads base_url only)
    try:
        brief = json.dumps({"text": _text(int(args.brief_mib * 2**20), 1)}).encode()
        big = (json.dumps({"id": "big", "text": _text(int(args.job_mib * 2**20), 2)}) + "\n").encode()
        small = "".join(json.dumps({"id": f"s{i}", "text": f"Report {i}. " + _text(600, 100 + i % 50)}) + "\n"
                        for i in range(args.small)).encode()
        print(f"{'work (healthz probed meanwhile)':<34} {'wall':>9}  {'probes':>7}  {'p50 ms':>8}  {'p99 ms':>8}"
              f"  {'max ms':>8}  outcome")
        runs: list[tuple[str, Callable[[], Any]]] = [
            (f"brief, {args.brief_mib:g} MiB text", lambda: _brief(svc, brief)),
            (f"job, one {args.job_mib:g} MiB document", lambda: _job(svc, big)),
            (f"job, {args.small:,} small documents", lambda: _job(svc, small)),
        ]
        for label, work in runs:
            _probe(svc, label, work)
    finally:
        svc.stop()
        fake.proc.terminate()


if __name__ == "__main__":
    main()
