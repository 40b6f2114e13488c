"""A queue with SQS semantics on SQL, for several processes: delays, visibility timeouts, receipts, receive
counts, dead-lettering after ``max_receive_count`` receives (SQS redrive), retention. One implementation
over ``sql.SqlDatabase``: ``SqliteQueue`` and ``PostgresQueue`` only choose how receivers wait.

A receive looks with a read first and opens a transaction only when a message is there to claim (or
messages are past their retention), so an idle orchestrator writes nothing. The claim takes the oldest
visible message with ``Dialect.skip_locked`` (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite's write
transaction excludes other writers), so concurrent receivers never take the same delivery. Sends and nacks
``notify`` the queue; a receiver with nothing to take waits on that (``SqlDatabase.wake_event``), or until
the earliest hidden message of its queue becomes visible, never longer than ``max_idle_s``.

Times (``sent_at``, ``visible_at``) come from ``clock``: by default the database's, so that processes agree
on what is visible; tests pass a fake one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.base import QueueBase, dead_letter_attributes, delivered, message_attributes, received
from madara_orchestrator.backends.sql import SqlConnection, SqlDatabase
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.interfaces import QueueDepth, QueueMessage


async def insert_message(conn: SqlConnection, queue: str, body: str, *, now: float, delay_s: float = 0.0) -> str:
    """Write one message; its id. The one place that writes a message: ``SqlQueue.send`` and
    ``PostgresStore.create_job_and_send`` (inside the job's transaction); each then notifies the queue."""
    message_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO queue_messages (message_id, queue, body, attributes, sent_at, visible_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            message_id,
            queue,
            body,
            json.dumps({"OrchestratorVersion": ORCHESTRATOR_VERSION}),
            now,
            now + max(0.0, delay_s),
        ),
    )
    return message_id


class SqlQueue(QueueBase):
    def __init__(
        self,
        db: SqlDatabase,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        max_idle_s: float = 5.0,
    ) -> None:
        """``configs`` maps each physical queue name to its config; ``dead_letter_names`` maps a queue
        name to the physical name of its dead-letter queue. ``clock`` defaults to ``db.clock``."""
        super().__init__(
            configs,
            dead_letter_names=dead_letter_names,
            clock=clock if clock is not None else db.clock,
            max_idle_s=max_idle_s,
        )
        self.db = db
        self._skip_locked = db.dialect.skip_locked

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        self._config(queue)
        async with self.db.use() as conn:
            message_id = await insert_message(conn, queue, body, now=self._clock(), delay_s=delay_s)
            await self.db.notify(conn, queue)
        return message_id

    async def _wake_event(self, queue: str) -> asyncio.Event:
        return await self.db.wake_event(queue)

    async def _try_receive(self, queue: str, config: QueueConfig) -> tuple[QueueMessage | None, float | None]:
        now = self._clock()
        async with self.db.use() as conn:
            row = await conn.fetch_one(
                "SELECT MIN(visible_at) AS next_visible, MIN(sent_at) AS oldest FROM queue_messages WHERE queue = ?",
                (queue,),
            )
        if row is None or row["next_visible"] is None:
            return None, None
        expired = config.retention_s is not None and float(row["oldest"]) < now - config.retention_s
        if float(row["next_visible"]) > now and not expired:
            return None, float(row["next_visible"])
        async with self.db.atomic() as conn:
            return await self._claim(conn, queue, config, now)

    async def _claim(
        self, conn: SqlConnection, queue: str, config: QueueConfig, now: float
    ) -> tuple[QueueMessage | None, float | None]:
        dead_letter = self._dead_letter_of(queue, config)
        if config.retention_s is not None:
            await conn.execute(
                "DELETE FROM queue_messages WHERE seq IN (SELECT seq FROM queue_messages"
                f" WHERE queue = ? AND sent_at < ?{self._skip_locked})",
                (queue, now - config.retention_s),
            )
        while True:
            row = await conn.fetch_one(
                "SELECT seq, message_id, body, attributes, receive_count, sent_at FROM queue_messages"
                f" WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT 1{self._skip_locked}",
                (queue, now),
            )
            if row is None:
                upcoming = await conn.fetch_one(
                    "SELECT MIN(visible_at) AS t FROM queue_messages WHERE queue = ?", (queue,)
                )
                return None, None if upcoming is None or upcoming["t"] is None else float(upcoming["t"])
            attributes = message_attributes(row["attributes"])
            if dead_letter is not None and row["receive_count"] >= config.max_receive_count:
                attributes.update(dead_letter_attributes(queue, int(row["receive_count"]), float(row["sent_at"]), now))
                await conn.execute(
                    "UPDATE queue_messages SET queue = ?, visible_at = ?, receive_count = 0, receipt = NULL,"
                    " attributes = ? WHERE seq = ?",
                    (dead_letter, now, json.dumps(attributes), row["seq"]),
                )
                await self.db.notify(conn, dead_letter)
                continue
            receipt = uuid.uuid4().hex
            attributes = received(attributes, now)
            await conn.execute(
                "UPDATE queue_messages SET visible_at = ?, receive_count = receive_count + 1, receipt = ?,"
                " attributes = ? WHERE seq = ?",
                (now + config.visibility_timeout_s, receipt, json.dumps(attributes), row["seq"]),
            )
            message = QueueMessage(
                queue=queue,
                message_id=row["message_id"],
                body=row["body"],
                receipt=receipt,
                receive_count=int(row["receive_count"]) + 1,
                attributes=delivered(attributes),
            )
            return message, None

    async def ack(self, message: QueueMessage) -> None:
        async with self.db.use() as conn:
            await conn.execute(
                "DELETE FROM queue_messages WHERE message_id = ? AND receipt = ?",
                (message.message_id, message.receipt),
            )

    async def nack(self, message: QueueMessage, *, delay_s: float = 0.0) -> None:
        visible_at = self._clock() + max(0.0, delay_s)
        async with self.db.use() as conn:
            changed = await conn.execute(
                "UPDATE queue_messages SET visible_at = ?, receipt = NULL WHERE message_id = ? AND receipt = ?",
                (visible_at, message.message_id, message.receipt),
            )
            if changed:
                await self.db.notify(conn, message.queue)

    async def extend(self, message: QueueMessage, *, visibility_s: float) -> None:
        visible_at = self._clock() + visibility_s
        async with self.db.use() as conn:
            await conn.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE message_id = ? AND receipt = ?",
                (visible_at, message.message_id, message.receipt),
            )

    async def depth(self, queue: str) -> QueueDepth:
        now = self._clock()
        async with self.db.use() as conn:
            row = await conn.fetch_one(
                "SELECT COUNT(*) FILTER (WHERE visible_at <= ?) AS visible,"
                " COUNT(*) FILTER (WHERE visible_at > ? AND receipt IS NOT NULL) AS in_flight,"
                " COUNT(*) FILTER (WHERE visible_at > ? AND receipt IS NULL) AS delayed"
                " FROM queue_messages WHERE queue = ?",
                (now, now, now, queue),
            )
        assert row is not None
        return QueueDepth(visible=int(row["visible"]), in_flight=int(row["in_flight"]), delayed=int(row["delayed"]))
