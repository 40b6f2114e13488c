"""The job service's lifecycle (SPEC §2.5) on a real SQLite file with a fake clock and scripted handlers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.domain.batches import SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidTransition, JobError, NotFound
from madara_orchestrator.domain.jobs import Job, JobPolicy, JobStatus, JobType, SnosMetadata
from madara_orchestrator.domain.queues import JobMessage, job_message, parse_job_message, read_job_message
from madara_orchestrator.engine.service import ACK as ACK_DECISION
from madara_orchestrator.engine.service import NOTICE_KEEP_S, WAKE_COALESCE_S, JobService
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.jobs.base import Verified
from tests.helpers.engine import Harness, ScriptedHandler, make_harness, proving_meta

PT = JobType.PROOF_CREATION
S = JobStatus


@pytest.fixture(params=["apart", "atomic", "sqlite-atomic"])
async def h(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Every case with the messages sent after the job's write, and with it (``AtomicJobWrites``: in memory,
    and in one SQLite transaction)."""
    harness = await make_harness(
        tmp_path / "jobs.db", atomic=request.param != "apart", sqlite=request.param == "sqlite-atomic"
    )
    yield harness
    await harness.close()


async def create(h: Harness, internal_id: int = 1) -> Job:
    job = await h.service.create_job(PT, internal_id, proving_meta(internal_id))
    assert job is not None
    return job


async def take(h: Harness, queue: str) -> str | None:
    message = await h.queue.receive(queue)
    if message is None:
        return None
    await h.queue.ack(message)
    return message.body


async def stored(h: Harness, job: Job) -> Job:
    fresh = await h.store.get_job(job.id)
    assert fresh is not None
    return fresh


async def test_create_enqueues_once_and_duplicate_is_a_no_op(h: Harness) -> None:
    job = await create(h)
    assert job.status == S.CREATED and job.version == 0
    assert job.common.orchestrator_version == "0.1.0"
    assert parse_job_message(await take(h, h.names.processing(PT)) or "") == job.id
    assert await h.service.create_job(PT, 1, proving_meta(1)) is None
    assert await take(h, h.names.processing(PT)) is None, "no second message for a duplicate"


async def test_happy_path_ends_completed_at_version_4(h: Harness) -> None:
    job = await create(h)
    decision = await h.service.process_job(job.id)
    assert decision.ack
    processed = await stored(h, job)
    assert processed.status == S.PENDING_VERIFICATION and processed.version == 2
    assert processed.external_id == "ext-1" and processed.lease_owner is None
    assert processed.common.process_attempt_no == 1 and processed.common.process_completed_at is not None
    verification = h.names.verification(PT)
    assert await take(h, verification) is None, "verification waits for the polling delay"
    h.clock.advance(5)
    assert await take(h, verification) is not None
    assert (await h.service.verify_job(job.id)).ack
    done = await stored(h, job)
    assert done.status == S.COMPLETED and done.version == 4
    assert done.common.verification_attempt_no == 1 and done.common.verification_completed_at is not None


async def test_retryable_error_restores_status_and_asks_for_redelivery(h: Harness) -> None:
    job = await create(h)
    h.handler.process_outcomes.append(JobError("prover unreachable"))
    decision = await h.service.process_job(job.id, receive_count=2)
    assert not decision.ack and decision.delay_s == 2, "back-off doubles with the receive count"
    fresh = await stored(h, job)
    assert fresh.status == S.CREATED and fresh.lease_owner is None
    assert fresh.common.process_attempt_no == 1 and fresh.common.process_retry_attempt_no == 1
    assert fresh.common.process_started_at is None
    assert fresh.common.failure_reason == "Processing attempt 1 failed: prover unreachable"
    assert h.alerts.sent == []


async def test_unexpected_exception_is_retried_like_a_panic(h: Harness) -> None:
    job = await create(h)
    h.handler.process_outcomes.append(ZeroDivisionError("boom"))
    assert not (await h.service.process_job(job.id)).ack
    assert (await stored(h, job)).status == S.CREATED


