"""Pause and resume (issue 21, item 2), the engine's side on in-memory backends: the triggers a paused stage
stops, the StateTransition put back (or followed, when its transaction is stored), and a resume that starts
them again."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SettlementContext, StateUpdateMetadata
from madara_orchestrator.domain.pause import MAX_TEXT, Stage, pause_text
from madara_orchestrator.domain.queues import read_job_message
from madara_orchestrator.engine.batching import Batcher
from madara_orchestrator.engine.pause import PauseControl, stage_triggers
from madara_orchestrator.engine.plan import L2_PLAN, TriggerName
from madara_orchestrator.engine.telemetry import Event
from madara_orchestrator.engine.triggers import TriggerConfig, Triggers
from madara_orchestrator.interfaces import SequencerRpc
from madara_orchestrator.jobs.snos import snos_metadata
from tests.helpers.engine import Harness, ScriptedHandler, make_harness

ST = JobType.STATE_TRANSITION


class RecordingTelemetry:
    tracer = None

    def __init__(self) -> None:
        self.events: list[Event] = []

    def report(self, event: Event) -> None:
        self.events.append(event)


class CountingBatcher:
    next_expiry = None

    def __init__(self) -> None:
        self.runs = 0

    async def run(self) -> bool:
        self.runs += 1
        return False


@dataclasses.dataclass
class Setup:
    h: Harness
    triggers: Triggers
    control: PauseControl
    batcher: CountingBatcher
    telemetry: RecordingTelemetry
    started: set[str]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    h = await make_harness(tmp_path / "unused.db", handler=ScriptedHandler(job_type=ST))
    assert isinstance(h.store, MemoryStore)
    batcher = CountingBatcher()
    telemetry = RecordingTelemetry()
    triggers = Triggers(
        config=TriggerConfig(max_settlements_in_flight=2),
        plan=L2_PLAN,
        service=h.service,
        db=h.store,
        sequencer=cast(SequencerRpc, None),
        clock=h.clock,
        metrics=telemetry,
        batcher=cast(Batcher, batcher),
        pauses=h.store,
    )
    started: set[str] = set()

    async def has_transaction(key: str) -> bool:
        return key in started

    control = PauseControl(
        store=h.store, service=h.service, triggers=triggers, clock=h.clock, alerts=h.alerts, started=has_transaction
    )
    h.service.hold = control.hold_job
    yield Setup(h, triggers, control, batcher, telemetry, started)
    await triggers.stop()
    await h.close()


# -- the pause itself (the store: tests/integration/test_store_contract.py) ------------------------------


async def test_a_pause_is_one_short_line_on_a_known_stage() -> None:
    assert pause_text("  why  ", "reason", default="none") == "why"
    assert pause_text(None, "reason", default="none") == "none"
    with pytest.raises(InvalidInput, match="must be one line"):
        pause_text("two\nlines", "reason", default="")
    with pytest.raises(InvalidInput, match=f"at most {MAX_TEXT}"):
        pause_text("x" * (MAX_TEXT + 1), "reason", default="")
    assert Stage.parse(" Settlement ") == Stage.SETTLEMENT
    with pytest.raises(InvalidInput, match="batching, proving, settlement"):
        Stage.parse("snos")


# -- where a pause bites --------------------------------------------------------------------------------


async def test_paused_batching_does_not_run_and_resume_runs_it_at_once(setup: Setup) -> None:
    s = setup
    await s.control.pause(Stage.BATCHING, reason="bad blocks upstream", by="ops")
    assert not await s.triggers.run_once(TriggerName.AGGREGATOR_BATCHING)
    assert s.batcher.runs == 0
    assert ("AggregatorBatching", "paused") in [
        (str(e.trigger), e.outcome) for e in s.telemetry.events if type(e).__name__ == "TriggerRun"
    ]
    assert s.triggers.failing() == {}, "a pause is not a failure"
    assert [subject for subject, _ in s.h.alerts.sent] == ["Batching paused"]
    await s.control.resume(Stage.BATCHING, by="ops")
    await asyncio.gather(*s.triggers._tasks)
    assert s.batcher.runs >= 1, "resume kicked batching"
    assert [subject for subject, _ in s.h.alerts.sent] == ["Batching paused", "Batching resumed"]


async def completed_snos(s: Setup, index: int) -> None:
    meta = snos_metadata(index, index * 10, index * 10 + 9)
    job = Job.new(JobType.SNOS_RUN, index, meta, now=s.h.clock.now(), orchestrator_version="test")
    assert await s.h.store.create_job(dataclasses.replace(job, status=JobStatus.COMPLETED))


async def test_paused_proving_creates_no_proof_job(setup: Setup) -> None:
    s = setup
    await completed_snos(s, 1)
    await s.control.pause(Stage.PROVING, reason=None, by=None)
    for name in (TriggerName.PROVING, TriggerName.AGGREGATOR):
        assert not await s.triggers.run_once(name)
    assert await s.h.store.list_jobs(job_types=[JobType.PROOF_CREATION]) == []
    await s.control.resume(Stage.PROVING)
    assert await s.triggers.run_once(TriggerName.PROVING)
    assert [j.internal_id for j in await s.h.store.list_jobs(job_types=[JobType.PROOF_CREATION])] == [1]


async def test_each_stage_stops_its_own_triggers_only() -> None:
    assert stage_triggers(Stage.BATCHING) == (TriggerName.AGGREGATOR_BATCHING, TriggerName.SNOS_BATCHING)
    assert stage_triggers(Stage.PROVING) == (TriggerName.PROVING, TriggerName.AGGREGATOR)
    assert stage_triggers(Stage.SETTLEMENT) == (TriggerName.UPDATE_STATE,)


async def state_transition(s: Setup, index: int) -> Job:
    meta = StateUpdateMetadata(context=SettlementContext(type="Batch", to_settle=index))
    job = await s.h.service.create_job(ST, index, meta)
    assert job is not None
    return job


async def drain(s: Setup) -> list[str]:
    bodies = []
    while (message := await s.h.queue.receive(s.h.names.processing(ST))) is not None:
        await s.h.queue.ack(message)
        bodies.append(str(read_job_message(message.body).id))
    return bodies


async def test_a_paused_settlement_puts_its_job_back_and_resume_sends_it_again(setup: Setup) -> None:
    s = setup
    job = await state_transition(s, 1)
    await drain(s)
    await s.control.pause(Stage.SETTLEMENT, reason="incident", by="ops")
    assert (await s.h.service.process_job(job.id)).ack
    assert s.h.handler.processed == [], "not processed"
    fresh = await s.h.store.get_job(job.id)
    assert fresh == job, "put back as it was: nothing spent, nothing failed"
    assert await drain(s) == [], "no message left to spin while paused"
    await s.control.resume(Stage.SETTLEMENT)
    assert await drain(s) == [str(job.id)], "resume sends it again"
    await s.h.service.process_job(job.id)
    assert s.h.handler.processed == [1]


async def test_a_settlement_with_a_stored_transaction_is_followed_while_paused(setup: Setup) -> None:
    s = setup
    job = await state_transition(s, 3)
    s.started.add("StateTransition-3")  # a transaction was signed (maybe broadcast) before the pause
    await s.control.pause(Stage.SETTLEMENT, reason="incident", by="ops")
    await s.h.service.process_job(job.id)
    assert s.h.handler.processed == [3]
    other = await state_transition(s, 4)
    await s.h.service.process_job(other.id)
    assert s.h.handler.processed == [3], "a settlement that sent nothing waits"


async def test_other_jobs_are_not_held_by_a_paused_settlement(setup: Setup) -> None:
    s = setup
    await s.control.pause(Stage.SETTLEMENT, reason="incident", by="ops")
    proof = Job.new(
        JobType.PROOF_CREATION,
        1,
        snos_metadata(1, 0, 9),
        now=s.h.clock.now(),
        orchestrator_version="test",
    )
    assert await s.control.hold_job(proof) is None
    assert await s.control.hold_job(await state_transition(s, 1)) is not None
