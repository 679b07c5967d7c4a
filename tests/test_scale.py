"""The service past one process: web replicas and workers over one real PostgreSQL, on loopback.

Replicas are the real `summarizer serve --database-url …`, workers the real `summarizer worker`,
each in its own process; the model is the loopback fake server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_server import FakeServer
from postgres_server import Postgres, available, start_postgres
from test_serve import BODY, OTHER, TOKEN, Service, start

pytest.importorskip("psycopg", reason="the postgres extra is not installed")
pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL's server is not installed")

PLANS = {1: "429", 2: "500", 3: "reset", 4: "fenced", 5: "truncated", 6: "badquote"}


class WorkerProc:
    def __init__(self, proc: subprocess.Popen[str], name: str) -> None:
        self.proc, self.name = proc, name
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=lambda: self.stderr.extend(proc.stderr or []), daemon=True)
        self.reader.start()

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return "".join(self.stderr)


def _environ(fake: FakeServer, data_dir: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_"))}
    environ.update({"SUMMARIZER_BASE_URL": fake.base_url, "SUMMARIZER_MODEL": "fake-model",
                    "SUMMARIZER_MAX_ATTEMPTS": "2", "SUMMARIZER_MAX_RETRY_WAIT": "0.01",
                    "XDG_CACHE_HOME": str(data_dir / "xdg-cache")})
    return environ


def start_worker(fake: FakeServer, data_dir: Path, url: str, *args: str) -> WorkerProc:
    """`summarizer worker`; returns once it says it takes jobs (its name is on that line)."""
    proc = subprocess.Popen([sys.executable, "-m", "summarizer", "worker", "--database-url", url, "--data-dir",
                             str(data_dir), *args], env=_environ(fake, data_dir), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, ""):
        if "taking jobs" in line:
            return WorkerProc(proc, line.split("worker ", 1)[1].split()[0])
    raise AssertionError(f"worker exited with {proc.wait()}")


@pytest.fixture
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of this test's own (some tests stop it)."""
    server = start_postgres()
    yield server
    server.stop()


def _ndjson(docs: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in docs).encode()


def _doc_of(request: dict[str, object]) -> str:
    messages = request["messages"]
    assert isinstance(messages, list)
    return str(messages[1]["content"]).split("Report ", 1)[1].split(".")[0]


