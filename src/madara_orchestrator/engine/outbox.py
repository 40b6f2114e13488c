"""The outbox's backlog: messages written with their job's change (``--aws-sqs``) that no relay has sent to the
queue yet. A relay sends every row at once, so rows that stay mean the relay cannot get them through (SQS
unreachable, refused, or no relay running), and the jobs waiting on those messages do not move.

``measure`` reads the rows per queue (``OutboxRelay.waiting``, one query) and reports the
``orchestrator_outbox_*`` gauges, every known queue included (0 when it has none), at each scrape
(``Runtime.refresh_gauges``); ``/health`` and the dashboard's banner say DEGRADED past
``domain.health.OUTBOX_STUCK_AFTER_S``. With ``--outbox-alert-seconds`` one instance (the named lease
``ALERT_LOCK``) looks every ``interval_s`` and alerts once when the oldest message has waited that long, and
once when the outbox drains under it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field

from madara_orchestrator.domain.health import OutboxWaiting
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.telemetry import Telemetry
from madara_orchestrator.engine.threshold import Notice, ThresholdAlert
from madara_orchestrator.interfaces import AlertSink, LockService, OutboxRelay

log = logging.getLogger("madara_orchestrator.outbox")

ALERT_LOCK = "outbox-alert"
"""The named lease of the instance that watches the threshold: one alert per deployment, not per instance."""


@dataclass(kw_only=True, eq=False, repr=False)
class OutboxWatch:
    """Measures the outbox and, with a threshold (``alert_s``), alerts when its oldest message crosses it and
    when it falls back under it. Only the instance holding ``ALERT_LOCK`` alerts. ``queues``: the queues this
    deployment sends to, reported with 0 while none of theirs waits."""

    relay: OutboxRelay
    locks: InitVar[LockService]
    metrics: Telemetry
    alerts: InitVar[AlertSink]
    owner: InitVar[str]
    queues: Sequence[str] = ()
    alert_s: float | None = None
    interval_s: float = 30.0
    threshold: ThresholdAlert = field(init=False)

    def __post_init__(self, locks: LockService, alerts: AlertSink, owner: str) -> None:
        self.queues = tuple(self.queues)
        self.threshold = ThresholdAlert(
            lock=ALERT_LOCK, locks=locks, alerts=alerts, owner=owner, lease_s=self.interval_s * 3, log=log
        )

    async def measure(self) -> list[OutboxWaiting]:
        """The rows waiting per queue (every known queue, 0 when it has none), reported to the gauges."""
        found = {w.queue: w for w in await self.relay.waiting()}
        waiting = [found.pop(q, OutboxWaiting(q, 0, 0.0)) for q in self.queues] + sorted(
            found.values(), key=lambda w: w.queue
        )
        self.metrics.report(ev.OutboxDepth(tuple(waiting)))
        return waiting

    async def watch_once(self) -> list[OutboxWaiting]:
        """One look of the watch loop: measure, and alert on a crossing while this instance holds the watch."""
        waiting = await self.measure()
        if self.alert_s is None:
            return waiting
        alert_s = self.alert_s
        messages = sum(w.messages for w in waiting)
        oldest = max((w.oldest_s for w in waiting if w.messages > 0), default=0.0)

        def raised() -> Notice:
            queues = ", ".join(f"{w.queue} {w.messages}" for w in waiting if w.messages > 0)
            return Notice(
                "Outbox not draining",
                f"{messages} message(s) written with their jobs' changes wait in the outbox, the oldest for "
                f"{oldest:.0f} s (--outbox-alert-seconds {alert_s:g}; {queues}): the relay is not sending them "
                "to the queue, and those jobs do not move. Check that SQS is reachable and the log's 'outbox relay' "
                "warnings.",
                f"outbox: {messages} message(s) waiting, the oldest for {oldest:.0f} s",
            )

        def cleared() -> Notice:
            return Notice(
                "Outbox draining again",
                f"{messages} message(s) waiting in the outbox, none for --outbox-alert-seconds {alert_s:g}",
                f"outbox: the oldest message waits less than {alert_s:g} s again",
            )

        await self.threshold.observe(oldest >= alert_s, raised, cleared)
        return waiting
