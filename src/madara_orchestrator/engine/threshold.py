"""A threshold watched for the whole deployment: one alert when a figure reaches it and one when it falls back
under, sent by the one instance that holds the watch's named lease (the backlog's and the outbox's alerts)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from madara_orchestrator.interfaces import AlertSink, LockService


@dataclass(frozen=True, slots=True)
class Notice:
    """An alert's title and text, and the line the log gets."""

    title: str
    text: str
    log_line: str


@dataclass(kw_only=True, eq=False, repr=False)
class ThresholdAlert:
    """``observe`` after each measurement: while this instance holds the lease ``lock``, a change of side
    sends ``raised()`` (log warning) or ``cleared()`` (log info); no change sends nothing."""

    lock: str
    locks: LockService
    alerts: AlertSink
    owner: str
    lease_s: float
    log: logging.Logger
    above: bool = field(default=False, init=False)
    """Whether the figure is at or above the threshold, as this instance last told."""

    async def observe(self, above: bool, raised: Callable[[], Notice], cleared: Callable[[], Notice]) -> None:
        if not await self.locks.acquire(self.lock, self.owner, self.lease_s):
            return
        if above != self.above:
            notice = raised() if above else cleared()
            await self.alerts.send(notice.title, notice.text)
            self.log.log(logging.WARNING if above else logging.INFO, "%s", notice.log_line)
        self.above = above
