"""A queue with SQS semantics on SQLite: delays, visibility timeouts, receive counts, dead-lettering.

Receivers wait on work, not on a busy loop: senders in this process wake local receivers at once, and
while anyone waits one watcher reads SQLite's ``data_version`` every ``poll_interval_s`` (a read that
changes only when another connection — another process — commits) and wakes them when it moves. A
receive looks with a read first and takes the write lock only when a message is there to claim, so an
idle orchestrator writes nothing. Messages whose queue has a dead-letter queue move there on the
receive after their ``max_receive_count``-th, as SQS redrive does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.interfaces import QueueDepth, QueueMessage


class SqliteQueue:
    def __init__(
        self,
        db: SqliteDatabase,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None = None,
        poll_interval_s: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``configs`` maps each physical queue name to its config; ``dead_letter_names`` maps a queue
        name to the physical name of its dead-letter queue."""
        self.db = db
        self._configs = dict(configs)
        self._dead_letter = dict(dead_letter_names or {})
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._events: dict[str, asyncio.Event] = {}
        self._waiting = 0
        self._watcher: asyncio.Task[None] | None = None

    def _config(self, queue: str) -> QueueConfig:
        try:
            return self._configs[queue]
        except KeyError:
            raise InvalidInput(f"unknown queue {queue!r}; known: {sorted(self._configs)}") from None

    def _event(self, queue: str) -> asyncio.Event:
        event = self._events.get(queue)
        if event is None:
            event = self._events[queue] = asyncio.Event()
        return event

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        self._config(queue)
        message_id = str(uuid.uuid4())
        now = self._clock()
        attributes = json.dumps({"OrchestratorVersion": ORCHESTRATOR_VERSION})

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO queue_messages (message_id, queue, body, attributes, sent_at, visible_at)"
                " VALUES (?,?,?,?,?,?)",
                (message_id, queue, body, attributes, now, now + max(0.0, delay_s)),
            )

        await self.db.write(run)
        if delay_s <= 0:
            self._event(queue).set()
        return message_id

    async def receive(self, queue: str, *, wait_s: float = 0.0) -> QueueMessage | None:
        config = self._config(queue)
        deadline = self._clock() + wait_s
        while True:
            event = self._event(queue)
            event.clear()
            message, next_visible = await self._try_receive(queue, config)
            if message is not None:
                return message
            now = self._clock()
            if now >= deadline:
                return None
            pause = deadline - now
            if next_visible is not None:
                pause = min(pause, max(0.0, next_visible - now))
            self._waiting += 1
            self._watch()
            try:
                await asyncio.wait_for(event.wait(), timeout=max(pause, 0.001))
            except TimeoutError:
                pass
            finally:
                self._waiting -= 1

    def _watch(self) -> None:
        """Start the watcher of other processes' commits, if it is not running."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_commits(), name="sqlite-queue-watch")

    async def _watch_commits(self) -> None:
        seen = await self.db.read(_data_version)
        while self._waiting > 0:
            await asyncio.sleep(self._poll_interval_s)
            try:
                version = await self.db.read(_data_version)
            except Exception:
                version = -1  # wake everyone: they will meet the error themselves
            if version != seen:
                seen = version
                for event in self._events.values():
                    event.set()

    async def _try_receive(self, queue: str, config: QueueConfig) -> tuple[QueueMessage | None, float | None]:
        dead_letter = self._dead_letter.get(queue) if config.dead_letter is not None else None
        now = self._clock()

        def peek(conn: sqlite3.Connection) -> tuple[bool, float | None]:
            """Whether a write is needed (a message to claim, or messages past their retention)."""
            row = conn.execute(
                "SELECT MIN(visible_at), MIN(sent_at) FROM queue_messages WHERE queue = ?", (queue,)
            ).fetchone()
            next_visible, oldest = row[0], row[1]
            if next_visible is None:
                return False, None
            expired = config.retention_s is not None and oldest < now - config.retention_s
            return next_visible <= now or expired, next_visible

        needed, upcoming = await self.db.read(peek)
        if not needed:
            return None, upcoming

        def run(conn: sqlite3.Connection) -> tuple[QueueMessage | None, float | None]:
            if config.retention_s is not None:
                conn.execute(
                    "DELETE FROM queue_messages WHERE queue = ? AND sent_at < ?",
                    (queue, now - config.retention_s),
                )
            while True:
                row = conn.execute(
                    "SELECT seq, message_id, body, attributes, receive_count FROM queue_messages"
                    " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT 1",
                    (queue, now),
                ).fetchone()
                if row is None:
                    upcoming = conn.execute(
                        "SELECT MIN(visible_at) FROM queue_messages WHERE queue = ?", (queue,)
                    ).fetchone()[0]
                    return None, upcoming
                if dead_letter is not None and row["receive_count"] >= config.max_receive_count:
                    conn.execute(
                        "UPDATE queue_messages SET queue = ?, visible_at = ?, receive_count = 0, receipt = NULL"
                        " WHERE seq = ?",
                        (dead_letter, now, row["seq"]),
                    )
                    continue
                receipt = uuid.uuid4().hex
                conn.execute(
                    "UPDATE queue_messages SET visible_at = ?, receive_count = receive_count + 1, receipt = ?"
                    " WHERE seq = ?",
                    (now + config.visibility_timeout_s, receipt, row["seq"]),
                )
                return (
                    QueueMessage(
                        queue=queue,
                        message_id=row["message_id"],
                        body=row["body"],
                        receipt=receipt,
                        receive_count=row["receive_count"] + 1,
                        attributes=json.loads(row["attributes"]),
                    ),
                    None,
                )

        message, upcoming = await self.db.write(run)
        if dead_letter is not None:
            self._event(dead_letter).set()
        return message, upcoming

    async def ack(self, message: QueueMessage) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM queue_messages WHERE message_id = ? AND receipt = ?",
                (message.message_id, message.receipt),
            )

        await self.db.write(run)

    async def nack(self, message: QueueMessage, *, delay_s: float = 0.0) -> None:
        visible_at = self._clock() + max(0.0, delay_s)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE queue_messages SET visible_at = ?, receipt = NULL WHERE message_id = ? AND receipt = ?",
                (visible_at, message.message_id, message.receipt),
            )

        await self.db.write(run)
        if delay_s <= 0:
            self._event(message.queue).set()

    async def extend(self, message: QueueMessage, *, visibility_s: float) -> None:
        visible_at = self._clock() + visibility_s

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE message_id = ? AND receipt = ?",
                (visible_at, message.message_id, message.receipt),
            )

        await self.db.write(run)

    async def depth(self, queue: str) -> QueueDepth:
        now = self._clock()

        def run(conn: sqlite3.Connection) -> QueueDepth:
            row = conn.execute(
                "SELECT COALESCE(SUM(visible_at <= ?), 0),"
                " COALESCE(SUM(visible_at > ? AND receipt IS NOT NULL), 0),"
                " COALESCE(SUM(visible_at > ? AND receipt IS NULL), 0) FROM queue_messages WHERE queue = ?",
                (now, now, now, queue),
            ).fetchone()
            return QueueDepth(visible=int(row[0]), in_flight=int(row[1]), delayed=int(row[2]))

        return await self.db.read(run)


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