def _attempts(url: str, job_id: str) -> dict[int, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT line, attempts FROM documents WHERE job_id = %s", (job_id,)).fetchall())


# -- one job across replicas ------------------------------------------------------------------------------


def test_a_job_submitted_to_one_replica_is_read_polled_and_cancelled_on_another(
        fake: FakeServer, tmp_path: Path, database_url: str) -> None:
    a = start(fake, tmp_path / "a", database_url=database_url)
    b = start(fake, tmp_path / "b", "--no-worker", database_url=database_url)
    try:
        with a.client() as on_a, b.client() as on_b, b.client(token=OTHER) as other_on_b:
            job = on_a.post("/v1/jobs", json={"task": "brief", "documents": [
                {"id": f"x{i}", "text": f"Report x{i}. {BODY}"} for i in range(30)]}).json()
            done = on_b.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
            assert done["status"] == "completed" and done["counts"]["ok"] == 30
            lines = on_b.get(f"/v1/jobs/{job['id']}/results").text.splitlines()
            assert sorted(json.loads(line)["id"] for line in lines) == sorted(f"x{i}" for i in range(30))
            assert other_on_b.get(f"/v1/jobs/{job['id']}").status_code == 404  # another tenant's: not there
            assert other_on_b.delete(f"/v1/jobs/{job['id']}").status_code == 404

            fake.latency = 0.2
            slow = on_a.post("/v1/jobs", json={"task": "brief", "documents": [
                f"Report y{i}. {BODY}" for i in range(200)]}).json()
            polled: list[dict[str, object]] = []
            poller = threading.Thread(target=lambda: polled.append(
                b.client().get(f"/v1/jobs/{slow['id']}", params={"wait": 60}).json()))
            poller.start()
            cancelled = on_b.delete(f"/v1/jobs/{slow['id']}").json()
            poller.join(timeout=30)  # the cancel's NOTIFY wakes the long poll at once, not after 60 s
            assert not poller.is_alive() and polled[0]["status"] == "cancelled"
            assert cancelled["status"] == "cancelled"
            assert on_a.get(f"/v1/jobs/{slow['id']}").json()["status"] == "cancelled"
    finally:
        fake.latency = 0.0
        for service in (a, b):
            assert "Traceback" not in service.stop()


def test_a_tenants_cap_holds_across_replicas(fake: FakeServer, tmp_path: Path, database_url: str) -> None:
    fake.latency = 0.3
    args = ("--max-jobs", "6", "--max-jobs-per-token", "2")
    replicas = [start(fake, tmp_path / name, *args, database_url=database_url) for name in ("a", "b")]
    body = _ndjson([{"id": f"d{i}", "text": f"Report {i}. {BODY}"} for i in range(10)])

    async def storm() -> list[int]:
        async def one(n: int) -> int:
            async with httpx.AsyncClient(base_url=replicas[n % 2].url, timeout=60,
                                         headers={"authorization": f"Bearer {TOKEN}"}) as http:
                answer = await http.post("/v1/jobs?task=brief", content=body,
                                         headers={"content-type": "application/x-ndjson"})
                return answer.status_code
        return list(await asyncio.gather(*(one(n) for n in range(12))))

    try:
        statuses = asyncio.run(storm())
        assert sorted(statuses) == [202, 202] + [429] * 10, statuses
    finally:
        fake.latency = 0.0
        for service in replicas:
            service.stop()


# -- workers ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_5000_documents_2_replicas_3_workers_one_killed_every_id_once(tmp_path: Path, pg: Postgres) -> None:
    url = pg.create_database()
    fake = FakeServer(latency=0.01).start()
    web = [start(fake, tmp_path / name, "--no-worker", database_url=url) for name in ("a", "b")]
    workers = [start_worker(fake, tmp_path / f"w{n}", url, "--lease-seconds", "10") for n in range(3)]
    try:
        docs = [{"id": f"d{i}", "text": f"Report d{i}. " + (f"[[fake:{PLANS[i % 10]}]] " if i % 10 in PLANS else "")
                 + BODY} for i in range(5000)]
        victim = workers[0]
        fake.on_request = lambda n: n == 2500 and victim.proc.send_signal(signal.SIGKILL)
        with web[0].client() as http:
            created = http.post("/v1/jobs?task=events", content=_ndjson(docs),
                                headers={"content-type": "application/x-ndjson"})
            assert created.status_code == 202, created.text
        job = created.json()
        # SIGTERM of a replica while clients wait on it: it drains (exit 0), the other goes on.
        with web[1].client() as http:
            assert http.get(f"/v1/jobs/{job['id']}", params={"wait": 1}).status_code == 200
        assert "Traceback" not in web[0].stop() and web[0].proc.returncode == 0
        with web[1].client() as http:
            done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 280}).json()
            lines = http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()
        assert victim.proc.wait(timeout=10) == -signal.SIGKILL
        fake.on_request = None
        ids = Counter(json.loads(line)["id"] for line in lines)
        assert done["status"] == "completed", done
        assert len(ids) == 5000 and set(ids.values()) == {1}
        assert done["counts"] == {"total": 5000, "ok": 5000, "failed": 0, "unsupported": 0, "pending": 0}
        requested = Counter(_doc_of(r) for r in fake.requests)
        plain = {f"d{i}" for i in range(5000) if i % 10 not in PLANS}  # no fault: one request unless rerun
        twice = {d for d in plain if requested[d] > 1}
        rerun = {f"d{line - 1}" for line, n in _attempts(url, job["id"]).items() if n > 1}
        assert twice <= rerun  # requested twice only if it was in the killed worker's hands
        # What a SIGKILL costs is what the worker held: at most max_held (4 x 16) leased and unwritten, however
        # slow the database's writes (without the bound 362 were seen under CI load; 32-53 with it, under load).
        # Leases of 10 s: a 3 s lease also lapsed in live workers stalled on the loaded machine (98 seen). The
        # margin is one more worker's worth for such a lapse.
        assert len(rerun) <= 2 * 64
        outputs = [w.stop() for w in workers[1:]]
        print(f"\n5,000 documents, 3 workers (one SIGKILLed at the 2,500th request), 2 replicas: "
              f"{len(ids)} ids once each; {fake.total} requests; {len(rerun)} documents re-claimed after the "
              f"kill, {len(twice)} of the fault-free ones requested twice; {fake.counts}")
        assert all("Traceback" not in out for out in outputs)
    finally:
        for service in web:
            service.stop()
        for worker in workers:
            worker.stop(signal.SIGKILL)
        fake.stop()


