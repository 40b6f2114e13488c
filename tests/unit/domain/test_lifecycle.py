"""``decide``: the job's next value and the effects to carry out, for each outcome, with no I/O."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from madara_orchestrator.domain.errors import BackendUnavailable, FailureKind, InvalidTransition, JobError, classify
from madara_orchestrator.domain.jobs import Job, JobPolicy, JobStatus, JobType, SnosMetadata
from madara_orchestrator.domain.lifecycle import (
    Effect,
    Fail,
    Heal,
    Lock,
    MoveToFailed,
    Nack,
    Outcome,
    ProcessAgain,
    Processed,
    ProcessFailed,
    Retry,
    Rules,
    Save,
    Send,
    Signal,
    Step,
    Verified,
    VerifyFailed,
    WaitOut,
    decide,
)
from madara_orchestrator.domain.retry import RetryPolicy

S = JobStatus
NOW = 1000.0
POLICY = JobPolicy(
    max_process_attempts=2, max_verification_attempts=3, verification_delay_s=30, first_verification_delay_s=1
)
RULES = Rules(policy=POLICY, retry=RetryPolicy(base_delay_s=5, max_delay_s=300))
META = SnosMetadata(snos_batch_index=7, start_block=10, end_block=12, num_blocks=3)
OUTAGE = BackendUnavailable("Starknet RPC http://seq failed after 3 attempts: ConnectError")


def job(status: JobStatus = S.CREATED, **common: Any) -> Job:
    new = Job.new(JobType.SNOS_RUN, 7, META, now=0.0, orchestrator_version="0.1.0")
    return dataclasses.replace(new, status=status).with_common(**common)


def failed(exc: Exception, restore_to: JobStatus = S.CREATED, receive_count: int = 1) -> ProcessFailed:
    return ProcessFailed(failure=classify(exc), restore_to=restore_to, receive_count=receive_count)


def outage_from(exc: Exception) -> Exception:
    try:
        raise exc from OUTAGE
    except Exception as raised:
        return raised


CASES: list[tuple[str, Job, Outcome, JobStatus, dict[str, Any], tuple[type | Signal, ...]]] = [
    # name, job, outcome, status after, common fields after, effects (types)
    (
        "lock spends a process attempt",
        job(S.CREATED),
        Lock(owner="w1"),
        S.LOCKED_FOR_PROCESSING,
        {"process_attempt_no": 1, "process_started_at": 1000},
        (Save,),
    ),
    (
        "processed waits for verification",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1, waiting_since=900, waiting_alerted=True),
        Processed(external_id="task-1"),
        S.PENDING_VERIFICATION,
        {"process_completed_at": 1000, "waiting_since": None, "waiting_alerted": False},
        (Save, Send),
    ),
    (
        "heal puts a dead worker's job back to Created",
        job(S.LOCKED_FOR_PROCESSING, process_started_at=5),
        Heal(),
        S.CREATED,
        {"process_started_at": None},
        (Save,),
    ),
    (
        "a job's own failure is restored and redelivered after the back-off",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1, process_started_at=5),
        failed(JobError("boom"), S.PENDING_RETRY, receive_count=3),
        S.PENDING_RETRY,
        {
            "failure_reason": "Processing attempt 1 failed: boom",
            "process_retry_attempt_no": 1,
            "process_started_at": None,
        },
        (Save, Retry, Nack),
    ),
    (
        "an unexpected error is retried like a job's own failure",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1),
        failed(ValueError("bad")),
        S.CREATED,
        {"failure_reason": "Processing attempt 1 failed: bad"},
        (Save, Retry, Nack),
    ),
    (
        "a condition outside the job comes back after its own delay with a fresh message",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1),
        failed(outage_from(JobError("fees above the cap", wait_s=60))),
        S.CREATED,
        {"failure_reason": "Processing attempt 1 failed: fees above the cap", "process_attempt_no": 1},
        (Save, Retry, Send),
    ),
    (
        "a final failure moves the job to Failed",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1),
        failed(JobError("OS execution failed", retryable=False)),
        S.LOCKED_FOR_PROCESSING,
        {},
        (MoveToFailed,),
    ),
    (
        "an outage is waited out without spending the attempt",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=2, process_started_at=5),
        failed(outage_from(JobError("run failed", retryable=False)), S.VERIFICATION_FAILED),
        S.VERIFICATION_FAILED,
        {"process_attempt_no": 1, "process_started_at": None, "waiting_since": 1000, "waiting_alerted": False},
        (Save, WaitOut, Send),
    ),
    (
        "an outage lasting past the alert threshold alerts once",
        job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1, waiting_since=600),
        failed(OUTAGE),
        S.CREATED,
        {"process_attempt_no": 0, "waiting_since": 600, "waiting_alerted": True},
        (Save, WaitOut, Send),
    ),
    (
        "a verification poll spends a verification attempt, without a status change",
        job(S.PENDING_VERIFICATION, verification_attempt_no=1),
        Step.VERIFY_STARTED,
        S.PENDING_VERIFICATION,
        {"verification_attempt_no": 2, "verification_started_at": 1000},
        (Save,),
    ),
    (
        "a verification error is redelivered after the first back-off",
        job(S.PENDING_VERIFICATION, verification_attempt_no=1),
        VerifyFailed(failure=classify(ValueError("flaky"))),
        S.PENDING_VERIFICATION,
        {"verification_attempt_no": 1},
        (Nack,),
    ),
    (
        "an outage during verification gives the verification attempt back",
        job(S.PENDING_VERIFICATION, verification_attempt_no=2),
        VerifyFailed(failure=classify(OUTAGE)),
        S.PENDING_VERIFICATION,
        {"verification_attempt_no": 1, "waiting_since": 1000},
        (Save, WaitOut, Send),
    ),
    (
        "verified completes the job",
        job(S.PENDING_VERIFICATION, waiting_since=900),
        Verified.verified(),
        S.COMPLETED,
        {"verification_completed_at": 1000, "waiting_since": None},
        (Save, Signal.COMPLETE),
    ),
    (
        "rejected with attempts left is processed again",
        job(S.PENDING_VERIFICATION, process_attempt_no=1),
        Verified.rejected("bad proof"),
        S.VERIFICATION_FAILED,
        {"failure_reason": "bad proof"},
        (Save, ProcessAgain, Send),
    ),
    (
        "rejected with the attempts spent fails the job",
        job(S.PENDING_VERIFICATION, process_attempt_no=2),
        Verified.rejected("bad proof"),
        S.PENDING_VERIFICATION,
        {"failure_reason": "bad proof"},
        (MoveToFailed,),
    ),
    (
        "pending schedules the next poll",
        job(S.PENDING_VERIFICATION, verification_attempt_no=2),
        Verified.pending(),
        S.PENDING_VERIFICATION,
        {},
        (Send,),
    ),
    (
        "pending with new metadata saves it, uncounted, then polls",
        job(S.PENDING_VERIFICATION, verification_attempt_no=2),
        Verified.pending(dataclasses.replace(META, snos_fact="0x1")),
        S.PENDING_VERIFICATION,
        {},
        (Save, Send),
    ),
    (
        "pending with the attempts spent times out",
        job(S.PENDING_VERIFICATION, verification_attempt_no=3),
        Verified.pending(),
        S.VERIFICATION_TIMEOUT,
        {},
        (Save, Signal.TIME_OUT),
    ),
    (
        "a wake-up's pending answer changes nothing",
        job(S.PENDING_VERIFICATION, verification_attempt_no=3),
        dataclasses.replace(Verified.pending(), wake=True),
        S.PENDING_VERIFICATION,
        {},
        (),
    ),
    (
        "fail records the reason and drops the lease",
        job(S.LOCKED_FOR_PROCESSING, failure_reason="first"),
        Fail(reason="second"),
        S.FAILED,
        {"failure_reason": "second", "previous_failure_reasons": ["first"]},
        (Save,),
    ),
    (
        "an operator's retry starts the attempts again",
        job(S.FAILED, process_attempt_no=1, process_retry_attempt_no=2),
        Step.OPERATOR_RETRY,
        S.PENDING_RETRY,
        {"process_attempt_no": 0, "process_retry_attempt_no": 3},
        (Save, Send),
    ),
    (
        "an operator's re-verification starts the verification attempts again",
        job(S.FAILED, verification_attempt_no=3, verification_retry_attempt_no=1),
        Step.OPERATOR_VERIFY,
        S.PENDING_VERIFICATION,
        {"verification_attempt_no": 0, "verification_retry_attempt_no": 2},
        (Save, Send),
    ),
]


def kinds(effects: tuple[Effect, ...]) -> tuple[type | Signal, ...]:
    return tuple(e if isinstance(e, Signal) else type(e) for e in effects)


@pytest.mark.parametrize(
    ("before", "outcome", "status", "common", "effects"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide(
    before: Job,
    outcome: Outcome,
    status: JobStatus,
    common: dict[str, Any],
    effects: tuple[type | Signal, ...],
) -> None:
    after, done = decide(before, outcome, NOW, RULES)
    assert after.status == status
    assert {name: getattr(after.common, name) for name in common} == common
    assert kinds(done) == effects
    assert after.id == before.id and after.version == before.version, "the store, not decide(), bumps the version"


def test_decide_is_pure() -> None:
    before = job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1)
    snapshot = dataclasses.replace(before)
    first = decide(before, failed(JobError("boom")), NOW, RULES)
    second = decide(before, failed(JobError("boom")), NOW, RULES)
    assert first == second and before == snapshot


def test_delays_come_from_the_policies() -> None:
    locked = job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1)
    assert decide(locked, failed(JobError("x"), receive_count=3), NOW, RULES)[1][-1] == Nack(delay_s=20.0)
    assert decide(locked, failed(JobError("x", wait_s=60)), NOW, RULES)[1][-1] == Send(verification=False, delay_s=60)
    assert decide(locked, Processed(external_id="t"), NOW, RULES)[1][-1] == Send(verification=True, delay_s=1)
    pending = job(S.PENDING_VERIFICATION, verification_attempt_no=2)
    assert decide(pending, Verified.pending(), NOW, RULES)[1] == (Send(verification=True, delay_s=4),)
    lock = decide(job(), Lock(owner="w1"), NOW, RULES)[0]
    assert (lock.lease_owner, lock.lease_expires_at) == ("w1", NOW + POLICY.lease_s)


def test_an_outage_waits_half_its_length_and_says_why() -> None:
    waiting = job(S.LOCKED_FOR_PROCESSING, process_attempt_no=1, waiting_since=800)
    after, effects = decide(waiting, failed(OUTAGE), NOW, RULES)
    wait = next(e for e in effects if isinstance(e, WaitOut))
    assert (wait.lasted_s, wait.wait_s, wait.alert) == (200.0, 60.0, False)
    assert wait.reason == f"Waiting for an outside service (processing, 200 s so far): {OUTAGE}"
    assert after.common.failure_reason == wait.reason and effects[-1] == Send(verification=False, delay_s=60.0)


def test_a_refused_move_raises() -> None:
    with pytest.raises(InvalidTransition):
        decide(job(S.COMPLETED), Step.OPERATOR_RETRY, NOW, RULES)


@pytest.mark.parametrize(
    ("exc", "kind", "has_outage", "delay_s", "expected"),
    [
        (OUTAGE, FailureKind.OUTAGE, True, None, False),
        (outage_from(JobError("run failed", retryable=False)), FailureKind.OUTAGE, True, None, True),
        (outage_from(JobError("fees above the cap", wait_s=60)), FailureKind.WAIT, True, 60, True),
        (JobError("OS failed", retryable=False), FailureKind.FINAL, False, None, True),
        (JobError("flaky"), FailureKind.RETRY, False, None, True),
        (ValueError("a bug"), FailureKind.RETRY, False, None, False),
    ],
)
def test_classify(exc: Exception, kind: FailureKind, has_outage: bool, delay_s: float | None, expected: bool) -> None:
    failure = classify(exc)
    assert (failure.kind, failure.outage is not None, failure.delay_s, failure.expected) == (
        kind,
        has_outage,
        delay_s,
        expected,
    )
