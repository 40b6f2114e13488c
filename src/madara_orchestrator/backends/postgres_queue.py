"""The queue on PostgreSQL (``SqlQueue``), for several processes: a receiver claims with ``SELECT ... FOR
UPDATE SKIP LOCKED``; every send and nack NOTIFYs the queue's name on one channel, and a receiver with
nothing to take waits on that notification (one LISTEN connection per process, ``Notifications``), never
longer than ``max_idle_s`` (a notification lost with its connection is then noticed)."""

from __future__ import annotations

from madara_orchestrator.backends.sql_queue import SqlQueue, insert_message

__all__ = ["PostgresQueue", "insert_message"]


class PostgresQueue(SqlQueue):
    """``SqlQueue`` on a ``PostgresDatabase``: its ``clock`` defaults to the database server's."""