async def test_non_retryable_error_fails_at_once_and_alerts(h: Harness) -> None:
    job = await create(h)
    h.handler.process_outcomes.append(JobError("OS execution failed", retryable=False))
    assert (await h.service.process_job(job.id)).ack
    fresh = await stored(h, job)
    assert fresh.status == S.FAILED
    assert fresh.common.failure_reason == "Processing attempt 1 failed: OS execution failed"
    [(subject, text)] = h.alerts.sent
    assert subject == "Job Failed"
    assert text.splitlines()[:6] == [
        "Job Failed Alert",
        f"Job ID: {job.id}",
        "Type: ProofCreation",
        "Blocks: unknown",  # no SNOS batch 1 in this database
        "Internal ID: 1",
        "Current failure: Processing attempt 1 failed: OS execution failed",
    ]


async def test_alert_lists_previous_failures(h: Harness) -> None:
    job = await create(h)
    h.handler.process_outcomes += [JobError("first"), JobError("second", retryable=False)]
    await h.service.process_job(job.id)
    await h.service.process_job(job.id)
    text = h.alerts.sent[-1][1]
    assert "Previous failures (1 total):\n  1. Processing attempt 1 failed: first" in text


async def test_not_ready_requeues_with_delay_without_spending_an_attempt(h: Harness) -> None:
    job = await create(h)
    await take(h, h.names.processing(PT))
    h.handler.ready_delay = 60
    assert (await h.service.process_job(job.id)).ack
    fresh = await stored(h, job)
    assert fresh.status == S.CREATED and fresh.version == 0 and fresh.common.process_attempt_no == 0
    assert await take(h, h.names.processing(PT)) is None
    h.clock.advance(60)
    assert await take(h, h.names.processing(PT)) is not None


@pytest.mark.parametrize("status", [S.FAILED, S.VERIFICATION_TIMEOUT, S.PENDING_VERIFICATION, S.COMPLETED])
async def test_processing_message_for_a_job_not_processable_changes_nothing(h: Harness, status: JobStatus) -> None:
    job = await create(h)
    forced = await h.store.update_job(dataclasses.replace(job, status=status), now=h.clock.now())
    assert (await h.service.process_job(job.id)).ack
    assert await stored(h, job) == forced
    assert h.handler.processed == []


async def test_unknown_job_message_is_dropped(h: Harness) -> None:
    import uuid

    assert (await h.service.process_job(uuid.uuid4())).ack
    assert (await h.service.verify_job(uuid.uuid4())).ack


async def test_two_workers_processing_the_same_job_run_the_handler_once(h: Harness) -> None:
    job = await create(h)
    gate = asyncio.Event()

    async def slow(_: Job) -> None:
        await gate.wait()

    h.handler.process_hook = slow
    first = asyncio.create_task(h.service.process_job(job.id))
    await asyncio.sleep(0.05)
    second = await h.service.process_job(job.id)
    gate.set()
    await first
    assert second.ack
    assert h.handler.processed == [1]
    assert (await stored(h, job)).status == S.PENDING_VERIFICATION


async def test_expired_lease_is_taken_over_and_a_live_one_is_respected(h: Harness) -> None:
    job = await create(h)
    locked = await h.store.update_job(
        dataclasses.replace(
            job, status=S.LOCKED_FOR_PROCESSING, lease_owner="dead-worker", lease_expires_at=h.clock.now() + 30
        ),
        now=h.clock.now(),
    )
    assert (await h.service.process_job(job.id)).ack
    assert h.handler.processed == [], "a live lease means someone is working on it"
    assert await stored(h, job) == locked
    h.clock.advance(31)
    assert (await h.service.process_job(job.id)).ack
    assert h.handler.processed == [1]
    fresh = await stored(h, job)
    assert fresh.status == S.PENDING_VERIFICATION and fresh.lease_owner is None


async def test_heal_resends_messages_for_expired_leases_and_stalled_jobs(h: Harness) -> None:
    job = await create(h)
    await take(h, h.names.processing(PT))
    await h.store.update_job(
        dataclasses.replace(job, status=S.LOCKED_FOR_PROCESSING, lease_owner="x", lease_expires_at=h.clock.now() + 30),
        now=h.clock.now(),
    )
    assert await h.service.heal(stale_after_s=600) == 0
    h.clock.advance(31)
    assert await h.service.heal(stale_after_s=600) == 1
    assert parse_job_message(await take(h, h.names.processing(PT)) or "") == job.id
    other = await create(h, 2)
    await take(h, h.names.processing(PT))
    h.clock.advance(601)
    assert await h.service.heal(stale_after_s=600) == 2
    assert {await take(h, h.names.processing(PT)), await take(h, h.names.processing(PT))} == {
        f'{{"id": "{job.id}"}}',
        f'{{"id": "{other.id}"}}',
    }


