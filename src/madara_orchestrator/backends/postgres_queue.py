"""A queue with SQS semantics on PostgreSQL, for several processes: delays, visibility timeouts, receipts,
receive counts, dead-lettering after ``max_receive_count`` receives (SQS redrive), retention.

A receiver claims the oldest visible message with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent
receivers (in any process) never take the same delivery. Every send and nack NOTIFYs the queue's name on
one channel; a receiver with nothing to take waits on that notification (one LISTEN connection per process,
``Notifications``), or until the earliest hidden message of its queue becomes visible, never longer than
``max_idle_s`` (a notification lost with its connection is then noticed).

Times (``sent_at``, ``visible_at``) come from ``clock``: by default the database's (``DatabaseClock``), so
that processes agree on what is visible; tests pass a fake one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping

from psycopg.types.json import Jsonb

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.postgres_db import Connection, PostgresDatabase
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.interfaces import QueueDepth, QueueMessage

CHANNEL = "orchestrator_queue"
"""The NOTIFY channel; the payload is the name of the queue that has a new or returned message."""

CONTENDED_PAUSE_S = 0.02
"""How long to wait before looking again when the visible messages were all being claimed by others."""


async def insert_message(conn: Connection, queue: str, body: str, *, now: float, delay_s: float = 0.0) -> str:
    """Write one message and NOTIFY its queue (delivered at commit); its id. The one place that sends:
    ``PostgresQueue.send`` and ``PostgresStore.create_job_and_send`` (inside the job's transaction)."""
    message_id = str(uuid.uuid4())
    await conn.execute(
        "WITH sent AS (INSERT INTO queue_messages (message_id, queue, body, attributes, sent_at, visible_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING queue)"
        " SELECT pg_notify(%s, queue) FROM sent",
        (
            message_id,
            queue,
            body,
            Jsonb({"OrchestratorVersion": ORCHESTRATOR_VERSION}),
            now,
            now + max(0.0, delay_s),
            CHANNEL,
        ),
    )
    return message_id


async def _notify(conn: Connection, queue: str) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, queue))


