"""Admin routes: bulk operations on jobs, closing the open batches, and one job's retry (the dashboard's
Retry button), mounted only with ``--admin-enabled``; pausing and resuming a stage, mounted always (400
without ``--admin-enabled``). Each requires ``Authorization: Bearer <admin token>``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from madara_orchestrator.domain.errors import InvalidInput, OrchestratorError
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.pause import Pause, Stage
from madara_orchestrator.engine.service import JobService
from madara_orchestrator.server import models
from madara_orchestrator.server.http import Endpoint, Param, api, envelope, job_id
from madara_orchestrator.server.routes.jobs import JOB_ID

log = logging.getLogger("madara_orchestrator.http")

ADMIN = "Admin endpoints"
JOB_TYPES = Param(
    "job_type",
    "query",
    list[JobType],
    description="Only jobs of these types (repeat the key); all types when absent",
    repeated=True,
)


def job_types(request: Request) -> list[JobType]:
    types = []
    for raw in request.query_params.getlist("job_type"):
        try:
            types.append(JobType(raw))
        except ValueError:
            raise InvalidInput(f"Invalid query: unknown job type {raw!r}") from None
    return types


Action = Callable[[JobService, Job], Awaitable[Any]]


def bulk(status: JobStatus, action: Action, empty: str, done: str) -> Callable[[Request], Awaitable[Response]]:
    """A route that applies ``action`` to every job with ``status`` (of the ``job_type``s asked for)."""

    async def route(request: Request) -> Response:
        api(request).check_admin(request, ADMIN)
        runtime = api(request).runtime
        jobs = await runtime.storage.db.list_jobs(statuses=[status], job_types=job_types(request))
        ok: list[str] = []
        failed: list[str] = []
        for job in jobs:
            try:
                await action(runtime.service, job)
                ok.append(str(job.id))
            except OrchestratorError as exc:
                log.warning("admin action on %s failed: %s", job.describe(), exc)
                failed.append(str(job.id))
        message = empty if not jobs else done.format(n=len(ok)) + (f". {len(failed)} failed." if failed else "")
        data = {
            "success_count": len(ok),
            "successful_job_ids": ok,
            "failed_count": len(failed),
            "failed_job_ids": failed,
        }
        return envelope(data=data, message=message)

    return route


async def close_open(request: Request) -> Response:
    """Close every open batch through batching itself (under its lease, so a batching run never writes a
    batch's files after it was closed); 409 while a batching run holds the lease."""
    api(request).check_admin(request, ADMIN)
    aggregators, snos = await api(request).runtime.triggers.close_open_batches()
    return envelope(
        data={"snos_batches_closed": snos, "aggregator_batches_closed": aggregators},
        message=f"Closed {aggregators} aggregator batch(es) and {snos} SNOS batch(es)",
    )


async def retry_one(request: Request) -> Response:
    api(request).check_admin(request, ADMIN)
    ident = job_id(request)
    await api(request).runtime.service.retry_job(ident)
    return envelope(message=f"Job with id {ident} queued for normal retry")


BULK = (
    (
        "/admin/jobs/retry/failed",
        "adminRetryFailed",
        "Retry every Failed job",
        bulk(
            JobStatus.FAILED,
            lambda service, job: service.retry_job(job.id),
            "No failed jobs to retry",
            "Queued for retry: {n} job(s)",
        ),
    ),
    (
        "/admin/jobs/reverify/verification-timeout",
        "adminReverify",
        "Re-verify every VerificationTimeout job",
        bulk(
            JobStatus.VERIFICATION_TIMEOUT,
            lambda service, job: service.queue_job_for_verification(job.id),
            "No verification-timeout jobs to reverify",
            "Queued for verification: {n} job(s)",
        ),
    ),
    (
        "/admin/jobs/requeue/pending-verification",
        "adminRequeuePending",
        "Re-send a verification message for every PendingVerification job",
        bulk(
            JobStatus.PENDING_VERIFICATION,
            lambda service, job: service.requeue(job, verification=True),
            "No pending verification jobs to requeue",
            "Re-queued for verification: {n} job(s)",
        ),
    ),
    (
        "/admin/jobs/requeue/created",
        "adminRequeueCreated",
        "Re-send a processing message for every Created job",
        bulk(
            JobStatus.CREATED,
            lambda service, job: service.requeue(job, verification=False),
            "No created jobs to requeue",
            "Re-queued for processing: {n} job(s)",
        ),
    ),
)


def endpoints() -> list[Endpoint]:
    """The bulk routes and closing the open batches (the dashboard adds the one-job retry after its own)."""
    found = [
        Endpoint(
            path,
            route,
            operation,
            summary,
            "admin",
            method="POST",
            data=models.BulkResult,
            errors=(400, 401, 413, 503),
            params=(JOB_TYPES,),
            admin=True,
        )
        for path, operation, summary, route in BULK
    ]
    found.append(
        Endpoint(
            "/admin/batches/close-open",
            close_open,
            "adminCloseOpen",
            "Close every open batch (409 while a batching run holds the lease)",
            "admin",
            method="POST",
            data=models.ClosedBatches,
            errors=(400, 401, 409, 413, 503),
            admin=True,
        )
    )
    return found


def retry_one_endpoint() -> Endpoint:
    return Endpoint(
        "/admin/jobs/{id}/retry",
        retry_one,
        "adminRetryOne",
        "Retry one Failed job (the dashboard's Retry button)",
        "admin",
        method="POST",
        errors=(400, 401, 404, 409, 413, 503),
        params=(JOB_ID,),
        admin=True,
    )


# -- pausing and resuming a stage (engine/pause.py) -------------------------------------------------

PAUSE_CONTROL = "Pause and resume"
STAGE = Param("stage", "path", Stage, required=True, description="The stage: batching, proving or settlement")
REASON = Param("reason", "query", str, description="Why (one line, at most 300 characters)")
BY = Param("by", "query", str, description="Who pauses or resumes (default: the instance that takes the request)")


def _stage(request: Request) -> Stage:
    return Stage.parse(request.path_params["stage"])


def _pause_data(stage: Stage, pause: Pause | None, *, paused: bool) -> dict[str, Any]:
    return {"stage": stage.value, "paused": paused, "pause": None if pause is None else pause.to_json()}


async def pause_stage(request: Request) -> Response:
    """Pause a stage for every instance; a stage paused already keeps its pause (said in the message)."""
    api(request).check_admin(request, PAUSE_CONTROL)
    stage = _stage(request)
    params = request.query_params
    pause, new = await api(request).runtime.pauses.pause(stage, reason=params.get("reason"), by=params.get("by"))
    message = pause.describe() if new else f"{stage} was paused already; that pause stands: {pause.describe()}"
    return envelope(data=_pause_data(stage, pause, paused=True), message=message)


async def resume_stage(request: Request) -> Response:
    api(request).check_admin(request, PAUSE_CONTROL)
    stage = _stage(request)
    removed = await api(request).runtime.pauses.resume(stage, by=request.query_params.get("by"))
    message = f"{stage} resumed ({removed.describe()})" if removed is not None else f"{stage} was not paused"
    return envelope(data=_pause_data(stage, removed, paused=False), message=message)


def pause_endpoints() -> list[Endpoint]:
    """Mounted with or without ``--admin-enabled`` (like job control): without it they answer 400 saying so."""
    return [
        Endpoint(
            "/pause/{stage}",
            pause_stage,
            "pauseStage",
            "Pause batching, proving or settlement on every instance (admin token; 400 without --admin-enabled)",
            "admin",
            method="POST",
            data=models.PauseResult,
            errors=(400, 401, 413, 503),
            params=(STAGE, REASON, BY),
            admin=True,
        ),
        Endpoint(
            "/resume/{stage}",
            resume_stage,
            "resumeStage",
            "Resume a paused stage (admin token; 400 without --admin-enabled)",
            "admin",
            method="POST",
            data=models.PauseResult,
            errors=(400, 401, 413, 503),
            params=(STAGE, BY),
            admin=True,
        ),
    ]