async def _processed(h: Harness, internal_id: int = 1) -> Job:
    job = await create(h, internal_id)
    await h.service.process_job(job.id)
    return await stored(h, job)


async def test_rejection_with_attempts_left_reprocesses(h: Harness) -> None:
    job = await _processed(h)
    await take(h, h.names.processing(PT))
    h.handler.verify_outcomes.append(Verified.rejected("proof invalid"))
    await h.service.verify_job(job.id)
    fresh = await stored(h, job)
    assert fresh.status == S.VERIFICATION_FAILED and fresh.common.failure_reason == "proof invalid"
    assert parse_job_message(await take(h, h.names.processing(PT)) or "") == job.id
    await h.service.process_job(job.id)
    assert (await stored(h, job)).common.process_attempt_no == 2


async def test_rejection_without_attempts_left_fails(h: Harness) -> None:
    job = await _processed(h)
    h.handler.verify_outcomes.append(Verified.rejected("bad"))
    await h.service.verify_job(job.id)
    await h.service.process_job(job.id)
    h.handler.verify_outcomes.append(Verified.rejected("bad again"))
    await h.service.verify_job(job.id)
    fresh = await stored(h, job)
    assert fresh.status == S.FAILED
    assert fresh.common.failure_reason == "Verification rejected. Max process attempts reached: 2"
    assert "bad again" in fresh.common.previous_failure_reasons


async def test_pending_verification_polls_then_times_out_with_an_alert(h: Harness) -> None:
    job = await _processed(h)
    verification = h.names.verification(PT)
    h.clock.advance(5)
    assert await take(h, verification) is not None
    h.handler.verify_outcomes += [Verified.pending(), Verified.pending(), Verified.pending()]
    for _ in range(2):
        await h.service.verify_job(job.id)
        assert (await stored(h, job)).status == S.PENDING_VERIFICATION
        assert await take(h, verification) is None
        h.clock.advance(5)
        assert await take(h, verification) is not None
    await h.service.verify_job(job.id)
    fresh = await stored(h, job)
    assert fresh.status == S.VERIFICATION_TIMEOUT and fresh.common.verification_attempt_no == 3
    assert h.alerts.sent[-1][1] == (
        f"Job Verification Timeout Alert: Job ID: {job.id}, Type: ProofCreation, Internal_Id: 1, "
        "Verification Attempts: 3, Blocks: unknown"
    )


async def test_verification_timeout_alert_names_the_blocks_of_the_job(h: Harness) -> None:
    """Like "Job Failed": the internal id is a batch index, so the alert also says which blocks wait."""
    now = h.clock.now()
    await h.store.insert_snos_batch(
        SnosBatch(index=1, start_block=8, end_block=15, status=SnosBatchStatus.CLOSED, created_at=now, updated_at=now)
    )
    job = await _processed(h)
    h.handler.verify_outcomes += [Verified.pending()] * 3
    for _ in range(3):
        await h.service.verify_job(job.id)
    assert (await stored(h, job)).status == S.VERIFICATION_TIMEOUT
    assert h.alerts.sent[-1][1].endswith("Internal_Id: 1, Verification Attempts: 3, Blocks: 8-15")


async def test_verification_error_is_retried_through_the_queue(h: Harness) -> None:
    job = await _processed(h)
    h.handler.verify_outcomes.append(RuntimeError("prover API down"))
    decision = await h.service.verify_job(job.id)
    assert not decision.ack
    assert (await stored(h, job)).status == S.PENDING_VERIFICATION


async def test_dead_letter_moves_to_failed_but_leaves_completed_and_failed_alone(h: Harness) -> None:
    job = await create(h)
    await h.service.handle_job_failure(job.id)
    fresh = await stored(h, job)
    assert fresh.status == S.FAILED
    assert fresh.common.failure_reason == "Job moved to DLQ after exhausting retries (last status: Created)"
    await h.service.handle_job_failure(job.id)
    assert (await stored(h, job)).version == fresh.version
    done = await _processed(h, 2)
    await h.service.verify_job(done.id)
    completed = await stored(h, done)
    await h.service.handle_job_failure(done.id)
    assert await stored(h, done) == completed


