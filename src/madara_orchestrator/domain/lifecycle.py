"""The job's lifecycle: ``decide(job, outcome, now, rules)`` gives the job's next value and what to do about it.

Pure: what happened (an ``Outcome``) goes in; the job as it is to be written and the ``Effect``s to carry out
(write it, send a message, give the message back, fail the job, alert) come out. The job service only
carries them out, and logs and counts what it did. Status changes go through ``transition()``.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from madara_orchestrator.domain.errors import BackendUnavailable, Failure, FailureKind, JobError
from madara_orchestrator.domain.jobs import CommonMetadata, Job, JobPolicy, JobStatus, SpecificMetadata, transition
from madara_orchestrator.domain.retry import RetryPolicy

S = JobStatus


# -- what happened ------------------------------------------------------------------------------------


class Verification(enum.StrEnum):
    PENDING = "Pending"
    VERIFIED = "Verified"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Processed:
    """A handler's processing succeeded: the prover's (or chain's) id for the work, and metadata to save."""

    external_id: str
    specific: SpecificMetadata | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A handler's verification answer."""

    status: Verification
    reason: str = ""
    specific: SpecificMetadata | None = None
    wake: bool = False
    """Asked on a wake-up (a prover's webhook), not by a scheduled poll: a pending answer changes nothing."""

    @classmethod
    def pending(cls, specific: SpecificMetadata | None = None) -> Verified:
        return cls(status=Verification.PENDING, specific=specific)

    @classmethod
    def verified(cls, specific: SpecificMetadata | None = None) -> Verified:
        return cls(status=Verification.VERIFIED, specific=specific)

    @classmethod
    def rejected(cls, reason: str, specific: SpecificMetadata | None = None) -> Verified:
        return cls(status=Verification.REJECTED, reason=reason, specific=specific)


class Step(enum.Enum):
    """What happened, when nothing more needs saying."""

    VERIFY_STARTED = "a scheduled verification poll begins: it spends one verification attempt"
    OPERATOR_RETRY = "an operator asked to process a Failed job again"
    OPERATOR_VERIFY = "an operator asked to verify the job again"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock:
    """Processing starts under a lease in ``owner``'s name."""

    owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Heal:
    """The job's worker died (its lease expired), or (``previous_life``) an earlier run of this instance left it."""

    previous_life: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessFailed:
    """Processing raised; ``restore_to`` is the status the job had before it was locked."""

    failure: Failure
    restore_to: JobStatus
    receive_count: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyFailed:
    """Verification raised."""

    failure: Failure


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    """Give up on the job (attempts spent, dead-lettered, a failure no retry can fix)."""

    reason: str
    dead_letter: dict[str, Any] | None = None
    """When the job fails because its message was dead-lettered: the record (``DeadLetter.to_json``)."""


Outcome = Lock | Processed | Heal | ProcessFailed | Step | VerifyFailed | Verified | Fail


# -- what to do ---------------------------------------------------------------------------------------


class Signal(enum.Enum):
    """What to do, when nothing more needs saying."""

    COMPLETE = "the job completed: run the completion hooks"
    TIME_OUT = "verification attempts are spent: the job waits in VerificationTimeout (one alert)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Save:
    """Write the decided job (guarded by its version). ``counted``: a status transition to count (``was`` →
    the new status); metadata-only writes are not. ``only_if_lease_expired``: the heal's guard."""

    was: JobStatus
    counted: bool = True
    only_if_lease_expired: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send the job's processing (or ``verification``) message, after ``delay_s``."""

    verification: bool
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    """Give the message back to the queue, visible again after ``delay_s`` (a receive is spent)."""

    delay_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """The job's own failure, to be tried again (``reason`` is recorded)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveToFailed:
    """Fail the job for ``reason`` (``decide(job, Fail(reason))``, with its alert)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitOut:
    """An outside service is down: the job was put back as it was; try again after ``wait_s``."""

    outage: BackendUnavailable
    reason: str
    lasted_s: float
    wait_s: float
    verification: bool
    alert: bool
    """The outage has lasted long enough to alert (once per outage)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessAgain:
    """Verification rejected the work, and attempts are left: process again."""

    reason: str


Effect = Save | Send | Nack | Retry | MoveToFailed | WaitOut | ProcessAgain | Signal


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """What ``decide`` needs beyond the job: its type's policy and the engine's retry policy."""

    policy: JobPolicy
    retry: RetryPolicy


# -- the decision -------------------------------------------------------------------------------------


def decide(job: Job, outcome: Outcome, now: float, rules: Rules) -> tuple[Job, tuple[Effect, ...]]:
    """The job's next value and the effects to carry out, for ``outcome`` at ``now``."""
    match outcome:
        case Lock(owner=owner):
            locked = transition(
                job, S.LOCKED_FOR_PROCESSING, lease_owner=owner, lease_expires_at=now + rules.policy.lease_s
            )
            return locked.with_common(
                process_started_at=int(now), process_attempt_no=job.common.process_attempt_no + 1
            ), (Save(was=job.status),)
        case Processed():
            done = transition(
                job, S.PENDING_VERIFICATION, external_id=outcome.external_id, lease_owner=None, lease_expires_at=None
            ).with_common(process_completed_at=int(now), waiting_since=None, waiting_alerted=False)
            if outcome.specific is not None:
                done = done.with_specific(outcome.specific)
            return done, (Save(was=job.status), Send(verification=True, delay_s=rules.policy.verification_delay(0)))
        case Heal(previous_life=previous_life):
            healed = transition(job, S.CREATED, lease_owner=None, lease_expires_at=None)
            return healed.with_common(process_started_at=None), (
                Save(was=job.status, only_if_lease_expired=not previous_life),
            )
        case ProcessFailed():
            return _process_failed(job, outcome, now, rules)
        case Step.VERIFY_STARTED:
            started = job.with_common(
                verification_started_at=int(now), verification_attempt_no=job.common.verification_attempt_no + 1
            )
            return started, (Save(was=job.status, counted=False),)
        case VerifyFailed(failure=failure):
            if failure.is_outage and failure.outage is not None:
                return _wait_out(job, job.status, failure.outage, now, rules, verification=True)
            return job, (Nack(delay_s=rules.retry.delay(1)),)
        case Verified():
            return _verified(job, outcome, now, rules)
        case Fail(reason=reason, dead_letter=dead_letter):
            failed = transition(job, S.FAILED, lease_owner=None, lease_expires_at=None)
            common = dataclasses.replace(job.common.with_failure(reason), dead_letter=dead_letter)
            return failed.with_common_metadata(common), (Save(was=job.status),)
        case Step.OPERATOR_RETRY:
            retried = transition(job, S.PENDING_RETRY).with_common(
                process_retry_attempt_no=job.common.process_retry_attempt_no + 1, process_attempt_no=0, dead_letter=None
            )
            return retried, (Save(was=job.status), Send(verification=False))
        case Step.OPERATOR_VERIFY:
            reopened = transition(job, S.PENDING_VERIFICATION).with_common(
                verification_attempt_no=0,
                verification_retry_attempt_no=job.common.verification_retry_attempt_no + 1,
                dead_letter=None,
            )
            return reopened, (
                Save(was=job.status),
                Send(verification=True, delay_s=rules.policy.verification_delay(0)),
            )
    raise AssertionError(f"unknown outcome {outcome!r}")


def _process_failed(job: Job, outcome: ProcessFailed, now: float, rules: Rules) -> tuple[Job, tuple[Effect, ...]]:
    """Wait out an outage (no attempt spent), fail at once, or put the job back as it was to try again: after
    the redelivery back-off, or (a condition outside the job) after its own delay with a fresh message."""
    failure = outcome.failure
    specific = failure.error.specific if isinstance(failure.error, JobError) else None
    if specific is not None:
        job = job.with_specific(specific)  # type: ignore[arg-type]
    if failure.kind == FailureKind.OUTAGE and failure.outage is not None:
        return _wait_out(job, outcome.restore_to, failure.outage, now, rules, verification=False)
    reason = f"Processing attempt {job.common.process_attempt_no} failed: {failure.error}"
    if failure.kind == FailureKind.FINAL:
        return job, (MoveToFailed(reason=reason),)
    restored = transition(job, outcome.restore_to, lease_owner=None, lease_expires_at=None)
    common = restored.common.with_failure(reason)
    restored = restored.with_common_metadata(
        dataclasses.replace(
            common,
            process_retry_attempt_no=common.process_retry_attempt_no + 1,
            process_started_at=None,
            process_completed_at=None,
        )
    )
    again: Effect
    if failure.kind == FailureKind.WAIT and failure.delay_s is not None:
        again = Send(verification=False, delay_s=failure.delay_s)
    else:
        again = Nack(delay_s=rules.retry.delay(outcome.receive_count))
    return restored, (Save(was=job.status), Retry(reason=reason), again)


def _wait_out(
    job: Job, status: JobStatus, outage: BackendUnavailable, now: float, rules: Rules, *, verification: bool
) -> tuple[Job, tuple[Effect, ...]]:
    """Put the job back as it was (the attempt it just began is not counted), say why in its failure reason,
    and try again after half the time the outage has lasted, with a fresh message."""
    since = job.common.waiting_since if job.common.waiting_since is not None else int(now)
    lasted = max(0.0, now - since)
    wait = rules.retry.outage_wait(lasted)
    stage = "verification" if verification else "processing"
    reason = f"Waiting for an outside service ({stage}, {lasted:.0f} s so far): {outage}"
    common = _uncounted(job.common.waiting(reason, since=since), verification=verification)
    alert = lasted >= rules.retry.outage_alert_after_s and not common.waiting_alerted
    if alert:
        common = dataclasses.replace(common, waiting_alerted=True)
    restored = transition(job, status, lease_owner=None, lease_expires_at=None).with_common_metadata(common)
    waited = WaitOut(outage=outage, reason=reason, lasted_s=lasted, wait_s=wait, verification=verification, alert=alert)
    return restored, (Save(was=job.status), waited, Send(verification=verification, delay_s=wait))


def _uncounted(common: CommonMetadata, *, verification: bool) -> CommonMetadata:
    """The attempt just begun, taken back: an outage spends none."""
    if verification:
        return dataclasses.replace(common, verification_attempt_no=max(0, common.verification_attempt_no - 1))
    return dataclasses.replace(
        common,
        process_attempt_no=max(0, common.process_attempt_no - 1),
        process_started_at=None,
        process_completed_at=None,
    )


def _verified(job: Job, answer: Verified, now: float, rules: Rules) -> tuple[Job, tuple[Effect, ...]]:
    """Completed; rejected (processed again while attempts are left, else Failed); or still pending (the next
    poll, or VerificationTimeout once the attempts are spent; a wake-up's pending answer changes nothing)."""
    if answer.specific is not None:
        job = job.with_specific(answer.specific)
    if answer.status == Verification.VERIFIED:
        done = transition(job, S.COMPLETED).with_common(
            verification_completed_at=int(now), waiting_since=None, waiting_alerted=False
        )
        return done, (Save(was=job.status), Signal.COMPLETE)
    if answer.status == Verification.REJECTED:
        job = job.with_common_metadata(job.common.with_failure(answer.reason))
        if job.common.process_attempt_no < rules.policy.max_process_attempts:
            return transition(job, S.VERIFICATION_FAILED), (
                Save(was=job.status),
                ProcessAgain(reason=answer.reason),
                Send(verification=False),
            )
        reason = f"Verification rejected. Max process attempts reached: {job.common.process_attempt_no}"
        return job, (MoveToFailed(reason=reason),)
    if answer.wake:
        return job, ()
    if job.common.verification_attempt_no >= rules.policy.max_verification_attempts:
        return transition(job, S.VERIFICATION_TIMEOUT), (Save(was=job.status), Signal.TIME_OUT)
    effects: tuple[Effect, ...] = (
        Send(verification=True, delay_s=rules.policy.verification_delay(job.common.verification_attempt_no)),
    )
    if answer.specific is not None:
        effects = (Save(was=job.status, counted=False), *effects)
    return job, effects
