"""The HTTP API (SPEC §15): job control, job and batch inspection, admin bulk operations, metrics.

Responses use the original's envelope ``{"success", "data"?, "message"?}``. Errors are raised as domain
errors by the routes and mapped to status codes in one place (``_error_response``); the framework's own
errors (405, 413, 500) use the envelope too, except the unknown-route fallback, which SPEC §15.1 pins as the
original's plain-text 404. Admin routes exist only with ``admin_enabled`` and then require
``Authorization: Bearer <admin token>``.

Not the original's (README, "Where this differs"): job control (``/jobs/{id}/process|verify|retry``) changes
state, so it takes POST and the admin token; a GET there (any web page a browser on the operator's network
opens can send one) is answered 405 and changes nothing. The Atlantic webhook needs a shared secret
(``--atlantic-webhook-secret``), in the path or as an HMAC of the body; without one it is off.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    OrchestratorError,
    QueueFull,
)
from madara_orchestrator.domain.health import HealthStatus
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.engine.runtime import HealthReport, Runtime
from madara_orchestrator.engine.service import WAKE_COALESCE_S
from madara_orchestrator.provers.atlantic import (
    ATLANTIC_SIGNATURE_HEADER,
    atlantic_webhook_signature,
    parse_atlantic_webhook,
)
from madara_orchestrator.server.dashboard import dashboard_routes, job_ranges
from madara_orchestrator.server.openapi import openapi_document

log = logging.getLogger("madara_orchestrator.http")

NOT_FOUND_TEXT = "The requested resource was not found"
StatusT = TypeVar("StatusT", SnosBatchStatus, AggregatorBatchStatus)
TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
INTEGER = re.compile(r"^-?[0-9]+\Z")  # \Z: "$" would take a trailing newline
MAX_NUMBER = 2**63 - 1
"""The largest block number or batch index the API takes: the largest integer SQLite stores."""
MAX_BODY_BYTES = 1024 * 1024
"""Requests with a larger body are refused (413) before any route runs; the largest legitimate body, an
Atlantic webhook, is a few hundred bytes."""


class Unauthorized(OrchestratorError):
    pass


class WebhooksOff(OrchestratorError):
    pass


WEBHOOK_PATH = "/webhooks/atlantic"
JOB_ACTIONS = ("process", "verify", "retry")


def check_webhook(secret: str | None, path_secret: str | None, signature: str | None, body: bytes) -> None:
    """Accept the webhook when the secret is in its path or its body is signed with it (constant-time
    comparisons); otherwise ``WebhooksOff`` (no secret configured) or ``Unauthorized``. Never echoes what
    was given."""
    if not secret:
        raise WebhooksOff(
            "Atlantic webhooks are off: start the orchestrator with --atlantic-webhook-secret to accept them"
        )
    if path_secret is not None and hmac.compare_digest(path_secret.encode(), secret.encode()):
        return
    if signature is not None and hmac.compare_digest(
        signature.strip().encode(), atlantic_webhook_signature(secret, body).encode()
    ):
        return
    raise Unauthorized(
        f"Atlantic webhook refused: wrong or missing secret (POST {WEBHOOK_PATH}/<secret>, or sign the body: "
        "X-Atlantic-Signature: sha256=<HMAC-SHA256 hex>)"
    )


def shown_path(path: str) -> str:
    """``path`` for an answer: the webhook secret a path may carry is never echoed."""
    return WEBHOOK_PATH + "/<secret>" if path.startswith(WEBHOOK_PATH + "/") else path


class PayloadTooLarge(InvalidInput):
    pass


def envelope(data: Any = None, message: str | None = None, *, success: bool = True, status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"success": success}
    if data is not None:
        body["data"] = data
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=status)


def _error_response(exc: Exception, *, job_route: bool) -> Response:
    if isinstance(exc, PayloadTooLarge):
        return envelope(message=str(exc), success=False, status=413)
    if isinstance(exc, QueueFull):
        return envelope(message=str(exc), success=False, status=429)
    if isinstance(exc, Unauthorized):
        return envelope(message=str(exc), success=False, status=401)
    if isinstance(exc, WebhooksOff):
        return envelope(message=str(exc), success=False, status=404)
    if isinstance(exc, InvalidInput):
        return envelope(message=str(exc), success=False, status=400)
    if job_route and isinstance(exc, (NotFound, Conflict)):
        return envelope(message=f"Processing error: {exc}", success=False, status=400)
    if isinstance(exc, NotFound):
        return envelope(message=str(exc), success=False, status=404)
    if isinstance(exc, Conflict):
        return envelope(message=str(exc), success=False, status=409)
    if isinstance(exc, BackendUnavailable):
        return envelope(message=f"Database error: {exc}", success=False, status=503)
    log.exception("unexpected error in HTTP handler", exc_info=exc)
    return envelope(message="Internal error; see the orchestrator log", success=False, status=500)


def _seconds(value: float | None) -> int | None:
    return None if value is None else int(value)


def job_summary(job: Job) -> dict[str, Any]:
    return {"job_type": job.job_type.value, "id": str(job.id), "status": job.status.value}


async def job_summaries(runtime: Runtime, jobs: list[Job]) -> list[dict[str, Any]]:
    """``{job_type, id, status}`` as in the original, plus ``start_block``/``end_block`` (null when unknown)."""
    ranges = await job_ranges(runtime.adapters.db, jobs, settles_snos=not runtime.config.plan.aggregator_batches)
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
        "created_at": _seconds(job.created_at),
        "updated_at": _seconds(job.updated_at),
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
        "created_at": _seconds(job.created_at),
        "updated_at": _seconds(job.updated_at),
        "lease": None if job.lease_owner is None else {"owner": job.lease_owner, "expires_at": job.lease_expires_at},
    }


def snos_batch_details(batch: SnosBatch) -> dict[str, Any]:
    weights = batch.builtin_weights
    return {
        "index": batch.index,
        "aggregator_batch_index": batch.aggregator_batch_index,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "status": batch.status.value,
        "created_at": _seconds(batch.created_at),
        "updated_at": _seconds(batch.updated_at),
        "metrics": {
            "state_diff_size": weights.state_diff_size,
            "sierra_gas": weights.sierra_gas,
            "proving_gas": weights.proving_gas,
        },
        "builtin_weights": weights.to_json(),
    }


def aggregator_batch_details(batch: AggregatorBatch) -> dict[str, Any]:
    return {
        "index": batch.index,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "aggregator_input_size_upper_bound": batch.aggregator_input_size_upper_bound,
        "status": batch.status.value,
        "created_at": _seconds(batch.created_at),
        "updated_at": _seconds(batch.updated_at),
        "blob_len": batch.blob_len,
        "builtin_weights": batch.builtin_weights.to_json(),
    }


def _job_id(request: Request) -> uuid.UUID:
    raw = request.path_params["id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"Invalid job ID: {raw}") from None


def _priority(request: Request) -> bool:
    value = request.query_params.get("priority", "false").lower()
    if value not in ("true", "false"):
        raise InvalidInput(f"Invalid query: priority must be true or false, got {value!r}")
    return value == "true"


def _number(raw: str) -> int | None:
    """A decimal integer from 0 to ``MAX_NUMBER``, or None."""
    if not INTEGER.match(raw) or len(raw) > 20:
        return None
    value = int(raw)
    return value if 0 <= value <= MAX_NUMBER else None


def _block_number(request: Request) -> int:
    raw = request.path_params["n"]
    value = _number(raw)
    if value is None:
        raise InvalidInput(f"Invalid block number: {raw} (a block number is an integer from 0 to {MAX_NUMBER})")
    return value


class TraceIdMiddleware(BaseHTTPMiddleware):
    """Echo ``x-trace-id`` when it is 32 hex characters, else make one (SPEC §14)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        trace_id = request.headers.get("x-trace-id", "")
        if not TRACE_ID.match(trace_id):
            trace_id = uuid.uuid4().hex
        response = await call_next(request)
        response.headers["x-trace-id"] = trace_id
        return response


