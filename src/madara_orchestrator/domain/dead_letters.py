"""Dead letters: a job message its queue gave up on after ``max_receive_count`` receives (SPEC §3.5).

Every job queue dead-letters into the one ``job_handle_failure`` queue, whose consumer moves the job to
Failed (SPEC §2.6) and deletes the message. What the operator needs to see and undo it is kept on the
failed job (``CommonMetadata.dead_letter``, ours, not the original's): the message, the queue it came
from, its receives, when, and the job's last failure reason. ``redrive`` undoes it: the job goes back to the
phase the message was for (Failed -> PendingRetry with a processing message, or -> PendingVerification
with a verification message) and the record is cleared.

The queue backends pass what they know of a dead letter as message attributes with the names below (SQL
and in-memory queues: all of them; SQS: the source queue when SQS says, the first receive and the send
time). Times are epoch seconds, as text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.domain.queues import QueueNames, QueueType

SOURCE = "DeadLetterQueueSource"
"""The physical name of the queue the message was dead-lettered from."""
RECEIVE_COUNT = "DeadLetterReceiveCount"
"""How many times the source queue delivered the message."""
DEAD_LETTERED_AT = "DeadLetteredAt"
FIRST_RECEIVE_AT = "FirstReceiveAt"
LAST_RECEIVE_AT = "LastReceiveAt"
SENT_AT = "SentAt"

NOTHING_COMPLETED = "job already completed: nothing to do"


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    message_id: str
    source_queue: str | None
    """Where it was dead-lettered from; None when the backend does not say (then the phase is the job's)."""
    receive_count: int
    """Receives in the source queue when the backend says, else the dead-letter queue's own count (SQS's
    ``ApproximateReceiveCount``, which goes on counting in the dead-letter queue)."""
    sent_at: float | None
    first_receive_at: float | None
    last_receive_at: float | None
    dead_lettered_at: float
    last_status: JobStatus
    """The job's status when its message was dead-lettered."""
    reason: str | None
    """The job's last failure reason before it was dead-lettered (why, when known)."""
    body: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeadLetter:
        def number(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        source = data.get("source_queue")
        reason = data.get("reason")
        return cls(
            message_id=str(data.get("message_id") or ""),
            source_queue=None if source is None else str(source),
            receive_count=int(data.get("receive_count") or 0),
            sent_at=number("sent_at"),
            first_receive_at=number("first_receive_at"),
            last_receive_at=number("last_receive_at"),
            dead_lettered_at=float(data.get("dead_lettered_at") or 0.0),
            last_status=JobStatus(str(data.get("last_status"))),
            reason=None if reason is None else str(reason),
            body=str(data.get("body") or ""),
        )


def dead_letter_of(
    message_id: str,
    body: str,
    receive_count: int,
    attributes: Mapping[str, str],
    *,
    status: JobStatus,
    reason: str | None,
    now: float,
) -> DeadLetter:
    """The record of a dead letter from the message the dead-letter queue delivered."""
    source_count = _int(attributes.get(RECEIVE_COUNT))
    return DeadLetter(
        message_id=message_id,
        source_queue=attributes.get(SOURCE) or None,
        receive_count=source_count if source_count is not None else receive_count,
        sent_at=_float(attributes.get(SENT_AT)),
        first_receive_at=_float(attributes.get(FIRST_RECEIVE_AT)),
        last_receive_at=_float(attributes.get(LAST_RECEIVE_AT)),
        dead_lettered_at=_float(attributes.get(DEAD_LETTERED_AT)) or now,
        last_status=status,
        reason=reason,
        body=body,
    )


VERIFYING = frozenset({JobStatus.PENDING_VERIFICATION, JobStatus.VERIFICATION_TIMEOUT, JobStatus.VERIFICATION_FAILED})


def for_verification(letter: DeadLetter, names: QueueNames, job_type: JobType) -> bool:
    """Whether the dead letter was a verification message: by its source queue when known, else by the
    status the job had when it was dead-lettered."""
    if letter.source_queue is not None:
        verification = {names.verification(job_type), names.of(QueueType.PRIORITY_VERIFICATION)}
        processing = {names.processing(job_type), names.of(QueueType.PRIORITY_PROCESSING)}
        if letter.source_queue in verification:
            return True
        if letter.source_queue in processing:
            return False
    return letter.last_status in VERIFYING