async def test_retry_only_from_failed(h: Harness) -> None:
    job = await create(h)
    with pytest.raises(InvalidTransition, match=r"Cannot retry job .*: invalid status Created"):
        await h.service.retry_job(job.id)
    await take(h, h.names.processing(PT))
    h.handler.process_outcomes.append(JobError("fatal", retryable=False))
    await h.service.process_job(job.id)
    retried = await h.service.retry_job(job.id)
    assert retried.status == S.PENDING_RETRY
    assert retried.common.process_attempt_no == 0 and retried.common.process_retry_attempt_no == 1
    assert parse_job_message(await take(h, h.names.processing(PT)) or "") == job.id
    await h.service.process_job(job.id)
    assert (await stored(h, job)).status == S.PENDING_VERIFICATION
    with pytest.raises(NotFound):
        import uuid

        await h.service.retry_job(uuid.uuid4())


async def test_reverify_needs_a_processed_job_and_never_reopens_a_completed_one(h: Harness) -> None:
    job = await create(h)
    with pytest.raises(InvalidTransition):
        await h.service.queue_job_for_verification(job.id)
    await h.service.process_job(job.id)
    h.handler.verify_outcomes += [Verified.pending()] * 3
    for _ in range(3):
        await h.service.verify_job(job.id)
    assert (await stored(h, job)).status == S.VERIFICATION_TIMEOUT
    reopened = await h.service.queue_job_for_verification(job.id)
    assert reopened.status == S.PENDING_VERIFICATION
    assert reopened.common.verification_attempt_no == 0 and reopened.common.verification_retry_attempt_no == 1
    await h.service.verify_job(job.id)
    assert (await stored(h, job)).status == S.COMPLETED
    with pytest.raises(InvalidTransition):
        await h.service.queue_job_for_verification(job.id)


async def test_priority_queue_refuses_when_full(tmp_path: Path) -> None:
    from madara_orchestrator.domain.errors import QueueFull

    h = await make_harness(tmp_path / "p.db")
    h.service.max_priority_queue_size = 2
    jobs = [await create(h, i) for i in (1, 2, 3)]
    await h.service.queue_job_for_processing(jobs[0].id, priority=True)
    await h.service.queue_job_for_processing(jobs[1].id, priority=True)
    with pytest.raises(QueueFull, match=r"Priority queue is full \(current: 2, max: 2\)"):
        await h.service.queue_job_for_processing(jobs[2].id, priority=True)
    await h.close()


async def test_completion_hooks_run_after_completion(tmp_path: Path) -> None:
    h = await make_harness(
        tmp_path / "c.db",
        handler=ScriptedHandler(),
        policy=JobPolicy(max_process_attempts=1, max_verification_attempts=1, verification_delay_s=0),
    )
    seen: list[JobStatus] = []

    async def hook(job: Job) -> None:
        seen.append(job.status)

    h.service.on_completed(hook)
    job = await create(h)
    await h.service.process_job(job.id)
    assert seen == []
    await h.service.verify_job(job.id)
    assert seen == [S.COMPLETED]
    await h.close()


# -- outages are conditions, not failures (issue 9) -------------------------------------------------


def _wrapped_outage(text: str) -> JobError:
    """A handler's JobError raised from a transport failure, as handlers wrap their adapters' errors."""
    try:
        raise BackendUnavailable(text)
    except BackendUnavailable as cause:
        try:
            raise JobError(f"Error occurred during state update: {cause}") from cause
        except JobError as wrapped:
            return wrapped


