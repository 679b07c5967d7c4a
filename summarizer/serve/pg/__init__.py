"""The PostgreSQL job store (the ``postgres`` extra): many web replicas, many workers, limits they share.

``db`` the URL, connections and numbered migrations; ``pool`` a process's connections and
its LISTEN loop; ``queue`` the web tier's side (``PgQueue``, a ``JobQueue``); ``worker``
the documents' side (``Worker``: claims, leases, heartbeats, records); ``limits`` the
per-token RPM (``PgRates``) and the provider's RPM/TPM (``PgPacer``) held in the database;
``admin`` what ``summarizer jobs`` shows and does.
"""

from __future__ import annotations

from .db import check_url, mask, migrate

__all__ = ["check_url", "mask", "migrate"]
