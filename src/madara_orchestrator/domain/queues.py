"""The queue catalogue (SPEC §3.1) and message formats (§3.3)."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import JobType


class Layer(enum.StrEnum):
    L2 = "l2"
    L3 = "l3"


class QueueType(enum.StrEnum):
    JOB_HANDLE_FAILURE = "job_handle_failure"
    WORKER_TRIGGER = "worker_trigger"
    SNOS_JOB_PROCESSING = "snos_job_processing"
    SNOS_JOB_VERIFICATION = "snos_job_verification"
    PROVING_JOB_PROCESSING = "proving_job_processing"
    PROVING_JOB_VERIFICATION = "proving_job_verification"
    PROOF_REGISTRATION_JOB_PROCESSING = "proof_registration_job_processing"
    PROOF_REGISTRATION_JOB_VERIFICATION = "proof_registration_job_verification"
    DATA_SUBMISSION_JOB_PROCESSING = "data_submission_job_processing"
    DATA_SUBMISSION_JOB_VERIFICATION = "data_submission_job_verification"
    UPDATE_STATE_JOB_PROCESSING = "update_state_job_processing"
    UPDATE_STATE_JOB_VERIFICATION = "update_state_job_verification"
    AGGREGATOR_JOB_PROCESSING = "aggregator_job_processing"
    AGGREGATOR_JOB_VERIFICATION = "aggregator_job_verification"
    PRIORITY_PROCESSING = "priority_processing_queue"
    PRIORITY_VERIFICATION = "priority_verification_queue"


PROCESSING_QUEUE: dict[JobType, QueueType] = {
    JobType.SNOS_RUN: QueueType.SNOS_JOB_PROCESSING,
    JobType.PROOF_CREATION: QueueType.PROVING_JOB_PROCESSING,
    JobType.PROOF_REGISTRATION: QueueType.PROOF_REGISTRATION_JOB_PROCESSING,
    JobType.DATA_SUBMISSION: QueueType.DATA_SUBMISSION_JOB_PROCESSING,
    JobType.STATE_TRANSITION: QueueType.UPDATE_STATE_JOB_PROCESSING,
    JobType.AGGREGATOR: QueueType.AGGREGATOR_JOB_PROCESSING,
}
VERIFICATION_QUEUE: dict[JobType, QueueType] = {
    JobType.SNOS_RUN: QueueType.SNOS_JOB_VERIFICATION,
    JobType.PROOF_CREATION: QueueType.PROVING_JOB_VERIFICATION,
    JobType.PROOF_REGISTRATION: QueueType.PROOF_REGISTRATION_JOB_VERIFICATION,
    JobType.DATA_SUBMISSION: QueueType.DATA_SUBMISSION_JOB_VERIFICATION,
    JobType.STATE_TRANSITION: QueueType.UPDATE_STATE_JOB_VERIFICATION,
    JobType.AGGREGATOR: QueueType.AGGREGATOR_JOB_VERIFICATION,
}

LAYER_JOB_TYPES: dict[Layer, tuple[JobType, ...]] = {
    Layer.L2: (JobType.SNOS_RUN, JobType.PROOF_CREATION, JobType.AGGREGATOR, JobType.STATE_TRANSITION),
    Layer.L3: (
        JobType.SNOS_RUN,
        JobType.PROOF_CREATION,
        JobType.PROOF_REGISTRATION,
        JobType.DATA_SUBMISSION,
        JobType.STATE_TRANSITION,
    ),
}

MAX_RECEIVE_COUNT = 5
WORKER_TRIGGER_RETENTION_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    queue_type: QueueType
    visibility_timeout_s: float
    concurrency: int
    dead_letter: QueueType | None = QueueType.JOB_HANDLE_FAILURE
    max_receive_count: int = MAX_RECEIVE_COUNT
    retention_s: float | None = None


def queue_name(queue_type: QueueType, *, template: str = "mo_{}_queue", prefix: str | None = None) -> str:
    """``mo_{}_queue`` with the token, prefixed ``<prefix>_`` when a prefix is set (SPEC §3.2)."""
    if "{}" not in template:
        raise InvalidInput(f"queue identifier template {template!r} must contain '{{}}'")
    name = template.replace("{}", queue_type.value)
    return f"{prefix}_{name}" if prefix else name


def job_message(job_id: uuid.UUID, *, wake: bool = False) -> str:
    """``{"id": uuid}`` (SPEC §3.3); a wake-up (``wake``) adds ``"wake": true``, which older parsing ignores."""
    body: dict[str, object] = {"id": str(job_id)}
    if wake:
        body["wake"] = True
    return json.dumps(body)


@dataclass(frozen=True, slots=True)
class JobMessage:
    id: uuid.UUID
    wake: bool = False
    """A wake-up (a prover's webhook said "look now"), not a scheduled poll: it spends no verification
    attempt and schedules no next poll."""


def read_job_message(body: str) -> JobMessage:
    try:
        data = json.loads(body)
        return JobMessage(uuid.UUID(str(data["id"])), wake=data.get("wake") is True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f'queue message is not a job message ({{"id": uuid}}): {body[:200]!r}') from exc


def parse_job_message(body: str) -> uuid.UUID:
    return read_job_message(body).id


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueNames:
    """Physical queue names from the identifier template and the optional prefix."""

    template: str = "mo_{}_queue"
    prefix: str | None = None

    def of(self, queue_type: QueueType) -> str:
        return queue_name(queue_type, template=self.template, prefix=self.prefix)

    def processing(self, job_type: JobType) -> str:
        return self.of(PROCESSING_QUEUE[job_type])

    def verification(self, job_type: JobType) -> str:
        return self.of(VERIFICATION_QUEUE[job_type])
