"""The job store, batch store and lock service on one SQLite file (the embedded default): ``SqlStore``."""

from __future__ import annotations

from madara_orchestrator.backends.sql_store import SqlStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase


class SqliteStore(SqlStore):
    """Implements ``Database`` (JobStore + BatchStore) and ``LockService`` on one SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__(db)
