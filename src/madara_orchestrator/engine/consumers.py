"""Queue consumers: one loop per queue with a pool of ``concurrency`` in-flight messages.

While a message is handled its visibility is extended (heartbeat), so a live worker keeps it and a
dead worker's message reappears after one visibility timeout. Handler errors become a NACK with the
handler's delay; the queue dead-letters a message after its max receive count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from madara_orchestrator.domain.errors import classify
from madara_orchestrator.engine.service import Decision
from madara_orchestrator.interfaces import QueueClient, QueueMessage

log = logging.getLogger("madara_orchestrator.consumers")

MessageHandler = Callable[[QueueMessage], Awaitable[Decision]]


@dataclass(eq=False, repr=False)
class QueueConsumer:
    """``concurrency``: at least 1."""

    queue: QueueClient
    name: str
    handler: MessageHandler
    _: KW_ONLY
    concurrency: int
    visibility_s: float
    receive_wait_s: float = 1.0
    error_delay_s: float = 5.0
    _slots: asyncio.Semaphore = field(init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    busy: int = field(default=0, init=False)
    busy_seconds: float = field(default=0.0, init=False)
    """Time slots spent handling messages, summed (finished messages only)."""

    def __post_init__(self) -> None:
        self.concurrency = max(1, self.concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        failing_since: float | None = None
        """While receiving fails (the queue's backend is down): said once, then once a minute."""
        last_said = 0.0
        while not stop.is_set():
            await self._slots.acquire()
            if stop.is_set():
                self._slots.release()
                break
            try:
                message = await self.queue.receive(self.name, wait_s=self.receive_wait_s)
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception as exc:
                self._slots.release()
                now = time.monotonic()
                if failing_since is None or now - last_said >= 60:
                    log.warning(
                        "receive from %s failed%s: %s",
                        self.name,
                        "" if failing_since is None else f" (for {now - failing_since:.0f} s)",
                        exc,
                    )
                    last_said = now
                    failing_since = failing_since or now
                await _sleep_unless(stop, 1.0)
                continue
            if failing_since is not None:
                log.info("receive from %s works again after %.0f s", self.name, time.monotonic() - failing_since)
                failing_since = None
            if message is None:
                self._slots.release()
                continue
            task = asyncio.create_task(self._handle(message), name=f"{self.name}:{message.message_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: QueueMessage) -> None:
        self.busy += 1
        started = time.monotonic()
        heartbeat = asyncio.create_task(self._keep_invisible(message))
        try:
            try:
                decision = await self.handler(message)
            except Exception as exc:
                decision = await self._failed(message, exc)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                if decision.ack:
                    await self.queue.ack(message)
                else:
                    await self.queue.nack(message, delay_s=decision.delay_s)
            except Exception as exc:
                # The message reappears after its visibility timeout; handlers are idempotent.
                log.warning("ack/nack of %s on %s failed: %s", message.message_id, self.name, exc)
        finally:
            heartbeat.cancel()
            self.busy -= 1
            self.busy_seconds += time.monotonic() - started
            self._slots.release()

    async def _failed(self, message: QueueMessage, exc: Exception) -> Decision:
        """A handler raised. An outage (the database down, say) is not the message's fault: it comes back
        as a fresh copy, so its receive count, which dead-letters it after a few, is not spent."""
        outage = classify(exc).outage
        if outage is None:
            log.exception("handling message %s from %s failed", message.message_id, self.name)
            return Decision(ack=False, delay_s=self.error_delay_s)
        log.warning("message %s from %s waits for an outside service: %s", message.message_id, self.name, outage)
        try:
            await self.queue.send(self.name, message.body, delay_s=self.error_delay_s)
        except Exception:
            return Decision(ack=False, delay_s=self.error_delay_s)  # the queue is down too: it comes back anyway
        return Decision(ack=True)

    async def _keep_invisible(self, message: QueueMessage) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.visibility_s / 3))
            try:
                await self.queue.extend(message, visibility_s=self.visibility_s)
            except Exception as exc:
                log.warning("could not extend visibility of %s: %s", message.message_id, exc)

    async def drain(self, timeout_s: float) -> bool:
        """Wait for in-flight messages; True when all finished within the timeout."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        return not pending


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
