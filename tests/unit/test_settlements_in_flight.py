"""Several settlements in flight (issue 20, item 1), the engine's side: the update_state trigger keeps up to
``max_settlements_in_flight`` StateTransition jobs unfinished, strictly in batch order; a job settles after
the one before it (``after_key``) and waits (no retry spent) when out of turn; verification of a batch whose
predecessors are still settling is pending, not rejected. (The transaction side, with anvil and StarkWare's
core contract: tests/e2e/test_settlements_in_flight.py.)"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from madara_orchestrator.backends.memory import MemoryObjectStore
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.jobs import (
    AggregatorMetadata,
    Job,
    JobStatus,
    JobType,
    SettlementContext,
    StateUpdateMetadata,
    settlements_in_flight,
)
from madara_orchestrator.domain.lifecycle import Verification
from madara_orchestrator.engine.batching import Batcher
from madara_orchestrator.engine.plan import L2_PLAN
from madara_orchestrator.engine.service import JobPolicy
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.engine.triggers import TriggerConfig, Triggers
from madara_orchestrator.interfaces import SequencerRpc
from madara_orchestrator.jobs.artifacts import encode_felts_json, encode_program_output
from madara_orchestrator.jobs.state_update import StateUpdateJobHandler
from tests.helpers.engine import Harness, ScriptedHandler, make_harness
from tests.helpers.settlement import FakeSettlement

ST = JobType.STATE_TRANSITION
BATCH_BLOCKS = 4


def end_block(index: int) -> int:
    return index * BATCH_BLOCKS - 1


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await make_harness(
        tmp_path / "st.db",
        handler=ScriptedHandler(job_type=ST),
        policy=JobPolicy(max_process_attempts=3, max_verification_attempts=3, verification_delay_s=0),
    )
    objects = MemoryObjectStore()
    await objects.put("po.txt", encode_program_output([1, 2, 2**251 + 17 * 2**192, 0, 0, 0, 0, 0, 0, 0]))
    await objects.put("da.json", encode_felts_json([1, 2, 3]))
    for index in range(1, 7):
        await h.store.insert_aggregator_batch(
            AggregatorBatch(
                index=index,
                start_block=end_block(index - 1) + 1,
                end_block=end_block(index),
                status=AggregatorBatchStatus.READY_FOR_STATE_UPDATE,
                created_at=0,
                updated_at=0,
            )
        )
    h.objects = objects  # type: ignore[attr-defined]
    yield h
    await h.close()


def handler(h: Harness, settlement: FakeSettlement, *, in_flight: int) -> StateUpdateJobHandler:
    return StateUpdateJobHandler(
        settlement=settlement,  # type: ignore[arg-type]
        objects=h.objects,  # type: ignore[attr-defined]
        db=h.store,
        clock=h.clock,
        alerts=h.alerts,
        max_in_flight=in_flight,
    )


def triggers(h: Harness, in_flight: int) -> Triggers:
    return Triggers(
        config=TriggerConfig(max_settlements_in_flight=in_flight),
        plan=L2_PLAN,
        service=h.service,
        db=h.store,
        sequencer=cast(SequencerRpc, None),
        clock=h.clock,
        metrics=NoTelemetry(),
        batcher=cast(Batcher, None),
    )


async def completed_aggregators(h: Harness, indexes: range) -> None:
    for index in indexes:
        meta = AggregatorMetadata(batch_num=index, program_output_path="po.txt", da_segment_path="da.json")
        job = Job.new(JobType.AGGREGATOR, index, meta, now=h.clock.now(), orchestrator_version="test")
        assert await h.store.create_job(dataclasses.replace(job, status=JobStatus.COMPLETED))


async def state_transitions(h: Harness) -> list[tuple[int, JobStatus]]:
    return [(j.internal_id, j.status) for j in await h.store.list_jobs(job_types=[ST])]


async def complete(h: Harness, internal_id: int) -> None:
    job = await h.store.get_job_by_internal_id(ST, internal_id)
    assert job is not None
    await h.store.update_job(dataclasses.replace(job, status=JobStatus.COMPLETED), now=h.clock.now())


async def test_the_trigger_keeps_n_settlements_in_flight_in_batch_order(harness: Harness) -> None:
    h = harness
    await completed_aggregators(h, range(1, 6))
    t = triggers(h, 3)
    assert await t.update_state()
    assert await state_transitions(h) == [(i, JobStatus.CREATED) for i in (1, 2, 3)]
    assert not await t.update_state(), "three unfinished: no fourth"
    await complete(h, 2)  # out of order: batch 1 still unfinished, one slot free
    assert await t.update_state()
    assert [i for i, _ in await state_transitions(h)] == [1, 2, 3, 4]
    await complete(h, 1)
    await complete(h, 3)
    assert await t.update_state()
    assert [i for i, _ in await state_transitions(h)] == [1, 2, 3, 4, 5], "batch 6's aggregator is not done"
    counts = await h.store.count_jobs()
    assert settlements_in_flight(counts) == 2


async def test_one_in_flight_is_one_at_a_time(harness: Harness) -> None:
    h = harness
    await completed_aggregators(h, range(1, 4))
    t = triggers(h, 1)
    assert await t.update_state()
    assert not await t.update_state()
    assert await state_transitions(h) == [(1, JobStatus.CREATED)]
    await complete(h, 1)
    assert await t.update_state()
    assert [i for i, _ in await state_transitions(h)] == [1, 2]


async def create(h: Harness, index: int) -> Job:
    meta = StateUpdateMetadata(
        context=SettlementContext(type="Batch", to_settle=index),
        program_output_path="po.txt",
        da_segment_path="da.json",
    )
    job = await h.service.create_job(ST, index, meta)
    assert job is not None
    message = await h.queue.receive(h.names.processing(ST))
    assert message is not None
    await h.queue.ack(message)
    return job


async def test_a_batch_follows_the_previous_one_until_it_is_settled(harness: Harness) -> None:
    h = harness
    settlement = FakeSettlement(nonce=1)
    h.service.handlers[ST] = handler(h, settlement, in_flight=4)
    settlement.last = end_block(1)
    for index in (2, 3):
        await h.service.process_job((await create(h, index)).id)
    assert settlement.sent == [
        ("StateTransition-2", None),  # batch 1 is settled: nothing to follow
        ("StateTransition-3", "StateTransition-2"),
    ]


async def test_out_of_turn_waits_without_spending_retries(harness: Harness) -> None:
    h = harness
    settlement = FakeSettlement(nonce=1)
    h.service.handlers[ST] = handler(h, settlement, in_flight=4)
    settlement.out_of_turn.add("StateTransition-2")
    job = await create(h, 2)
    decision = await h.service.process_job(job.id)
    assert decision.ack, "not a NACK: the message's receive count is not spent"
    fresh = await h.store.get_job(job.id)
    assert fresh is not None and fresh.status == JobStatus.CREATED
    assert fresh.common.process_attempt_no <= 1 and "waits for StateTransition-1" in (fresh.common.failure_reason or "")
    assert await h.queue.receive(h.names.processing(ST)) is None
    h.clock.advance(7)
    assert await h.queue.receive(h.names.processing(ST)) is not None, "tried again after the wait"
    settlement.out_of_turn.clear()
    await h.service.process_job(job.id)
    done = await h.store.get_job(job.id)
    assert done is not None and done.status == JobStatus.PENDING_VERIFICATION


@pytest.mark.parametrize(
    ("in_flight", "last", "expected"),
    [
        (4, end_block(3), Verification.PENDING),  # batch 3 settling
        (4, end_block(1), Verification.PENDING),  # batches 2 and 3 settling
        (4, end_block(4), Verification.VERIFIED),
        (4, end_block(2) - 1, Verification.REJECTED),  # not a batch end: something else settled
        (2, end_block(1), Verification.REJECTED),  # batch 1 is three batches back: beyond two in flight
        (1, end_block(3), Verification.PENDING),  # one at a time: the original's rule
        (1, end_block(2), Verification.REJECTED),
    ],
)
async def test_verification_while_earlier_batches_settle(
    harness: Harness, in_flight: int, last: int, expected: Verification
) -> None:
    settlement = FakeSettlement(nonce=1)
    settlement.last = last
    st = handler(harness, settlement, in_flight=in_flight)
    meta = StateUpdateMetadata(context=SettlementContext(type="Batch", to_settle=4))
    job = Job.new(ST, 4, meta, now=0, orchestrator_version="test")
    assert (await st.verify_with(job, meta)).status == expected


async def test_verification_of_the_first_batches_before_anything_settled(harness: Harness) -> None:
    """The contract at genesis (below the first batch's end) while batch 3 verifies: batches 1 and 2 settle."""
    settlement = FakeSettlement(nonce=1)
    settlement.last = 0
    meta = StateUpdateMetadata(context=SettlementContext(type="Batch", to_settle=3))
    job = Job.new(ST, 3, meta, now=0, orchestrator_version="test")
    assert (await handler(harness, settlement, in_flight=4).verify_with(job, meta)).status == Verification.PENDING
    assert (await handler(harness, settlement, in_flight=2).verify_with(job, meta)).status == Verification.REJECTED
