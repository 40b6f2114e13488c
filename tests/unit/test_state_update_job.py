"""StateTransition through the job service: fees above the cap alert and wait; a settled batch is not resent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.backends.memory import MemoryObjectStore
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.jobs import JobPolicy, JobStatus, JobType, SettlementContext, StateUpdateMetadata
from madara_orchestrator.interfaces import SettlementAttempt, SettlementResult
from madara_orchestrator.jobs.artifacts import encode_felts_json, encode_program_output
from madara_orchestrator.jobs.state_update import StateUpdateJobHandler
from madara_orchestrator.settlement.errors import FeeCapExceeded, TxReverted
from tests.helpers.engine import Harness, ScriptedHandler, make_harness
from tests.helpers.settlement import FakeSettlement

ST = JobType.STATE_TRANSITION


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeSettlement]]:
    h = await make_harness(
        tmp_path / "st.db",
        handler=ScriptedHandler(job_type=ST),
        policy=JobPolicy(max_process_attempts=3, max_verification_attempts=3, verification_delay_s=0),
    )
    settlement = FakeSettlement()
    objects = MemoryObjectStore()
    h.service.handlers[ST] = StateUpdateJobHandler(
        settlement=settlement, objects=objects, db=h.store, clock=h.clock, alerts=h.alerts, fee_wait_s=45
    )
    await h.store.insert_aggregator_batch(
        AggregatorBatch(
            index=1,
            start_block=0,
            end_block=0,
            status=AggregatorBatchStatus.READY_FOR_STATE_UPDATE,
            created_at=0,
            updated_at=0,
        )
    )
    await objects.put("po.txt", encode_program_output([1, 2, 2**251 + 17 * 2**192, 0, 0, 0, 0, 0, 0, 0]))
    await objects.put("da.json", encode_felts_json([1, 2, 3]))
    yield h, settlement
    await h.close()


async def create(h: Harness) -> object:
    meta = StateUpdateMetadata(
        context=SettlementContext(type="Batch", to_settle=1), program_output_path="po.txt", da_segment_path="da.json"
    )
    job = await h.service.create_job(ST, 1, meta)
    assert job is not None
    message = await h.queue.receive(h.names.processing(ST))
    assert message is not None
    await h.queue.ack(message)
    return job


async def test_fee_cap_alerts_and_waits_without_spending_retries(setup: tuple[Harness, FakeSettlement]) -> None:
    h, settlement = setup
    job = await create(h)
    attempt = SettlementAttempt(attempt_no=1, tx_hash=None, nonce=4, gas_multiplier=1.1, status="SubmissionFailed")
    settlement.errors.append(FeeCapExceeded("fee liability 2e16 exceeds the cap 1e16", attempts=[attempt], nonce=4))
    decision = await h.service.process_job(job.id)  # type: ignore[attr-defined]
    assert decision.ack, "not a NACK: the message's receive count (the DLQ budget) is not spent"
    fresh = await h.store.get_job(job.id)  # type: ignore[attr-defined]
    assert fresh is not None and fresh.status == JobStatus.CREATED
    assert "exceeds the cap" in (fresh.common.failure_reason or "")
    assert isinstance(fresh.metadata.specific, StateUpdateMetadata)
    assert fresh.metadata.specific.tx_attempts[0]["status"] == "SubmissionFailed"
    assert fresh.metadata.specific.tx_nonce == 4
    [(subject, text)] = h.alerts.sent
    assert subject == "Settlement fee above the hard cap" and "resumes by itself when fees fall" in text
    assert await h.queue.receive(h.names.processing(ST)) is None
    h.clock.advance(45)
    message = await h.queue.receive(h.names.processing(ST))
    assert message is not None, "tried again after the wait"
    await h.service.process_job(job.id)  # type: ignore[attr-defined]
    done = await h.store.get_job(job.id)  # type: ignore[attr-defined]
    assert done is not None and done.status == JobStatus.PENDING_VERIFICATION
    assert settlement.sent == [("StateTransition-1", None)] * 2, "same idempotency key on the retry"


async def test_reverted_settlement_is_not_retried(setup: tuple[Harness, FakeSettlement]) -> None:
    h, settlement = setup
    job = await create(h)
    settlement.errors.append(TxReverted("reverted by the core contract", retryable=False))
    assert (await h.service.process_job(job.id)).ack  # type: ignore[attr-defined]
    fresh = await h.store.get_job(job.id)  # type: ignore[attr-defined]
    assert fresh is not None and fresh.status == JobStatus.FAILED


async def test_already_settled_batch_is_not_sent_again(setup: tuple[Harness, FakeSettlement]) -> None:
    h, settlement = setup
    settlement.last = 0
    job = await create(h)
    await h.service.process_job(job.id)  # type: ignore[attr-defined]
    fresh = await h.store.get_job(job.id)  # type: ignore[attr-defined]
    assert fresh is not None and fresh.status == JobStatus.PENDING_VERIFICATION
    assert settlement.sent == []
    assert isinstance(fresh.metadata.specific, StateUpdateMetadata)
    assert fresh.metadata.specific.tx_hash == "0x" + "0" * 64
    await h.service.verify_job(job.id)  # type: ignore[attr-defined]
    batch = await h.store.get_aggregator_batch(1)
    assert batch is not None and batch.status == AggregatorBatchStatus.COMPLETED and batch.version == 1


async def test_verification_completes_the_batch_once(setup: tuple[Harness, FakeSettlement]) -> None:
    h, _ = setup
    job = await create(h)
    await h.service.process_job(job.id)  # type: ignore[attr-defined]
    handler = h.service.handlers[ST]
    fresh = await h.store.get_job(job.id)  # type: ignore[attr-defined]
    assert fresh is not None
    for _ in range(2):
        await handler.verify(fresh)
    batch = await h.store.get_aggregator_batch(1)
    assert batch is not None and batch.status == AggregatorBatchStatus.COMPLETED
    assert batch.version == 1 and batch.updated_at == h.clock.now(), "the second verification wrote nothing"


def test_the_mined_attempt_records_its_fee_for_the_api_and_dashboard() -> None:
    from madara_orchestrator.interfaces import SettlementAttempt
    from madara_orchestrator.jobs.state_update import settlement_attempts_json

    attempts = [
        SettlementAttempt(attempt_no=1, tx_hash="0xaa", nonce=3, gas_multiplier=1.1, status="Replaced"),
        SettlementAttempt(attempt_no=2, tx_hash="0xbb", nonce=3, gas_multiplier=2.2, status="Finalized"),
    ]
    entries = settlement_attempts_json(SettlementResult(tx_hash="0xbb", nonce=3, attempts=attempts, fee_paid_wei=7))
    assert [e.get("fee_paid_wei") for e in entries] == [None, "7"]
    unknown = settlement_attempts_json(SettlementResult(tx_hash="0xbb", attempts=attempts))
    assert all("fee_paid_wei" not in e for e in unknown), "no fee is made up when the layer reports none"
