"""The operator's dead letters (``orchestrator dlq``, ``/admin/dlq``): list, show, redrive.

A message received ``max_receive_count`` times goes to the dead-letter queue (each backend moves it:
``SqlQueue``/``MemoryQueue`` on their claim, SQS by the queue's redrive policy); the dead-letter consumer
fails its job and records the dead letter on it (``JobService.handle_job_failure``). So the dead letters are
the Failed jobs carrying that record, whatever the backend; the dead-letter queue itself only holds those
not handled yet (``waiting``).

Redrive puts a dead letter's job back where its message was: a processing message makes the job
PendingRetry and sends it to its processing queue, a verification message makes it PendingVerification
and sends it to its verification queue (a message dead-lettered from a priority queue goes back to the
ordinary queue of its phase). The record is cleared. A job that is no longer Failed (Completed, or retried
since) is left as it is, and the answer says so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from madara_orchestrator.domain.dead_letters import NOTHING_COMPLETED, DeadLetter, for_verification
from madara_orchestrator.domain.errors import NotFound
from madara_orchestrator.domain.jobs import Job, JobStatus
from madara_orchestrator.domain.queues import QueueType
from madara_orchestrator.engine.service import JobService

S = JobStatus


@dataclass(frozen=True, slots=True)
class Listed:
    job: Job
    letter: DeadLetter | None
    """None for a job found by its id that carries no dead letter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Redriven:
    job: Job
    changed: bool
    note: str
    queue: str | None = None
    """Where the message went (None when nothing changed)."""


def letter_of(job: Job) -> DeadLetter | None:
    record = job.common.dead_letter
    return None if record is None else DeadLetter.from_json(record)


def queue_of(service: JobService, listed: Listed) -> str:
    """The queue a dead letter came from: as the backend said, else its job's queue of the phase the job was
    in (SQS names it only on AWS, as ``DeadLetterQueueSourceArn``)."""
    letter = listed.letter
    if letter is not None and letter.source_queue is not None:
        return letter.source_queue
    job_type = listed.job.job_type
    if letter is not None and for_verification(letter, service.names, job_type):
        return service.names.verification(job_type)
    return service.names.processing(job_type)


async def dead_letters(service: JobService) -> list[Listed]:
    """The dead letters not yet redriven, oldest job first."""
    jobs = await service.db.list_jobs(statuses=[S.FAILED])
    return [Listed(job, letter_of(job)) for job in jobs if job.common.dead_letter is not None]


async def waiting(service: JobService) -> int:
    """Messages in the dead-letter queue that its consumer has not handled yet."""
    depth = await service.queue.depth(service.names.of(QueueType.JOB_HANDLE_FAILURE))
    return depth.visible + depth.in_flight + depth.delayed


async def find(service: JobService, ident: str) -> Listed:
    """A dead letter by its job's id (the id in the message) or by its message id."""
    try:
        job_id = uuid.UUID(ident)
    except ValueError:
        job_id = None
    if job_id is not None:
        job = await service.db.get_job(job_id)
        if job is not None:
            return Listed(job, letter_of(job))
    for listed in await dead_letters(service):
        if listed.letter is not None and listed.letter.message_id == ident:
            return listed
    raise NotFound(f"no dead letter or job {ident!r}; `orchestrator dlq list` shows the dead letters")


async def redrive(service: JobService, listed: Listed) -> Redriven:
    job, letter = listed.job, listed.letter
    if job.status == S.COMPLETED:
        return Redriven(job=job, changed=False, note=NOTHING_COMPLETED)
    if job.status != S.FAILED:
        return Redriven(
            job=job, changed=False, note=f"job is {job.status} (back in the pipeline already): nothing to do"
        )
    if letter is None:
        return Redriven(
            job=job,
            changed=False,
            note="job failed for another reason, not dead-lettered: nothing to do (`orchestrator jobs retry` does)",
        )
    if for_verification(letter, service.names, job.job_type) and job.external_id:
        queue = service.names.verification(job.job_type)
        after = await service.queue_job_for_verification(job.id)
    else:
        queue = service.names.processing(job.job_type)
        after = await service.retry_job(job.id)
    return Redriven(
        job=after, changed=True, note=f"redriven to {queue}: job {job.status} -> {after.status}", queue=queue
    )
