"""The queue on SQLite (``SqlQueue``). Receivers wait on work, not on a busy loop: senders in this process
wake local receivers at once, and while anyone waits one watcher reads SQLite's ``data_version`` every
``poll_interval_s`` (a read that changes only when another connection — another process — commits) and
wakes them when it moves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from madara_orchestrator.backends.sql_queue import SqlQueue
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.queues import QueueConfig


class SqliteQueue(SqlQueue):
    def __init__(
        self,
        db: SqliteDatabase,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None = None,
        poll_interval_s: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(db, configs, dead_letter_names=dead_letter_names, clock=clock)
        self._sqlite = db
        self._poll_interval_s = poll_interval_s
        self._waiting = 0
        self._watcher: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def _wait_scope(self) -> AsyncIterator[None]:
        self._waiting += 1
        try:
            if self._watcher is None or self._watcher.done():
                seen = await self._sqlite.data_version()  # before the first look: no commit after it is missed
                self._watcher = asyncio.get_running_loop().create_task(
                    self._watch_commits(seen), name="sqlite-queue-watch"
                )
            yield
        finally:
            self._waiting -= 1

    async def _watch_commits(self, seen: int) -> None:
        while self._waiting > 0:
            await asyncio.sleep(self._poll_interval_s)
            try:
                version = await self._sqlite.data_version()
            except Exception:
                version = -1  # wake everyone: they will meet the error themselves
            if version != seen:
                seen = version
                self._sqlite.wakeups.fire_all()
