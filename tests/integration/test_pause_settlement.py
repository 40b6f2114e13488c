"""Must show (issue 21, item 2): a paused settlement with pending batches sends nothing for a minute, across
a restart and on two instances; resume settles them in order.

Two instances (their own connections, queues and job services) share one SQLite file, as two processes do,
and settle on the devnet ledger (a SQLite file too, which refuses a batch out of order). Time is the
injected clock: a minute passes in steps of five seconds, each step running every instance's settlement
trigger, its queue and the heal sweep (which re-sends the messages of jobs without progress)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.devnet.adapters import DevnetSettlement
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, AggregatorMetadata, Job, JobPolicy, JobStatus, JobType
from madara_orchestrator.domain.pause import Stage
from madara_orchestrator.domain.queues import read_job_message
from madara_orchestrator.engine.batching import Batcher
from madara_orchestrator.engine.pause import PauseControl
from madara_orchestrator.engine.plan import L2_PLAN, TriggerName
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.service import JobService
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.engine.triggers import TriggerConfig, Triggers
from madara_orchestrator.interfaces import SequencerRpc, SettlementResult
from madara_orchestrator.jobs.artifacts import encode_felts_json, encode_program_output
from madara_orchestrator.jobs.state_update import StateUpdateJobHandler
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from tests.helpers.engine import FakeClock

ST = JobType.STATE_TRANSITION
BATCHES = 4
BATCH_BLOCKS = 3
IN_FLIGHT = 2
POLICY = JobPolicy(max_process_attempts=3, max_verification_attempts=5, verification_delay_s=0)


def end_block(index: int) -> int:
    return index * BATCH_BLOCKS - 1


class CountingLedger(DevnetSettlement):
    """The devnet ledger, counting every send it is asked for (accepted or not)."""

    calls: list[str]

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        self.calls.append(idempotency_key)
        return await super().update_state_with_blobs(
            program_output, blobs, idempotency_key=idempotency_key, after_key=after_key
        )

    def settled_keys(self) -> list[str]:
        with self._connect() as conn:
            return [row[0] for row in conn.execute("SELECT idempotency_key FROM devnet_settlements ORDER BY rowid")]


@dataclass
class Instance:
    db: SqliteDatabase
    store: SqliteStore
    queue: SqliteQueue
    service: JobService
    triggers: Triggers
    pauses: PauseControl

    async def step(self) -> None:
        """One turn: the settlement trigger, then every message visible on the settlement queues."""
        await self.triggers.run_once(TriggerName.UPDATE_STATE)
        names = self.service.names
        for queue, verification in ((names.processing(ST), False), (names.verification(ST), True)):
            while (message := await self.queue.receive(queue)) is not None:
                job_id = read_job_message(message.body).id
                if verification:
                    decision = await self.service.verify_job(job_id)
                else:
                    decision = await self.service.process_job(job_id, receive_count=message.receive_count)
                if decision.ack:
                    await self.queue.ack(message)
                else:
                    await self.queue.nack(message, delay_s=decision.delay_s)

    async def close(self) -> None:
        await self.triggers.stop()
        await self.db.close()


@dataclass
class World:
    path: Path
    clock: FakeClock
    ledger: CountingLedger
    objects: FilesystemObjectStore
    alerts: RecordingAlerts

    async def instance(self, name: str) -> Instance:
        config = RuntimeConfig(policies={**DEFAULT_POLICIES, ST: POLICY})
        by_name, dead_letters = config.physical_queue_configs()
        db = SqliteDatabase(self.path)
        await db.open()
        store = SqliteStore(db)
        queue = SqliteQueue(db, by_name, dead_letter_names=dead_letters, clock=self.clock, poll_interval_s=0.01)
        handler = StateUpdateJobHandler(
            settlement=self.ledger, objects=self.objects, db=store, clock=self.clock, max_in_flight=IN_FLIGHT
        )
        service = JobService(
            db=store,
            queue=queue,
            queue_names=config.queue_names,
            handlers={ST: handler},
            alerts=self.alerts,
            metrics=NoTelemetry(),
            clock=self.clock,
            policies=config.policies,
            owner=name,
        )
        triggers = Triggers(
            config=TriggerConfig(max_settlements_in_flight=IN_FLIGHT),
            plan=L2_PLAN,
            service=service,
            db=store,
            sequencer=_no_sequencer(),
            clock=self.clock,
            metrics=NoTelemetry(),
            batcher=_no_batcher(),
            pauses=store,
        )
        control = PauseControl(store=store, service=service, triggers=triggers, clock=self.clock, alerts=self.alerts)
        service.hold = control.hold_job
        return Instance(db, store, queue, service, triggers, control)


def _no_sequencer() -> SequencerRpc:
    return None  # type: ignore[return-value]  # the settlement trigger never asks the sequencer


def _no_batcher() -> Batcher:
    return None  # type: ignore[return-value]  # nor batching


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    ledger = CountingLedger(tmp_path / "ledger.db")
    ledger.calls = []
    w = World(
        tmp_path / "orchestrator.db",
        FakeClock(),
        ledger,
        FilesystemObjectStore(tmp_path / "objects"),
        RecordingAlerts(),
    )
    setup = await w.instance("setup")
    for index in range(1, BATCHES + 1):
        start, end = end_block(index - 1) + 1, end_block(index)
        previous = STARKNET_PRIME - 1 if index == 1 else end_block(index - 1)
        await w.objects.put(f"{index}/po.txt", encode_program_output([0, 0, previous, end, 0, 0, 0, 0]))
        await w.objects.put(f"{index}/da.json", encode_felts_json([index, 2, 3]))
        await setup.store.insert_aggregator_batch(
            AggregatorBatch(
                index=index,
                start_block=start,
                end_block=end,
                status=AggregatorBatchStatus.READY_FOR_STATE_UPDATE,
                created_at=0,
                updated_at=0,
            )
        )
    await aggregated(setup, w.clock, 1)
    await setup.close()
    yield w


async def aggregated(instance: Instance, clock: FakeClock, index: int) -> None:
    """Batch ``index`` proven and aggregated: ready to settle."""
    meta = AggregatorMetadata(
        batch_num=index, program_output_path=f"{index}/po.txt", da_segment_path=f"{index}/da.json"
    )
    job = Job.new(JobType.AGGREGATOR, index, meta, now=clock.now(), orchestrator_version="test")
    assert await instance.store.create_job(dataclasses.replace(job, status=JobStatus.COMPLETED))


async def settlement_jobs(instance: Instance) -> list[tuple[int, JobStatus]]:
    return [(j.internal_id, j.status) for j in await instance.store.list_jobs(job_types=[ST])]


async def quiet_for(world: World, instances: Sequence[Instance], seconds: float) -> None:
    """``seconds`` of the injected clock, in steps of 5 s: each instance runs its trigger, its queues and the
    heal sweep (re-sending the messages of jobs without progress for 10 s); nothing may be sent."""
    for _ in range(int(seconds // 5)):
        for instance in instances:
            await instance.step()
            await instance.service.heal(stale_after_s=10)
        world.clock.advance(5)
        assert world.ledger.calls == [], "a paused settlement sent nothing"


async def test_a_paused_settlement_sends_nothing_for_a_minute_across_a_restart_and_two_instances(world: World) -> None:
    a, b = await world.instance("instance-a"), await world.instance("instance-b")
    try:
        # Batch 1's settlement is created (and queued) before the pause: work waiting, not in progress. The
        # other batches become ready to settle during the pause.
        assert await a.triggers.update_state()
        assert await settlement_jobs(a) == [(1, JobStatus.CREATED)]
        pause, new = await a.pauses.pause(Stage.SETTLEMENT, reason="incident 42: L1 key rotation", by="ops@pager")
        assert new and world.alerts.sent[-1][0] == "Settlement paused"
        paused_at = world.clock.now()
        for index in range(2, BATCHES + 1):
            await aggregated(a, world.clock, index)

        await quiet_for(world, [a, b], 30)
        await b.close()
        b = await world.instance("instance-b")  # a restart: a new process on the same database
        stored = (await b.pauses.current())[Stage.SETTLEMENT]
        assert (stored.reason, stored.by, stored.since) == ("incident 42: L1 key rotation", "ops@pager", paused_at)
        await quiet_for(world, [a, b], 30)

        assert world.clock.now() - paused_at >= 60
        jobs = await a.store.list_jobs(job_types=[ST])
        assert [(j.internal_id, j.status) for j in jobs] == [(1, JobStatus.CREATED)], "no settlement created"
        assert all(j.common.process_attempt_no == 0 and not j.common.failure_reason for j in jobs), (
            "put back as they were: no attempt spent, nothing failed"
        )

        removed = await b.pauses.resume(Stage.SETTLEMENT, by="ops@pager")
        assert removed == pause
        for _ in range(20):
            if len(world.ledger.settled_keys()) == BATCHES and all(
                s == JobStatus.COMPLETED for _, s in await settlement_jobs(a)
            ):
                break
            for instance in (b, a):
                await instance.step()
            world.clock.advance(1)
        assert world.ledger.settled_keys() == [f"StateTransition-{i}" for i in range(1, BATCHES + 1)]
        assert world.ledger.calls == world.ledger.settled_keys(), "each sent once, in order"
        assert await settlement_jobs(a) == [(i, JobStatus.COMPLETED) for i in range(1, BATCHES + 1)]
    finally:
        await a.close()
        await b.close()
