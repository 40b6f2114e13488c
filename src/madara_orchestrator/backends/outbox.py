"""The outbox: messages written in a job's transaction when the queue is not in the job's database (SQS),
and the relay that sends them on.

``SqlStore`` (``outbox=True``) writes a job's change and its messages to the ``outbox`` table in one
transaction. ``OutboxRelay`` takes the oldest rows with ``Dialect.skip_locked`` (PostgreSQL: ``FOR UPDATE
SKIP LOCKED``), sends each to the queue and deletes them in the same transaction. Many relays (one per
instance) each take rows no other holds; a relay that dies after sending and before committing leaves its
rows to be sent again: delivery is at least once, as the queue's own (a message for a job that moved on is
dropped by its consumer). A row's delay counts from when it was written: the relay sends what is left of it.

``waiting`` counts the rows per queue and the age of the oldest (one ``GROUP BY`` over the table, which holds
only the rows not sent yet: a handful while the relay keeps up): the ``orchestrator_outbox_*`` gauges, the
outbox line of ``/health`` and its alert (engine/outbox.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from madara_orchestrator.backends.sql import SqlConnection, SqlDatabase
from madara_orchestrator.domain.health import OutboxWaiting
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.interfaces import Outgoing, QueueClient

log = logging.getLogger(__name__)

OUTBOX = "orchestrator_outbox"
"""The name notified when outbox rows are committed (``SqlDatabase.notify``): relays wake on it."""


async def insert_outbox(conn: SqlConnection, message: Outgoing, *, now: float) -> None:
    await conn.execute(
        "INSERT INTO outbox (queue, body, written_at, send_at) VALUES (?, ?, ?, ?)",
        (message.queue, message.body, now, now + max(0.0, message.delay_s)),
    )


class OutboxRelay:
    def __init__(
        self,
        db: SqlDatabase,
        queue: QueueClient,
        *,
        batch: int = 50,
        clock: Callable[[], float] | None = None,
        max_idle_s: float = 5.0,
    ) -> None:
        self.db = db
        self.queue = queue
        self.batch = batch
        self._clock: Callable[[], float] = clock if clock is not None else db.clock
        self.max_idle_s = max_idle_s
        self._skip_locked = db.dialect.skip_locked

    async def relay_once(self) -> int:
        """Send and delete up to ``batch`` rows no other relay holds; how many were sent. A failed send rolls
        the whole batch back (the rows already sent go again: at least once)."""
        async with self.db.atomic() as conn:
            rows = await conn.fetch_all(
                f"SELECT seq, queue, body, send_at FROM outbox ORDER BY seq LIMIT {int(self.batch)}{self._skip_locked}"
            )
            now = self._clock()
            for row in rows:
                await self.queue.send(row["queue"], row["body"], delay_s=max(0.0, float(row["send_at"]) - now))
                await conn.execute("DELETE FROM outbox WHERE seq = ?", (row["seq"],))
        return len(rows)

    async def pending(self) -> int:
        """Rows not sent yet (for figures and tests)."""
        async with self.db.use() as conn:
            row = await conn.fetch_one("SELECT COUNT(*) AS n FROM outbox")
        return 0 if row is None else int(row["n"])

    async def waiting(self) -> list[OutboxWaiting]:
        """Rows not sent yet, per queue (the queues with none are left out), with the age of the oldest."""
        async with self.db.use() as conn:
            rows = await conn.fetch_all(
                "SELECT queue, COUNT(*) AS n, MIN(written_at) AS oldest FROM outbox GROUP BY queue ORDER BY queue"
            )
        now = self._clock()
        return [OutboxWaiting(row["queue"], int(row["n"]), max(0.0, now - float(row["oldest"]))) for row in rows]

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``: at once when rows are notified, and every ``max_idle_s`` in any case (a
        notification lost with its connection, rows of a relay that died)."""
        while not stop.is_set():
            woken = await self.db.wake_event(OUTBOX)  # before looking: no commit after the look is missed
            try:
                sent = await self.relay_once()
            except Exception as exc:
                log.warning(
                    "outbox relay: sending failed (%s); the rows stay and are sent again",
                    cut_urls(str(exc) or type(exc).__name__),
                )
                sent = 0
            if sent >= self.batch:
                continue
            stopping = asyncio.ensure_future(stop.wait())
            waking = asyncio.ensure_future(woken.wait())
            try:
                await asyncio.wait({stopping, waking}, timeout=self.max_idle_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                waking.cancel()
