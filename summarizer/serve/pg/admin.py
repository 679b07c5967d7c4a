"""What ``summarizer jobs`` shows and does, over a synchronous connection: list, show, cancel.

Output names the database only through ``db.mask``: a URL's password never reaches a terminal.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import UsageError
from .db import NOW, connect, mask
from .queue import JOB_COLUMNS, job_from_row

__all__ = ["cancel_job", "list_jobs", "render", "show_job"]



def list_jobs(url: str, *, owner: str | None = None, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, params = ["status <> 'uploading'"], []
    if owner:
        where.append("owner = %s")
        params.append(owner)
    if status:
        where.append("status = %s")
        params.append(status)
    with connect(url) as conn:
        rows = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
                            "ORDER BY created DESC, id DESC LIMIT %s", (*params, limit)).fetchall()
    return [_shown(row) for row in rows]


def show_job(url: str, job_id: str) -> dict[str, Any]:
    with connect(url) as conn:
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            raise UsageError(f"no job {job_id} in {mask(url)}")
        leases = conn.execute(
            f"SELECT worker, count(*), min(lease_until - {NOW}) FROM documents WHERE job_id = %s AND NOT done "
            "AND worker IS NOT NULL GROUP BY worker ORDER BY worker", (job_id,)).fetchall()
    shown = _shown(row)
    shown["leases"] = [{"worker": worker, "documents": n, "lapses_in_s": round(left, 1)} for worker, n, left in leases]
    return shown


def cancel_job(url: str, job_id: str) -> str:
    """Cancel ``job_id`` if it is queued or running; return its state afterwards."""
    with connect(url) as conn, conn.transaction():
        row = conn.execute(f"UPDATE jobs SET status = CASE WHEN status IN ('queued', 'running') THEN 'cancelled' "
                           f"ELSE status END, updated = {NOW} WHERE id = %s AND status <> 'uploading' "
                           "RETURNING status", (job_id,)).fetchone()
        if row is None:
            raise UsageError(f"no job {job_id} in {mask(url)}")
        conn.execute("SELECT pg_notify('summarizer_jobs', %s)", (job_id,))
    return str(row[0])


def render(jobs: list[dict[str, Any]], *, as_json: bool, url: str) -> str:
    if as_json:
        return "\n".join(json.dumps(job) for job in jobs)
    lines = [f"# {len(jobs)} job(s) in {mask(url)}",
             f"{'id':<22} {'owner':<14} {'task':<10} {'status':<10} {'ok':>8} {'failed':>7} {'unsupported':>11} {'total':>8}"]
    lines += [f"{j['id']:<22} {j['owner']:<14} {j['task']:<10} {j['status']:<10} {j['counts']['ok']:>8} "
              f"{j['counts']['failed']:>7} {j['counts']['unsupported']:>11} {j['counts']['total']:>8}" for j in jobs]
    return "\n".join(lines)


def _shown(row: tuple[Any, ...]) -> dict[str, Any]:
    job = job_from_row(row)
    shown = job.as_dict()
    shown["owner"] = job.owner
    del shown["status_url"], shown["results_url"]
    return shown
