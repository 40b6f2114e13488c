"""Pause and resume a stage (``domain/pause.py``): what the admin API, ``orchestrator admin pause|resume`` and
the dashboard call, and what the job service asks before it processes a StateTransition.

Where a pause bites: the triggers of its stage do nothing (``PAUSED_BY``, engine/triggers.py); a
StateTransition job whose settlement has sent nothing yet is put back (its message dropped: the job stays as
it is, and ``resume`` sends it again; the heal sweep is the backstop); the durable sender signs no new
transaction (``settlement_hold``), so one already broadcast is followed to its receipt and nothing else is
sent. A resume kicks the stage's triggers here at once; other instances take it up at their next trigger
run (a block, or the ``--interval-seconds`` tick).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import PROCESSABLE, Job, JobType
from madara_orchestrator.domain.pause import Pause, Stage, pause_text
from madara_orchestrator.engine.plan import TriggerName
from madara_orchestrator.engine.service import JobService
from madara_orchestrator.engine.triggers import PAUSED_BY, Triggers
from madara_orchestrator.interfaces import AlertSink, Clock, PauseStore
from madara_orchestrator.jobs.state_update import settlement_key

log = logging.getLogger("madara_orchestrator.pause")

SettlementStarted = Callable[[str], Awaitable[bool]]
"""Whether a settlement key has a transaction stored (signed, maybe broadcast): the durable sender's store."""


@dataclass(kw_only=True, eq=False, repr=False)
class PauseControl:
    """``store``: None where the deployment keeps no pauses (then nothing is ever paused).
    ``started``: where settlements keep their transactions (None: nothing is ever in flight, the devnet
    ledger settles at once)."""

    store: PauseStore | None
    service: JobService
    triggers: Triggers
    clock: Clock
    alerts: AlertSink
    started: SettlementStarted | None = None

    def _store(self) -> PauseStore:
        if self.store is None:
            raise InvalidInput("this orchestrator's store keeps no pauses")
        return self.store

    async def current(self) -> dict[Stage, Pause]:
        return {} if self.store is None else await self.store.pauses()

    async def of(self, stage: Stage) -> Pause | None:
        return (await self.current()).get(stage)

    async def pause(self, stage: Stage, *, reason: str | None, by: str | None) -> tuple[Pause, bool]:
        """Pause ``stage``; when it is paused already, that pause stands (returned, with False)."""
        wanted = Pause(
            stage=stage,
            reason=pause_text(reason, "reason", default="no reason given"),
            by=pause_text(by, "by", default=f"admin API on {self.service.owner}"),
            since=self.clock.now(),
        )
        stored, new = await self._store().pause(wanted)
        if new:
            log.warning("%s", stored.describe())
            await self.alerts.send(f"{stage.capitalize()} paused", stored.describe())
        return stored, new

    async def resume(self, stage: Stage, *, by: str | None = None) -> Pause | None:
        """Resume ``stage``: its triggers run again at once here, and a StateTransition put back is sent again."""
        removed = await self._store().resume(stage)
        if removed is None:
            return None
        who = pause_text(by, "by", default=f"admin API on {self.service.owner}")
        paused_s = max(0.0, self.clock.now() - removed.since)
        log.warning("%s resumed by %s after %.0f s (%s)", stage, who, paused_s, removed.describe())
        await self.alerts.send(
            f"{stage.capitalize()} resumed", f"{stage} resumed by {who} after {paused_s:.0f} s ({removed.describe()})"
        )
        if stage == Stage.SETTLEMENT:
            for job in await self.service.db.list_jobs(
                job_types=(JobType.STATE_TRANSITION,), statuses=tuple(PROCESSABLE)
            ):
                await self.service.requeue(job, verification=False)
        for name in stage_triggers(stage):
            self.triggers.kick(name)
        return removed

    async def settlement_hold(self) -> str | None:
        """Why no new settlement transaction may be signed now, or None (the durable sender's ``hold``)."""
        pause = await self.of(Stage.SETTLEMENT)
        return None if pause is None else pause.describe()

    async def hold_job(self, job: Job) -> str | None:
        """Why ``job`` is put back rather than processed now, or None: a StateTransition while settlement is
        paused, unless its settlement has a transaction stored already (followed to its receipt)."""
        if job.job_type != JobType.STATE_TRANSITION or self.store is None:
            return None
        pause = await self.of(Stage.SETTLEMENT)
        if pause is None:
            return None
        if self.started is not None and await self.started(settlement_key(job.job_type, job.internal_id)):
            return None
        return pause.describe()


def stage_triggers(stage: Stage) -> tuple[TriggerName, ...]:
    return tuple(name for name, paused_by in PAUSED_BY.items() if paused_by == stage)
