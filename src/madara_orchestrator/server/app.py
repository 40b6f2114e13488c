"""The HTTP API (SPEC §15): the routes of ``routes/`` mounted on one Starlette app.

Job routes (``routes/jobs.py``), batches and blocks (``routes/batches.py``), admin bulk operations
(``routes/admin.py``, only with ``admin_enabled``), the Atlantic webhook (``routes/webhooks.py``), the
dashboard (``routes/dashboard.py``) and health, metrics and the OpenAPI document (``routes/ops.py``). Errors
are answered by one handler per exception type (``http.ERROR_ANSWERS``); the document is made from the same
declarations the routes are mounted from (``openapi.py``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from madara_orchestrator.engine.runtime import Runtime
from madara_orchestrator.interfaces import ProverWebhook
from madara_orchestrator.server.http import (
    MAX_BODY_BYTES,
    Api,
    BodyLimitMiddleware,
    Endpoint,
    TraceIdMiddleware,
    UnexpectedErrorMiddleware,
    exception_handlers,
)
from madara_orchestrator.server.openapi import openapi_document
from madara_orchestrator.server.routes import admin, batches, cost, dashboard, dlq, jobs, ops, webhooks

__all__ = ["MAX_BODY_BYTES", "create_app", "endpoints"]


def endpoints(*, admin_enabled: bool, webhook: ProverWebhook | None) -> list[Endpoint]:
    """Every route of the app, in the order they are matched."""
    found = ops.endpoints() + webhooks.endpoints(webhook) + jobs.endpoints("") + jobs.endpoints("/api/v1")
    found += batches.endpoints() + cost.endpoints() + admin.pause_endpoints()
    if admin_enabled:
        found += admin.endpoints() + dlq.endpoints()
    found += dashboard.endpoints()
    if admin_enabled:
        found.append(admin.retry_one_endpoint())
    return found


def create_app(
    runtime: Runtime,
    *,
    admin_enabled: bool = False,
    admin_token: str | None = None,
    webhook: ProverWebhook | None = None,
) -> Starlette:
    """``webhook``: how Atlantic's webhooks are checked and read (``cli/`` gives one when a secret is
    configured); without it ``/webhooks/atlantic`` answers 404 (verification polls)."""
    declared = endpoints(admin_enabled=admin_enabled, webhook=webhook)
    app = Starlette(
        routes=[endpoint.route() for endpoint in declared],
        middleware=[
            Middleware(TraceIdMiddleware),
            Middleware(BodyLimitMiddleware),
            Middleware(UnexpectedErrorMiddleware),
        ],
        exception_handlers=exception_handlers(),
    )
    app.state.api = Api(runtime, admin_enabled, admin_token, webhook)
    app.state.openapi_document = openapi_document(declared, admin_enabled=admin_enabled)
    return app