async def test_an_outage_during_processing_waits_without_spending_attempts(h: Harness) -> None:
    job = await create(h)
    queue = h.names.processing(PT)
    await take(h, queue)
    # More outages than the queue's redelivery budget: none of them may fail the job.
    h.handler.process_outcomes += [BackendUnavailable("Ethereum RPC http://l1: HTTP 502")] * 3
    h.handler.process_outcomes += [_wrapped_outage("Starknet RPC http://seq failed after 3 attempts: ConnectError")] * 4
    waits = []
    for _ in range(7):
        assert await h.service.process_job(job.id, receive_count=1) == ACK_DECISION, "acked: no receive is spent"
        waiting = await stored(h, job)
        assert waiting.status == S.CREATED and waiting.common.process_attempt_no == 0
        assert waiting.common.failure_reason is not None
        assert waiting.common.failure_reason.startswith("Waiting for an outside service (processing")
        assert waiting.common.waiting_since is not None
        message = await h.queue.receive(queue)
        assert message is None, "the next try comes after a delay"
        waits.append(h.clock.t)
        h.clock.advance(70)  # more than the longest wait
        message = await h.queue.receive(queue)
        assert message is not None and parse_job_message(message.body) == job.id
        assert message.receive_count == 1, "a fresh message each time"
        await h.queue.ack(message)
    waiting = await stored(h, job)
    assert len(waiting.common.previous_failure_reasons) == 0, "one outage, one line (not one per try)"
    assert "ConnectError" in str(waiting.common.failure_reason), "the latest cause is shown"
    assert [a for a in h.alerts.sent if a[0] == "Outside service unavailable"], "an alert once it lasted 300 s"
    assert len([a for a in h.alerts.sent if a[0] == "Outside service unavailable"]) == 1, "only once"
    # The service is back: the job is processed, and the wait is forgotten.
    assert await h.service.process_job(job.id) == ACK_DECISION
    done = await stored(h, job)
    assert done.status == S.PENDING_VERIFICATION and done.common.process_attempt_no == 1
    assert done.common.waiting_since is None and not done.common.waiting_alerted


async def test_the_jobs_own_failure_still_fails_it_with_its_reason(h: Harness) -> None:
    job = await create(h)
    h.handler.process_outcomes.append(JobError("transaction reverted: Fact not registered", retryable=False))
    await h.service.process_job(job.id)
    failed = await stored(h, job)
    assert failed.status == S.FAILED
    assert failed.common.failure_reason == "Processing attempt 1 failed: transaction reverted: Fact not registered"


async def test_an_outage_during_verification_waits_without_spending_attempts(h: Harness) -> None:
    job = await create(h)
    await h.service.process_job(job.id)
    verification = h.names.verification(PT)
    while await take(h, verification) is not None:
        pass
    h.handler.verify_outcomes += [BackendUnavailable("prover API: HTTP 503")] * 5
    for _ in range(5):
        assert await h.service.verify_job(job.id) == ACK_DECISION
        waiting = await stored(h, job)
        assert waiting.status == S.PENDING_VERIFICATION and waiting.common.verification_attempt_no == 0
        assert "HTTP 503" in str(waiting.common.failure_reason)
        h.clock.advance(70)
        message = await h.queue.receive(verification)
        assert message is not None and message.receive_count == 1
        await h.queue.ack(message)
    assert await h.service.verify_job(job.id) == ACK_DECISION
    done = await stored(h, job)
    assert done.status == S.COMPLETED and done.common.verification_attempt_no == 1
    assert done.common.waiting_since is None


