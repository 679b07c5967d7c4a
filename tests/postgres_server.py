"""A real PostgreSQL for tests: Debian's server binaries, a cluster made in a temp folder, a unix socket there.

``initdb`` refuses to run as root, and the tests run as root in CI: the cluster is made
and started as the ``postgres`` user (``runuser``), in a folder that user owns. Nothing
listens on TCP: the socket is in the cluster's folder, so parallel test processes each
get their own server without a port to collide on. ``.ci/run`` installs the package.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def available() -> bool:
    return _bindir() is not None and shutil.which("runuser") is not None


@dataclass
class Postgres:
    folder: Path
    port: int = 5432
    bindir: Path = Path("/usr/lib/postgresql/15/bin")

    @property
    def socket_dir(self) -> str:
        return str(self.folder)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.folder}&port={self.port}"

    def start(self) -> Postgres:
        bindir = _bindir()
        assert bindir is not None, "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
        self.bindir = bindir
        shutil.chown(self.folder, "postgres", "postgres")
        os.chmod(self.folder, 0o700)
        self._as_postgres(str(bindir / "initdb"), "-D", str(self.folder / "data"), "--auth=trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8", "--locale=C")
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again, after ``pause``)."""
        options = (f"-k {self.folder} -p {self.port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off -c max_connections=200")
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
                          str(self.folder / "log"), "-w", "-t", "60", "-o", options, "start")

    def pause(self) -> None:
        """Stop the server, keeping its data: the database is down until ``resume``."""
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self._as_postgres(str(self.bindir / "createdb"), "-h", str(self.folder), "-p", str(self.port), name)
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bindir / "pg_ctl"), "-D",
                        str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
                       capture_output=True, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                              check=False, cwd="/")
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip() or done.stdout.strip()}")


def start_postgres() -> Postgres:
    return Postgres(Path(tempfile.mkdtemp(prefix="summarizer-pg-"))).start()