@pytest.mark.slow
def test_shared_provider_rpm_2_replicas_3_workers_under_1_percent_429s(tmp_path: Path, pg: Postgres) -> None:
    url = pg.create_database()
    fake = FakeServer(latency=0.05, rpm_limit=100, rate_window=10.0).start()  # 600 a minute, counted over 10 s
    web = [start(fake, tmp_path / name, "--rpm", "600", database_url=url) for name in ("a", "b")]
    workers = [start_worker(fake, tmp_path / f"w{n}", url, "--rpm", "600") for n in range(3)]
    try:
        docs = [{"id": f"r{i}", "text": f"Report r{i}. {BODY}"} for i in range(300)]
        with web[0].client() as http:
            job = http.post("/v1/jobs", json={"task": "brief", "documents": docs}).json()
            done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 280}).json()
        assert done["status"] == "completed" and done["counts"]["ok"] == 300
        throttled = fake.counts.get("429", 0)
        span = fake.times[-1] - fake.times[0]
        per_second = Counter(int(t - fake.times[0]) for t in fake.times)
        print(f"\nrequests a second: {[per_second[s] for s in range(int(span) + 1)]}")
        print(f"\nshared --rpm 600 over 5 processes against a 600 RPM server: {fake.total} requests, "
              f"{throttled} 429s ({throttled / fake.total:.2%})")
        assert throttled <= 0.01 * fake.total
    finally:
        for service in web:
            service.stop()
        for worker in workers:
            worker.stop()
        fake.stop()


def test_a_lease_that_lapses_is_taken_over_and_each_record_written_once(
        fake: FakeServer, tmp_path: Path, database_url: str) -> None:
    """A worker frozen past its lease (SIGSTOP) loses its documents; when it wakes, its late records are dropped."""
    fake.latency = 0.1
    web = start(fake, tmp_path / "a", "--no-worker", database_url=database_url)
    frozen = start_worker(fake, tmp_path / "w1", database_url, "--lease-seconds", "2", "--concurrency", "4")
    other: WorkerProc | None = None
    try:
        with web.client() as http:
            job = http.post("/v1/jobs", json={"task": "brief", "documents": [
                {"id": f"s{i}", "text": f"Report s{i}. {BODY}"} for i in range(40)]}).json()
            fake.on_request = lambda n: n == 3 and frozen.proc.send_signal(signal.SIGSTOP)
            http.get(f"/v1/jobs/{job['id']}", params={"wait": 1})
            other = start_worker(fake, tmp_path / "w2", database_url, "--lease-seconds", "2")
            done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
            frozen.proc.send_signal(signal.SIGCONT)
            lines = http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()
        assert done["status"] == "completed" and done["counts"] == {"total": 40, "ok": 40, "failed": 0, "unsupported": 0, "pending": 0}
        assert Counter(json.loads(line)["id"] for line in lines) == Counter(f"s{i}" for i in range(40))
        late = frozen.stop()
        assert "Traceback" not in late and frozen.proc.returncode == 0
    finally:
        fake.on_request = None
        fake.latency = 0.0
        web.stop()
        frozen.stop(signal.SIGKILL)
        if other is not None:
            assert "Traceback" not in other.stop()