def test_verification_polls_back_off_from_a_second_to_the_originals_delay() -> None:
    from madara_orchestrator.domain.jobs import DEFAULT_POLICIES

    proof = DEFAULT_POLICIES[JobType.PROOF_CREATION]
    assert [proof.verification_delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    settle = DEFAULT_POLICIES[JobType.STATE_TRANSITION]
    window = sum(settle.verification_delay(n) for n in range(settle.max_verification_attempts))
    assert 540 <= window <= 700, "about the original's 10 x 60 s"
    assert DEFAULT_POLICIES[JobType.SNOS_RUN].verification_delay(5) == 1, "no back-off where none is set"


async def test_polls_are_scheduled_with_the_back_off(tmp_path: Path) -> None:
    policy = JobPolicy(
        max_process_attempts=1, max_verification_attempts=10, verification_delay_s=8, first_verification_delay_s=1
    )
    h = await make_harness(tmp_path / "jobs.db", policy=policy)
    try:
        job = await create(h)
        await take(h, h.names.processing(PT))
        await h.service.process_job(job.id)
        queue = h.names.verification(PT)
        seen = []
        for _ in range(5):
            h.handler.verify_outcomes.append(Verified.pending())
            waited = 0
            while (message := await h.queue.receive(queue)) is None:
                h.clock.advance(1)
                waited += 1
            await h.queue.ack(message)
            seen.append(waited)
            await h.service.verify_job(job.id)
        assert seen == [1, 2, 4, 8, 8]
    finally:
        await h.close()


async def test_a_refused_priority_retry_leaves_the_job_failed_so_a_normal_retry_works(tmp_path: Path) -> None:
    from madara_orchestrator.domain.errors import QueueFull

    h = await make_harness(tmp_path / "p.db")
    h.service.max_priority_queue_size = 1
    filler, job = await create(h, 1), await create(h, 2)
    await h.service.queue_job_for_processing(filler.id, priority=True)
    await h.service.move_to_failed(await stored(h, job), "failed for the test")
    with pytest.raises(QueueFull):
        await h.service.retry_job(job.id, priority=True)
    assert (await stored(h, job)).status == S.FAILED, "a refused request changes nothing"
    retried = await h.service.retry_job(job.id)
    assert retried.status == S.PENDING_RETRY
    await h.close()


# -- alerts name the blocks (issue 17 item 8) ---------------------------------------------------------


async def test_failed_alert_gives_a_snos_runs_block_range_not_its_internal_id(h: Harness) -> None:
    job = await h.service.create_job(
        JobType.SNOS_RUN, 1, SnosMetadata(snos_batch_index=1, start_block=0, end_block=7, num_blocks=8)
    )
    assert job is not None
    await h.service.move_to_failed(job, "OS execution failed")
    [(subject, text)] = h.alerts.sent
    assert subject == "Job Failed"
    assert text.splitlines()[3:5] == ["Blocks: 0-7", "Internal ID: 1"]


async def test_failed_alert_gives_a_proofs_block_range_from_its_snos_batch(h: Harness) -> None:
    now = h.clock.now()
    await h.store.insert_snos_batch(
        SnosBatch(index=3, start_block=20, end_block=29, status=SnosBatchStatus.CLOSED, created_at=now, updated_at=now)
    )
    job = await create(h, 3)
    await h.service.move_to_failed(job, "bad proof")
    assert h.alerts.sent[-1][1].splitlines()[3:5] == ["Blocks: 20-29", "Internal ID: 3"]


# -- wake-ups (a prover's webhook) and VerificationTimeout (issue 17 item 2) ---------------------------


async def test_a_wake_up_spends_no_attempt_and_schedules_no_poll(h: Harness) -> None:
    job = await _processed(h)
    verification = h.names.verification(PT)
    h.clock.advance(5)
    assert await take(h, verification) is not None  # the poll chain's first message, held aside
    h.handler.verify_outcomes += [Verified.pending()] * 3
    for _ in range(3):
        assert (await h.service.verify_job(job.id, wake=True)).ack
    assert await stored(h, job) == job, "nothing written: no attempt spent, no state change"
    h.clock.advance(3600)
    assert await take(h, verification) is None, "no poll scheduled by a wake-up"
    assert h.handler.verified == [1, 1, 1] and h.alerts.sent == []


async def test_a_wake_up_that_finds_the_work_done_completes_the_job(h: Harness) -> None:
    job = await _processed(h)
    assert (await h.service.verify_job(job.id, wake=True)).ack
    done = await stored(h, job)
    assert done.status == S.COMPLETED and done.common.verification_attempt_no == 0


async def test_a_failing_wake_up_is_dropped_not_retried(h: Harness) -> None:
    job = await _processed(h)
    h.handler.verify_outcomes.append(RuntimeError("prover API down"))
    assert (await h.service.verify_job(job.id, wake=True)).ack, "acknowledged: never redelivered or dead-lettered"
    assert await stored(h, job) == job


async def test_wake_ups_of_one_job_are_coalesced_on_the_clock(h: Harness) -> None:
    job = await _processed(h)
    verification = h.names.verification(PT)
    h.clock.advance(5)
    await take(h, verification)
    woken = [await h.service.wake_verification("ext-1", [PT]) for _ in range(50)]
    assert woken[0] == ([job], 0) and all(w == ([], 1) for w in woken[1:])
    h.clock.advance(WAKE_COALESCE_S - 0.1)
    assert await h.service.wake_verification("ext-1", [PT]) == ([], 1)
    bodies = [await take(h, verification), await take(h, verification)]
    assert bodies[1] is None, "one wake-up message for the burst"
    assert read_job_message(bodies[0] or "") == JobMessage(job.id, wake=True)
    h.clock.advance(0.1)
    assert (await h.service.wake_verification("ext-1", [PT]))[0] == [job], "a new window, a new wake-up"


def another_service(h: Harness, **options: Any) -> JobService:
    """A second instance's service on the harness's store and queue (its handlers, policies and clock)."""
    return JobService(
        db=h.store,
        queue=h.queue,
        queue_names=h.names,
        handlers=h.service.handlers,
        alerts=h.alerts,
        metrics=NoTelemetry(),
        clock=h.clock,
        policies=h.service.policies,
        **options,
    )


async def test_a_webhook_that_comes_while_the_job_is_processed_wakes_it_once_it_waits(h: Harness) -> None:
    """The prover answered before the processing step stored the job as waiting on it: the webhook finds
    nothing to wake, so it is kept, and the job is verified as soon as it waits, not at its first poll. The
    webhook is taken by another instance than the one processing the job: what is kept is in the store."""
    job = await create(h)
    replies: list[tuple[list[Job], int]] = []
    other = another_service(h, owner="instance-b")

    async def webhook(_: Job) -> None:
        replies.append(await other.wake_verification("ext-1", [PT]))

    h.handler.process_hook = webhook
    await h.service.process_job(job.id)
    assert replies == [([], 0)], "no job waited on ext-1 yet"
    verification = h.names.verification(PT)
    body = await take(h, verification)  # the clock has not moved: the first poll is 5 s away
    assert body is not None and read_job_message(body) == JobMessage(job.id, wake=True)
    assert await take(h, verification) is None, "one wake-up"
    assert (await h.service.verify_job(job.id, wake=True)).ack
    done = await stored(h, job)
    assert done.status == S.COMPLETED and done.common.verification_attempt_no == 0


async def test_a_kept_webhook_wakes_only_its_own_job_and_is_forgotten_after_a_while(h: Harness) -> None:
    first, second = await create(h, 1), await create(h, 2)
    assert await h.service.wake_verification("ext-1", [PT]) == ([], 0)
    h.clock.advance(NOTICE_KEEP_S + 1)
    await h.service.process_job(first.id)
    assert await take(h, h.names.verification(PT)) is None, "a webhook of more than an hour ago wakes nothing"
    assert await h.service.wake_verification("ext-2", [JobType.PROOF_REGISTRATION]) == ([], 0)
    await h.service.process_job(second.id)
    assert await take(h, h.names.verification(PT)) is None, "kept for a ProofRegistration job, not this one"
    assert (await stored(h, second)).status == S.PENDING_VERIFICATION


async def test_without_prover_webhooks_processing_does_not_look_for_one(h: Harness) -> None:
    """No webhook route, no webhook to find: the processing step spends no store read on it."""
    job = await create(h)
    quiet = another_service(h)
    assert await h.service.wake_verification("ext-1", [PT]) == ([], 0)
    looked: list[str] = []
    take_notice = h.store.take_prover_notice

    async def counted(*args: Any, **kwargs: Any) -> bool:
        looked.append(str(args[0]))
        return await take_notice(*args, **kwargs)

    h.store.take_prover_notice = counted  # type: ignore[method-assign]
    await quiet.process_job(job.id)
    assert looked == [] and await take(h, h.names.verification(PT)) is None
    assert (await stored(h, job)).status == S.PENDING_VERIFICATION


async def test_verification_timeout_alerts_once_and_stray_polls_are_dropped(h: Harness) -> None:
    job = await _processed(h)
    h.handler.verify_outcomes += [Verified.pending()] * 10
    for _ in range(3):
        await h.service.verify_job(job.id)
    timed_out = await stored(h, job)
    assert timed_out.status == S.VERIFICATION_TIMEOUT and len(h.alerts.sent) == 1
    for _ in range(5):  # duplicates, late redeliveries, heal re-sends
        assert (await h.service.verify_job(job.id)).ack
    assert await stored(h, job) == timed_out, "no attempt spent beyond the budget"
    assert len(h.alerts.sent) == 1, "one alert per job and condition"
    assert h.handler.verified == [1, 1, 1], "the prover is not asked again"
    await h.service.verify_job(job.id, wake=True)  # a wake-up still looks
    assert (await stored(h, job)).status == S.VERIFICATION_TIMEOUT and len(h.alerts.sent) == 1
    h.handler.verify_outcomes[:] = [Verified.verified()]
    await h.service.verify_job(job.id, wake=True)
    assert (await stored(h, job)).status == S.COMPLETED


async def test_wake_message_is_still_a_job_message() -> None:
    import uuid

    job_id = uuid.uuid4()
    assert parse_job_message(job_message(job_id, wake=True)) == job_id
    assert job_message(job_id) == f'{{"id": "{job_id}"}}', "plain messages are the original's"
    assert read_job_message(f'{{"id": "{job_id}"}}') == JobMessage(job_id, wake=False)