class PostgresQueue:
    def __init__(
        self,
        db: PostgresDatabase,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        max_idle_s: float = 5.0,
    ) -> None:
        """``configs`` maps each physical queue name to its config; ``dead_letter_names`` maps a queue
        name to the physical name of its dead-letter queue. ``clock`` defaults to ``db.clock``."""
        self.db = db
        self._configs = dict(configs)
        self._dead_letter = dict(dead_letter_names or {})
        self._clock: Callable[[], float] = clock if clock is not None else db.clock
        self._max_idle_s = max_idle_s

    def _config(self, queue: str) -> QueueConfig:
        try:
            return self._configs[queue]
        except KeyError:
            raise InvalidInput(f"unknown queue {queue!r}; known: {sorted(self._configs)}") from None

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        self._config(queue)
        async with self.db.connection() as conn:
            return await insert_message(conn, queue, body, now=self._clock(), delay_s=delay_s)

    async def receive(self, queue: str, *, wait_s: float = 0.0) -> QueueMessage | None:
        config = self._config(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_s)
        while True:
            # Taken before looking, so that a send between the look and the wait still wakes us.
            wake = await self.db.notifications.event(CHANNEL, queue) if wait_s > 0 else None
            message, next_visible = await self._try_receive(queue, config)
            if message is not None:
                return message
            remaining = deadline - loop.time()
            if wake is None or remaining <= 0:
                return None
            pause = min(remaining, self._max_idle_s)
            if next_visible is not None:
                pause = min(pause, max(next_visible - self._clock(), CONTENDED_PAUSE_S))
            try:
                await asyncio.wait_for(wake.wait(), timeout=pause)
            except TimeoutError:
                pass

    async def _try_receive(self, queue: str, config: QueueConfig) -> tuple[QueueMessage | None, float | None]:
        """Claim the first visible message (dead-lettering those received too often on the way); else the
        time the next message of the queue becomes visible, if any."""
        dead_letter = self._dead_letter.get(queue) if config.dead_letter is not None else None
        now = self._clock()
        async with self.db.transaction() as conn:
            if config.retention_s is not None:
                await conn.execute(
                    "DELETE FROM queue_messages WHERE seq IN (SELECT seq FROM queue_messages"
                    " WHERE queue = %s AND sent_at < %s FOR UPDATE SKIP LOCKED)",
                    (queue, now - config.retention_s),
                )
            while True:
                row = await (
                    await conn.execute(
                        "SELECT seq, message_id, body, attributes, receive_count FROM queue_messages"
                        " WHERE queue = %s AND visible_at <= %s ORDER BY visible_at, seq LIMIT 1"
                        " FOR UPDATE SKIP LOCKED",
                        (queue, now),
                    )
                ).fetchone()
                if row is None:
                    upcoming = await (
                        await conn.execute("SELECT MIN(visible_at) AS t FROM queue_messages WHERE queue = %s", (queue,))
                    ).fetchone()
                    return None, None if upcoming is None or upcoming["t"] is None else float(upcoming["t"])
                if dead_letter is not None and row["receive_count"] >= config.max_receive_count:
                    await conn.execute(
                        "UPDATE queue_messages SET queue = %s, visible_at = %s, receive_count = 0, receipt = NULL"
                        " WHERE seq = %s",
                        (dead_letter, now, row["seq"]),
                    )
                    await _notify(conn, dead_letter)
                    continue
                receipt = uuid.uuid4().hex
                await conn.execute(
                    "UPDATE queue_messages SET visible_at = %s, receive_count = receive_count + 1, receipt = %s"
                    " WHERE seq = %s",
                    (now + config.visibility_timeout_s, receipt, row["seq"]),
                )
                attributes: dict[str, str] = {str(k): str(v) for k, v in row["attributes"].items()}
                return (
                    QueueMessage(
                        queue=queue,
                        message_id=row["message_id"],
                        body=row["body"],
                        receipt=receipt,
                        receive_count=int(row["receive_count"]) + 1,
                        attributes=attributes,
                    ),
                    None,
                )

    async def ack(self, message: QueueMessage) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM queue_messages WHERE message_id = %s AND receipt = %s",
                (message.message_id, message.receipt),
            )

    async def nack(self, message: QueueMessage, *, delay_s: float = 0.0) -> None:
        visible_at = self._clock() + max(0.0, delay_s)
        async with self.db.connection() as conn:
            await conn.execute(
                "WITH back AS (UPDATE queue_messages SET visible_at = %s, receipt = NULL"
                " WHERE message_id = %s AND receipt = %s RETURNING queue)"
                " SELECT pg_notify(%s, queue) FROM back",
                (visible_at, message.message_id, message.receipt, CHANNEL),
            )

    async def extend(self, message: QueueMessage, *, visibility_s: float) -> None:
        visible_at = self._clock() + visibility_s
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE queue_messages SET visible_at = %s WHERE message_id = %s AND receipt = %s",
                (visible_at, message.message_id, message.receipt),
            )

    async def depth(self, queue: str) -> QueueDepth:
        now = self._clock()
        async with self.db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT COUNT(*) FILTER (WHERE visible_at <= %(now)s) AS visible,"
                    " COUNT(*) FILTER (WHERE visible_at > %(now)s AND receipt IS NOT NULL) AS in_flight,"
                    " COUNT(*) FILTER (WHERE visible_at > %(now)s AND receipt IS NULL) AS delayed"
                    " FROM queue_messages WHERE queue = %(queue)s",
                    {"now": now, "queue": queue},
                )
            ).fetchone()
        assert row is not None
        return QueueDepth(visible=int(row["visible"]), in_flight=int(row["in_flight"]), delayed=int(row["delayed"]))
