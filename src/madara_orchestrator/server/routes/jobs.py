"""Job routes (SPEC §15): a job, the jobs with a status or of a block, and job control.

Not the original's (README, "Where this differs"): job control (``/jobs/{id}/process|verify|retry``) changes
state, so it takes POST and the admin token; a GET there (any web page a browser on the operator's network
opens can send one) is answered 405 and changes nothing. Each route is also mounted under ``/api/v1``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from madara_orchestrator.domain.errors import Conflict, InvalidInput, NotFound
from madara_orchestrator.domain.jobs import Job, JobStatus
from madara_orchestrator.engine.blocks import job_ranges
from madara_orchestrator.engine.runtime import Runtime
from madara_orchestrator.server import models
from madara_orchestrator.server.http import (
    Endpoint,
    Param,
    ProcessingError,
    api,
    block_number,
    envelope,
    failure,
    job_id,
    priority,
)

JOB_CONTROL = "Job control routes (process, verify, retry)"


def seconds(value: float | None) -> int | None:
    return None if value is None else int(value)


def job_summary(job: Job) -> dict[str, Any]:
    return {"job_type": job.job_type.value, "id": str(job.id), "status": job.status.value}


async def job_summaries(runtime: Runtime, jobs: list[Job]) -> list[dict[str, Any]]:
    """``{job_type, id, status}`` as in the original, plus ``start_block``/``end_block`` (null when unknown)."""
    ranges = await job_ranges(runtime.storage.db, jobs, settles_snos=not runtime.config.plan.aggregator_batches)
    out = []
    for job in jobs:
        start, end = ranges.get(job.id, (None, None))
        out.append({**job_summary(job), "start_block": start, "end_block": end})
    return out


def job_snapshot(job: Job) -> dict[str, Any]:
    common = job.common
    return {
        **job_summary(job),
        "internal_id": job.internal_id,
        "created_at": seconds(job.created_at),
        "updated_at": seconds(job.updated_at),
        "timestamps": {
            "process_started_at": common.process_started_at,
            "process_completed_at": common.process_completed_at,
            "verification_started_at": common.verification_started_at,
            "verification_completed_at": common.verification_completed_at,
        },
    }


def job_document(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "internal_id": job.internal_id,
        "job_type": job.job_type.value,
        "status": job.status.value,
        "external_id": job.external_id,
        "metadata": job.metadata.to_json(),
        "version": job.version,
        "created_at": seconds(job.created_at),
        "updated_at": seconds(job.updated_at),
        "lease": None if job.lease_owner is None else {"owner": job.lease_owner, "expires_at": job.lease_expires_at},
    }


@contextmanager
def processing_errors() -> Iterator[None]:
    """The original's job routes answer a missing job or a refused change 400 "Processing error: ..."."""
    try:
        yield
    except (NotFound, Conflict) as exc:
        raise ProcessingError(str(exc)) from exc


async def process(request: Request) -> Response:
    return await _control(request, "processing")


async def verify(request: Request) -> Response:
    return await _control(request, "verification")


async def retry(request: Request) -> Response:
    return await _control(request, "retry")


async def _control(request: Request, what: str) -> Response:
    """Queue the job for ``what`` behind the admin token; job errors as the original's job routes."""
    with processing_errors():
        api(request).check_admin(request, JOB_CONTROL)
        ident, urgent = job_id(request), priority(request)
        service = api(request).runtime.service
        if what == "processing":
            await service.queue_job_for_processing(ident, priority=urgent)
        elif what == "verification":
            await service.queue_job_for_verification(ident, priority=urgent)
        else:
            await service.retry_job(ident, priority=urgent)
    return envelope(message=f"Job with id {ident} queued for {'PRIORITY' if urgent else 'normal'} {what}")


async def control_get(request: Request) -> Response:
    """The original's GET on a job control path: read-only here, it says how to call it now."""
    response = failure(
        f"GET changes nothing here: use POST {request.url.path} with 'Authorization: Bearer <admin token>' "
        "(the orchestrator needs --admin-enabled and --admin-token)",
        405,
    )
    response.headers["Allow"] = "POST"
    return response


async def show_job(request: Request) -> Response:
    with processing_errors():
        ident = job_id(request)
        job = await api(request).runtime.storage.db.get_job(ident)
        if job is None:
            raise NotFound(f"Job not found: {ident}")
    return envelope(data=job_document(job))


async def jobs_by_status(request: Request) -> Response:
    raw = request.query_params.get("status")
    if raw is None:
        raise InvalidInput("Invalid query: status is required (one of " + ", ".join(JobStatus) + ")")
    try:
        status = JobStatus(raw)
    except ValueError:
        raise InvalidInput(f"Invalid query: unknown job status {raw!r}") from None
    runtime = api(request).runtime
    with processing_errors():
        jobs = await runtime.storage.db.list_jobs(statuses=[status])
        summaries = await job_summaries(runtime, jobs)
    return envelope(data={"jobs": summaries}, message=f"Successfully fetched {len(jobs)} jobs with status {status}")


async def block_status(request: Request) -> Response:
    n = block_number(request)
    runtime = api(request).runtime
    with processing_errors():
        summaries = await job_summaries(runtime, await runtime.storage.db.jobs_for_block(n))
    return envelope(data={"jobs": summaries}, message=f"Successfully fetched job statuses for block {n}")


ACTIONS = (("process", "processing", process), ("verify", "verification", verify), ("retry", "retry", retry))
JOB_ID = Param("id", "path", uuid.UUID, required=True, description="The job's id")
PRIORITY = Param(
    "priority", "query", bool, description="Queue on the priority queue (429 when it is full)", default=False
)
BLOCK = Param("n", "path", models.BlockNumber, required=True, description="A block number")


def endpoints(prefix: str) -> list[Endpoint]:
    """The job routes under ``prefix`` ("" or "/api/v1"), in the order they are matched."""
    op = prefix.replace("/", "_")
    found: list[Endpoint] = [
        Endpoint(
            prefix + "/jobs",
            jobs_by_status,
            f"jobsByStatus{op}",
            "All jobs with a status",
            "jobs",
            data=models.JobList,
            errors=(400, 503),
            params=(Param("status", "query", JobStatus, required=True),),
        ),
        Endpoint(
            prefix + "/jobs/block/{n}/status",
            block_status,
            f"jobsForBlock{op}",
            "The jobs that cover a block",
            "jobs",
            data=models.JobList,
            errors=(400, 503),
            params=(BLOCK,),
        ),
    ]
    for action, what, handler in ACTIONS:
        path = f"{prefix}/jobs/{{id}}/{action}"
        found += [
            Endpoint(
                path,
                handler,
                f"{action}Job{op}",
                f"Queue a job for {what} (admin token; 400 without --admin-enabled)",
                "jobs",
                method="POST",
                errors=(400, 401, 413, 429, 503),
                params=(JOB_ID, PRIORITY),
                admin=True,
            ),
            Endpoint(
                path,
                control_get,
                f"{action}JobGet{op}",
                "The original's GET: read-only here, answered 405 saying to use POST with the admin token",
                "jobs",
                params=(Param("id", "path", str, required=True, description="The job's id"),),
                answers={"405": {"$ref": "#/components/responses/E405"}},
            ),
        ]
    found.append(
        Endpoint(
            prefix + "/jobs/{id}",
            show_job,
            f"showJob{op}",
            "One job's document (400 'Processing error: Job not found' when there is none)",
            "jobs",
            data=models.JobDocument,
            message=False,
            errors=(400, 503),
            params=(JOB_ID,),
        )
    )
    return found