def test_the_database_going_down_mid_job_is_503_then_the_job_finishes(
        fake: FakeServer, tmp_path: Path, pg: Postgres) -> None:
    url = pg.create_database()
    fake.latency = 0.05
    service = start(fake, tmp_path, database_url=url)
    try:
        with service.client() as http:
            job = http.post("/v1/jobs", json={"task": "brief", "documents": [
                {"id": f"p{i}", "text": f"Report p{i}. {BODY}"} for i in range(60)]}).json()
            pg.pause()
            down = http.get(f"/v1/jobs/{job['id']}")
            ready = http.get("/readyz")
            assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
            assert ready.status_code == 503 and "database" in ready.json()["reason"]
            assert "postgres@" not in down.text and "Traceback" not in down.text
            assert http.post("/v1/brief", json={"text": BODY}).status_code == 200  # a summary needs no database
            assert http.get("/metrics").status_code == 200
            pg.resume()
            for _ in range(20):  # as a client does: 503 says when to ask again (Retry-After)
                answer = http.get(f"/v1/jobs/{job['id']}", params={"wait": 50})
                if answer.status_code != 503:
                    break
                wait_for_retry = threading.Event()
                wait_for_retry.wait(float(answer.headers["retry-after"]))
            done = answer.json()
            lines = http.get(f"/v1/jobs/{job['id']}/results").text.splitlines()
        assert done["status"] == "completed" and done["counts"]["ok"] == 60
        assert Counter(json.loads(line)["id"] for line in lines) == Counter(f"p{i}" for i in range(60))
    finally:
        fake.latency = 0.0
        assert "Traceback" not in service.stop()


# -- hostile configuration, the jobs command ------------------------------------------------------------------


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://u:hunter2pass@localhost/db", "expected postgresql://"),
    ("postgresql://u:hunter2pass@127.0.0.1:1/db", "cannot reach the database postgresql://u:***@127.0.0.1:1/db"),
    ("postgresql://u:hunter2pass@/db?host=/nonexistent&port=5", "cannot reach the database"),
    # a URL urllib cannot split (an unclosed IPv6 bracket), which libpq quotes whole (was: the password shown)
    ("postgresql://u:hunter2pass@[::1/db", "(a malformed URL)"),
    ("postgresql://u@[::1/db?password=hunter2pass", "(a malformed URL)"),
])
@pytest.mark.parametrize("command", ["serve", "worker", "jobs"])
def test_a_bad_database_url_is_one_line_and_exit_3_without_its_password(
        fake: FakeServer, tmp_path: Path, url: str, says: str, command: str) -> None:
    args = {"serve": ["serve", "--port", "0", "--data-dir", str(tmp_path)],
            "worker": ["worker", "--data-dir", str(tmp_path)], "jobs": ["jobs", "list"]}[command]
    environ = {**_environ(fake, tmp_path), "SUMMARIZER_SERVICE_TOKENS": TOKEN, "SUMMARIZER_DATABASE_URL": url}
    run = subprocess.run([sys.executable, "-m", "summarizer", *args], env=environ, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 3, run.stderr
    assert says in run.stderr and "hunter2pass" not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["worker"], ["jobs", "list"], ["jobs", "cancel", "job_0123456789abcdef"]])
def test_no_database_url_is_one_line_and_exit_3_for_every_command(fake: FakeServer, tmp_path: Path,
                                                                  command: list[str]) -> None:
    """worker said exit 3 and jobs exit 2 for the same missing setting: both are configuration."""
    environ = {k: v for k, v in _environ(fake, tmp_path).items() if k != "SUMMARIZER_DATABASE_URL"}
    run = subprocess.run([sys.executable, "-m", "summarizer", *command, "--data-dir", str(tmp_path)]
                         if command == ["worker"] else [sys.executable, "-m", "summarizer", *command],
                         env=environ, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"summarizer: error: summarizer {command[0]} needs --database-url (or SUMMARIZER_DATABASE_URL): postgresql://…"]


def test_jobs_command_lists_shows_and_cancels(fake: FakeServer, tmp_path: Path, postgres_server: Postgres) -> None:
    url = postgres_server.create_database()
    secret_url = url.replace("postgres@", "postgres:hunter2pass@")  # trust auth: the password is not checked
    fake.latency = 0.2
    service = start(fake, tmp_path, "--no-worker", database_url=url)
    try:
        with service.client() as http:
            job = http.post("/v1/jobs", json={"task": "brief", "documents": [BODY, "Other. " + BODY]}).json()
        environ = _environ(fake, tmp_path)

        def jobs(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "summarizer", "jobs", *args, "--database-url", secret_url],
                                  env=environ, capture_output=True, text=True, timeout=60)

        listed = jobs("list")
        assert listed.returncode == 0 and job["id"] in listed.stdout and "queued" in listed.stdout
        assert "postgres:***@" in listed.stdout and "hunter2pass" not in listed.stdout + listed.stderr
        shown = jobs("show", job["id"])
        assert json.loads(shown.stdout)["counts"]["total"] == 2
        assert jobs("cancel", job["id"]).stderr.strip().endswith(f"{job['id']}: cancelled")
        with service.client() as http:
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
        missing = jobs("show", "job_nosuch")
        assert missing.returncode == 2 and "no job job_nosuch" in missing.stderr and "hunter2pass" not in missing.stderr
    finally:
        fake.latency = 0.0
        service.stop()


