"""The job store, batch store and lock service on one SQLite file (the embedded default): ``SqlStore``."""

from __future__ import annotations

from collections.abc import Callable

from madara_orchestrator.backends.sql_store import SqlStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase


class SqliteStore(SqlStore):
    """Implements ``Database`` (JobStore + BatchStore), ``LockService`` and ``AtomicJobWrites`` on one SQLite
    file (its messages go to the queue in that file, or with ``outbox`` to the outbox table)."""

    def __init__(self, db: SqliteDatabase, *, clock: Callable[[], float] | None = None, outbox: bool = False) -> None:
        super().__init__(db, clock=clock, outbox=outbox)
