"""The job store, batch store and lock service on PostgreSQL, for several processes: ``SqlStore``, and the
creation of a job with its first queue message in one transaction (the queue being in the same database).

Rows are laid out as in SQLite (the same columns; ``metadata`` and batch ``doc`` as jsonb); the exclusion
constraints on batch ranges hold even against two writers racing. Lock expiry is reckoned on the database
server's clock; job leases are written as the caller gives them: the engine takes them from
``PostgresDatabase.clock``, the server's clock too.
"""

from __future__ import annotations

from collections.abc import Callable

from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.sql_queue import insert_message
from madara_orchestrator.backends.sql_store import SqlStore, insert_job
from madara_orchestrator.domain.jobs import Job


class PostgresStore(SqlStore):
    """Implements ``Database`` (JobStore + BatchStore), ``LockService`` and ``AtomicJobCreation`` on a
    ``PostgresDatabase``. ``clock`` (default: the database's) stamps the queue message of ``create_job_and_send``."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(db)
        self._clock: Callable[[], float] = clock if clock is not None else db.clock

    async def create_job_and_send(self, job: Job, queue: str, body: str, *, delay_s: float = 0.0) -> bool:
        """Insert the job and its first queue message in one transaction: both or neither. False (and
        nothing sent) when a job with the same (job_type, internal_id) exists."""
        async with self.db.atomic() as conn:
            if not await insert_job(self.db, conn, job):
                return False
            await insert_message(conn, queue, body, now=self._clock(), delay_s=delay_s)
            await self.db.notify(conn, queue)
            return True
