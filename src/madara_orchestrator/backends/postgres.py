"""The job store, batch store and lock service on PostgreSQL, for several processes: ``SqlStore``, and the
writing of a job with its queue messages in one transaction (the queue in the same database, or the outbox
an ``OutboxRelay`` sends to SQS).

Rows are laid out as in SQLite (the same columns; ``metadata`` and batch ``doc`` as jsonb); the exclusion
constraints on batch ranges hold even against two writers racing. Lock expiry is reckoned on the database
server's clock; job leases are written as the caller gives them: the engine takes them from
``PostgresDatabase.clock``, the server's clock too.
"""

from __future__ import annotations

from collections.abc import Callable

from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.sql_store import SqlStore


class PostgresStore(SqlStore):
    """``SqlStore`` on a ``PostgresDatabase``: ``clock`` (default: the database server's) stamps the messages
    it writes; ``outbox``: they go to the outbox table (the queue is SQS)."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], float] | None = None, outbox: bool = False) -> None:
        super().__init__(db, clock=clock, outbox=outbox)