def test_documents_claimed_by_a_claim_whose_answer_was_lost_are_handed_back(database_url: str, tmp_path: Path) -> None:
    """The database committed a claim, the worker never saw the rows: its heartbeat must not keep them for ever."""
    import psycopg
    from summarizer import Summarizer
    from summarizer.serve.parsing import ParsePool
    from summarizer.serve.pg.db import migrate
    from summarizer.serve.pg.worker import Worker

    migrate(database_url)
    worker = Worker(database_url, Summarizer(base_url="http://127.0.0.1:9/v1", model="m"), ParsePool(1, 5),
                    tmp_path, lease_seconds=30)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobs (id, owner, task, status, total, created, updated) "
                     "VALUES ('job_0000000000000001', 'anonymous', 'brief', 'running', 3, 0, 0)")
        for line in (1, 2, 3):  # 1: in this worker's hands; 2: a lost claim's; 3: another worker's
            owner = {1: worker.name, 2: worker.name, 3: "elsewhere"}[line]
            conn.execute("INSERT INTO documents (job_id, line, raw, worker, lease_until) VALUES "
                         "('job_0000000000000001', %s, 'x', %s, 1e12)", (line, owner))

    async def renew() -> None:
        await worker.db.open()
        try:
            worker._held.add(("job_0000000000000001", 1))
            await worker._renew()
        finally:
            await worker.db.close()

    asyncio.run(renew())
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT line, worker FROM documents ORDER BY line").fetchall())
    assert rows == {1: worker.name, 2: None, 3: "elsewhere"}


def test_a_claim_the_worker_cannot_run_or_hand_back_is_left_to_lapse_not_renewed(tmp_path: Path) -> None:
    """The database going away between a claim and its run: the document is neither run nor handed back. It must
    leave the worker's hands (the heartbeat renews what is held), or its job never ends (seen under CI load)."""
    from summarizer import Summarizer
    from summarizer.serve.pg.worker import Worker, _Claim
    from summarizer.serve.queue import QueueUnavailable

    class Down:
        async def rows(self, *args: object) -> list[tuple[object, ...]]:
            raise QueueUnavailable("the database is down")

    async def scenario() -> set[tuple[str, int]]:
        worker = Worker("postgresql://x@localhost/x", Summarizer(base_url="http://127.0.0.1:9/v1", model="m"),
                        None, tmp_path, db=Down())  # type: ignore[arg-type]
        claims = [_Claim("job_0123456789abcdef", line, b"{}", False) for line in (1, 2)]
        worker._held.update((c.job_id, c.line) for c in claims)
        await worker._give_back(claims[:1])  # the database refuses: the claim is still let go
        pipeline = worker.summarizer.pipeline("brief")
        with pytest.raises(QueueUnavailable):
            await worker._run(_Claim("job_0123456789abcdef", 2, None, False), pipeline)  # its text needs the database
        return worker._held

    assert asyncio.run(scenario()) == set()


def test_a_worker_claims_no_more_than_it_may_hold_unwritten(tmp_path: Path) -> None:
    """Records the database has not taken yet count against what a worker may hold: it stops claiming (a SIGKILL
    then costs at most max_held documents run again), and claims again once they are written."""
    from summarizer import Summarizer
    from summarizer.serve.pg.worker import Worker

    worker = Worker("postgresql://x@localhost/x", Summarizer(base_url="http://127.0.0.1:9/v1", model="m"),
                    None, tmp_path, concurrency=16)  # type: ignore[arg-type]
    assert worker.max_held == 64 and worker._room() == 16
    worker._held.update(("job_0123456789abcdef", line) for line in range(60))  # done, not yet written
    assert worker._room() == 4
    worker._held.update(("job_0123456789abcdef", line) for line in range(60, 70))
    assert worker._room() == 0
    worker._held.clear()
    assert worker._room() == 16