class BodyLimitMiddleware:
    """Read the request body before the route runs and answer 413 when it is larger than ``max_bytes``,
    whether it declares a Content-Length or comes chunked; the route then reads the buffered body."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // 1024 // 1024} MiB" if self.max_bytes % (1024 * 1024) == 0 else "the limit"
        message = f"Request body larger than {limit} ({self.max_bytes} bytes); no route of this API takes one"
        response = _error_response(PayloadTooLarge(message), job_route=False)
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def health_document(report: HealthReport) -> dict[str, Any]:
    """``/health`` as JSON: the state, each backend, each trigger's run of failures, the problems."""
    return {
        "status": report.status.value,
        "backends": {name: {"up": why is None, "error": why} for name, why in report.backends.items()},
        "triggers": {
            str(name): {
                "failing": name in report.failing,
                "consecutive_failures": health.failures,
                "failing_since": health.failing_since,
                "last_failure_at": health.last_failure_at,
                "last_error": health.last_error,
                "outage": health.outage,
                "next_try_in_s": health.retry_in_s,
            }
            for name, health in report.triggers.items()
        },
        "problems": list(report.problems),
        "head": report.head,
        "settled": report.settled,
    }


def create_app(
    runtime: Runtime,
    *,
    admin_enabled: bool = False,
    admin_token: str | None = None,
    atlantic_webhook_secret: str | None = None,
) -> Starlette:
    """``atlantic_webhook_secret``: the shared secret Atlantic's webhooks must carry; without it
    ``/webhooks/atlantic`` answers 404 (verification polls)."""
    service = runtime.service
    db = runtime.adapters.db

    def job_route(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except Exception as exc:
                return _error_response(exc, job_route=True)

        return wrapped

    def other_route(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except Exception as exc:
                return _error_response(exc, job_route=False)

        return wrapped

    def check_admin(request: Request, what: str) -> None:
        if not admin_enabled:
            raise InvalidInput(f"{what} are disabled. Enable with --admin-enabled flag.")
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not admin_token or not given or not hmac.compare_digest(given.encode(), admin_token.encode()):
            raise Unauthorized(f"{what} need 'Authorization: Bearer <admin token>'")

    def admin_route(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                check_admin(request, "Admin endpoints")
                return await fn(request)
            except Exception as exc:
                return _error_response(exc, job_route=False)

        return wrapped

    def job_control_route(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """A job control route: POST, behind the admin token like the admin routes; job errors as the
        original's job routes answer them (400 "Processing error: ...")."""

        async def wrapped(request: Request) -> Response:
            try:
                check_admin(request, "Job control routes (process, verify, retry)")
                return await fn(request)
            except Exception as exc:
                return _error_response(exc, job_route=True)

        return wrapped

    async def job_control_get(request: Request) -> Response:
        """The original's GET on a job control path: read-only here, it says how to call it now."""
        path = request.url.path
        response = envelope(
            message=f"GET changes nothing here: use POST {path} with 'Authorization: Bearer <admin token>' "
            "(the orchestrator needs --admin-enabled and --admin-token)",
            success=False,
            status=405,
        )
        response.headers["Allow"] = "POST"
        return response

    async def health(request: Request) -> Response:
        """Readiness: ``UP`` (200) when every backend answers and nothing keeps failing; ``DEGRADED`` (503)
        when the backends answer but a trigger keeps failing (batching, SNOS, proving, settlement) or the
        settled block is above the sequencer's head (another chain's state); ``DOWN`` (503) when a backend
        does not answer. One line per problem after the state, URLs cut. DEGRADED answers 503, as DOWN does:
        the instance does not do its work, which readiness is about; liveness is ``/health/live`` (the
        process answers), which is what a restart should depend on. JSON with ``Accept: application/json``:
        ``status``, ``backends``, ``triggers`` (each one's failures), ``problems``, ``head`` and ``settled``."""
        report = await runtime.health_report()
        status = 200 if report.status == HealthStatus.UP else 503
        down = {name: why for name, why in report.backends.items() if why is not None}
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(health_document(report), status_code=status)
        lines = [f"{name}: {why}" for name, why in down.items()] + list(report.problems)
        if not lines:
            return PlainTextResponse(report.status.value, status_code=status)
        return PlainTextResponse(
            report.status.value + "\n" + "".join(f"{line}\n" for line in lines), status_code=status
        )

    async def live(request: Request) -> Response:
        return PlainTextResponse("UP")

    async def metrics(request: Request) -> Response:
        await runtime.refresh_gauges()
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    @job_control_route
    async def process(request: Request) -> Response:
        job_id, priority = _job_id(request), _priority(request)
        await service.queue_job_for_processing(job_id, priority=priority)
        return envelope(message=f"Job with id {job_id} queued for {'PRIORITY' if priority else 'normal'} processing")

    @job_control_route
    async def verify(request: Request) -> Response:
        job_id, priority = _job_id(request), _priority(request)
        await service.queue_job_for_verification(job_id, priority=priority)
        return envelope(message=f"Job with id {job_id} queued for {'PRIORITY' if priority else 'normal'} verification")

    @job_control_route
    async def retry(request: Request) -> Response:
        job_id, priority = _job_id(request), _priority(request)
        await service.retry_job(job_id, priority=priority)
        return envelope(message=f"Job with id {job_id} queued for {'PRIORITY' if priority else 'normal'} retry")

    @job_route
    async def show_job(request: Request) -> Response:
        job_id = _job_id(request)
        job = await db.get_job(job_id)
        if job is None:
            raise NotFound(f"Job not found: {job_id}")
        return envelope(data=job_document(job))

    @job_route
    async def jobs_by_status(request: Request) -> Response:
        raw = request.query_params.get("status")
        if raw is None:
            raise InvalidInput("Invalid query: status is required (one of " + ", ".join(JobStatus) + ")")
        try:
            status = JobStatus(raw)
        except ValueError:
            raise InvalidInput(f"Invalid query: unknown job status {raw!r}") from None
        jobs = await db.list_jobs(statuses=[status])
        return envelope(
            data={"jobs": await job_summaries(runtime, jobs)},
            message=f"Successfully fetched {len(jobs)} jobs with status {status}",
        )

    @job_route
    async def block_status(request: Request) -> Response:
        n = _block_number(request)
        jobs = await db.jobs_for_block(n)
        return envelope(
            data={"jobs": await job_summaries(runtime, jobs)},
            message=f"Successfully fetched job statuses for block {n}",
        )

    @other_route
    async def batch_for_block(request: Request) -> Response:
        n = _block_number(request)
        batch = await db.aggregator_batch_for_block(n)
        if batch is None:
            raise NotFound(f"Block not found: no aggregator batch contains block {n}")
        return envelope(data={"batch_number": batch.index})

    @other_route
    async def settlement_status(request: Request) -> Response:
        n = _block_number(request)
        snos = await db.snos_batch_for_block(n)
        aggregator = await db.aggregator_batch_for_block(n)
        if snos is None and aggregator is None:
            raise NotFound(f"Block not found: {n} is not in any batch yet")
        block_jobs = await db.jobs_for_block(n)
        proof_jobs: list[Job] = []
        if aggregator is not None:
            for child in await db.list_snos_batches(aggregator_index=aggregator.index):
                job = await db.get_job_by_internal_id(JobType.PROOF_CREATION, child.index)
                if job is not None:
                    proof_jobs.append(job)
        return envelope(
            data={
                "block_number": n,
                "snos_batch": snos_batch_details(snos) if snos else None,
                "aggregator_batch": aggregator_batch_details(aggregator) if aggregator else None,
                "block_jobs": [job_snapshot(j) for j in block_jobs],
                "aggregator_proof_jobs": [job_snapshot(j) for j in proof_jobs],
            }
        )

    def _batch_query(request: Request, kind: str) -> tuple[list[int], str | None, int, bool]:
        params = request.query_params
        indexes: list[int] = []
        if params.get("index"):
            index = _number(params["index"])
            if index is None:
                raise InvalidInput(
                    f"Invalid query: index must be an integer from 0 to {MAX_NUMBER}, got {params['index']!r}"
                )
            indexes = [index]
        raw_limit = params.get("limit", "50")
        try:
            limit = int(raw_limit) if INTEGER.match(raw_limit) else 0
        except ValueError:  # more digits than Python converts
            limit = 0
        if limit <= 0:
            raise InvalidInput("limit must be a positive integer")
        if limit > 500:
            raise InvalidInput("limit must be less than or equal to 500")
        sort = params.get("sort", "asc").lower()
        if sort not in ("asc", "desc"):
            raise InvalidInput(f"Invalid query: sort must be asc or desc, got {sort!r}")
        return indexes, params.get("status") or None, limit, sort == "desc"

    def _status_filter(enum_cls: type[StatusT], status: str | None, kind: str) -> list[StatusT]:
        """``closed`` means every status but Open; otherwise one status, case-insensitive."""
        if not status:
            return []
        if status.lower() == "closed":
            return [s for s in enum_cls if s.value != "Open"]
        match = [s for s in enum_cls if s.value.lower() == status.lower()]
        if not match:
            raise InvalidInput(f"Invalid query: unsupported {kind} batch status '{status}'")
        return match

    @other_route
    async def snos_batches(request: Request) -> Response:
        indexes, status, limit, desc = _batch_query(request, "snos")
        statuses = _status_filter(SnosBatchStatus, status, "snos")
        batches = await db.list_snos_batches(indexes=indexes, statuses=statuses, limit=limit, descending=desc)
        return envelope(
            data={"batches": [snos_batch_details(b) for b in batches]}, message="Successfully fetched SNOS batches"
        )

    @other_route
    async def aggregator_batches(request: Request) -> Response:
        indexes, status, limit, desc = _batch_query(request, "aggregator")
        statuses = _status_filter(AggregatorBatchStatus, status, "aggregator")
        batches = await db.list_aggregator_batches(indexes=indexes, statuses=statuses, limit=limit, descending=desc)
        return envelope(
            data={"batches": [aggregator_batch_details(b) for b in batches]},
            message="Successfully fetched aggregator batches",
        )

    def _job_types(request: Request) -> list[JobType]:
        types = []
        for raw in request.query_params.getlist("job_type"):
            try:
                types.append(JobType(raw))
            except ValueError:
                raise InvalidInput(f"Invalid query: unknown job type {raw!r}") from None
        return types

    async def _bulk(
        request: Request,
        status: JobStatus,
        action: Callable[[Job], Awaitable[Any]],
        empty: str,
        done: str,
    ) -> Response:
        jobs = await db.list_jobs(statuses=[status], job_types=_job_types(request))
        ok: list[str] = []
        failed: list[str] = []
        for job in jobs:
            try:
                await action(job)
                ok.append(str(job.id))
            except OrchestratorError as exc:
                log.warning("admin action on %s failed: %s", job.describe(), exc)
                failed.append(str(job.id))
        message = empty if not jobs else done.format(n=len(ok)) + (f". {len(failed)} failed." if failed else "")
        return envelope(
            data={
                "success_count": len(ok),
                "successful_job_ids": ok,
                "failed_count": len(failed),
                "failed_job_ids": failed,
            },
            message=message,
        )

    @admin_route
    async def admin_retry_failed(request: Request) -> Response:
        return await _bulk(
            request,
            JobStatus.FAILED,
            lambda j: service.retry_job(j.id),
            "No failed jobs to retry",
            "Queued for retry: {n} job(s)",
        )

    @admin_route
    async def admin_reverify(request: Request) -> Response:
        return await _bulk(
            request,
            JobStatus.VERIFICATION_TIMEOUT,
            lambda j: service.queue_job_for_verification(j.id),
            "No verification-timeout jobs to reverify",
            "Queued for verification: {n} job(s)",
        )

    @admin_route
    async def admin_requeue_pending(request: Request) -> Response:
        return await _bulk(
            request,
            JobStatus.PENDING_VERIFICATION,
            lambda j: service.requeue(j, verification=True),
            "No pending verification jobs to requeue",
            "Re-queued for verification: {n} job(s)",
        )

    @admin_route
    async def admin_requeue_created(request: Request) -> Response:
        return await _bulk(
            request,
            JobStatus.CREATED,
            lambda j: service.requeue(j, verification=False),
            "No created jobs to requeue",
            "Re-queued for processing: {n} job(s)",
        )

    @admin_route
    async def admin_close_open(request: Request) -> Response:
        """Close every open batch through batching itself (under its lease, so a batching run never
        writes a batch's files after it was closed); 409 while a batching run holds the lease."""
        aggregators, snos = await runtime.triggers.close_open_batches()
        return envelope(
            data={"snos_batches_closed": snos, "aggregator_batches_closed": aggregators},
            message=f"Closed {aggregators} aggregator batch(es) and {snos} SNOS batch(es)",
        )

    async def atlantic_webhook(request: Request) -> Response:
        """Atlantic's completion webhook: wake the verification of the job waiting on that query or bucket.
        Authenticated (``check_webhook``); a wake-up spends no verification attempt and wake-ups of one job
        are coalesced (``JobService.wake_verification``), so a flood changes nothing but the load."""
        try:
            body = await request.body()
            check_webhook(
                atlantic_webhook_secret,
                request.path_params.get("secret"),
                request.headers.get(ATLANTIC_SIGNATURE_HEADER),
                body,
            )
            hook = parse_atlantic_webhook(body)
            woken: list[Job] = []
            coalesced = 0
            if hook.is_final:
                jobs, skipped = await service.wake_verification(
                    hook.query_id, [JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION]
                )
                woken, coalesced = woken + jobs, coalesced + skipped
                if hook.bucket_id:
                    jobs, skipped = await service.wake_verification(hook.bucket_id, [JobType.AGGREGATOR])
                    woken, coalesced = woken + jobs, coalesced + skipped
        except Exception as exc:
            return _error_response(exc, job_route=False)
        message = f"Woke verification of {len(woken)} job(s) for query {hook.query_id} ({hook.status})"
        if coalesced:
            message += f"; {coalesced} already woken in the last {WAKE_COALESCE_S:g} s"
        return envelope(data={"woken_job_ids": [str(j.id) for j in woken]}, message=message)

    document = openapi_document(admin_enabled=admin_enabled)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = [
        Route("/health", health),
        Route("/health/live", live),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route(WEBHOOK_PATH, atlantic_webhook, methods=["POST"]),
        Route(WEBHOOK_PATH + "/{secret}", atlantic_webhook, methods=["POST"]),
    ]
    actions = {"process": process, "verify": verify, "retry": retry}
    for prefix in ("", "/api/v1"):
        routes += [
            Route(prefix + "/jobs", jobs_by_status),
            Route(prefix + "/jobs/block/{n}/status", block_status),
        ]
        for action in JOB_ACTIONS:
            routes += [
                Route(f"{prefix}/jobs/{{id}}/{action}", actions[action], methods=["POST"]),
                Route(f"{prefix}/jobs/{{id}}/{action}", job_control_get, methods=["GET"]),
            ]
        routes += [Route(prefix + "/jobs/{id}", show_job)]
    routes += [
        Route("/blocks/batch-for-block/{n}", batch_for_block),
        Route("/blocks/settlement-status/{n}", settlement_status),
        Route("/batches/snos", snos_batches),
        Route("/batches/aggregator", aggregator_batches),
    ]
    if admin_enabled:
        routes += [
            Route("/admin/jobs/retry/failed", admin_retry_failed, methods=["POST"]),
            Route("/admin/jobs/reverify/verification-timeout", admin_reverify, methods=["POST"]),
            Route("/admin/jobs/requeue/pending-verification", admin_requeue_pending, methods=["POST"]),
            Route("/admin/jobs/requeue/created", admin_requeue_created, methods=["POST"]),
            Route("/admin/batches/close-open", admin_close_open, methods=["POST"]),
        ]
    routes += dashboard_routes(runtime, admin_enabled=admin_enabled, guard=other_route, admin_guard=admin_route)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(NOT_FOUND_TEXT, status_code=404)

    async def http_error(request: Request, exc: Exception) -> Response:
        """The framework's own refusals (405 above all) in the envelope, with their headers (``Allow``)."""
        assert isinstance(exc, HTTPException)
        message = exc.detail
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"Method {request.method} is not allowed on {shown_path(request.url.path)}; use {allowed}"
        response = envelope(message=message, success=False, status=exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    async def internal_error(request: Request, exc: Exception) -> Response:
        return envelope(message="Internal error; see the orchestrator log", success=False, status=500)

    return Starlette(
        routes=routes,
        middleware=[Middleware(TraceIdMiddleware), Middleware(BodyLimitMiddleware)],
        exception_handlers={404: not_found, HTTPException: http_error, Exception: internal_error},
    )
