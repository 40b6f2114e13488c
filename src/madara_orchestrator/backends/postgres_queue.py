"""The queue on PostgreSQL (``SqlQueue``), for several processes: a receiver claims with ``SELECT ... FOR
UPDATE SKIP LOCKED``; every send and nack NOTIFYs the queue's name on one channel, and a receiver with
nothing to take waits on that notification (one LISTEN connection per process, ``Notifications``), never
longer than ``max_idle_s`` (a notification lost with its connection is then noticed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.sql_queue import SqlQueue, insert_message
from madara_orchestrator.domain.queues import QueueConfig

__all__ = ["PostgresQueue", "insert_message"]


class PostgresQueue(SqlQueue):
    def __init__(
        self,
        db: PostgresDatabase,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        max_idle_s: float = 5.0,
    ) -> None:
        super().__init__(db, configs, dead_letter_names=dead_letter_names, clock=clock, max_idle_s=max_idle_s)
