"""Operations routes: readiness (``/health``), liveness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from madara_orchestrator.domain.health import HealthStatus
from madara_orchestrator.engine.runtime import HealthReport
from madara_orchestrator.server import models
from madara_orchestrator.server.http import Endpoint, api, envelope

JSON = "application/json"
TEXT = "text/plain"
TEXT_OK = {"description": "Plain text", "content": {TEXT: {"schema": {"type": "string"}}}}


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
        "paused": {str(stage): pause.to_json() for stage, pause in report.paused.items()},
    }


async def health(request: Request) -> Response:
    """Readiness: ``UP`` (200) when every backend answers and nothing keeps failing; ``DEGRADED`` (503)
    when the backends answer but a trigger keeps failing (batching, SNOS, proving, settlement), the
    settled block is above the sequencer's head (another chain's state) or the outbox's oldest message (SQS)
    has waited a minute unsent; ``DOWN`` (503) when a backend
    does not answer. One line per problem after the state, URLs cut. DEGRADED answers 503, as DOWN does:
    the instance does not do its work, which readiness is about; liveness is ``/health/live`` (the
    process answers), which is what a restart should depend on. JSON with ``Accept: application/json``:
    ``status``, ``backends``, ``triggers`` (each one's failures), ``problems``, ``head``, ``settled`` and
    ``paused`` (each paused stage: reason, by whom, since when). A paused stage is an operator's choice, not
    a problem: the state stays UP, and the text adds one line per paused stage."""
    report = await api(request).runtime.health_report()
    status = 200 if report.status == HealthStatus.UP else 503
    down = {name: why for name, why in report.backends.items() if why is not None}
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(health_document(report), status_code=status)
    lines = [f"{name}: {why}" for name, why in down.items()] + list(report.problems)
    lines += [pause.describe() for pause in report.paused.values()]
    if not lines:
        return PlainTextResponse(report.status.value, status_code=status)
    return PlainTextResponse(report.status.value + "\n" + "".join(f"{line}\n" for line in lines), status_code=status)


async def pauses(request: Request) -> Response:
    """The paused stages, each with its reason, who paused it and since when."""
    paused = await api(request).runtime.pauses.current()
    data = {"paused": {str(stage): pause.to_json() for stage, pause in paused.items()}}
    message = "; ".join(p.describe() for p in paused.values()) or "nothing is paused"
    return envelope(data=data, message=message)


async def backlog(request: Request) -> Response:
    """Blocks produced and not settled, their state-diff felts and the blobs they will take (engine/backlog.py)."""
    runtime = api(request).runtime
    measured = await runtime.backlog.measure()
    data = {**measured.to_json(), "alert_blocks": runtime.config.backlog_alert_blocks}
    if measured.blocks is None:
        message = "backlog unknown: " + "; ".join(measured.errors or ["the sequencer's head is unknown"])
    else:
        message = f"{measured.blocks} block(s) produced and not settled"
    return envelope(data=data, message=message)


async def live(request: Request) -> Response:
    return PlainTextResponse("UP")


async def metrics(request: Request) -> Response:
    runtime = api(request).runtime
    await runtime.refresh_gauges()
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi_document)


def endpoints() -> list[Endpoint]:
    health_body: dict[str, Any] = {TEXT: {"schema": {"type": "string"}}, JSON: {"schema": models.Health}}
    return [
        Endpoint(
            "/health",
            health,
            "health",
            "Readiness: `UP`; `DEGRADED` or `DOWN` and one line per problem",
            "ops",
            description="`DOWN`: a backend does not answer. `DEGRADED`: the backends answer, but a trigger "
            "keeps failing or the settled block is above the sequencer's head. JSON (`Health`) with "
            "`Accept: application/json`, else plain text.",
            answers={
                "200": {"description": "Every backend answers and nothing keeps failing", "content": health_body},
                "503": {"description": "DEGRADED or DOWN", "content": health_body},
            },
        ),
        Endpoint("/health/live", live, "live", "Liveness", "ops", answers={"200": TEXT_OK}),
        Endpoint(
            "/pauses", pauses, "pauses", "The paused stages: reason, by whom, since when", "ops", data=models.Pauses
        ),
        Endpoint(
            "/backlog",
            backlog,
            "backlog",
            "Blocks produced and not settled, their state-diff felts and estimated blobs (a sequencer's throttle)",
            "ops",
            data=models.Backlog,
            errors=(503,),
        ),
        Endpoint("/metrics", metrics, "metrics", "Prometheus text exposition", "ops", answers={"200": TEXT_OK}),
        Endpoint(
            "/openapi.json",
            openapi,
            "openapi",
            "This document",
            "ops",
            answers={"200": {"description": "The OpenAPI document", "content": {JSON: {"schema": {"type": "object"}}}}},
        ),
    ]
